package ipmp

import (
	"net/netip"
	"slices"
	"time"
)

// Probe is one ICMP echo the edge must send now, from the member's test
// address, pinned to the member.
type Probe struct {
	Interface string
	Src       netip.Addr
	Target    netip.Addr
	Seq       uint16
}

// probeHistory is how many probe records Core keeps for ipmpstat -p.
const probeHistory = 512

// Address families of probes: each member probes over IPv4 from its
// IPv4 test address and over IPv6 from its IPv6 one (typically its
// link-local address), each with targets of its own family.
const (
	fam4 = 0
	fam6 = 1
)

func famOf(a netip.Addr) int {
	if a.Is4() {
		return fam4
	}
	return fam6
}

// probeState is one family's probing of one member.
type probeState struct {
	failed          bool
	lostRun, ackRun int
	seq             uint16
	out             []pending
	nextProbe, slot time.Time
	targetNext      int
}

// SetTargets gives a group its IPv4 probe target candidates, best first
// (host routes, then routers, then discovered hosts); mode says where
// they came from: routes or multicast. The group's own addresses are
// never targets.
func (c *Core) SetTargets(groupName, mode string, addrs []netip.Addr) {
	c.setTargets(groupName, fam4, mode, addrs)
}

// SetTargets6 is SetTargets for IPv6 (next hops are link-local).
func (c *Core) SetTargets6(groupName, mode string, addrs []netip.Addr) {
	c.setTargets(groupName, fam6, mode, addrs)
}

func (c *Core) own() map[netip.Addr]bool {
	own := map[netip.Addr]bool{}
	for _, o := range c.groups {
		for _, m := range o.members {
			for _, p := range m.cfg.Test {
				own[p.Addr()] = true
			}
			if m.linkLocal.IsValid() {
				own[m.linkLocal] = true
			}
		}
		for _, d := range o.data {
			own[d.prefix.Addr()] = true
		}
	}
	return own
}

func (c *Core) setTargets(groupName string, f int, mode string, addrs []netip.Addr) {
	g := c.group(groupName)
	if g == nil {
		return
	}
	own := c.own()
	old := map[netip.Addr]*target{}
	for _, t := range g.targets[f] {
		old[t.addr] = t
	}
	var ts []*target
	for _, a := range addrs {
		if own[a] || famOf(a) != f || slices.ContainsFunc(ts, func(t *target) bool { return t.addr == a }) {
			continue
		}
		if t := old[a]; t != nil {
			ts = append(ts, t)
		} else {
			ts = append(ts, &target{addr: a})
		}
		if len(ts) == maxTargets {
			break
		}
	}
	g.targets[f] = ts
	if len(ts) == 0 {
		// Nothing to probe: assumed working, and only the link judges.
		mode = "disabled"
		for _, m := range g.members {
			m.ps[f].failed, m.ps[f].lostRun, m.ps[f].ackRun, m.ps[f].out = false, 0, 0, nil
		}
	}
	g.mode[f] = mode
}

// SetLinkLocal records a member's IPv6 link-local address, its IPv6 test
// address when it is configured to probe from it.
func (c *Core) SetLinkLocal(iface string, a netip.Addr) {
	if m := c.byIface[iface]; m != nil {
		m.linkLocal = a
	}
}

// testAddr is the member's test address of a family.
func (m *member) testAddr(f int) (netip.Addr, bool) {
	for _, p := range m.cfg.Test {
		if famOf(p.Addr()) == f {
			return p.Addr(), true
		}
	}
	if f == fam6 && m.cfg.TestLinkLocal && m.linkLocal.IsValid() {
		return m.linkLocal, true
	}
	return netip.Addr{}, false
}

// hasTest says whether the member has a test address of any family (or
// will have, for its link-local one).
func (m *member) hasTest() bool {
	_, ok4 := m.testAddr(fam4)
	_, ok6 := m.testAddr(fam6)
	return ok4 || ok6 || m.cfg.TestLinkLocal
}

// probingFam says whether probe-based detection of a family runs on m.
func (m *member) probingFam(f int) bool {
	_, ok := m.testAddr(f)
	return ok && m.present && !m.offline && !m.dup && len(m.group.targets[f]) > 0
}

func (m *member) probing() bool { return m.probingFam(fam4) || m.probingFam(fam6) }

