package machine

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// equal must compare every field that is saved: a field added to the
// state without being added to equal and clone would silently not be
// saved on the step that changes only it.
func TestSavedComparesEveryField(t *testing.T) {
	for _, c := range []struct {
		typ   reflect.Type
		known []string
	}{
		{reflect.TypeOf(resState{}), []string{"State", "Status", "StatusMsg", "Plan", "Running", "Going", "Monitoring",
			"Restart", "Restarts", "IgnoreFailedStart", "GiveoverAsked", "Last", "Decision", "Waiters"}},
		{reflect.TypeOf(groupState{}), []string{"State", "Assigned", "Restarts", "Cycling", "Decision", "Waiters"}},
		{reflect.TypeOf(record{}), []string{"Time", "What", "Output"}},
	} {
		var got []string
		for i := range c.typ.NumField() {
			got = append(got, c.typ.Field(i).Name)
		}
		if !slices.Equal(got, c.known) {
			t.Errorf("%s has fields %v; equal and clone (saved.go) know %v", c.typ, got, c.known)
		}
	}
}

func TestSavedChanged(t *testing.T) {
	m := New("n1", time.Now())
	m.res["a"] = &resState{State: Offline, Plan: []string{"START"}}
	m.res["b"] = &resState{State: Online}
	m.groups["g"] = &groupState{State: GroupOnline}
	s := NewSaved()
	// Changes made here, not by steps, are found by full comparisons.
	changed := func(s *Saved) ([]string, []string, []string, []string) {
		m.saveAll = true
		return m.Changed(s)
	}
	res, groups, goneR, goneG := changed(s)
	slices.Sort(res)
	if !slices.Equal(res, []string{"a", "b"}) || !slices.Equal(groups, []string{"g"}) || goneR != nil || goneG != nil {
		t.Fatalf("first: %v %v %v %v", res, groups, goneR, goneG)
	}
	if res, groups, _, _ := changed(s); res != nil || groups != nil {
		t.Fatalf("nothing changed, but %v %v", res, groups)
	}
	// A change inside a slice and a record the copy must not share.
	m.res["a"].Plan[0] = "STOP"
	m.res["b"].Last = &record{What: "START succeeded"}
	if res, _, _, _ := changed(s); len(res) != 2 {
		t.Fatalf("in-place changes: %v", res)
	}
	m.res["b"].Last.What = "STOP succeeded"
	if res, _, _, _ := changed(s); !slices.Equal(res, []string{"b"}) {
		t.Fatalf("record change: %v", res)
	}
	m.res["b"].Waiters = []uint64{7} // not saved
	if res, _, _, _ := changed(s); res != nil {
		t.Fatalf("a waiter is not saved state: %v", res)
	}
	delete(m.res, "a")
	m.res["c"] = &resState{State: Offline}
	delete(m.groups, "g")
	res, _, goneR, goneG = changed(s)
	if !slices.Equal(res, []string{"c"}) || !slices.Equal(goneR, []string{"a"}) || !slices.Equal(goneG, []string{"g"}) {
		t.Fatalf("replaced: %v gone %v %v", res, goneR, goneG)
	}
}
