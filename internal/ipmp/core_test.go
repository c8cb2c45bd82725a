package ipmp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func twoNICs(standby bool) []GroupConfig {
	m1 := MemberConfig{Interface: "e1", Test: []netip.Prefix{pfx("10.0.0.11/24")}, Data: []netip.Prefix{pfx("10.0.0.100/24")}}
	m2 := MemberConfig{Interface: "e2", Test: []netip.Prefix{pfx("10.0.0.12/24")}, Standby: standby}
	if !standby {
		m2.Data = []netip.Prefix{pfx("10.0.0.101/24")}
	}
	return []GroupConfig{{Name: "g0", Members: []MemberConfig{m1, m2}}}
}

func newCore(t *testing.T, set Settings, gs []GroupConfig) *Core {
	t.Helper()
	c, err := NewCore(set, gs, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members() {
		c.Link(t0, m, true, LinkUp)
	}
	c.Start(t0)
	c.Messages()
	return c
}

func on(c *Core, addr string) string {
	i, _, _ := c.WhereIs(netip.MustParseAddr(addr))
	return i
}

func texts(ms []Message) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Text)
	}
	return strings.Join(s, "\n")
}

func TestLinkFailureMovesAndRepairFailsBack(t *testing.T) {
	c := newCore(t, Settings{Failback: true}, twoNICs(false))
	if on(c, "10.0.0.100") != "e1" || on(c, "10.0.0.101") != "e2" {
		t.Fatalf("start: %s %s", on(c, "10.0.0.100"), on(c, "10.0.0.101"))
	}
	c.Link(t0.Add(time.Second), "e1", true, LinkDown)
	if got := on(c, "10.0.0.100"); got != "e2" {
		t.Fatalf("after e1 failed, .100 is on %q", got)
	}
	msgs := texts(c.Messages())
	for _, want := range []string{
		"The link has gone down on e1",
		"IP interface failure detected on e1 of group g0",
		"moving addresses from failed IPv4 interfaces: e1 (moved to e2)",
	} {
		if !strings.Contains(msgs, want) {
			t.Errorf("messages lack %q:\n%s", want, msgs)
		}
	}
	addrs, routes := c.Desired()
	var onE2, testE1 int
	for _, a := range addrs {
		if a.Interface == "e2" && !a.Test {
			onE2++
		}
		if a.Interface == "e1" && a.Test {
			testE1++
		}
	}
	if onE2 != 2 || testE1 != 1 {
		t.Errorf("desired: %d data on e2 (want 2), %d test on e1 (want 1, test addresses stay): %+v", onE2, testE1, addrs)
	}
	if routes[pfx("10.0.0.0/24")] != "e2" {
		t.Errorf("the prefix route goes through %q, want e2", routes[pfx("10.0.0.0/24")])
	}
	c.Link(t0.Add(2*time.Second), "e1", true, LinkUp)
	if got := on(c, "10.0.0.100"); got != "e1" {
		t.Fatalf("after repair with FAILBACK=yes, .100 is on %q", got)
	}
	if msgs := texts(c.Messages()); !strings.Contains(msgs, "IP interface repair detected on e1 of group g0") {
		t.Errorf("no repair message:\n%s", msgs)
	}
}

func TestNoFailbackLeavesTheRepairedInactive(t *testing.T) {
	c := newCore(t, Settings{Failback: false}, twoNICs(false))
	c.Link(t0.Add(time.Second), "e1", true, LinkDown)
	c.Link(t0.Add(2*time.Second), "e1", true, LinkUp)
	if got := on(c, "10.0.0.100"); got != "e2" {
		t.Fatalf("FAILBACK=no: .100 went back to %q", got)
	}
	st := c.Status(t0.Add(2 * time.Second))
	if st.Interfaces[0].Active || !st.Interfaces[0].Inactive {
		t.Errorf("e1 should be inactive: %+v", st.Interfaces[0])
	}
	// It is used again once the other one fails.
	c.Link(t0.Add(3*time.Second), "e2", true, LinkDown)
	if on(c, "10.0.0.100") != "e1" || on(c, "10.0.0.101") != "e1" {
		t.Errorf("after e2 failed: %s %s", on(c, "10.0.0.100"), on(c, "10.0.0.101"))
	}
}

