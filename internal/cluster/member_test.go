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

func (c *cuttable) Txn(ctx context.Context, conds []store.Cond, then, otherwise []store.Op) (store.TxnResult, error) {
	if c.cut.Load() {
		<-ctx.Done()
		return store.TxnResult{}, errCut
	}
	return c.Store.Txn(ctx, conds, then, otherwise)
}

func (c *cuttable) Get(ctx context.Context, key string) (store.Item, error) {
	if c.cut.Load() {
		return store.Item{}, errCut
	}
	return c.Store.Get(ctx, key)
}

func (c *cuttable) List(ctx context.Context, prefix string) ([]store.Item, int64, error) {
	if c.cut.Load() {
		return nil, 0, errCut
	}
	return c.Store.List(ctx, prefix)
}

// fencer records what the membership asked of it, and when.
type fencer struct {
	mu    sync.Mutex
	calls []string
	at    map[string]time.Time
	// deadline of the last Freeze
	deadline time.Time
}

func (f *fencer) note(what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, what)
	if f.at == nil {
		f.at = map[string]time.Time{}
	}
	f.at[what] = time.Now()
}

func (f *fencer) Freeze(ctx context.Context, epoch uint64) {
	f.mu.Lock()
	f.deadline, _ = ctx.Deadline()
	f.mu.Unlock()
	f.note(fmt.Sprintf("freeze %d", epoch))
}
func (f *fencer) Thaw(epoch uint64)                      { f.note(fmt.Sprintf("thaw %d", epoch)) }
func (f *fencer) Kill(ctx context.Context, epoch uint64) { f.note(fmt.Sprintf("kill %d", epoch)) }

func (f *fencer) when(what string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.at[what]
	return at, ok
}

func (f *fencer) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
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

// The timing of these tests: the defaults.
const (
	testKeepalive  = 100 * time.Millisecond
	testFenceAfter = 600 * time.Millisecond
	testStopBudget = 300 * time.Millisecond
)

func memberOptions(s Store, node string, ev *events, f *fencer) Options {
	return Options{Store: s, Node: node, TTL: 2 * time.Second, Keepalive: testKeepalive,
		FenceAfter: testFenceAfter, StopBudget: testStopBudget, Version: "test", Started: time.Now(),
		Publish: ev.publish, Fencer: f}
}

func startMember(t *testing.T, s Store, ev *events) *Member {
	t.Helper()
	return startWith(t, memberOptions(s, "n1", ev, nil))
}

