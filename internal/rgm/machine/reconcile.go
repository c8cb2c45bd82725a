package machine

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/rgm/model"
)

// Relocate asks the cluster layer to move a group to another node (a
// start failure under SOFT or HARD, or a giveover). Emitted only when the
// machine knows of other nodes (SetPeers).
type Relocate struct {
	Group, Resource, Reason string
	// Giveover: a monitor asked for it (MONITOR_CHECK runs on the
	// candidates first); otherwise a start failed.
	Giveover bool
}

func (Relocate) isAction() {}

// up reports whether a state counts as running (the resource's service
// may be up).
func up(state string) bool {
	switch state {
	case Online, OnlineNotMonitored, MonitorFailed:
		return true
	}
	return false
}

// touch marks a group for the next reconcile. Inputs that concern a few
// groups touch them; a reconcile with nothing touched looks at every
// group. Without it, each method result on a node with 10,000 groups
// would step all of them.
func (m *Machine) touch(group string) {
	if m.dirty == nil {
		m.dirty = map[string]bool{}
	}
	m.dirty[group] = true
	m.markSave(group)
	for _, h := range m.idx.related[group] {
		m.dirty[h] = true
		m.markSave(h)
	}
}

// markSave notes that a group's state, or that of its resources, may
// have changed, for the next Changed.
func (m *Machine) markSave(group string) {
	if m.saveGroups == nil {
		m.saveGroups = map[string]bool{}
	}
	m.saveGroups[group] = true
}

// reconcile starts and stops what the configuration and assignments ask
// for, as far as dependencies allow, until nothing more can happen now.
// It works on the touched groups (all when none is); a change spreads to
// the groups related to it by dependencies, and group states feed back
// (a group dependency waits for its group to be online), so it repeats
// until they settle too.
func (m *Machine) reconcile() {
	work := m.idx.groups
	if len(m.dirty) > 0 {
		work = m.inOrder(m.dirty)
	} else {
		m.saveAll = true
	}
	m.dirty = nil
	for round := 0; len(work) > 0 && round < 2*len(m.groups)+4; round++ {
		m.spill = map[string]bool{}
		if !m.saveAll {
			for _, g := range work {
				m.markSave(g)
			}
		}
		inWork := make(map[string]bool, len(work))
		for _, g := range work {
			inWork[g] = true
		}
		for pass := 0; pass < 2*len(m.res)+2; pass++ {
			changed := false
			// Groups a change reached join the passes.
			grown := false
			for g := range m.spill {
				if !inWork[g] {
					inWork[g], grown = true, true
				}
			}
			if grown {
				work = m.inOrder(inWork)
				if !m.saveAll {
					for _, g := range work {
						m.markSave(g)
					}
				}
			}
			for _, gname := range work {
				order := m.idx.order[gname]
				for _, r := range order {
					if m.step(r) {
						changed = true
						m.spread(r.Group)
					}
				}
				for i := len(order) - 1; i >= 0; i-- {
					if m.step(order[i]) {
						changed = true
						m.spread(order[i].Group)
					}
				}
			}
			if !changed {
				break
			}
		}
		next := map[string]bool{}
		for _, g := range m.updateGroups(work) {
			next[g] = true
			for _, h := range m.idx.related[g] {
				next[h] = true
			}
		}
		work = m.inOrder(next)
	}
	m.spill = nil
}

// spread marks the groups related to g by dependencies for the next
// round of a reconcile.
func (m *Machine) spread(g string) {
	for _, h := range m.idx.related[g] {
		m.spill[h] = true
	}
}

// inOrder lists a set of groups in reconcile order.
func (m *Machine) inOrder(set map[string]bool) []string {
	if len(set) == 0 {
		return nil
	}
	if len(set)*4 > len(m.idx.groups) {
		out := make([]string, 0, len(set))
		for _, g := range m.idx.groups {
			if set[g] {
				out = append(out, g)
			}
		}
		return out
	}
	out := make([]string, 0, len(set))
	for g := range set {
		if _, ok := m.groups[g]; ok {
			out = append(out, g)
		}
	}
	sort.Strings(out)
	return out
}

// wantUp reports whether the resource should be running on this node.
func (m *Machine) wantUp(r *model.Resource) bool {
	g := m.cfg.Groups[r.Group]
	gs := m.groups[r.Group]
	if g == nil || gs == nil || !g.Managed || !gs.Assigned || gs.Cycling || !r.Enabled {
		return false
	}
	return !m.res[r.Name].Restart
}

