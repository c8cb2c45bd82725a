package rgm

import (
	"context"
	"fmt"
	"strings"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/event"
	"github.com/steady-ha/steady/internal/rgm/machine"
)

// whyEvents is how many recent events of the group "why" shows, and
// whyScan how far back in the journal it looks for them.
const (
	whyEvents = 12
	whyScan   = 2000
)

// Why explains a group's state on this node: a summary in sentences
// (which resource, which method, which policy), the resources in start
// order with their last method and decision, and the group's recent
// events.
func (m *Manager) Why(ctx context.Context, name string) (api.RGMWhy, error) {
	g, err := m.Group(ctx, name)
	if err != nil {
		return api.RGMWhy{}, err
	}
	out := api.RGMWhy{Group: g, Resources: []api.RGMResource{}, Events: []api.Event{}}
	for _, rn := range g.Resources {
		if r, err := m.Resource(ctx, rn); err == nil {
			out.Resources = append(out.Resources, r)
		}
	}
	out.Summary = summarize(g, out.Resources)
	if m.cl != nil {
		lines, err := m.explainPlacement(ctx, name)
		if err != nil {
			return out, err
		}
		out.Placement = lines
	}
	if m.opts.Bus != nil {
		recent, err := m.opts.Bus.Tail(event.Filter{Class: machine.ClassRGM}, whyScan)
		if err == nil {
			for _, ev := range recent {
				if v, ok := ev.Attrs["group"]; ok {
					if s, _ := v.Str(); s == name {
						out.Events = append(out.Events, ev)
					}
				}
			}
			if len(out.Events) > whyEvents {
				out.Events = out.Events[len(out.Events)-whyEvents:]
			}
		}
	}
	return out, nil
}

// summarize says in sentences why the group is in its state.
func summarize(g api.RGMGroup, rs []api.RGMResource) []string {
	var s []string
	add := func(format string, args ...any) { s = append(s, fmt.Sprintf(format, args...)) }
	byState := func(states ...string) []api.RGMResource {
		var out []api.RGMResource
		for _, r := range rs {
			for _, st := range states {
				if r.State == st {
					out = append(out, r)
				}
			}
		}
		return out
	}
	lastOf := func(r api.RGMResource) {
		if r.Last != "" {
			add("  last method of %s: %s", r.Name, r.Last)
		}
		if out := lastLines(r.LastOutput, 3); out != "" {
			add("  its last output: %s", out)
		}
		if r.Decision != "" {
			add("  decision: %s", r.Decision)
		}
	}
	switch {
	case !g.Managed:
		add("Group %s is unmanaged: steady runs none of its methods and does not monitor it. \"steady rg manage %s\" (or \"steady rg online %s\") takes it under management.", g.Name, g.Name, g.Name)
		return s
	case g.State == machine.GroupErrorStopFailed:
		for _, r := range byState(machine.StopFailed) {
			add("Resource %s failed to stop, so it may still be running: the group is %s and steady will not start or move it until an operator has made sure %s is stopped and run \"steady resource clear %s --flag STOP_FAILED\".", r.Name, g.State, r.Name, r.Name)
			lastOf(r)
		}
	case g.State == machine.GroupOnlineFaulted:
		failed := byState(machine.StartFailed, machine.MonitorFailed)
		if len(failed) == 0 {
			add("Group %s is online, but a resource has failed.", g.Name)
		}
		for _, r := range failed {
			add("Resource %s is %s.", r.Name, r.State)
			lastOf(r)
		}
		if g.Decision != "" {
			add("Group decision: %s", g.Decision)
		}
		add("\"steady rg online %s\" tries the failed resources again; \"steady rg restart %s\" restarts the whole group.", g.Name, g.Name)
	case g.State == machine.GroupPendingBlocked:
		for _, r := range rs {
			if r.Waiting != "" {
				add("Resource %s cannot start: %s.", r.Name, r.Waiting)
			}
		}
	case g.State == machine.GroupPendingOnline || g.State == machine.GroupPendingOffline:
		for _, r := range byState(machine.Starting, machine.Stopping) {
			add("Resource %s is %s; steady waits for its method to finish or time out.", r.Name, r.State)
		}
		for _, r := range rs {
			if r.Waiting != "" && r.State == machine.Offline {
				add("Resource %s waits: %s.", r.Name, r.Waiting)
			}
		}
	case g.State == machine.GroupOffline:
		switch {
		case !g.Online:
			add("Group %s is offline because it was taken offline (or never brought online): \"steady rg online %s\" starts it.", g.Name, g.Name)
		case !g.Assigned && len(g.Primaries) > 0:
			add("Group %s runs on %s, not on this node.", g.Name, strings.Join(g.Primaries, ", "))
		case !g.Assigned:
			add("Group %s should be online but is not assigned to this node.", g.Name)
		default:
			add("Group %s is offline.", g.Name)
		}
		if g.Decision != "" {
			add("Group decision: %s", g.Decision)
		}
	case g.State == machine.GroupOnline:
		add("Group %s is online: every enabled resource is online.", g.Name)
		for _, r := range rs {
			switch {
			case !r.Enabled:
				add("Resource %s is disabled, so it stays offline.", r.Name)
			case !r.Monitored || r.State == machine.OnlineNotMonitored:
				add("Resource %s is online but not monitored.", r.Name)
			case r.Status != "" && r.Status != machine.StatusOK:
				add("Resource %s reports status %s: %s", r.Name, r.Status, r.StatusMsg)
			}
		}
	default:
		add("Group %s is %s.", g.Name, g.State)
	}
	if g.Suspended {
		add("Automatic recovery of %s is suspended: failures are recorded but nothing is restarted or moved (\"steady rg resume %s\").", g.Name, g.Name)
	}
	return s
}

// lastLines joins the last n non-empty lines of out with " | ".
func lastLines(out string, n int) string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			ls = append(ls, l)
		}
	}
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}
