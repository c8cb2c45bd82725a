package machine

import (
	"fmt"
	"strings"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/rgm/model"
)

const errRG = int(api.SchaRG)

// SetPeers tells the machine how many other nodes could take a group over
// (0 on a single node: relocations and giveovers have nowhere to go).
func (m *Machine) SetPeers(n int) { m.peers = n }

// answer replies to the waiting control requests.
func (m *Machine) answer(waiters *[]uint64, code int, msg string) {
	for _, t := range *waiters {
		m.emit(Reply{Token: t, Code: code, Msg: msg})
	}
	*waiters = nil
}

func (m *Machine) groupDecision(r *model.Resource, text string) {
	if gs := m.groups[r.Group]; gs != nil {
		gs.Decision = &record{Time: m.now, What: "resource " + r.Name + ": " + text}
	}
}

// startFailed applies Failover_mode to a failed START.
func (m *Machine) startFailed(r *model.Resource, rs *resState, what string) {
	m.answer(&rs.Waiters, int(api.SchaMethod), what)
	m.setStatus(r, rs, StatusFaulted, what)
	mode := failoverMode(m.cfg.Effective(r))
	var text string
	switch {
	case rs.IgnoreFailedStart:
		text = what + "; the Start method asked to ignore a failed start (IGNORE_FAILED_START): no failover"
	case mode == model.FailoverSoft || mode == model.FailoverHard:
		if m.peers == 0 {
			text = what + "; Failover_mode " + mode + " would move the group to another node, but there is no other node: the group stays ONLINE_FAULTED"
		} else {
			text = what + "; Failover_mode " + mode + ": moving the group to another node"
			m.emit(Relocate{Group: r.Group, Resource: r.Name, Reason: what})
		}
	default:
		text = what + "; Failover_mode " + mode + ": the resource stays START_FAILED and the group ONLINE_FAULTED until it is restarted"
	}
	m.decide(r, rs, text)
	m.groupDecision(r, text)
}

// stopFailed applies Failover_mode to a failed STOP.
func (m *Machine) stopFailed(r *model.Resource, rs *resState, what string) {
	m.answer(&rs.Waiters, int(api.SchaMethod), what)
	m.setStatus(r, rs, StatusFaulted, what)
	mode := failoverMode(m.cfg.Effective(r))
	var text string
	if mode == model.FailoverHard {
		text = what + "; Failover_mode HARD: the node fences itself so that the group can move"
		m.emit(Fence{Resource: r.Name, Group: r.Group, Reason: what})
	} else {
		text = what + "; Failover_mode " + mode + ": STOP_FAILED stays until cleared (steady resource clear " + r.Name + " --flag STOP_FAILED); the group is ERROR_STOP_FAILED"
	}
	m.decide(r, rs, text)
	m.groupDecision(r, text)
}

// ProbeResult reports what the RGM's monitor of a resource found.
func (m *Machine) ProbeResult(name string, ok, degraded bool, msg string, now time.Time) []Action {
	m.now = now
	r, rs := m.cfg.Resources[name], m.res[name]
	if r == nil || rs == nil || !up(rs.State) || rs.Going != "" || !rs.Monitoring {
		return nil
	}
	switch {
	case ok:
		status := StatusOK
		if degraded {
			status = StatusDegraded
		}
		if rs.Status == status && rs.StatusMsg == msg && !rs.GiveoverAsked {
			return nil // the usual probe: nothing changes
		}
		rs.GiveoverAsked = false
		m.setStatus(r, rs, status, msg)
	default:
		m.setStatus(r, rs, StatusFaulted, msg)
		m.monitorFailure(r, rs, "the monitor failed: "+msg)
	}
	m.reconcile()
	return m.flush()
}

func (m *Machine) setStatus(r *model.Resource, rs *resState, status, msg string) {
	if rs.Status == status && rs.StatusMsg == msg {
		return
	}
	rs.Status, rs.StatusMsg = status, msg
	m.publish(SubStatus, api.Attrs{"resource": api.String(r.Name), "group": api.String(r.Group),
		"status": api.String(status), "message": api.String(msg)})
}