// step advances one resource; it reports whether anything changed.
func (m *Machine) step(r *model.Resource) bool {
	rs := m.res[r.Name]
	if rs == nil || rs.Running != 0 || rs.State == StopFailed {
		return false
	}
	g := m.cfg.Groups[r.Group]
	if g == nil || !g.Managed {
		if rs.State != Detached && rs.State == Offline {
			m.setState(r, rs, Detached)
			return true
		}
		return false
	}
	if rs.State == Detached {
		m.setState(r, rs, Offline)
		return true
	}
	if m.wantUp(r) {
		switch rs.State {
		case Offline:
			if ok, _, _ := m.canStart(r, 0); ok {
				m.begin(r, rs, "up")
				return true
			}
		case Online, OnlineNotMonitored:
			return m.syncMonitor(r, rs)
		}
		return false
	}
	switch rs.State {
	case Online, OnlineNotMonitored, MonitorFailed, StartFailed:
		if m.canStop(r) {
			m.begin(r, rs, "down")
			return true
		}
	case Offline:
		if rs.Restart {
			rs.Restart = false
			return true
		}
	}
	return false
}

// canStart reports whether the dependencies of r allow it to start now;
// otherwise why, and whether the block lasts (a dependee that failed).
func (m *Machine) canStart(r *model.Resource, depth int) (ok bool, why string, lasting bool) {
	if depth > len(m.res) {
		return false, "dependency loop", true
	}
	for _, d := range m.idx.deps[r.Name] {
		dep := m.cfg.Resources[d.On]
		ds := m.res[d.On]
		if dep == nil || ds == nil {
			return false, fmt.Sprintf("depends on %s, which does not exist", d.On), true
		}
		switch d.Kind {
		case model.DepWeak:
			// Wait only for a start attempt that will happen.
			if m.wantUp(dep) && (ds.State == Starting || (ds.State == Offline && ds.Running == 0)) {
				if dok, _, dlast := m.canStart(dep, depth+1); dok || !dlast {
					return false, fmt.Sprintf("waits for the start of %s (weak dependency)", d.On), false
				}
			}
		default:
			if up(ds.State) && ds.Going == "" {
				continue
			}
			switch {
			case ds.State == StartFailed || ds.State == StopFailed:
				return false, fmt.Sprintf("depends on %s, which is %s", d.On, ds.State), true
			case !dep.Enabled:
				return false, fmt.Sprintf("depends on %s, which is disabled", d.On), true
			case dep.Group != r.Group && !m.wantUp(dep):
				return false, fmt.Sprintf("depends on %s of group %s, which is not online here", d.On, dep.Group), false
			}
			return false, fmt.Sprintf("waits for %s to be online (%s dependency)", d.On, d.Kind), false
		}
	}
	for _, h := range m.idx.rgDeps[r.Group] {
		if m.clusterDeps {
			break
		}
		hs := m.groups[h]
		if hs == nil || (hs.State != GroupOnline && hs.State != GroupOnlineFaulted) {
			return false, fmt.Sprintf("its group depends on group %s, which is not online", h), false
		}
	}
	return true, "", false
}

// canStop reports whether everything that depends on r is down (and, for
// a group dependency, the dependent groups going offline here are).
func (m *Machine) canStop(r *model.Resource) bool {
	for _, other := range m.idx.dependents[r.Name] {
		os := m.res[other.Name]
		if os == nil {
			continue
		}
		for _, d := range m.idx.deps[other.Name] {
			if d.On != r.Name {
				continue
			}
			// A dependent still changing, still up, or that failed to stop
			// (it may still run on top of r) holds r up.
			if os.State == Starting || os.State == Stopping || os.Running != 0 || os.State == StopFailed || up(os.State) && !m.wantUp(other) {
				return false
			}
			if up(os.State) && d.Kind != model.DepWeak {
				// A dependent that should stay up must not lose its dependee
				// under it: it goes down first, and comes back when it can.
				os.Restart = true
				return false
			}
		}
	}
	for _, gname := range m.idx.rgDependents[r.Group] {
		for _, other := range m.idx.members[gname] {
			if os := m.res[other.Name]; os != nil && !m.wantUp(other) && (up(os.State) || os.Going != "") {
				return false
			}
		}
	}
	return true
}

// monitorsByRGM reports whether the RGM runs the resource's monitor
// itself (OCF monitor action, built-in probe and process monitor).
func (m *Machine) monitorsByRGM(t *model.ResourceType) bool {
	return t.Source == model.SourceOCF || t.Source == model.SourceBuiltin
}