func startWith(t *testing.T, o Options) *Member {
	t.Helper()
	m, err := Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func waitTrue(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// One node on a real embedded store: it joins, is up and controller;
// cut off from the store it fences itself (its work frozen in time);
// healed, nobody can have declared it down, so its work resumes in the
// same epoch and it is controller again.
func TestMemberFencesAndResumes(t *testing.T) {
	s := &cuttable{Store: openStore(t)}
	ev := &events{}
	f := &fencer{}
	m := startWith(t, memberOptions(s, "n1", ev, f))
	ev.wait(t, SubclassNodeJoined+" n1", time.Second)
	ev.wait(t, SubclassController+" n1", 5*time.Second)
	st, err := m.Status(t.Context())
	if err != nil || len(st.Nodes) != 1 || st.Nodes[0].State != "up" || st.Nodes[0].StoreRole != "leader" || st.Controller != "n1" || st.Epoch != 1 {
		t.Fatalf("status: %v %+v", err, st)
	}
	// The newest heartbeat sent before the cut is confirmed; nobody may
	// declare the node down before TakeoverDelay after it.
	cutAt := time.Now()
	s.cut.Store(true)
	ev.wait(t, SubclassFenced+" n1", 3*time.Second)
	if !m.Fenced() || m.IsController() {
		t.Fatal("fenced, but not saying so")
	}
	frozen, ok := f.when("freeze 1")
	if !ok || frozen.Sub(cutAt) > testFenceAfter+testKeepalive+50*time.Millisecond {
		t.Fatalf("frozen %v after the cut", frozen.Sub(cutAt))
	}
	if f.deadline.After(cutAt.Add(TakeoverDelay(testFenceAfter, testStopBudget))) {
		t.Fatalf("the freeze was given until %v after the cut, past the takeover delay", f.deadline.Sub(cutAt))
	}
	s.cut.Store(false)
	ev.wait(t, SubclassResumed+" n1", 5*time.Second)
	if m.Fenced() || m.Epoch() != 1 {
		t.Fatalf("after the heal: fenced %v epoch %d", m.Fenced(), m.Epoch())
	}
	if got := f.list(); len(got) != 2 || got[1] != "thaw 1" {
		t.Fatalf("fencer calls %v", got)
	}
	waitTrue(t, "controller again", 5*time.Second, m.IsController)
}

// Two nodes on one store. n2 is cut off: it freezes its work, and only
// after that does n1 declare it down (the takeover delay). Healed, n2
// finds its down record: its work is killed and it rejoins in epoch 2.
// n1 stays controller throughout; n2 never is while n1 is up.
func TestMemberDeclaredDown(t *testing.T) {
	real := openStore(t)
	ev1, ev2 := &events{}, &events{}
	f2 := &fencer{}
	m1 := startWith(t, memberOptions(real, "n1", ev1, nil))
	ev1.wait(t, SubclassController+" n1", 5*time.Second)
	c2 := &cuttable{Store: real}
	m2 := startWith(t, memberOptions(c2, "n2", ev2, f2))
	ev1.wait(t, SubclassNodeUp+" n2", 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	c2.cut.Store(true)
	downAt := ev1.wait(t, SubclassNodeDown+" n2", 5*time.Second)
	frozen, ok := f2.when("freeze 1")
	if !ok || !frozen.Before(downAt) {
		t.Fatalf("n2 frozen at %v (%v), declared down at %v", frozen, ok, downAt)
	}
	var views []NodeView
	waitTrue(t, "n1 sees n2 down", time.Second, func() bool {
		views = m1.Nodes()
		return len(views) == 2 && views[0].Up && !views[1].Up && views[1].Down != nil && views[1].Down.By == "n1"
	})
	if m2.IsController() || !m1.IsController() {
		t.Fatal("the controller changed")
	}
	c2.cut.Store(false)
	ev2.wait(t, SubclassRejoined+" n2", 5*time.Second)
	if got := f2.list(); len(got) != 2 || got[0] != "freeze 1" || got[1] != "kill 1" {
		t.Fatalf("fencer calls of n2: %v", got)
	}
	if m2.Epoch() != 2 || m2.Fenced() {
		t.Fatalf("n2: epoch %d fenced %v", m2.Epoch(), m2.Fenced())
	}
	waitTrue(t, "n1 sees n2 up in epoch 2", 5*time.Second, func() bool {
		views = m1.Nodes()
		return len(views) == 2 && views[1].Up && views[1].Epoch == 2 && views[1].UpRev > 0
	})
}

// An agent that restarts goes on in its epoch (nothing it ran is to be
// stopped); one whose node was declared down meanwhile starts the next
// epoch and says so.
func TestMemberSession(t *testing.T) {
	real := openStore(t)
	ev := &events{}
	o := memberOptions(real, "n1", ev, nil)
	o.SessionPath = filepath.Join(t.TempDir(), "session.json")
	m, err := Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if m.Resumed() || m.TakenOver() || m.Epoch() != 1 {
		t.Fatalf("first start: resumed %v taken over %v epoch %d", m.Resumed(), m.TakenOver(), m.Epoch())
	}
	m.Close()
	m, err = Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Resumed() || m.TakenOver() || m.Epoch() != 1 {
		t.Fatalf("restart: resumed %v taken over %v epoch %d", m.Resumed(), m.TakenOver(), m.Epoch())
	}
	m.Close()
	if _, err := real.Put(t.Context(), downPrefix+"n1", downSchema, DownRecord{Node: "n1", Epoch: 1, By: "n2", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	m, err = Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Resumed() || !m.TakenOver() || m.Epoch() != 2 {
		t.Fatalf("after a takeover: resumed %v taken over %v epoch %d", m.Resumed(), m.TakenOver(), m.Epoch())
	}
	if up, err := NodeUp(t.Context(), real, "n1"); err != nil || !up {
		t.Fatalf("n1 not up again: %v %v", up, err)
	}
}

// A node that fences itself for good (a HARD stop failure) kills its
// work, declares itself down, and the other node becomes controller.
func TestMemberFenceSelf(t *testing.T) {
	real := openStore(t)
	ev1, ev2 := &events{}, &events{}
	f1 := &fencer{}
	m1 := startWith(t, memberOptions(real, "n1", ev1, f1))
	ev1.wait(t, SubclassController+" n1", 5*time.Second)
	m2 := startWith(t, memberOptions(real, "n2", ev2, nil))
	waitTrue(t, "n2 sees n1", 5*time.Second, func() bool { v := m2.Nodes(); return len(v) == 2 && v[0].Up })
	if err := m1.FenceSelf(t.Context(), "stop failed"); err != nil {
		t.Fatal(err)
	}
	if !m1.Out() || !m1.Fenced() {
		t.Fatal("n1 is not out")
	}
	ev2.wait(t, SubclassNodeDown+" n1", 2*time.Second)
	ev2.wait(t, SubclassController+" n2", 5*time.Second)
	if got := f1.list(); len(got) != 2 || got[0] != "freeze 1" || got[1] != "kill 1" {
		t.Fatalf("fencer calls: %v", got)
	}
	if m2.Epoch() != 1 {
		t.Fatal("n2's epoch changed")
	}
	time.Sleep(3 * testKeepalive)
	if m1.Epoch() != 1 || !m1.Out() {
		t.Fatal("n1 rejoined before a restart")
	}
}

// A lease that expires (revoked here) is replaced: the liveness record
// comes back; it is no fence, and the epoch stays.
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
	waitTrue(t, "a new lease and the liveness record back", 3*time.Second, func() bool {
		m.mu.Lock()
		l := m.lease
		m.mu.Unlock()
		_, err := real.Get(t.Context(), livePrefix+"n1")
		return l != lease && err == nil
	})
	if m.Epoch() != 1 || m.Fenced() {
		t.Fatalf("epoch %d fenced %v", m.Epoch(), m.Fenced())
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
	// The member's own loop sweeps too and may be halfway through the same
	// removal (member gone, record not yet), so the outcome is awaited.
	m.sweepJoining(ctx, real, ms)
	waitTrue(t, "the never-started member and its joining record gone", 3*time.Second, func() bool {
		ms, err := real.Members(ctx)
		if err != nil || len(ms) != 1 {
			return false
		}
		_, err = real.Get(ctx, joiningKeys+"ghost")
		return err != nil
	})
}