// probeFail: the probes of a family have failed the member; it is
// repaired only when every family's probes say so.
func (m *member) probeFail() bool { return m.ps[fam4].failed || m.ps[fam6].failed }

// losing: its latest probe of some family was lost.
func (m *member) losing() bool {
	return (m.probingFam(fam4) && m.ps[fam4].lostRun > 0) || (m.probingFam(fam6) && m.ps[fam6].lostRun > 0)
}

func (m *member) answeredAny() bool { return m.ps[fam4].ackRun > 0 || m.ps[fam6].ackRun > 0 }

func (m *member) lostAny() bool { return m.ps[fam4].lostRun > 0 || m.ps[fam6].lostRun > 0 }

// resetProbes forgets the probes in flight and the judgement.
func (m *member) resetProbes() {
	for f := range m.ps {
		m.ps[f].out, m.ps[f].lostRun, m.ps[f].ackRun, m.ps[f].failed = nil, 0, 0, false
	}
}

func (m *member) dropOutstanding() {
	for f := range m.ps {
		m.ps[f].out = nil
	}
}

// liveTargets are the group's targets of a family not left out for not
// answering.
func (g *group) liveTargets(now time.Time, f int) []*target {
	var out []*target
	for _, t := range g.targets[f] {
		if now.After(t.deadUntil) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return g.targets[f]
	}
	return out
}

// Probes judges the probes in flight and returns those due now. Call it
// at or after NextWake.
func (c *Core) Probes(now time.Time) []Probe {
	var out []Probe
	for _, g := range c.groups {
		interval := g.interval()
		for _, m := range g.members {
			for f := range m.ps {
				ps := &m.ps[f]
				c.judge(now, m, f, interval)
				if !m.probingFam(f) {
					ps.out = nil
					continue
				}
				if ps.slot.IsZero() || now.Before(ps.nextProbe) {
					continue
				}
				// At most two in flight: the older one is lost by now.
				if len(ps.out) >= 2 {
					c.lost(now, m, f, ps.out[0])
					ps.out = ps.out[1:]
				}
				ts := g.liveTargets(now, f)
				t := ts[ps.targetNext%len(ts)]
				ps.targetNext++
				src, _ := m.testAddr(f)
				ps.seq++
				if ps.seq == discoverySeq {
					ps.seq++
				}
				ps.out = append(ps.out, pending{seq: ps.seq, target: t.addr, sent: now})
				out = append(out, Probe{Interface: m.cfg.Interface, Src: src, Target: t.addr, Seq: ps.seq})
				// Next slot, fired at a random point of its second half, so
				// that members and hosts do not probe in step.
				for !ps.slot.After(now) {
					ps.slot = ps.slot.Add(interval)
				}
				ps.nextProbe = ps.slot.Add(interval/2 + time.Duration(c.rnd.Int64N(int64(interval/2)+1)))
				ps.slot = ps.slot.Add(interval)
			}
		}
	}
	c.place(now)
	return out
}

// judge counts the probes of m whose conservative round trip has passed
// as lost.
func (c *Core) judge(now time.Time, m *member, f int, interval time.Duration) {
	ps := &m.ps[f]
	kept := ps.out[:0]
	for _, p := range ps.out {
		t := m.group.find(p.target)
		limit := interval
		if t != nil {
			limit = t.crtt(interval)
		}
		if now.Sub(p.sent) > limit {
			c.lost(now, m, f, p)
			continue
		}
		kept = append(kept, p)
	}
	ps.out = kept
}

func (g *group) find(a netip.Addr) *target {
	for _, t := range g.targets[famOf(a)] {
		if t.addr == a {
			return t
		}
	}
	return nil
}

func (c *Core) record(r ProbeRecord) {
	if len(c.probes) >= probeHistory {
		c.probes = c.probes[1:]
	}
	c.probes = append(c.probes, r)
}

func (c *Core) lost(now time.Time, m *member, f int, p pending) {
	c.record(ProbeRecord{Time: p.sent, Interface: m.cfg.Interface, Seq: p.seq, Target: p.target, Lost: true})
	if !m.answered && now.Before(m.quietUntil) {
		// A new interface: a switch port may still be learning
		// (spanning tree); losses count from its first answer or the end
		// of the quiet period.
		return
	}
	ps := &m.ps[f]
	ps.ackRun = 0
	ps.lostRun++
	g := m.group
	if t := g.find(p.target); t != nil {
		t.lostRun++
		// A target that stopped answering while another answers this
		// member is the target's fault: leave it out for a while.
		if t.lostRun >= probeFails {
			for _, o := range g.targets[f] {
				if o != t && now.Sub(o.lastAnswer) < g.fdt {
					t.deadUntil = now.Add(deadTargetFor)
					t.lostRun = 0
					ps.lostRun = 0
					c.say(now, g, m.cfg.Interface, "probe", true, "Probe target %v of group %s is not answering; leaving it out", t.addr, g.cfg.Name)
					break
				}
			}
		}
	}
	if ps.lostRun >= probeFails {
		ps.failed = true
	}
}