// begin starts the transition of r up or down.
func (m *Machine) begin(r *model.Resource, rs *resState, dir string) {
	t := m.cfg.TypeOf(r)
	rs.Going = dir
	rs.Plan = nil
	if dir == "up" {
		for _, meth := range []string{model.MethodPrenetStart, model.MethodStart} {
			if t.HasMethod(meth) {
				rs.Plan = append(rs.Plan, meth)
			}
		}
		if !m.monitorsByRGM(t) && r.Monitored && t.HasMethod(model.MethodMonitorStart) {
			rs.Plan = append(rs.Plan, model.MethodMonitorStart)
		}
		rs.GiveoverAsked = false
		m.setState(r, rs, Starting)
	} else {
		if rs.Monitoring {
			if m.monitorsByRGM(t) {
				m.emit(StopMonitor{Resource: r.Name})
				rs.Monitoring = false
			} else if t.HasMethod(model.MethodMonitorStop) {
				rs.Plan = append(rs.Plan, model.MethodMonitorStop)
			}
		}
		for _, meth := range []string{model.MethodStop, model.MethodPostnetStop} {
			if t.HasMethod(meth) {
				rs.Plan = append(rs.Plan, meth)
			}
		}
		m.setState(r, rs, Stopping)
	}
	m.runNext(r, rs)
}

// runNext runs the next method of the plan, or finishes the transition.
func (m *Machine) runNext(r *model.Resource, rs *resState) {
	if len(rs.Plan) == 0 {
		m.finish(r, rs)
		return
	}
	meth := rs.Plan[0]
	m.nextID++
	id := m.nextID
	rs.Running = id
	m.methods[id] = r.Name
	m.emit(Run{ID: id, Resource: r.Name, Group: r.Group, Type: r.Type, Method: meth, Timeout: m.timeout(r, meth)})
}

// timeout is a method's <Method>_timeout (3600 s when unset).
func (m *Machine) timeout(r *model.Resource, meth string) time.Duration {
	return time.Duration(m.cfg.Effective(r).Int(model.TimeoutProp(meth), 3600)) * time.Second
}

// finish ends a transition whose plan ran through.
func (m *Machine) finish(r *model.Resource, rs *resState) {
	t := m.cfg.TypeOf(r)
	dir := rs.Going
	rs.Going = ""
	rs.Running = 0
	if dir == "down" {
		rs.Monitoring = false
		rs.IgnoreFailedStart = false
		rs.Status, rs.StatusMsg = StatusOffline, ""
		m.setState(r, rs, Offline)
		return
	}
	state := Online
	switch {
	case m.monitorsByRGM(t) && r.Monitored:
		v := m.cfg.Effective(r)
		m.emit(StartMonitor{Resource: r.Name,
			Interval: time.Duration(v.Int("Thorough_probe_interval", 60)) * time.Second,
			Timeout:  time.Duration(v.Int("Probe_timeout", 30)) * time.Second})
		rs.Monitoring = true
	case m.monitorsByRGM(t), !r.Monitored && t.HasMethod(model.MethodMonitorStart):
		state = OnlineNotMonitored
	}
	rs.Status, rs.StatusMsg = StatusOK, ""
	m.setState(r, rs, state)
	m.answer(&rs.Waiters, 0, "")
}

// syncMonitor follows the Monitored switch of an online resource.
func (m *Machine) syncMonitor(r *model.Resource, rs *resState) bool {
	t := m.cfg.TypeOf(r)
	switch {
	case r.Monitored && !rs.Monitoring && m.monitorsByRGM(t):
		v := m.cfg.Effective(r)
		m.emit(StartMonitor{Resource: r.Name,
			Interval: time.Duration(v.Int("Thorough_probe_interval", 60)) * time.Second,
			Timeout:  time.Duration(v.Int("Probe_timeout", 30)) * time.Second})
		rs.Monitoring = true
		m.setState(r, rs, Online)
		return true
	case r.Monitored && !rs.Monitoring && t.HasMethod(model.MethodMonitorStart):
		rs.Going, rs.Plan = "up", []string{model.MethodMonitorStart}
		m.runNext(r, rs)
		return true
	case !r.Monitored && rs.Monitoring && m.monitorsByRGM(t):
		m.emit(StopMonitor{Resource: r.Name})
		rs.Monitoring = false
		m.setState(r, rs, OnlineNotMonitored)
		return true
	case !r.Monitored && rs.Monitoring && t.HasMethod(model.MethodMonitorStop):
		rs.Going, rs.Plan = "monitor-stop", []string{model.MethodMonitorStop}
		m.runNext(r, rs)
		return true
	}
	return false
}

