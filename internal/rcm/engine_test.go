package rcm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Operations on unrelated subtrees run at the same time; on the same one,
// exactly one wins and the others are told it is busy.
func TestConcurrentOperations(t *testing.T) {
	ctx := context.Background()
	e := New(Options{})
	c := &nopClient{name: "c"}
	for i := 0; i < 8; i++ {
		c.ins = append(c.ins, Interest{fmt.Sprintf("/sys/devices/bus/dev%d/unit", i), KindDR})
	}
	if err := e.AddClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				res, err := e.RequestOffline(ctx, []string{fmt.Sprintf("/sys/devices/bus/dev%d", i)}, 0, "t")
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := e.NotifyOnline(ctx, res.ID); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var won, busy int
	var mu sync.Mutex
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.RequestOffline(ctx, []string{"/sys/devices/bus/dev0"}, 0, "t")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, ErrBusy):
				busy++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || busy != 7 {
		t.Fatalf("%d won, %d busy; want 1 and 7", won, busy)
	}
	if n := len(e.InFlight()); n != 1 {
		t.Fatalf("%d operations in flight, want 1", n)
	}
}

type failingStore struct{}

func (failingStore) Save(Snapshot) error { return errors.New("disk full") }

// A request whose in-flight entry cannot be saved does not start: an
// operation the next agent could not recover must not happen.
func TestUnsavableRequestDoesNothing(t *testing.T) {
	ctx := context.Background()
	e := New(Options{Store: failingStore{}})
	var log []string
	c := &fakeClient{name: "c", interests: []Interest{{"net/eth0", KindDR}}, log: &log}
	if err := e.AddClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RequestOffline(ctx, []string{"net/eth0"}, 0, "t"); err == nil {
		t.Fatal("request went ahead without its entry saved")
	}
	if len(log) != 0 || len(e.InFlight()) != 0 || len(e.locks) != 0 {
		t.Fatalf("left behind: calls %q, in flight %v, locks %v", log, e.InFlight(), e.locks)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	in := Snapshot{NextID: 7, Entries: []Entry{{ID: 6, Op: OpSuspend, Resources: []string{"net/eth0"}, Flags: Force, State: StateSuspended}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Snapshot
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Entries[0].Op != OpSuspend || out.Entries[0].State != StateSuspended || out.NextID != 7 {
		t.Fatalf("%s -> %+v", b, out)
	}
	if err := json.Unmarshal([]byte(`{"entries":[{"op":"explode"}]}`), &out); err == nil {
		t.Fatal("an unknown operation was accepted")
	}
}

func TestCheckName(t *testing.T) {
	for _, n := range []string{"", "a//b", "/sys/../x", "cpu/", "a\nb"} {
		if CheckName(n) == nil {
			t.Errorf("%q accepted", n)
		}
	}
	for _, n := range []string{"/", "cpu", "cpu/3", "ip/fe80::1", "/sys/devices/pci0000:00/0000:00:03.0"} {
		if err := CheckName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
}

// refuser refuses every request and records the names it was called with.
type refuser struct {
	ins    []Interest
	mu     sync.Mutex
	called []string
}

func (c *refuser) Name() string                                 { return "refuser" }
func (c *refuser) Register(context.Context) ([]Interest, error) { return c.ins, nil }
func (c *refuser) Call(_ context.Context, call Call) (string, error) {
	c.mu.Lock()
	c.called = append(c.called, call.Resource)
	c.mu.Unlock()
	if call.Op == OpInfo {
		return "mounted on /data", nil
	}
	return "", errors.New("in use")
}

// A client that registers a /dev name sits on the device's sysfs node, so
// an offline of the disk reaches it, and it is called with its own name.
func TestCanonicalNames(t *testing.T) {
	ctx := context.Background()
	canon := map[string]string{
		"/dev/sdb1": "/sys/devices/pci0/host0/sdb/sdb1",
		"/dev/sdb":  "/sys/devices/pci0/host0/sdb",
	}
	e := New(Options{Canon: func(n string) string { return canon[n] }})
	c := &refuser{ins: []Interest{{"/dev/sdb1", KindDR}}}
	if err := e.AddClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"/dev/sdb", "/sys/devices/pci0"} {
		res, err := e.RequestOffline(ctx, []string{name}, 0, "t")
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("offline %s: %v, want a refusal", name, err)
		}
		if len(res.Answers) != 1 || res.Answers[0].Resource != "/dev/sdb1" || res.Answers[0].Info != "mounted on /data" {
			t.Fatalf("offline %s: answers %+v", name, res.Answers)
		}
	}
	if c.called[0] != "/dev/sdb1" {
		t.Fatalf("client called with %q, want its own name", c.called[0])
	}
	// A name that maps nowhere stays as written and conflicts with nothing.
	if _, err := e.RequestOffline(ctx, []string{"/dev/sdc"}, 0, "t"); err != nil {
		t.Fatal(err)
	}
}

// liveRefuser is a refuser whose names are read before every operation.
type liveRefuser struct{ refuser }

func (*liveRefuser) Live() {}

// A Live client is asked to register before every operation: a name it
// took a moment ago is seen although the resync interval is an hour.
func TestLiveClientsRegisterBeforeEveryOperation(t *testing.T) {
	ctx := context.Background()
	e := New(Options{Resync: time.Hour})
	live := &liveRefuser{}
	if err := e.AddClient(ctx, live); err != nil {
		t.Fatal(err)
	}
	live.ins = []Interest{{"/sys/devices/virtual/block/loop0", KindDR}}
	if _, err := e.RequestOffline(ctx, []string{"/sys/devices/virtual/block/loop0"}, Query, "t"); !errors.Is(err, ErrRefused) {
		t.Fatalf("a live client's new name was not seen: %v", err)
	}
}