// ProbeReply records the answer to a probe.
func (c *Core) ProbeReply(now time.Time, iface string, from netip.Addr, seq uint16) {
	m := c.byIface[iface]
	if m == nil {
		return
	}
	ps := &m.ps[famOf(from)]
	i := slices.IndexFunc(ps.out, func(p pending) bool { return p.seq == seq && p.target == from })
	if i < 0 {
		return // late (already counted lost) or not ours
	}
	p := ps.out[i]
	ps.out = slices.Delete(ps.out, i, i+1)
	rtt := now.Sub(p.sent)
	g := m.group
	if t := g.find(from); t != nil {
		if t.samples == 0 {
			t.srtt, t.dev = rtt, rtt/2
		} else {
			diff := rtt - t.srtt
			if diff < 0 {
				diff = -diff
			}
			t.dev += (diff - t.dev) / 4
			t.srtt += (rtt - t.srtt) / 8
		}
		t.samples++
		t.lostRun = 0
		t.lastAnswer = now
		c.adjustFDT(now, g, t)
	}
	c.record(ProbeRecord{Time: p.sent, Interface: iface, Seq: seq, Target: from, RTT: rtt})
	m.answered = true
	ps.lostRun = 0
	ps.ackRun++
	if ps.failed && ps.ackRun >= probeRepairs {
		ps.failed = false
	}
	c.place(now)
}

// adjustFDT doubles the group's detection time when a target is too slow
// for it, and brings it back towards the configured one when the targets
// are fast again (not within a minute of a raise).
func (c *Core) adjustFDT(now time.Time, g *group, t *target) {
	crtt := t.crtt(g.interval())
	if crtt > g.interval() {
		g.fdt *= 2
		g.raisedAt = now
		c.say(now, g, "", "probe", true, "Cannot meet requested failure detection time of %d ms on (%s %v) new failure detection time for group %s is %d ms",
			c.set.FDT.Milliseconds(), inet(t.addr), t.addr, g.cfg.Name, g.fdt.Milliseconds())
		return
	}
	if g.fdt > c.set.FDT && crtt < c.set.FDT/4 && now.Sub(g.raisedAt) >= lowerFDTAfter {
		g.fdt /= 2
		if g.fdt < c.set.FDT {
			g.fdt = c.set.FDT
		}
		g.raisedAt = now
		c.say(now, g, "", "probe", false, "Improved failure detection time %d ms on (%s %v) for group %s", g.fdt.Milliseconds(), inet(t.addr), t.addr, g.cfg.Name)
	}
}

// NextWake is when Probes must next be called (the zero time: never).
func (c *Core) NextWake() time.Time {
	var next time.Time
	soon := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, g := range c.groups {
		interval := g.interval()
		for _, m := range g.members {
			for f := range m.ps {
				if !m.probingFam(f) {
					continue
				}
				ps := &m.ps[f]
				if ps.slot.IsZero() {
					continue // before Start, which draws the first slots
				}
				soon(ps.nextProbe)
				for _, p := range ps.out {
					limit := interval
					if t := g.find(p.target); t != nil {
						limit = t.crtt(interval)
					}
					soon(p.sent.Add(limit + time.Millisecond))
				}
			}
		}
		for _, m := range g.members {
			if len(m.ups) > flapLimit {
				soon(m.ups[len(m.ups)-1].Add(g.flapWindow))
			}
		}
	}
	return next
}

// RecentProbes returns the probe records since t.
func (c *Core) RecentProbes(since time.Time) []ProbeRecord {
	var out []ProbeRecord
	for _, r := range c.probes {
		if !r.Time.Before(since) {
			out = append(out, r)
		}
	}
	return out
}

func inet(a netip.Addr) string {
	if a.Is4() {
		return "inet"
	}
	return "inet6"
}