func TestGroupFailureMovesNothing(t *testing.T) {
	c := newCore(t, Settings{Failback: true}, twoNICs(false))
	c.Link(t0.Add(time.Second), "e1", true, LinkDown)
	c.Link(t0.Add(time.Second), "e2", true, LinkDown)
	if !strings.Contains(texts(c.Messages()), "All IP interfaces in group g0 are now unusable") {
		t.Error("no group failure message")
	}
	// e1 failed first, so .100 went to e2; then everything failed: they
	// stay where they were.
	before := on(c, "10.0.0.100") + on(c, "10.0.0.101")
	c.Link(t0.Add(2*time.Second), "e2", true, LinkUp)
	if msgs := texts(c.Messages()); !strings.Contains(msgs, "At least 1 IP interface (e2) in group g0 is now usable") {
		t.Errorf("no group repair message:\n%s", msgs)
	}
	if before != "e2e2" || on(c, "10.0.0.100") != "e2" {
		t.Errorf("before %s, after %s", before, on(c, "10.0.0.100"))
	}
	if st := c.Status(t0.Add(2 * time.Second)); st.Groups[0].State != "degraded" {
		t.Errorf("group state %s", st.Groups[0].State)
	}
}

func TestSimultaneousGroupFailureKeepsAddresses(t *testing.T) {
	c := newCore(t, Settings{Failback: true}, twoNICs(false))
	// The bridge dies: both report in one resync, before any placement.
	c.Note(t0, "e1", true, LinkDown)
	c.Note(t0, "e2", true, LinkDown)
	c.Place(t0)
	if on(c, "10.0.0.100") != "e1" || on(c, "10.0.0.101") != "e2" {
		t.Errorf("a group-wide failure moved addresses: %s %s", on(c, "10.0.0.100"), on(c, "10.0.0.101"))
	}
}

func TestStandbyIsDeployedAndWithdrawn(t *testing.T) {
	c := newCore(t, Settings{Failback: true}, twoNICs(true))
	st := c.Status(t0)
	if !st.Interfaces[1].Inactive || st.Interfaces[1].Active {
		t.Fatalf("standby e2 should start inactive: %+v", st.Interfaces[1])
	}
	c.Link(t0.Add(time.Second), "e1", true, LinkDown)
	if on(c, "10.0.0.100") != "e2" {
		t.Fatalf("standby not deployed: .100 on %q", on(c, "10.0.0.100"))
	}
	c.Link(t0.Add(2*time.Second), "e1", true, LinkUp)
	if on(c, "10.0.0.100") != "e1" {
		t.Fatalf(".100 not back: on %q", on(c, "10.0.0.100"))
	}
	if st := c.Status(t0.Add(2 * time.Second)); st.Interfaces[1].Active {
		t.Error("standby still active after the repair")
	}
}

func TestOfflineRedundancy(t *testing.T) {
	c := newCore(t, Settings{Failback: true}, twoNICs(false))
	if err := c.Offline(t0, "e3", false); !errors.Is(err, ErrUnknown) {
		t.Errorf("offline of a non-member: %v", err)
	}
	if err := c.Offline(t0, "e1", false); err != nil {
		t.Fatal(err)
	}
	if on(c, "10.0.0.100") != "e2" {
		t.Errorf(".100 on %q after offline", on(c, "10.0.0.100"))
	}
	addrs, _ := c.Desired()
	for _, a := range addrs {
		if a.Interface == "e1" {
			t.Errorf("an offline interface keeps %v", a.Prefix)
		}
	}
	if err := c.Offline(t0, "e2", false); !errors.Is(err, ErrRedundancy) {
		t.Errorf("offline of the last working member: %v", err)
	}
	if err := c.UndoOffline(t0, "e2"); !errors.Is(err, ErrNotOffline) {
		t.Errorf("undo on a member that is not offline: %v", err)
	}
	if err := c.UndoOffline(t0.Add(time.Second), "e1"); err != nil {
		t.Fatal(err)
	}
	if on(c, "10.0.0.100") != "e1" {
		t.Errorf(".100 not back after undo: %q", on(c, "10.0.0.100"))
	}
	if err := c.Offline(t0, "e2", true); err != nil {
		t.Errorf("forced: %v", err)
	}
}

// drive runs the probe loop to until, answering each probe (rtt) when
// answer says so.
func drive(c *Core, from, until time.Time, answer func(p Probe, now time.Time) bool) (sent int) {
	now := from
	for now.Before(until) {
		next := c.NextWake()
		if next.IsZero() || next.After(until) {
			return sent
		}
		if next.After(now) {
			now = next
		}
		for _, p := range c.Probes(now) {
			sent++
			if answer(p, now) {
				c.ProbeReply(now.Add(time.Millisecond), p.Interface, p.Target, p.Seq)
			}
		}
		now = now.Add(time.Microsecond)
	}
	return sent
}