// SetStatus sets a resource's status (scha_resource_setstatus).
func (m *Machine) SetStatus(name, status, msg string, now time.Time) []Action {
	m.now = now
	if r, rs := m.cfg.Resources[name], m.res[name]; r != nil && rs != nil {
		m.setStatus(r, rs, status, msg)
		m.markSave(r.Group)
	}
	return m.flush()
}

// windowRestarts prunes and counts the restarts within Retry_interval.
func (m *Machine) windowRestarts(v model.Values, times []time.Time) []time.Time {
	interval := time.Duration(v.Int("Retry_interval", 300)) * time.Second
	var kept []time.Time
	for _, t := range times {
		if m.now.Sub(t) < interval {
			kept = append(kept, t)
		}
	}
	return kept
}

// monitorFailure restarts the resource in place while Retry_count per
// Retry_interval allows, then asks for a giveover.
func (m *Machine) monitorFailure(r *model.Resource, rs *resState, why string) {
	if g := m.cfg.Groups[r.Group]; g != nil && g.Suspended {
		m.decide(r, rs, why+"; automatic recovery of group "+r.Group+" is suspended")
		return
	}
	v := m.cfg.Effective(r)
	mode := failoverMode(v)
	if mode == model.FailoverLogOnly {
		m.decide(r, rs, why+"; Failover_mode LOG_ONLY: only recorded")
		return
	}
	rs.Restarts = m.windowRestarts(v, rs.Restarts)
	retries := v.Int("Retry_count", 2)
	if retries < 0 || len(rs.Restarts) < retries {
		rs.Restarts = append(rs.Restarts, m.now)
		rs.Restart = true
		m.publish(SubRestart, api.Attrs{"resource": api.String(r.Name), "group": api.String(r.Group),
			"restarts": api.Int(int64(len(rs.Restarts))), "retry_count": api.Int(int64(retries)), "reason": api.String(why)})
		m.decide(r, rs, fmt.Sprintf("%s; restarting in place (%d of %d within Retry_interval %ds)",
			why, len(rs.Restarts), retries, v.Int("Retry_interval", 300)))
		return
	}
	if mode == model.FailoverRestartOnly {
		m.decide(r, rs, fmt.Sprintf("%s; %d restarts within Retry_interval are used up and Failover_mode RESTART_ONLY forbids a giveover", why, retries))
		return
	}
	m.giveover(r, rs, fmt.Sprintf("%s; %d restarts within Retry_interval are used up", why, retries))
}

// GaveUp reports that the process monitor gave up on a resource's
// process: it already restarted it Retry_count times within
// Retry_interval, so what remains is a giveover (or, under RESTART_ONLY
// and LOG_ONLY, only the record).
func (m *Machine) GaveUp(name, msg string, now time.Time) []Action {
	m.now = now
	r, rs := m.cfg.Resources[name], m.res[name]
	if r == nil || rs == nil || !up(rs.State) || rs.Going != "" {
		return nil
	}
	m.setStatus(r, rs, StatusFaulted, msg)
	why := "the process monitor gave up: " + msg
	switch mode := failoverMode(m.cfg.Effective(r)); {
	case m.cfg.Groups[r.Group] != nil && m.cfg.Groups[r.Group].Suspended:
		m.decide(r, rs, why+"; automatic recovery of group "+r.Group+" is suspended")
	case mode == model.FailoverLogOnly || mode == model.FailoverRestartOnly:
		m.decide(r, rs, why+"; Failover_mode "+mode+": no giveover")
	default:
		m.giveover(r, rs, why)
	}
	m.reconcile()
	return m.flush()
}

