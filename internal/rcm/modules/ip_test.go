package modules

import (
	"context"
	"strings"
	"testing"

	"github.com/steady-ha/steady/internal/rcm"
)

// fakeMultipath is a group g0 of e1 and e2 as the daemon would answer.
type fakeMultipath struct {
	working map[string]bool
	offline map[string]bool
	calls   []string
}

func (f *fakeMultipath) Member(_ context.Context, iface string) (string, int, bool, error) {
	if iface != "e1" && iface != "e2" {
		return "", 0, false, nil
	}
	others := 0
	for _, o := range []string{"e1", "e2"} {
		if o != iface && f.working[o] && !f.offline[o] {
			others++
		}
	}
	return "g0", others, f.offline[iface], nil
}

func (f *fakeMultipath) Offline(_ context.Context, iface string, force bool) error {
	f.calls = append(f.calls, "offline "+iface)
	f.offline[iface] = true
	return nil
}

func (f *fakeMultipath) UndoOffline(_ context.Context, iface string) error {
	f.calls = append(f.calls, "undo "+iface)
	f.offline[iface] = false
	return nil
}

func TestIPModuleWithMultipathing(t *testing.T) {
	ctx := context.Background()
	f := &fakeMultipath{working: map[string]bool{"e1": true, "e2": true}, offline: map[string]bool{}}
	m := &IP{Multipath: f}
	info, err := m.Call(ctx, rcm.Call{Op: rcm.OpInfo, Resource: "net/e1"})
	if err != nil || info != "e1: providing connectivity for IPMP group g0" {
		t.Errorf("info: %q %v", info, err)
	}
	// The query agrees and changes nothing; the real pass takes e1
	// offline in its group; an undo puts it back.
	if _, err := m.Call(ctx, rcm.Call{Op: rcm.OpOffline, Resource: "net/e1", Flags: rcm.Query}); err != nil {
		t.Fatalf("query: %v", err)
	}
	if len(f.calls) != 0 {
		t.Fatalf("the query changed something: %v", f.calls)
	}
	if _, err := m.Call(ctx, rcm.Call{Op: rcm.OpOffline, Resource: "net/e1"}); err != nil {
		t.Fatalf("offline: %v", err)
	}
	if info, _ := m.Call(ctx, rcm.Call{Op: rcm.OpInfo, Resource: "net/e1"}); info != "e1: offlined (IPMP group g0)" {
		t.Errorf("info when offline: %q", info)
	}
	// Now e2 is the last working member: refused, in query and in the
	// real pass, unless forced.
	for _, flags := range []rcm.Flags{rcm.Query, 0} {
		_, err := m.Call(ctx, rcm.Call{Op: rcm.OpOffline, Resource: "net/e2", Flags: flags})
		if err == nil || !strings.Contains(err.Error(), "only working interface of IPMP group g0") {
			t.Errorf("offline of the last member (flags %v): %v", flags, err)
		}
	}
	if _, err := m.Call(ctx, rcm.Call{Op: rcm.OpOnline, Resource: "net/e1"}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.calls, ",") != "offline e1,undo e1" {
		t.Errorf("calls: %v", f.calls)
	}
	// An online notice for an interface this module did not take offline
	// leaves it alone.
	f.offline["e2"] = true
	m.Call(ctx, rcm.Call{Op: rcm.OpOnline, Resource: "net/e2"})
	if len(f.calls) != 2 {
		t.Errorf("an undo for an interface taken offline by someone else: %v", f.calls)
	}
}