func TestProbeFailureAndRepair(t *testing.T) {
	fdt := 700 * time.Millisecond // a probe per 100ms
	c := newCore(t, Settings{FDT: fdt, Failback: true}, twoNICs(false))
	c.SetTargets("g0", "routes", []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.11")})
	if st := c.Status(t0); len(st.Targets[0].Targets) != 1 || st.Targets[0].Mode != "routes" {
		t.Fatalf("targets: %+v (own addresses are never targets)", st.Targets)
	}
	dead := false
	answer := func(p Probe, now time.Time) bool { return !(dead && p.Interface == "e1") }
	end := t0.Add(3 * time.Second)
	sent := drive(c, t0, end, answer)
	// Two members, a probe per 100ms each, for 3s: about 60.
	if sent < 50 || sent > 64 {
		t.Errorf("%d probes in 3s with FDT %v on 2 members", sent, fdt)
	}
	if on(c, "10.0.0.100") != "e1" {
		t.Fatal("answered probes failed e1")
	}
	dead = true
	var failedAt time.Time
	now := end
	for now.Before(end.Add(3 * time.Second)) {
		now = now.Add(10 * time.Millisecond)
		drive(c, now.Add(-10*time.Millisecond), now, answer)
		if on(c, "10.0.0.100") == "e2" {
			failedAt = now
			break
		}
	}
	if failedAt.IsZero() {
		t.Fatal("lost probes never failed e1")
	}
	// Five lost probes: between 4 and 7 intervals after the path died
	// (jitter), plus the time the last one is waited for.
	if d := failedAt.Sub(end); d < 400*time.Millisecond || d > fdt+200*time.Millisecond {
		t.Errorf("probe failure detected after %v; FDT is %v", d, fdt)
	}
	if st := c.Status(now); st.Interfaces[0].Probe != "failed" || st.Interfaces[0].State != "failed" || st.Interfaces[0].Link != "up" {
		t.Errorf("e1: %+v", st.Interfaces[0])
	}
	dead = false
	var repairedAt time.Time
	start := now
	for now.Before(start.Add(5 * time.Second)) {
		now = now.Add(10 * time.Millisecond)
		drive(c, now.Add(-10*time.Millisecond), now, answer)
		if on(c, "10.0.0.100") == "e1" {
			repairedAt = now
			break
		}
	}
	// Ten answered probes: about twice the FDT.
	if repairedAt.IsZero() {
		t.Fatal("answered probes never repaired e1")
	}
	if d := repairedAt.Sub(start); d < 700*time.Millisecond || d > 2*fdt+300*time.Millisecond {
		t.Errorf("repair after %v; want about 2×FDT (%v)", d, 2*fdt)
	}
}

func TestNoTargetsMeansNoProbeFailure(t *testing.T) {
	c := newCore(t, Settings{FDT: 700 * time.Millisecond, Failback: true}, twoNICs(false))
	if !c.NextWake().IsZero() {
		t.Error("probes scheduled with no target")
	}
	if st := c.Status(t0); st.Interfaces[0].Probe != "unknown" || st.Targets[0].Mode != "disabled" {
		t.Errorf("%+v %+v", st.Interfaces[0], st.Targets[0])
	}
}

func TestFlappingLinkWithholdsRepair(t *testing.T) {
	c := newCore(t, Settings{Failback: true}, twoNICs(false))
	now := t0
	for i := 0; i < 3; i++ {
		now = now.Add(time.Second)
		c.Link(now, "e1", true, LinkDown)
		now = now.Add(time.Second)
		c.Link(now, "e1", true, LinkUp)
	}
	if on(c, "10.0.0.100") != "e2" {
		t.Errorf("a link that came up three times in a minute was taken back at once")
	}
	if !strings.Contains(texts(c.Messages()), "more than 2 times in the last 1m0s") {
		t.Error("no flap message")
	}
	now = now.Add(time.Minute)
	c.Probes(now)
	if on(c, "10.0.0.100") != "e1" {
		t.Errorf("not repaired after a quiet minute: %q", on(c, "10.0.0.100"))
	}
}

func TestMissingAtBoot(t *testing.T) {
	c, err := NewCore(Settings{Failback: true}, twoNICs(false), 1)
	if err != nil {
		t.Fatal(err)
	}
	c.Link(t0, "e2", true, LinkUp)
	c.Start(t0)
	msgs := texts(c.Messages())
	if on(c, "10.0.0.100") != "e2" || !strings.Contains(msgs, "moving addresses from missing IPv4 interfaces: e1 (moved to e2)") {
		t.Errorf("on %q; messages:\n%s", on(c, "10.0.0.100"), msgs)
	}
	c.Link(t0.Add(time.Second), "e1", true, LinkUp)
	if on(c, "10.0.0.100") != "e1" {
		t.Errorf("an interface that appeared did not get its addresses back")
	}
}

func TestFloatingAddress(t *testing.T) {
	c := newCore(t, Settings{Failback: true}, twoNICs(false))
	if err := c.AddFloating(t0, "g0", pfx("10.0.0.200/24")); err != nil {
		t.Fatal(err)
	}
	first := on(c, "10.0.0.200")
	if first == "" {
		t.Fatal("floating address not placed")
	}
	if err := c.AddFloating(t0, "g0", pfx("10.0.0.11/24")); !errors.Is(err, ErrExists) {
		t.Errorf("a test address as a floating one: %v", err)
	}
	if err := c.AddFloating(t0, "nope", pfx("10.0.0.201/24")); err == nil {
		t.Error("unknown group accepted")
	}
	c.Link(t0.Add(time.Second), first, true, LinkDown)
	if got := on(c, "10.0.0.200"); got == first || got == "" {
		t.Errorf("floating address did not move off %s: %q", first, got)
	}
	if !c.RemoveFloating(netip.MustParseAddr("10.0.0.200")) {
		t.Error("not removed")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		g    GroupConfig
		want string
	}{
		{GroupConfig{Name: "", Members: []MemberConfig{{Interface: "e1"}}}, "1 to 31 characters"},
		{GroupConfig{Name: strings.Repeat("x", 32), Members: []MemberConfig{{Interface: "e1"}}}, "1 to 31 characters"},
		{GroupConfig{Name: "g"}, "has no interfaces"},
		{GroupConfig{Name: "g", Members: []MemberConfig{{Interface: "e1"}, {Interface: "e1"}}}, "named twice"},
		{GroupConfig{Name: "g", Members: []MemberConfig{{Interface: "e1", Standby: true, Data: []netip.Prefix{pfx("10.0.0.1/24")}}}}, "only test addresses"},
		{GroupConfig{Name: "g", Members: []MemberConfig{{Interface: "e1", Test: []netip.Prefix{pfx("10.0.0.1/24")}}, {Interface: "e2", Data: []netip.Prefix{pfx("10.0.0.1/24")}}}}, "given to e1 and e2"},
		{GroupConfig{Name: "g", Members: []MemberConfig{{Interface: "e1", Data: []netip.Prefix{pfx("224.0.0.1/24")}}}}, "not a usable unicast"},
	} {
		err := tc.g.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.g, err, tc.want)
		}
	}
	if _, err := NewCore(Settings{FDT: 50 * time.Millisecond}, nil, 1); err == nil {
		t.Error("FDT below the minimum accepted")
	}
}