// giveover asks for the group of r to move to another node.
func (m *Machine) giveover(r *model.Resource, rs *resState, why string) (api.SchaErr, string) {
	if rs.GiveoverAsked {
		return api.SchaNoErr, ""
	}
	rs.GiveoverAsked = true
	m.publish(SubGiveover, api.Attrs{"resource": api.String(r.Name), "group": api.String(r.Group), "reason": api.String(why)})
	if m.peers == 0 {
		text := why + "; a giveover was requested, but there is no other node: the group stays here"
		m.decide(r, rs, text)
		m.groupDecision(r, text)
		return api.SchaChecks, "no other node can host group " + r.Group
	}
	m.emit(Relocate{Group: r.Group, Resource: r.Name, Reason: why, Giveover: true})
	m.decide(r, rs, why+"; a giveover was requested")
	return api.SchaNoErr, ""
}

// Control operations of scha_control.
const (
	OpGiveover            = "GIVEOVER"
	OpRestart             = "RESTART"
	OpResourceRestart     = "RESOURCE_RESTART"
	OpResourceIsRestarted = "RESOURCE_IS_RESTARTED"
	OpCheckGiveover       = "CHECK_GIVEOVER"
	OpCheckRestart        = "CHECK_RESTART"
	OpIgnoreFailedStart   = "IGNORE_FAILED_START"
)

// Control carries out a scha_control request. done is false when the
// request was accepted and will be answered by a Reply with token (it
// blocks until the resource or group is back, as scha_control does).
func (m *Machine) Control(op, group, resource string, token uint64, now time.Time) (done bool, code api.SchaErr, msg string, acts []Action) {
	m.now = now
	done, code, msg = m.control(strings.ToUpper(op), group, resource, token)
	if r := m.cfg.Resources[resource]; r != nil && group == "" {
		group = r.Group
	}
	if code != api.SchaNoErr && msg != "" {
		m.publish(SubControlRefused, api.Attrs{"op": api.String(op), "resource": api.String(resource),
			"group": api.String(group), "code": api.Int(int64(code)), "message": api.String(msg)})
	}
	m.reconcile()
	return done, code, msg, m.flush()
}

func (m *Machine) control(op, group, resource string, token uint64) (bool, api.SchaErr, string) {
	r, rs := m.cfg.Resources[resource], m.res[resource]
	if r == nil || rs == nil {
		return true, api.SchaRsrc, "no such resource: " + resource
	}
	if group != "" && r.Group != group {
		return true, api.SchaRG, fmt.Sprintf("resource %s is not in group %s", resource, group)
	}
	g, gs := m.cfg.Groups[r.Group], m.groups[r.Group]
	v := m.cfg.Effective(r)
	mode := failoverMode(v)
	forbid := func(modes ...string) (string, bool) {
		for _, x := range modes {
			if mode == x {
				return fmt.Sprintf("Failover_mode %s of %s forbids %s", mode, resource, op), true
			}
		}
		if g.Suspended && op != OpResourceIsRestarted && op != OpIgnoreFailedStart {
			return "automatic recovery of group " + g.Name + " is suspended", true
		}
		return "", false
	}
	switch op {
	case OpGiveover, OpCheckGiveover:
		if why, no := forbid(model.FailoverLogOnly, model.FailoverRestartOnly); no {
			return true, api.SchaChecks, why
		}
		if m.peers == 0 {
			return true, api.SchaChecks, "no other node can host group " + r.Group
		}
		if op == OpCheckGiveover {
			return true, api.SchaNoErr, ""
		}
		rs.GiveoverAsked = false
		code, why := m.giveover(r, rs, "scha_control GIVEOVER by the monitor of "+resource)
		return true, code, why
	case OpRestart, OpCheckRestart:
		if why, no := forbid(model.FailoverLogOnly, model.FailoverRestartOnly); no {
			return true, api.SchaChecks, why
		}
		if !gs.Assigned {
			return true, api.SchaState, "group " + r.Group + " is not online here"
		}
		if op == OpCheckRestart {
			return true, api.SchaNoErr, ""
		}
		m.restartGroup(r.Group, "scha_control RESTART by the monitor of "+resource)
		gs.Waiters = append(gs.Waiters, token)
		return false, api.SchaNoErr, ""
	case OpResourceRestart:
		if why, no := forbid(model.FailoverLogOnly); no {
			return true, api.SchaChecks, why
		}
		if !up(rs.State) || rs.Going != "" {
			return true, api.SchaState, fmt.Sprintf("resource %s is %s, not online", resource, rs.State)
		}
		rs.Restarts = m.windowRestarts(v, rs.Restarts)
		if retries := v.Int("Retry_count", 2); mode == model.FailoverRestartOnly && retries >= 0 && len(rs.Restarts) >= retries {
			return true, api.SchaChecks, fmt.Sprintf("%d restarts within Retry_interval are used up (Failover_mode RESTART_ONLY)", retries)
		}
		rs.Restarts = append(rs.Restarts, m.now)
		rs.Restart = true
		rs.Waiters = append(rs.Waiters, token)
		m.publish(SubRestart, api.Attrs{"resource": api.String(resource), "group": api.String(r.Group),
			"restarts": api.Int(int64(len(rs.Restarts))), "reason": api.String("scha_control RESOURCE_RESTART")})
		m.decide(r, rs, "scha_control RESOURCE_RESTART: restarting in place")
		return false, api.SchaNoErr, ""
	case OpResourceIsRestarted:
		if why, no := forbid(model.FailoverLogOnly); no {
			return true, api.SchaChecks, why
		}
		rs.Restarts = append(m.windowRestarts(v, rs.Restarts), m.now)
		return true, api.SchaNoErr, ""
	case OpIgnoreFailedStart:
		if rs.State != Starting {
			return true, api.SchaState, "IGNORE_FAILED_START is for a Start method; " + resource + " is " + rs.State
		}
		rs.IgnoreFailedStart = true
		return true, api.SchaNoErr, ""
	}
	return true, api.SchaInval, fmt.Sprintf("unknown scha_control operation %q", op)
}

