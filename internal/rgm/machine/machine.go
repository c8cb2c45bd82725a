// Package machine is the resource group manager's state machine for one
// node: a deterministic core that takes inputs (the configuration, which
// groups are assigned to this node, method results, probe results,
// scha_control requests, the time) and returns actions (run this method,
// start that monitor, publish this event). It does no I/O; the manager in
// package rgm carries out its actions and feeds the results back.
//
// The machine is not safe for concurrent use: one goroutine owns it.
//
//	m := machine.New("n1", now)
//	acts := m.SetConfig(cfg, now)
//	acts = append(acts, m.Assign("web", true, now)...)
//	// run the actions; for each finished method:
//	acts = m.MethodDone(id, machine.Result{Code: 0}, now)
//
// Which groups a node should run is an input (Assign): on one node the
// manager derives it from the configuration; in a cluster the controller
// decides, and the machine stays the same.
package machine

import (
	"fmt"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/rgm/model"
)

// Resource states (per node), as Sun Cluster names them.
const (
	Online             = "ONLINE"
	Offline            = "OFFLINE"
	Starting           = "STARTING"
	Stopping           = "STOPPING"
	StartFailed        = "START_FAILED"
	StopFailed         = "STOP_FAILED"
	MonitorFailed      = "MONITOR_FAILED"
	OnlineNotMonitored = "ONLINE_NOT_MONITORED"
	Detached           = "DETACHED"
)

// Group states (per node).
const (
	GroupUnmanaged       = "UNMANAGED"
	GroupOnline          = "ONLINE"
	GroupOffline         = "OFFLINE"
	GroupPendingOnline   = "PENDING_ONLINE"
	GroupPendingOffline  = "PENDING_OFFLINE"
	GroupErrorStopFailed = "ERROR_STOP_FAILED"
	GroupOnlineFaulted   = "ONLINE_FAULTED"
	GroupPendingBlocked  = "PENDING_ONLINE_BLOCKED"
)

// Statuses a resource reports.
const (
	StatusOK       = "OK"
	StatusDegraded = "DEGRADED"
	StatusFaulted  = "FAULTED"
	StatusUnknown  = "UNKNOWN"
	StatusOffline  = "OFFLINE"
)

// Event class and subclasses the machine publishes.
const (
	ClassRGM          = "EC_rgm"
	SubResourceState  = "ESC_rgm_resource_state"
	SubGroupState     = "ESC_rgm_group_state"
	SubMethod         = "ESC_rgm_method"
	SubDecision       = "ESC_rgm_decision"
	SubGiveover       = "ESC_rgm_giveover_requested"
	SubRestart        = "ESC_rgm_resource_restart"
	SubStatus         = "ESC_rgm_resource_status"
	SubFence          = "ESC_rgm_fence"
	SubGroupRestart   = "ESC_rgm_group_restart"
	SubControlRefused = "ESC_rgm_control_refused"
)

// Action is what the machine asks the manager to do.
type Action interface{ isAction() }

// Run asks for a method of a resource to be run. MethodDone must follow
// with the same ID.
type Run struct {
	ID       uint64
	Resource string
	Group    string
	Type     string
	Method   string // model.MethodStart, ...
	Timeout  time.Duration
}

// StartMonitor asks for the RGM's own monitor of a resource (OCF monitor
// action, built-in probe) to run; ProbeResult reports its findings.
type StartMonitor struct {
	Resource string
	Interval time.Duration
	Timeout  time.Duration
}

// StopMonitor stops the RGM's monitor of a resource.
type StopMonitor struct{ Resource string }

// Publish asks for an event.
type Publish struct {
	Subclass string
	Attrs    api.Attrs
}

// Fence asks the node to fence itself (a HARD stop failure): stop its
// failover groups and leave the cluster.
type Fence struct {
	Resource, Group, Reason string
}

// Reply answers a control request that was accepted and has now finished
// (scha_control blocks until the group or resource is back).
type Reply struct {
	Token uint64
	Code  int // a scha_err value
	Msg   string
}

func (Run) isAction()          {}
func (StartMonitor) isAction() {}
func (StopMonitor) isAction()  {}
func (Publish) isAction()      {}
func (Fence) isAction()        {}
func (Reply) isAction()        {}