func TestProbeFailureWhileOthersLoseIsHeld(t *testing.T) {
	fdt := 700 * time.Millisecond
	c := newCore(t, Settings{FDT: fdt, Failback: true}, twoNICs(false))
	c.SetTargets("g0", "routes", []netip.Addr{netip.MustParseAddr("10.0.0.1")})
	now := t0
	drive(c, now, now.Add(2*time.Second), func(Probe, time.Time) bool { return true })
	// The path dies for both members: the first to reach five losses
	// must wait for the other, and then it is a group failure.
	now = now.Add(2 * time.Second)
	for i := 0; i < 300; i++ {
		drive(c, now, now.Add(10*time.Millisecond), func(Probe, time.Time) bool { return false })
		now = now.Add(10 * time.Millisecond)
		if on(c, "10.0.0.100") != "e1" || on(c, "10.0.0.101") != "e2" {
			t.Fatalf("at +%v a path failure of the whole group moved addresses: %s %s", now.Sub(t0), on(c, "10.0.0.100"), on(c, "10.0.0.101"))
		}
	}
	if st := c.Status(now); st.Groups[0].State != "failed" {
		t.Errorf("group state %s, want failed", st.Groups[0].State)
	}
}

func TestSlowTargetRaisesTheDetectionTime(t *testing.T) {
	fdt := 700 * time.Millisecond // a probe per 100ms
	c := newCore(t, Settings{FDT: fdt, Failback: true}, twoNICs(false))
	c.SetTargets("g0", "routes", []netip.Addr{netip.MustParseAddr("10.0.0.1")})
	rtt := 5 * time.Millisecond
	now := t0
	answer := func(end time.Time) {
		for now.Before(end) {
			next := c.NextWake()
			if next.After(now) {
				now = next
			}
			for _, p := range c.Probes(now) {
				c.ProbeReply(now.Add(rtt), p.Interface, p.Target, p.Seq)
			}
			now = now.Add(time.Microsecond)
		}
	}
	answer(t0.Add(2 * time.Second))
	// The target slows down to 80ms: its conservative round trip passes
	// the probe interval, and the group's FDT doubles.
	rtt = 80 * time.Millisecond
	answer(now.Add(3 * time.Second))
	st := c.Status(now)
	if got := time.Duration(st.Groups[0].FDT); got <= fdt {
		t.Fatalf("FDT %v after a slow target; want it raised", got)
	}
	if msgs := texts(c.Messages()); !strings.Contains(msgs, "Cannot meet requested failure detection time of 700 ms on (inet 10.0.0.1) new failure detection time for group g0 is 1400 ms") {
		t.Errorf("messages:\n%s", msgs)
	}
	if on(c, "10.0.0.100") != "e1" {
		t.Error("a slow target failed the interface")
	}
	// Fast again: lowered step by step, at most once a minute.
	rtt = time.Millisecond
	answer(now.Add(200 * time.Second)) // halved at most once a minute
	if got := time.Duration(c.Status(now).Groups[0].FDT); got != fdt {
		t.Errorf("FDT %v after the target is fast again, want %v", got, fdt)
	}
	if msgs := texts(c.Messages()); !strings.Contains(msgs, "Improved failure detection time 700 ms") {
		t.Errorf("messages:\n%s", msgs)
	}
}

