package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/store"
)

// cuttable is a store that can be cut off: every call fails as an
// unreachable store's would, and answers again after a heal.
type cuttable struct {
	*store.Store
	cut atomic.Bool
}

var errCut = fmt.Errorf("%w: cut off by the test", store.ErrUnavailable)

func (c *cuttable) KeepAliveOnce(ctx context.Context, id store.LeaseID) (time.Duration, error) {
	if c.cut.Load() {
		<-ctx.Done() // as a request into a partition: no answer
		return 0, errCut
	}
	return c.Store.KeepAliveOnce(ctx, id)
}

func (c *cuttable) Grant(ctx context.Context, ttl time.Duration) (store.LeaseID, error) {
	if c.cut.Load() {
		return 0, errCut
	}
	return c.Store.Grant(ctx, ttl)
}

func (c *cuttable) Put(ctx context.Context, key string, schema int, v any, opts ...store.PutOption) (int64, error) {
	if c.cut.Load() {
		return 0, errCut
	}
	return c.Store.Put(ctx, key, schema, v, opts...)
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	dir, err := os.MkdirTemp("", "steady-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := store.Open(t.Context(), store.Options{Dir: filepath.Join(dir, "store"), Name: "n1", Heartbeat: 50 * time.Millisecond,
		Election: 500 * time.Millisecond, QuotaBytes: 64 << 20, StartTimeout: 20 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type events struct {
	mu  sync.Mutex
	got []string
	at  map[string]time.Time
}

func (e *events) publish(sub string, attrs api.Attrs) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := sub + " " + attrs["node"].Display()
	e.got = append(e.got, key)
	if e.at == nil {
		e.at = map[string]time.Time{}
	}
	if _, ok := e.at[key]; !ok {
		e.at[key] = time.Now()
	}
}

func (e *events) wait(t *testing.T, want string, d time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		at, ok := e.at[want]
		e.mu.Unlock()
		if ok {
			return at
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t.Fatalf("no %q within %v; events: %v", want, d, e.got)
	return time.Time{}
}

func startMember(t *testing.T, s Store, ev *events) *Member {
	t.Helper()
	m, err := Start(t.Context(), Options{Store: s, Node: "n1", TTL: 2 * time.Second, Keepalive: 250 * time.Millisecond,
		FenceAfter: 1500 * time.Millisecond, StopBudget: 400 * time.Millisecond, Version: "test", Started: time.Now(),
		Publish: ev.publish})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// One node on a real embedded store: it joins, is up and controller;
// cut off from the store it fences itself before its lease can expire,
// with its hooks run in time; healed, it rejoins with a new epoch and is
// controller again.
func TestMemberFencesAndRejoins(t *testing.T) {
	s := &cuttable{Store: openStore(t)}
	ev := &events{}
	m := startMember(t, s, ev)
	ev.wait(t, SubclassNodeJoined+" n1", time.Second)
	ev.wait(t, SubclassController+" n1", 5*time.Second)
	st, err := m.Status(t.Context())
	if err != nil || len(st.Nodes) != 1 || st.Nodes[0].State != "up" || st.Nodes[0].StoreRole != "leader" || st.Controller != "n1" || st.Epoch != 1 {
		t.Fatalf("status: %v %+v", err, st)
	}

	var hookDone atomic.Int64
	var hookDeadline time.Time
	m.OnFence(func(ctx context.Context, epoch uint64) {
		hookDeadline, _ = ctx.Deadline()
		hookDone.Store(time.Now().UnixNano())
	})
	// The newest keepalive sent before the cut is confirmed; the lease can
	// expire no earlier than its send time plus the TTL.
	cutAt := time.Now()
	s.cut.Store(true)
	fencedAt := ev.wait(t, SubclassFenced+" n1", 3*time.Second)
	if !m.Fenced() || m.IsController() {
		t.Fatal("fenced, but not saying so")
	}
	// The fence came before the lease could expire (the last confirmed
	// keepalive was sent before the cut; the TTL is 2 s), and the hooks
	// ran before the earliest expiry of the lease.
	if d := fencedAt.Sub(cutAt); d >= 2*time.Second {
		t.Fatalf("fenced %v after the cut, when the lease may have expired", d)
	}
	if hd := time.Unix(0, hookDone.Load()); hookDone.Load() == 0 || hd.After(hookDeadline) || hookDeadline.After(cutAt.Add(2*time.Second)) {
		t.Fatalf("hooks done %v, deadline %v, cut %v", hd, hookDeadline, cutAt)
	}

	s.cut.Store(false)
	ev.wait(t, SubclassRejoined+" n1", 5*time.Second)
	if m.Fenced() || m.Epoch() != 2 {
		t.Fatalf("after the heal: fenced %v epoch %d", m.Fenced(), m.Epoch())
	}
	deadline := time.Now().Add(5 * time.Second)
	for !m.IsController() {
		if time.Now().After(deadline) {
			t.Fatal("not controller again after rejoining")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A lease that expires (revoked here) is noticed by the keepalive: the
// node fences itself, then rejoins with a new lease and epoch.
func TestMemberLeaseLost(t *testing.T) {
	real := openStore(t)
	ev := &events{}
	m := startMember(t, real, ev)
	m.mu.Lock()
	lease := m.lease
	m.mu.Unlock()
	if err := real.Revoke(t.Context(), lease); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, SubclassFenced+" n1", 3*time.Second)
	ev.wait(t, SubclassRejoined+" n1", 3*time.Second)
	if m.Epoch() != 2 {
		t.Fatalf("epoch %d", m.Epoch())
	}
	if _, err := real.Get(t.Context(), livePrefix+"n1"); err != nil {
		t.Fatalf("the liveness record is not back: %v", err)
	}
	if _, err := Start(t.Context(), Options{Store: real, Node: "n2", TTL: 1500 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "whole seconds") {
		t.Fatalf("bad timing: %v", err)
	}
}

// A store member added for a join that never started is removed once
// JoinGrace has passed, and its record with it.
func TestSweepJoining(t *testing.T) {
	real := openStore(t)
	ev := &events{}
	m := startMember(t, real, ev)
	ctx := t.Context()
	if _, err := real.AddLearner(ctx, "ghost", "https://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := real.Put(ctx, joiningKeys+"ghost", 1, joining{PeerURL: "https://127.0.0.1:1", Added: time.Now().Add(-JoinGrace - time.Second)}); err != nil {
		t.Fatal(err)
	}
	ms, _ := real.Members(ctx)
	if len(ms) != 2 {
		t.Fatalf("members %+v", ms)
	}
	m.sweepJoining(ctx, real, ms)
	if ms, _ := real.Members(ctx); len(ms) != 1 {
		t.Fatalf("the never-started member is still there: %+v", ms)
	}
	if _, err := real.Get(ctx, joiningKeys+"ghost"); err == nil {
		t.Fatal("the joining record is still there")
	}
}
