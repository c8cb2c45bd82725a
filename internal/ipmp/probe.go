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

// SetTargets gives a group its probe target candidates, best first (host
// routes, then routers, then discovered hosts); mode says where they came
// from: routes or multicast. The group's own addresses are never targets.
func (c *Core) SetTargets(groupName, mode string, addrs []netip.Addr) {
	g := c.group(groupName)
	if g == nil {
		return
	}
	own := map[netip.Addr]bool{}
	for _, o := range c.groups {
		for _, m := range o.members {
			for _, p := range m.cfg.Test {
				own[p.Addr()] = true
			}
		}
		for _, d := range o.data {
			own[d.prefix.Addr()] = true
		}
	}
	old := map[netip.Addr]*target{}
	for _, t := range g.targets {
		old[t.addr] = t
	}
	var ts []*target
	for _, a := range addrs {
		if own[a] || !a.Is4() || slices.ContainsFunc(ts, func(t *target) bool { return t.addr == a }) {
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
	g.targets = ts
	if len(ts) == 0 {
		// Nothing to probe: assumed working, and only the link judges.
		mode = "disabled"
		for _, m := range g.members {
			m.probeFailed, m.lostRun, m.ackRun, m.out = false, 0, 0, nil
		}
	}
	g.mode = mode
}

// testAddr is the member's IPv4 test address (probes are IPv4).
func (m *member) testAddr() (netip.Addr, bool) {
	for _, p := range m.cfg.Test {
		if p.Addr().Is4() {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// probing says whether probe-based detection runs on m.
func (m *member) probing() bool {
	_, ok := m.testAddr()
	return ok && m.present && !m.offline && !m.dup && len(m.group.targets) > 0
}

// liveTargets are the group's targets not left out for not answering.
func (g *group) liveTargets(now time.Time) []*target {
	var out []*target
	for _, t := range g.targets {
		if now.After(t.deadUntil) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return g.targets
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
			c.judge(now, m, interval)
			if !m.probing() {
				m.out = nil
				continue
			}
			if now.Before(m.nextProbe) {
				continue
			}
			// At most two in flight: the older one is lost by now.
			if len(m.out) >= 2 {
				c.lost(now, m, m.out[0])
				m.out = m.out[1:]
			}
			ts := g.liveTargets(now)
			t := ts[m.targetNext%len(ts)]
			m.targetNext++
			src, _ := m.testAddr()
			m.seq++
			if m.seq == discoverySeq {
				m.seq++
			}
			m.out = append(m.out, pending{seq: m.seq, target: t.addr, sent: now})
			out = append(out, Probe{Interface: m.cfg.Interface, Src: src, Target: t.addr, Seq: m.seq})
			// Next slot, fired at a random point of its second half, so
			// that members and hosts do not probe in step.
			for !m.slot.After(now) {
				m.slot = m.slot.Add(interval)
			}
			m.nextProbe = m.slot.Add(interval/2 + time.Duration(c.rnd.Int64N(int64(interval/2)+1)))
			m.slot = m.slot.Add(interval)
		}
	}
	c.place(now)
	return out
}

// judge counts the probes of m whose conservative round trip has passed
// as lost.
func (c *Core) judge(now time.Time, m *member, interval time.Duration) {
	kept := m.out[:0]
	for _, p := range m.out {
		t := m.group.find(p.target)
		limit := interval
		if t != nil {
			limit = t.crtt(interval)
		}
		if now.Sub(p.sent) > limit {
			c.lost(now, m, p)
			continue
		}
		kept = append(kept, p)
	}
	m.out = kept
}

func (g *group) find(a netip.Addr) *target {
	for _, t := range g.targets {
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

func (c *Core) lost(now time.Time, m *member, p pending) {
	c.record(ProbeRecord{Time: p.sent, Interface: m.cfg.Interface, Seq: p.seq, Target: p.target, Lost: true})
	if !m.answered && now.Before(m.quietUntil) {
		// A new interface: a switch port may still be learning
		// (spanning tree); losses count from its first answer or the end
		// of the quiet period.
		return
	}
	m.ackRun = 0
	m.lostRun++
	g := m.group
	if t := g.find(p.target); t != nil {
		t.lostRun++
		// A target that stopped answering while another answers this
		// member is the target's fault: leave it out for a while.
		if t.lostRun >= probeFails {
			for _, o := range g.targets {
				if o != t && now.Sub(o.lastAnswer) < g.fdt {
					t.deadUntil = now.Add(deadTargetFor)
					t.lostRun = 0
					m.lostRun = 0
					c.say(now, g, m.cfg.Interface, "probe", true, "Probe target %v of group %s is not answering; leaving it out", t.addr, g.cfg.Name)
					break
				}
			}
		}
	}
	if m.lostRun >= probeFails && !m.probeFailed {
		m.probeFailed = true
	}
}

// ProbeReply records the answer to a probe.
func (c *Core) ProbeReply(now time.Time, iface string, from netip.Addr, seq uint16) {
	m := c.byIface[iface]
	if m == nil {
		return
	}
	i := slices.IndexFunc(m.out, func(p pending) bool { return p.seq == seq && p.target == from })
	if i < 0 {
		return // late (already counted lost) or not ours
	}
	p := m.out[i]
	m.out = slices.Delete(m.out, i, i+1)
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
	m.lostRun = 0
	m.ackRun++
	if m.probeFailed && m.ackRun >= probeRepairs {
		m.probeFailed = false
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
		c.say(now, g, "", "probe", true, "Cannot meet requested failure detection time of %d ms on (inet %v) new failure detection time for group %s is %d ms",
			c.set.FDT.Milliseconds(), t.addr, g.cfg.Name, g.fdt.Milliseconds())
		return
	}
	if g.fdt > c.set.FDT && crtt < c.set.FDT/4 && now.Sub(g.raisedAt) >= lowerFDTAfter {
		g.fdt /= 2
		if g.fdt < c.set.FDT {
			g.fdt = c.set.FDT
		}
		g.raisedAt = now
		c.say(now, g, "", "probe", false, "Improved failure detection time %d ms on (inet %v) for group %s", g.fdt.Milliseconds(), t.addr, g.cfg.Name)
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
			if !m.probing() {
				continue
			}
			soon(m.nextProbe)
			for _, p := range m.out {
				limit := interval
				if t := g.find(p.target); t != nil {
					limit = t.crtt(interval)
				}
				soon(p.sent.Add(limit + time.Millisecond))
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