// Result is the outcome of a method.
type Result struct {
	Code     int  // exit code (OCF code for OCF actions)
	TimedOut bool // killed at its timeout
	// Err is set when the method could not be run at all.
	Err string
	// Output is the last lines of what the method printed.
	Output string
	// OK overrides Code: the runner decided (OCF classification).
	OK       bool
	Severity string // soft, hard, fatal (OCF), for decisions
}

// Succeeded reports whether the method did what was asked.
func (r Result) Succeeded() bool { return r.OK && !r.TimedOut && r.Err == "" }

// Describe says how a method ended, in words for logs, events and
// decisions.
func (r Result) Describe() string {
	switch {
	case r.Err != "":
		return "could not run: " + r.Err
	case r.TimedOut:
		return "timed out"
	case r.Succeeded():
		return "succeeded"
	}
	// OCF agents classify their failures; say what the class means.
	switch r.Severity {
	case "soft":
		return fmt.Sprintf("failed with exit code %d (a soft error: a restart may cure it)", r.Code)
	case "hard":
		return fmt.Sprintf("failed with exit code %d (a hard error: it will not work on this node)", r.Code)
	case "fatal":
		return fmt.Sprintf("failed with exit code %d (a fatal error: the configuration is wrong and it will not work on any node)", r.Code)
	}
	return fmt.Sprintf("failed with exit code %d", r.Code)
}

// record is what the machine remembers about something that happened, for
// "steady rg why".
type record struct {
	Time   time.Time `json:"time"`
	What   string    `json:"what"`
	Output string    `json:"output,omitempty"`
}

// resState is the runtime state of one resource on this node.
type resState struct {
	State     string `json:"state"`
	Status    string `json:"status"`
	StatusMsg string `json:"status_msg,omitempty"`
	// plan is the methods still to run for the current transition; the
	// first may be running (running != 0).
	Plan    []string `json:"plan,omitempty"`
	Running uint64   `json:"running,omitempty"`
	Going   string   `json:"going,omitempty"` // "up" or "down" while a plan runs
	// Monitoring is true while the RGM's own monitor runs (OCF, built-in),
	// or the MONITOR_START method succeeded (RTR).
	Monitoring bool `json:"monitoring,omitempty"`
	// Restart makes the resource go down and come back up.
	Restart bool `json:"restart,omitempty"`
	// Restarts are the resource restarts within Retry_interval.
	Restarts          []time.Time `json:"restarts,omitempty"`
	IgnoreFailedStart bool        `json:"ignore_failed_start,omitempty"`
	GiveoverAsked     bool        `json:"giveover_asked,omitempty"`
	Last              *record     `json:"last,omitempty"`     // the last method
	Decision          *record     `json:"decision,omitempty"` // the last policy decision
	// Waiters are control requests answered when the resource is up.
	Waiters []uint64 `json:"-"`
}

// groupState is the runtime state of one group on this node.
type groupState struct {
	State    string      `json:"state"`
	Assigned bool        `json:"assigned"` // should be online here
	Restarts []time.Time `json:"restarts,omitempty"`
	// Cycling takes the group offline, then back online (a group restart).
	Cycling  bool    `json:"cycling,omitempty"`
	Decision *record `json:"decision,omitempty"`
	Waiters  []uint64
}

// Machine is the state machine of one node.
type Machine struct {
	node   string
	cfg    *model.Config
	idx    *index
	res    map[string]*resState
	groups map[string]*groupState
	nextID uint64
	// methods maps a running method's ID to its resource.
	methods map[uint64]string
	// peers is how many other nodes could take a group over.
	peers int
	// dirty are the groups the next reconcile looks at (all when empty);
	// spill collects, during one, the groups its changes touched.
	dirty map[string]bool
	spill map[string]bool
	// saveGroups are the groups whose state, or their resources', a step
	// may have changed since the last Changed; saveAll, all of them.
	saveGroups map[string]bool
	saveAll    bool
	// clusterDeps: RG_dependencies are kept by the cluster's controller
	// (a group's dependee may be online on another node).
	clusterDeps bool
	now         time.Time
	out         []Action
}

// New creates the machine of node with an empty configuration.
func New(node string, now time.Time) *Machine {
	cfg := model.NewConfig()
	return &Machine{node: node, cfg: cfg, idx: newIndex(cfg), res: map[string]*resState{},
		groups: map[string]*groupState{}, methods: map[uint64]string{}, now: now}
}

// Node is the machine's node.
func (m *Machine) Node() string { return m.node }