// methodFinished applies the result of a method of r.
func (m *Machine) methodFinished(name string, rs *resState, res Result) {
	r := m.cfg.Resources[name]
	meth := ""
	if len(rs.Plan) > 0 {
		meth = rs.Plan[0]
	}
	rs.Running = 0
	what := fmt.Sprintf("%s %s", meth, res.Describe())
	rs.Last = &record{Time: m.now, What: what, Output: res.Output}
	attrs := api.Attrs{"resource": api.String(name), "method": api.String(meth), "result": api.String(res.Describe()),
		"exit_code": api.Int(int64(res.Code)), "timed_out": api.Bool(res.TimedOut)}
	if r != nil {
		attrs["group"] = api.String(r.Group)
	}
	if res.Output != "" {
		attrs["output"] = api.String(res.Output)
	}
	m.publish(SubMethod, attrs)
	if r == nil {
		return
	}
	if res.Succeeded() {
		rs.Plan = rs.Plan[1:]
		switch meth {
		case model.MethodMonitorStart:
			rs.Monitoring = true
		case model.MethodMonitorStop:
			rs.Monitoring = false
		}
		switch rs.Going {
		case "up", "down":
			if len(rs.Plan) == 0 && rs.State != Starting && rs.State != Stopping {
				// A lone MONITOR_START on an online resource.
				rs.Going = ""
				m.setState(r, rs, Online)
				return
			}
			m.runNext(r, rs)
		case "monitor-stop":
			rs.Going = ""
			m.setState(r, rs, OnlineNotMonitored)
		}
		return
	}
	rs.Plan, rs.Going = nil, ""
	switch meth {
	case model.MethodStart, model.MethodPrenetStart:
		m.setState(r, rs, StartFailed)
		m.startFailed(r, rs, what)
	case model.MethodMonitorStart:
		rs.Monitoring = false
		m.setState(r, rs, MonitorFailed)
		m.decide(r, rs, fmt.Sprintf("%s: the resource runs without its monitor", what))
		m.answer(&rs.Waiters, 0, "")
	default:
		m.setState(r, rs, StopFailed)
		m.stopFailed(r, rs, what)
	}
}

// setState changes a resource's state and publishes the change.
func (m *Machine) setState(r *model.Resource, rs *resState, state string) {
	if rs.State == state {
		return
	}
	prev := rs.State
	rs.State = state
	m.publish(SubResourceState, api.Attrs{"resource": api.String(r.Name), "group": api.String(r.Group),
		"state": api.String(state), "previous": api.String(prev)})
}

// updateGroups recomputes the state of the groups, publishes changes and
// answers waiting requests; it returns the groups whose state changed
// (or whose restart moved on), which may let other resources move.
func (m *Machine) updateGroups(names []string) []string {
	var changed []string
	for _, name := range names {
		gs := m.groups[name]
		if gs == nil {
			continue
		}
		state := m.groupStateOf(name)
		if gs.Cycling && (state == GroupOffline || state == GroupErrorStopFailed) {
			gs.Cycling = false
			changed = append(changed, name)
			continue
		}
		if state != gs.State {
			prev := gs.State
			gs.State = state
			changed = append(changed, name)
			m.publish(SubGroupState, api.Attrs{"group": api.String(name), "state": api.String(state), "previous": api.String(prev)})
		}
		if !gs.Cycling && state != GroupPendingOnline && state != GroupPendingOffline && state != GroupPendingBlocked {
			code, msg := 0, ""
			if state == GroupErrorStopFailed || (gs.Assigned && state != GroupOnline) {
				code, msg = errRG, "group "+name+" is "+state
			}
			m.answer(&gs.Waiters, code, msg)
		}
	}
	return changed
}

// groupStateOf derives a group's state from its resources.
func (m *Machine) groupStateOf(name string) string {
	g := m.cfg.Groups[name]
	gs := m.groups[name]
	if g == nil || !g.Managed {
		return GroupUnmanaged
	}
	res := m.idx.members[name]
	for _, r := range res {
		if m.res[r.Name].State == StopFailed {
			return GroupErrorStopFailed
		}
	}
	if gs.Assigned && !gs.Cycling {
		pending, blocked, faulted := false, false, false
		for _, r := range res {
			rs := m.res[r.Name]
			switch {
			case rs.Going != "" || rs.Running != 0:
				pending = true
			case rs.State == StartFailed || rs.State == MonitorFailed:
				faulted = true
			case rs.State == Offline && m.wantUp(r):
				if _, _, lasting := m.canStart(r, 0); lasting {
					faulted = true
				} else {
					blocked = true
				}
			}
		}
		switch {
		case pending:
			return GroupPendingOnline
		case blocked:
			return GroupPendingBlocked
		case faulted:
			return GroupOnlineFaulted
		}
		return GroupOnline
	}
	for _, r := range res {
		if rs := m.res[r.Name]; rs.State != Offline && rs.State != Detached {
			return GroupPendingOffline
		}
	}
	return GroupOffline
}

// decide records a policy decision about r and publishes it.
func (m *Machine) decide(r *model.Resource, rs *resState, text string) {
	rs.Decision = &record{Time: m.now, What: text}
	m.publish(SubDecision, api.Attrs{"resource": api.String(r.Name), "group": api.String(r.Group), "decision": api.String(text)})
}

func failoverMode(v model.Values) string {
	return strings.ToUpper(v.String("Failover_mode", model.FailoverNone))
}
