package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
	"github.com/steady-ha/steady/internal/auth"
	"github.com/steady-ha/steady/internal/event"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type fixture struct {
	srv  *Server
	bus  *event.Bus
	j    *event.Journal
	sock string
	c    *client.Client
}

func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	dir := t.TempDir()
	j, err := event.OpenJournal(event.JournalOptions{Dir: filepath.Join(dir, "j"), SegmentBytes: 64 << 10, MaxBytes: 256 << 10, CacheEvents: 8})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	bus, err := event.NewBus(j, "n1", reg)
	if err != nil {
		t.Fatal(err)
	}
	subs, err := event.NewSubscribers(event.SubscribersOptions{Dir: filepath.Join(dir, "subs"), Bus: bus, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	opts := Options{
		Socket: sock, Policy: auth.NewPolicy(auth.PolicyOptions{AdminGroup: "steady-admin", ReadGroup: "steady"}),
		Gatherer: reg, Registerer: reg, Bus: bus, Subscribers: subs, KeepAlive: 50 * time.Millisecond,
		Status: func(context.Context) api.Status { return api.Status{Node: "n1"} },
	}
	if mod != nil {
		mod(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close(context.Background())
		subs.Close()
		j.Close()
	})
	return &fixture{srv: srv, bus: bus, j: j, sock: sock, c: client.New(sock)}
}

// raw sends a request by hand, to test what the typed client never sends.
func (f *fixture) raw(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", f.sock)
	}}}
	req, _ := http.NewRequest(method, "http://x"+path, strings.NewReader(body))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRoutingAndErrors(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "/v1/status", "", 200, `"node": "n1"`},
		{"GET", "/v1/nothing", "", 404, `"code": "not_found"`},
		{"PUT", "/v1/status", "", 405, `method PUT is not allowed on /v1/status; use GET`},
		{"POST", "/v1/events", "", 400, `request body: empty`},
		{"POST", "/v1/events", `{"class":"EC_a","subclass":"b","bogus":1}`, 400, `unknown field \"bogus\"`},
		{"POST", "/v1/events", `{"class":"EC_a","subclass":"b"} {}`, 400, `unexpected data after the JSON object`},
		{"POST", "/v1/events", `{"class":"bad class","subclass":"b"}`, 400, `class \"bad class\" is not a valid name`},
		{"POST", "/v1/events", `{"class":"EC_a","subclass":"b","attrs":{"x":{"type":"int64","value":"no"}}}`, 400, `does not match its type`},
		{"POST", "/v1/events", `{"class":"EC_a","subclass":"b","attrs":{"x":{"type":"float","value":1}}}`, 400, `unknown attribute type`},
		{"POST", "/v1/events", `{"class":"EC_a","subclass":"b"}`, 201, `"seq": 1`},
		{"GET", "/v1/events?since=abc", "", 400, `since=\"abc\" is not a sequence number`},
		{"GET", "/v1/events?since=1&last=2", "", 400, `give since or last, not both`},
		{"GET", "/v1/events?colour=red", "", 400, `unknown query parameter \"colour\"`},
		{"GET", "/v1/events?limit=0", "", 400, `limit=\"0\" must be a number`},
		{"POST", "/v1/events/subscribers", `{"class":"EC_a","path":"/nonexistent"}`, 400, `does not exist`},
		{"DELETE", "/v1/events/subscribers/zzz", "", 404, `no such subscriber`},
		{"GET", "/metrics", "", 200, `steady_api_requests_total`},
	}
	for _, tt := range tests {
		status, body := f.raw(t, tt.method, tt.path, tt.body)
		if status != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s %s %s: %d %s\nwant %d containing %s", tt.method, tt.path, tt.body, status, body, tt.status, tt.want)
		}
	}
	big := `{"class":"EC_a","subclass":"b","attrs":{"x":{"type":"string","value":"` + strings.Repeat("a", maxBody) + `"}}}`
	if status, body := f.raw(t, "POST", "/v1/events", big); status != 400 || !strings.Contains(body, "larger than") {
		t.Errorf("oversized body: %d %s", status, body)
	}
}

func TestClientErrorsAreTyped(t *testing.T) {
	f := newFixture(t, nil)
	err := f.c.RemoveSubscriber(t.Context(), "nope")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeNotFound || ae.Code.ExitStatus() != api.ExitNotFound {
		t.Fatalf("RemoveSubscriber: %#v", err)
	}
	gone := client.New(filepath.Join(t.TempDir(), "none.sock"))
	_, err = gone.Status(t.Context())
	if !errors.As(err, &ae) || ae.Code != api.CodeUnavailable || !strings.Contains(ae.Message, "is the agent running?") {
		t.Fatalf("unreachable agent: %#v", err)
	}
}