// Config is the configuration the machine works with.
func (m *Machine) Config() *model.Config { return m.cfg }

func (m *Machine) emit(a Action) { m.out = append(m.out, a) }

// flush returns the actions of one step.
func (m *Machine) flush() []Action {
	out := m.out
	m.out = nil
	return out
}

func (m *Machine) publish(subclass string, attrs api.Attrs) {
	m.emit(Publish{Subclass: subclass, Attrs: attrs})
}

// SetConfig replaces the configuration (the manager validated it) and
// acts on what changed.
func (m *Machine) SetConfig(cfg *model.Config, now time.Time) []Action {
	m.now = now
	m.cfg, m.idx = cfg, newIndex(cfg)
	m.saveAll = true
	for name := range cfg.Resources {
		if _, ok := m.res[name]; !ok {
			m.res[name] = &resState{State: Offline, Status: StatusOffline}
		}
	}
	for name, rs := range m.res {
		if _, ok := cfg.Resources[name]; !ok && rs.Running == 0 {
			// Deleted (the manager refuses to delete a resource that is not
			// offline); forget it.
			delete(m.res, name)
		}
	}
	for name := range cfg.Groups {
		if _, ok := m.groups[name]; !ok {
			m.groups[name] = &groupState{State: GroupUnmanaged}
		}
	}
	for name := range m.groups {
		if _, ok := cfg.Groups[name]; !ok {
			delete(m.groups, name)
		}
	}
	m.reconcile()
	return m.flush()
}

// Assign says whether group rg should be online on this node.
func (m *Machine) Assign(rg string, online bool, now time.Time) []Action {
	m.now = now
	if g, ok := m.groups[rg]; ok {
		g.Assigned = online
		m.touch(rg)
		m.reconcile()
	}
	return m.flush()
}

// AssignMany says for several groups whether each should be online on
// this node, in one step.
func (m *Machine) AssignMany(want map[string]bool, now time.Time) []Action {
	m.now = now
	changed := false
	for rg, online := range want {
		if g, ok := m.groups[rg]; ok && g.Assigned != online {
			g.Assigned = online
			changed = true
			m.touch(rg)
		}
	}
	if changed {
		m.reconcile()
	}
	return m.flush()
}

// ClusterDeps makes RG_dependencies the controller's business: in a
// cluster a group's dependee may be online on another node, and the
// controller places a group only once what it depends on is online.
func (m *Machine) ClusterDeps(on bool) { m.clusterDeps = on }

// Killed tells the machine that every process of its groups was killed
// (the node was declared down while fenced): every resource is offline,
// no method runs, and no group is assigned here any more.
func (m *Machine) Killed(now time.Time) []Action {
	m.now = now
	for name, rs := range m.res {
		if rs.Monitoring {
			m.emit(StopMonitor{Resource: name})
		}
		r := m.cfg.Resources[name]
		rs.Plan, rs.Running, rs.Going, rs.Monitoring, rs.Restart = nil, 0, "", false, false
		rs.IgnoreFailedStart, rs.GiveoverAsked = false, false
		m.answer(&rs.Waiters, int(api.SchaReconf), "the node was fenced")
		if r != nil {
			rs.Status, rs.StatusMsg = StatusOffline, ""
			m.setState(r, rs, Offline)
			m.decide(r, rs, "killed when the node was fenced and declared down")
		}
	}
	m.methods = map[uint64]string{}
	for _, gs := range m.groups {
		gs.Assigned, gs.Cycling = false, false
		m.answer(&gs.Waiters, int(api.SchaReconf), "the node was fenced")
	}
	m.reconcile()
	return m.flush()
}

// MethodDone reports the result of a Run.
func (m *Machine) MethodDone(id uint64, r Result, now time.Time) []Action {
	m.now = now
	name, ok := m.methods[id]
	if !ok {
		return nil
	}
	delete(m.methods, id)
	rs := m.res[name]
	if rs == nil || rs.Running != id {
		return nil
	}
	m.methodFinished(name, rs, r)
	if res := m.cfg.Resources[name]; res != nil {
		m.touch(res.Group)
	}
	m.reconcile()
	return m.flush()
}

// Tick lets time-based decisions happen (restart windows).
func (m *Machine) Tick(now time.Time) []Action {
	m.now = now
	m.reconcile()
	return m.flush()
}
