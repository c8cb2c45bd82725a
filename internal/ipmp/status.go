package ipmp

import (
	"time"

	"github.com/steady-ha/steady/api"
)

// Status is the state as ipmpstat shows it.
func (c *Core) Status(now time.Time) api.IPMPStatus {
	st := api.IPMPStatus{FDT: api.Duration(c.set.FDT), Failback: c.set.Failback}
	for _, g := range c.groups {
		ag := api.IPMPGroup{Name: g.cfg.Name, State: "ok", Active: []string{}}
		probes := false
		usable := 0
		for _, m := range g.members {
			name := m.cfg.Interface
			ai := api.IPMPInterface{Name: name, Group: g.cfg.Name, Active: m.active, Standby: m.cfg.Standby,
				Inactive: m.usable(now) && !m.active, Link: m.link.String(), Present: m.present, DuplicateMAC: m.dup}
			switch {
			case m.dup:
				ai.Probe = "disabled"
			case !m.probing():
				ai.Probe = "disabled"
				if m.hasTest() && m.present && !m.offline {
					ai.Probe = "unknown" // a test address, nothing to probe
				}
			case m.probeFail():
				ai.Probe = "failed"
			case !m.answeredAny() && !m.lostAny():
				ai.Probe = "unknown"
			default:
				ai.Probe = "ok"
			}
			if m.probing() {
				probes = true
			}
			switch {
			case m.offline || m.dup:
				ai.State = "offline"
			case !m.present:
				ai.State = "unknown"
			case m.usable(now):
				ai.State = "ok"
				usable++
			default:
				ai.State = "failed"
			}
			for _, p := range c.DataOn(name) {
				ai.Data = append(ai.Data, p.String())
			}
			for _, p := range m.cfg.Test {
				ai.Test = append(ai.Test, p.String())
			}
			if m.cfg.TestLinkLocal && m.linkLocal.IsValid() {
				ai.Test = append(ai.Test, m.linkLocal.String())
			}
			switch {
			case m.active:
				ag.Active = append(ag.Active, name)
			case ai.State == "ok":
				ag.Inactive = append(ag.Inactive, name)
			default:
				ag.Unusable = append(ag.Unusable, name)
			}
			st.Interfaces = append(st.Interfaces, ai)
			// A row per family with a test address (IPv4 first), or one
			// "disabled" row.
			rows := 0
			for f := range m.ps {
				a, ok := m.testAddr(f)
				if !ok {
					continue
				}
				at := api.IPMPTargets{Interface: name, Mode: "disabled", TestAddr: a.String(), Targets: []string{}}
				if m.probingFam(f) {
					at.Mode = g.mode[f]
					for _, t := range g.liveTargets(now, f) {
						at.Targets = append(at.Targets, t.addr.String())
					}
				}
				st.Targets = append(st.Targets, at)
				rows++
			}
			if rows == 0 {
				st.Targets = append(st.Targets, api.IPMPTargets{Interface: name, Mode: "disabled", Targets: []string{}})
			}
		}
		switch {
		case usable == 0:
			ag.State = "failed"
		case usable < len(g.members):
			ag.State = "degraded"
		}
		if probes {
			ag.FDT = api.Duration(g.fdt)
		}
		st.Groups = append(st.Groups, ag)
		for _, d := range g.data {
			aa := api.IPMPAddress{Address: d.prefix.String(), Group: g.cfg.Name, State: "down", Home: d.home, Floating: d.floating}
			if d.on != "" {
				aa.State, aa.Inbound = "up", d.on
				aa.Outbound = append([]string{}, ag.Active...)
			}
			st.Addresses = append(st.Addresses, aa)
		}
	}
	return st
}

// ProbesSince is ipmpstat -p's feed.
func (c *Core) ProbesSince(since time.Time) []api.IPMPProbe {
	var out []api.IPMPProbe
	for _, r := range c.RecentProbes(since) {
		p := api.IPMPProbe{Time: r.Time, Interface: r.Interface, Seq: r.Seq, Target: r.Target.String(), Lost: r.Lost}
		if !r.Lost {
			p.RTT = api.Duration(r.RTT)
		}
		out = append(out, p)
	}
	return out
}