// restartGroup takes a group offline on this node and back online.
func (m *Machine) restartGroup(name, why string) {
	gs := m.groups[name]
	gs.Cycling = true
	gs.Restarts = append(gs.Restarts, m.now)
	gs.Decision = &record{Time: m.now, What: why}
	m.publish(SubGroupRestart, api.Attrs{"group": api.String(name), "reason": api.String(why)})
}

// RestartGroup restarts a group here (steady rg restart).
func (m *Machine) RestartGroup(name string, now time.Time) []Action {
	m.now = now
	if gs := m.groups[name]; gs != nil && gs.Assigned {
		m.restartGroup(name, "restarted by an administrator")
		m.reconcile()
	}
	return m.flush()
}

// Retry starts again the resources of a group that failed to start or
// whose monitor failed (steady rg online on a faulted group): each is
// stopped (cleaning up) and started.
func (m *Machine) Retry(name string, now time.Time) []Action {
	m.now = now
	for _, r := range m.idx.members[name] {
		if rs := m.res[r.Name]; rs.State == StartFailed || rs.State == MonitorFailed {
			rs.Restart = true
		}
	}
	m.reconcile()
	return m.flush()
}

// ClearStopFailed clears the sticky STOP_FAILED of a resource: it is taken
// as offline on this node (the administrator has made sure it is).
func (m *Machine) ClearStopFailed(name string, now time.Time) ([]Action, error) {
	m.now = now
	r, rs := m.cfg.Resources[name], m.res[name]
	if r == nil || rs == nil {
		return nil, fmt.Errorf("no such resource: %s", name)
	}
	if rs.State != StopFailed {
		return nil, fmt.Errorf("resource %s is %s, not STOP_FAILED", name, rs.State)
	}
	rs.Monitoring = false
	rs.Status, rs.StatusMsg = StatusOffline, ""
	m.setState(r, rs, Offline)
	m.decide(r, rs, "STOP_FAILED cleared by an administrator: taken as offline")
	m.reconcile()
	return m.flush(), nil
}

// Snapshot is the machine's runtime state as it is persisted.
type Snapshot struct {
	Schema    int                    `json:"schema"`
	Resources map[string]*resState   `json:"resources"`
	Groups    map[string]*groupState `json:"groups"`
	NextID    uint64                 `json:"next_id"`
}