func TestQuietPeriodAfterAnInterfaceAppears(t *testing.T) {
	fdt := 700 * time.Millisecond
	c, err := NewCore(Settings{FDT: fdt, Failback: true}, twoNICs(false), 1)
	if err != nil {
		t.Fatal(err)
	}
	c.Link(t0, "e1", true, LinkUp)
	c.Link(t0, "e2", true, LinkUp)
	c.Start(t0)
	c.SetTargets("g0", "routes", []netip.Addr{netip.MustParseAddr("10.0.0.1")})
	// e1's switch port is still learning: its probes are lost. Nothing
	// fails while the quiet period lasts.
	answer := func(p Probe, _ time.Time) bool { return p.Interface != "e1" }
	drive(c, t0, t0.Add(39*time.Second), answer)
	if on(c, "10.0.0.100") != "e1" {
		t.Fatal("lost probes failed a new interface within its quiet period")
	}
	drive(c, t0.Add(39*time.Second), t0.Add(42*time.Second), answer)
	if on(c, "10.0.0.100") != "e2" {
		t.Error("lost probes after the quiet period did not fail e1")
	}
	// e2 answered from the start: its quiet period ended with its first
	// answer, and losses count at once.
	if !c.byIface["e2"].answered {
		t.Error("e2 never counted as answered")
	}
}

func TestDuplicateHardwareAddressIsOfflined(t *testing.T) {
	c := newCore(t, Settings{Failback: true}, twoNICs(false))
	c.SetMAC(t0, "e1", "02:00:00:00:00:01")
	c.SetMAC(t0, "e2", "02:00:00:00:00:01")
	if on(c, "10.0.0.101") != "e1" {
		t.Fatalf("e2 shares e1's MAC but keeps .101 (on %q)", on(c, "10.0.0.101"))
	}
	st := c.Status(t0)
	if i := st.Interfaces[1]; !i.DuplicateMAC || i.State != "offline" {
		t.Errorf("e2: %+v", i)
	}
	if !strings.Contains(texts(c.Messages()), "IP interface e2 has a hardware address which is not unique in group g0; offlining") {
		t.Error("no message")
	}
	if err := c.UndoOffline(t0, "e2"); !errors.Is(err, ErrDupMAC) {
		t.Errorf("undo of a duplicate: %v", err)
	}
	addrs, _ := c.Desired()
	for _, a := range addrs {
		if a.Interface == "e2" {
			t.Errorf("a duplicate keeps %v", a.Prefix)
		}
	}
	c.SetMAC(t0.Add(time.Second), "e2", "02:00:00:00:00:02")
	if on(c, "10.0.0.101") != "e2" {
		t.Errorf("unique again, e2 did not get .101 back")
	}
}
