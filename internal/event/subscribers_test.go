package event

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
)

// subEnv is a journal, a bus and a place for scripts and their output that
// other users can reach (scripts may run as nobody).
type subEnv struct {
	t    *testing.T
	dir  string // data dir
	work string // world-accessible scratch dir
	j    *Journal
	bus  *Bus
}

func newSubEnv(t *testing.T) *subEnv {
	t.Helper()
	work, err := os.MkdirTemp("", "steady-sub-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(work, 0o777)
	t.Cleanup(func() { os.RemoveAll(work) })
	e := &subEnv{t: t, dir: t.TempDir(), work: work}
	e.j = openTestJournal(t, filepath.Join(e.dir, "journal"), nil)
	t.Cleanup(func() { e.j.Close() })
	e.bus = newTestBus(t, e.j)
	return e
}

func (e *subEnv) subscribers(retries int) *Subscribers {
	e.t.Helper()
	s, err := NewSubscribers(SubscribersOptions{
		Dir: filepath.Join(e.dir, "subscribers"), Bus: e.bus,
		Timeout: 2 * time.Second, Retries: retries, Backoff: 10 * time.Millisecond,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	s.Start()
	e.t.Cleanup(func() { s.Close() })
	return s
}

// script writes an executable shell script and returns its path.
func (e *subEnv) script(name, body string) string {
	e.t.Helper()
	p := filepath.Join(e.work, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *subEnv) publish(class, subclass string, attrs api.Attrs) uint64 {
	e.t.Helper()
	seq, err := e.bus.Publisher("test").Publish(e.t.Context(), class, subclass, attrs)
	if err != nil {
		e.t.Fatal(err)
	}
	return seq
}

// waitLines waits until file has n lines and returns them.
func waitLines(t *testing.T, file string, n int, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	var lines []string
	for {
		lines = lines[:0]
		if f, err := os.Open(file); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			f.Close()
		}
		if len(lines) >= n || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSubscriberRunsInOrderWithMacros(t *testing.T) {
	e := newSubEnv(t)
	out := filepath.Join(e.work, "out")
	path := e.script("log", fmt.Sprintf("echo \"$1 $2 $3\" >> %s\n", out))
	s := e.subscribers(0)
	def, err := s.Add(t.Context(), api.SubscriberRequest{Class: "EC_dr", Path: path, Args: []string{"$sequence", "$subclass", "${dr_ap_id}"}})
	if err != nil {
		t.Fatal(err)
	}
	e.publish("EC_other", "ESC_x", nil) // not matched
	var want []string
	for i := 0; i < 20; i++ {
		seq := e.publish("EC_dr", fmt.Sprintf("ESC_%d", i), api.Attrs{"dr_ap_id": api.String(fmt.Sprintf("cpu%d", i))})
		want = append(want, fmt.Sprintf("%d ESC_%d cpu%d", seq, i, i))
	}
	got := waitLines(t, out, 20, 10*time.Second)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("script saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	waitFor(t, func() bool { return s.List()[0].Delivered == e.j.LastSeq() })
	if l := s.List(); len(l) != 1 || l[0].ID != def.ID {
		t.Fatalf("List = %+v", l)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSubscriberRetriesThenGivesUp(t *testing.T) {
	e := newSubEnv(t)
	count := filepath.Join(e.work, "count")
	// Fails twice for each event, then succeeds.
	path := e.script("flaky", fmt.Sprintf(`echo "$1" >> %[1]s
n=$(grep -c "^$1\$" %[1]s)
[ "$n" -ge 3 ] || { echo "not yet ($n)" >&2; exit 1; }
`, count))
	s := e.subscribers(5)
	if _, err := s.Add(t.Context(), api.SubscriberRequest{Class: "EC_a", Path: path, Args: []string{"$sequence"}}); err != nil {
		t.Fatal(err)
	}
	s1 := e.publish("EC_a", "x", nil)
	s2 := e.publish("EC_a", "x", nil)
	lines := waitLines(t, count, 6, 10*time.Second)
	want := []string{fmt.Sprint(s1), fmt.Sprint(s1), fmt.Sprint(s1), fmt.Sprint(s2), fmt.Sprint(s2), fmt.Sprint(s2)}
	if strings.Join(lines, ",") != strings.Join(want, ",") {
		t.Fatalf("runs %v, want %v (in order, each retried until it succeeds)", lines, want)
	}

	// With one retry allowed, a script that always fails is given up on and
	// an error event names it.
	always := e.script("fail", "echo broken >&2; exit 3\n")
	def, err := s.Add(t.Context(), api.SubscriberRequest{Class: "EC_b", Path: always, Retries: ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	failed := e.bus.Subscribe(e.j.LastSeq(), Filter{Class: ClassSteady, Subclass: SubclassSubFailed})
	seq := e.publish("EC_b", "x", nil)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ev, err := failed.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if attrString(ev.Attrs, "subscriber") != def.ID || !strings.Contains(attrString(ev.Attrs, "reason"), "gave up after 2 run(s)") ||
		!strings.Contains(attrString(ev.Attrs, "reason"), "broken") {
		t.Fatalf("failure event %+v", ev.Attrs)
	}
	if n, _ := ev.Attrs["event_sequence"].Uint64(); n != seq {
		t.Fatalf("failure event names event %d, want %d", n, seq)
	}
	waitFor(t, func() bool {
		for _, d := range s.List() {
			if d.ID == def.ID {
				return d.Failures == 1 && d.Delivered == seq && d.LastError != ""
			}
		}
		return false
	})
}

func ptr[T any](v T) *T { return &v }

// liveInGroup lists the processes of process group pgid that are not
// zombies (a killed orphan stays a zombie until its new parent reaps it).
func liveInGroup(pgid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var live []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces.
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			pid, _ := strconv.Atoi(strings.Fields(string(b))[0])
			live = append(live, pid)
		}
	}
	return live
}

func TestHangingSubscriberDoesNotBlockOthers(t *testing.T) {
	e := newSubEnv(t)
	out := filepath.Join(e.work, "fast.out")
	pidfile := filepath.Join(e.work, "hang.pid")
	hang := e.script("hang", fmt.Sprintf("echo $$ > %s\nsleep 600\n", pidfile))
	fast := e.script("fast", fmt.Sprintf("echo \"$1\" >> %s\n", out))
	s := e.subscribers(0)
	hung, err := s.Add(t.Context(), api.SubscriberRequest{Class: "EC_a", Path: hang, Timeout: api.Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(t.Context(), api.SubscriberRequest{Class: "EC_a", Path: fast, Args: []string{"$sequence"}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < 5; i++ {
		e.publish("EC_a", "x", nil)
	}
	if lines := waitLines(t, out, 5, 900*time.Millisecond); len(lines) != 5 {
		t.Fatalf("the fast subscriber handled %d of 5 events while the other hung", len(lines))
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("publishing and fast delivery took %v", d)
	}
	// The hanging one is killed at its timeout and given up on.
	failed := e.bus.Subscribe(0, Filter{Class: ClassSteady, Subclass: SubclassSubFailed})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ev, err := failed.Next(ctx)
	if err != nil || attrString(ev.Attrs, "subscriber") != hung.ID || !strings.Contains(attrString(ev.Attrs, "reason"), "timed out after 1s") {
		t.Fatalf("hang failure event: %v %v", ev.Attrs, err)
	}
	// The script and its sleeping child (one process group) are gone.
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pgid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if live := liveInGroup(pgid); len(live) > 0 {
		t.Fatalf("processes %v of the timed-out script's group %d are still alive", live, pgid)
	}
}

func TestMissingAttributeDoesNotRun(t *testing.T) {
	e := newSubEnv(t)
	out := filepath.Join(e.work, "ran")
	path := e.script("s", fmt.Sprintf("echo \"$1\" >> %s\n", out))
	s := e.subscribers(3)
	def, err := s.Add(t.Context(), api.SubscriberRequest{Class: "EC_a", Path: path, Args: []string{"$needed"}})
	if err != nil {
		t.Fatal(err)
	}
	errs := e.bus.Subscribe(e.j.LastSeq(), Filter{Class: ClassSteady, Subclass: SubclassSubError})
	e.publish("EC_a", "x", nil)
	e.publish("EC_a", "x", api.Attrs{"needed": api.String("yes")})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ev, err := errs.Next(ctx)
	if err != nil || attrString(ev.Attrs, "subscriber") != def.ID || !strings.Contains(attrString(ev.Attrs, "reason"), "$needed") {
		t.Fatalf("error event %v %v", ev.Attrs, err)
	}
	if lines := waitLines(t, out, 1, 5*time.Second); len(lines) != 1 || lines[0] != "yes" {
		t.Fatalf("script ran with %v; want only the event that had the attribute", lines)
	}
}

func TestSubscriberRunsAsOwnerOrNamedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run scripts as other users (CI runs as root)")
	}
	e := newSubEnv(t)
	out := filepath.Join(e.work, "ids")
	os.WriteFile(out, nil, 0o666)
	os.Chmod(out, 0o666)
	path := e.script("id", fmt.Sprintf("echo \"$1 $(id -u) $(id -g) $HOME\" >> %s\n", out))
	if err := os.Chown(path, 65534, 65534); err != nil { // nobody:nogroup
		t.Fatal(err)
	}
	s := e.subscribers(0)
	if _, err := s.Add(t.Context(), api.SubscriberRequest{Class: "EC_owner", Path: path, Args: []string{"owner"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(t.Context(), api.SubscriberRequest{Class: "EC_root", Path: path, User: "root", Args: []string{"named"}}); err != nil {
		t.Fatal(err)
	}
	e.publish("EC_owner", "x", nil)
	e.publish("EC_root", "x", nil)
	lines := waitLines(t, out, 2, 10*time.Second)
	got := strings.Join(lines, "\n")
	if !strings.Contains(got, "owner 65534 65534 /nonexistent") || !strings.Contains(got, "named 0 0 /root") {
		t.Fatalf("runs:\n%s\nwant the owner run as 65534 and the named one as root", got)
	}
}

func TestSubscriberRefusals(t *testing.T) {
	e := newSubEnv(t)
	s := e.subscribers(0)
	good := e.script("good", "exit 0\n")
	writable := e.script("writable", "exit 0\n")
	os.Chmod(writable, 0o775)
	noexec := filepath.Join(e.work, "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	tests := []struct {
		req  api.SubscriberRequest
		want string
	}{
		{api.SubscriberRequest{Class: "EC_a", Path: filepath.Join(e.work, "missing")}, "does not exist"},
		{api.SubscriberRequest{Class: "EC_a", Path: noexec}, "is not executable"},
		{api.SubscriberRequest{Class: "EC_a", Path: writable}, "writable by group or others"},
		{api.SubscriberRequest{Class: "EC_a", Path: e.work}, "not a regular file"},
		{api.SubscriberRequest{Class: "EC_a", Path: "relative/x"}, "not an absolute path"},
		{api.SubscriberRequest{Class: "bad class", Path: good}, "not a valid class name"},
		{api.SubscriberRequest{Class: "EC_a", Path: good, Args: []string{"$"}}, "argument 1"},
		{api.SubscriberRequest{Class: "EC_a", Path: good, User: "no-such-user-xyz"}, "unknown user"},
		{api.SubscriberRequest{Class: "EC_a", Path: good, Retries: ptr(1000)}, "retries 1000"},
	}
	for _, tt := range tests {
		_, err := s.Add(t.Context(), tt.req)
		if !errors.Is(err, ErrSubscriberInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Add(%+v) = %v; want ErrSubscriberInvalid mentioning %q", tt.req, err, tt.want)
		}
	}
	if len(s.List()) != 0 {
		t.Fatalf("refused subscribers were registered: %+v", s.List())
	}
	if files, _ := filepath.Glob(filepath.Join(e.dir, "subscribers", "*")); len(files) != 0 {
		t.Fatalf("refused subscribers left files: %v", files)
	}
	if err := s.Remove(t.Context(), "nope"); !errors.Is(err, ErrSubscriberNotFound) {
		t.Fatalf("Remove(nope) = %v", err)
	}
}

func TestSubscriberPositionSurvivesRestart(t *testing.T) {
	e := newSubEnv(t)
	out := filepath.Join(e.work, "out")
	path := e.script("log", fmt.Sprintf("echo \"$1\" >> %s\n", out))
	s := e.subscribers(0)
	def, err := s.Add(t.Context(), api.SubscriberRequest{Class: "EC_a", Path: path, Args: []string{"$sequence"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		e.publish("EC_a", "x", nil)
	}
	waitLines(t, out, 3, 10*time.Second)
	waitFor(t, func() bool { return s.List()[0].Delivered == e.j.LastSeq() })
	s.Close()

	// Published while no subscriber runs: delivered after the restart.
	for i := 0; i < 2; i++ {
		e.publish("EC_a", "x", nil)
	}
	s2 := e.subscribers(0)
	lines := waitLines(t, out, 5, 10*time.Second)
	if strings.Join(lines, ",") != "1,2,3,4,5" {
		t.Fatalf("deliveries %v, want 1..5 exactly once each", lines)
	}
	if err := s2.Remove(t.Context(), def.ID); err != nil {
		t.Fatal(err)
	}
	e.publish("EC_a", "x", nil)
	time.Sleep(100 * time.Millisecond)
	if lines := waitLines(t, out, 6, 0); len(lines) != 5 {
		t.Fatalf("removed subscriber still ran: %v", lines)
	}
}