func TestEventListing(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	for i := 0; i < 30; i++ {
		class := "EC_a"
		if i%3 == 0 {
			class = "EC_b"
		}
		if _, err := f.c.PublishEvent(ctx, api.PublishRequest{Class: class, Subclass: "x", Attrs: api.Attrs{"i": api.Int(int64(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := f.c.Events(ctx, client.EventQuery{Class: "EC_b", Last: 3})
	if err != nil || len(l.Events) != 3 || l.Events[0].Seq != 22 || l.Events[2].Seq != 28 {
		t.Fatalf("last 3 of EC_b: %+v %v", seqs(l.Events), err)
	}
	if l.Events[0].Publisher != "user:root" && os.Geteuid() == 0 {
		t.Fatalf("publisher %q", l.Events[0].Publisher)
	}
	// Paging with since and limit visits every event once.
	var all []uint64
	next := uint64(0)
	for {
		l, err := f.c.Events(ctx, client.EventQuery{Since: next, HasSince: true, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Events) == 0 {
			break
		}
		all = append(all, seqs(l.Events)...)
		next = l.Next
	}
	if len(all) != 30 || all[0] != 1 || all[29] != 30 {
		t.Fatalf("paged through %v", all)
	}
}

func seqs(evs []api.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func TestEventStream(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	f.c.PublishEvent(ctx, api.PublishRequest{Class: "EC_old", Subclass: "x"})
	stream, err := f.c.FollowEvents(ctx, client.EventQuery{Class: "EC_live"})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	go func() {
		for i := 0; i < 3; i++ {
			f.c.PublishEvent(ctx, api.PublishRequest{Class: "EC_other", Subclass: "x"})
			f.c.PublishEvent(ctx, api.PublishRequest{Class: "EC_live", Subclass: "x", Attrs: api.Attrs{"i": api.Int(int64(i))}})
			time.Sleep(60 * time.Millisecond) // lets keepalive comments in between
		}
	}()
	for i := 0; i < 3; i++ {
		ev, err := stream.Next()
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := ev.Attrs["i"].Int64(); ev.Class != "EC_live" || n != int64(i) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
}

func TestStreamReportsGapAndEndsOnClose(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// Fill the journal far past its 256 KiB limit, so the oldest events go.
	batch := make([]event.Event, 100)
	for n := 0; n < 30; n++ {
		for i := range batch {
			batch[i] = event.Event{Class: "EC_fill", Subclass: "x", Publisher: "t", Attrs: api.Attrs{"pad": api.String(strings.Repeat("p", 200))}}
		}
		if err := f.bus.PublishBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if f.j.FirstSeq() <= 1 {
		t.Fatal("retention did not remove anything")
	}
	stream, err := f.c.FollowEvents(ctx, client.EventQuery{Since: 0, HasSince: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	_, err = stream.Next()
	var gap *client.Gap
	if !errors.As(err, &gap) || gap.Next != f.j.FirstSeq() {
		t.Fatalf("first item %v, want a gap up to %d", err, f.j.FirstSeq())
	}
	ev, err := stream.Next()
	if err != nil || ev.Seq != f.j.FirstSeq() {
		t.Fatalf("after the gap: %d %v", ev.Seq, err)
	}
	// Closing the server ends the stream promptly instead of hanging.
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Next(); err != nil {
				done <- err
				return
			}
		}
	}()
	start := time.Now()
	if err := f.srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("stream ended with %v, want EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open 5s after Close")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v with a stream open", d)
	}
}

func TestSocketModeStaleAndLive(t *testing.T) {
	f := newFixture(t, nil)
	fi, err := os.Stat(f.sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, %v; want 0660", fi.Mode(), err)
	}
	// A second server on the same live socket is refused.
	s2, _ := New(Options{Socket: f.sock, Policy: auth.NewPolicy(auth.PolicyOptions{})})
	if err := s2.Start(); err == nil || !strings.Contains(err.Error(), "another agent is already serving") {
		t.Fatalf("second server: %v", err)
	}
	// A stale socket (nobody listening) is replaced.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, _ := net.Listen("unix", stale)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	s3, _ := New(Options{Socket: stale, Policy: auth.NewPolicy(auth.PolicyOptions{})})
	if err := s3.Start(); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	s3.Close(context.Background())
	// A regular file in the way is not removed.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("keep"), 0o600)
	s4, _ := New(Options{Socket: file, Policy: auth.NewPolicy(auth.PolicyOptions{})})
	if err := s4.Start(); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("file in the way: %v", err)
	}
}

func TestSubscriberRoutes(t *testing.T) {
	f := newFixture(t, nil)
	script := filepath.Join(t.TempDir(), "s")
	os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	sub, err := f.c.AddSubscriber(t.Context(), api.SubscriberRequest{Class: "EC_a", Path: script, Args: []string{"$class"}})
	if err != nil {
		t.Fatal(err)
	}
	list, err := f.c.Subscribers(t.Context())
	if err != nil || len(list) != 1 || list[0].ID != sub.ID || list[0].Args[0] != "$class" {
		t.Fatalf("list %+v %v", list, err)
	}
	if err := f.c.RemoveSubscriber(t.Context(), sub.ID); err != nil {
		t.Fatal(err)
	}
	if list, _ := f.c.Subscribers(t.Context()); len(list) != 0 {
		t.Fatalf("after remove: %+v", list)
	}
}