// SnapshotSchema is the version of Snapshot.
const SnapshotSchema = 1

// Snapshot returns the state to persist.
func (m *Machine) Snapshot() Snapshot {
	return Snapshot{Schema: SnapshotSchema, Resources: m.res, Groups: m.groups, NextID: m.nextID}
}

// Restore rebuilds a machine after an agent restart. Resources that were
// online stay online (their Start methods do not run again); a transition
// that was interrupted is redone from a clean state: a resource that was
// starting is stopped and started, one that was stopping is stopped.
func Restore(node string, snap Snapshot, cfg *model.Config, now time.Time) (*Machine, []Action) {
	m := New(node, now)
	m.cfg, m.idx = cfg, newIndex(cfg)
	m.saveAll = true
	m.nextID = snap.NextID
	for name, rs := range snap.Resources {
		if _, ok := cfg.Resources[name]; !ok {
			continue
		}
		switch {
		case rs.Going == "up" || rs.State == Starting:
			rs.State, rs.Restart = StartFailed, true
		case rs.Going == "down" || rs.State == Stopping:
			rs.State = Online
		case rs.Going == "monitor-stop":
			rs.State = Online
		}
		rs.Going, rs.Plan, rs.Running, rs.Waiters = "", nil, 0, nil
		m.res[name] = rs
	}
	for name, gs := range snap.Groups {
		gs.Waiters = nil
		m.groups[name] = gs
	}
	// The RGM's own monitors did not survive the agent.
	for name, rs := range m.res {
		if rs.Monitoring && up(rs.State) {
			if t := cfg.TypeOf(cfg.Resources[name]); t != nil && m.monitorsByRGM(t) {
				v := cfg.Effective(cfg.Resources[name])
				m.emit(StartMonitor{Resource: name,
					Interval: time.Duration(v.Int("Thorough_probe_interval", 60)) * time.Second,
					Timeout:  time.Duration(v.Int("Probe_timeout", 30)) * time.Second})
			}
		}
	}
	acts := m.SetConfig(cfg, now)
	return m, append(m.flush(), acts...)
}

// ResourceInfo is what the machine knows of a resource on this node.
type ResourceInfo struct {
	State, Status, StatusMsg string
	Restarts                 int // within Retry_interval
	Last, Decision           string
	LastOutput               string
	Waiting                  string // why it does not start
}

// Resource describes a resource on this node.
func (m *Machine) Resource(name string) (ResourceInfo, bool) {
	r, rs := m.cfg.Resources[name], m.res[name]
	if r == nil || rs == nil {
		return ResourceInfo{}, false
	}
	info := ResourceInfo{State: rs.State, Status: rs.Status, StatusMsg: rs.StatusMsg,
		Restarts: len(m.windowRestarts(m.cfg.Effective(r), rs.Restarts))}
	if rs.Last != nil {
		info.Last, info.LastOutput = rs.Last.What, rs.Last.Output
	}
	if rs.Decision != nil {
		info.Decision = rs.Decision.What
	}
	if rs.State == Offline && m.wantUp(r) {
		if ok, why, _ := m.canStart(r, 0); !ok {
			info.Waiting = why
		}
	}
	return info, true
}

// GroupInfo is what the machine knows of a group on this node.
type GroupInfo struct {
	State    string
	Assigned bool
	Restarts int
	Decision string
}

// Group describes a group on this node.
func (m *Machine) Group(name string) (GroupInfo, bool) {
	gs := m.groups[name]
	if gs == nil {
		return GroupInfo{}, false
	}
	info := GroupInfo{State: gs.State, Assigned: gs.Assigned, Restarts: len(gs.Restarts)}
	if gs.Decision != nil {
		info.Decision = gs.Decision.What
	}
	return info, true
}

// Busy reports whether a method of the resource is running.
func (m *Machine) Busy(name string) bool {
	rs := m.res[name]
	return rs != nil && (rs.Running != 0 || rs.Going != "")
}
