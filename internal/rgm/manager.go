// Package rgm is the resource group manager of one node: it keeps the
// configuration of resource types, resources and groups in the store,
// checks changes (including the types' VALIDATE methods), and drives the
// node's state machine (package machine), carrying out its actions with
// the method runner (package method) and the process monitor.
//
// One goroutine, the loop, owns the state machine; everything that
// touches it is a closure run on the loop. Methods and monitors run in
// their own goroutines and report back through the loop. The machine's
// runtime state is saved in the data directory before its actions are
// carried out, so an agent restart converges without repeating what was
// done (a resource that was online is not started again).
//
// The API server calls the Manager's methods from request goroutines; all
// are safe for concurrent use.
package rgm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/cgroup"
	"github.com/steady-ha/steady/internal/event"
	"github.com/steady-ha/steady/internal/pmf"
	"github.com/steady-ha/steady/internal/reaper"
	"github.com/steady-ha/steady/internal/rgm/machine"
	"github.com/steady-ha/steady/internal/rgm/method"
	"github.com/steady-ha/steady/internal/rgm/model"
	"github.com/steady-ha/steady/internal/rgm/placement"
	"github.com/steady-ha/steady/internal/store"
)

// Errors of the manager.
var (
	ErrNotFound = errors.New("rgm: not found")
	ErrExists   = errors.New("rgm: already exists")
	ErrState    = errors.New("rgm: not allowed in the current state")
	ErrRefused  = errors.New("rgm: refused by the VALIDATE method")
	ErrClosed   = errors.New("rgm: the resource group manager is stopping")
)

// Options configures New.
type Options struct {
	Node    string
	Cluster string
	Dir     string // node-local state: runtime state and method logs
	Store   *store.Store
	Bus     *event.Bus
	PMF     *pmf.Manager
	// Addresses places the addresses of logical hostnames.
	Addresses method.Addresses
	Spawner   reaper.Spawner
	// Cgroup is steady's cgroup under the cgroup v2 mount; methods run in
	// cgroups below CGROUP/rgm. Empty: process groups only.
	Cgroup    string
	BinDir    string // compatibility commands for methods (pmfadm, scha_*)
	Socket    string // the agent's socket
	OCFRoot   string
	KillGrace time.Duration // SIGABRT to SIGKILL when a method times out
	// Member, when set, is the node's membership: groups go where the
	// cluster's controller assigns them (and this node's manager is the
	// controller while the node is elected). Without it, the single-node
	// rule applies: a group that should be online is online here.
	Member Membership
	// Reset starts with every resource offline: the node was declared
	// down while its agent was away, so what ran was killed.
	Reset bool
	// FenceAction runs after the node fenced itself for a HARD stop
	// failure: "reboot", or a shell command.
	FenceAction string
	Now         func() time.Time
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// Manager is the resource group manager of one node.
type Manager struct {
	opts   Options
	log    *slog.Logger
	pub    event.Publisher
	runner *method.Runner

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	inputs chan func()

	// cfgMu serializes configuration changes (store transaction, then the
	// new configuration to the loop); current is the last committed one.
	cfgMu   sync.Mutex
	current *model.Config

	// Owned by the loop.
	mach        *machine.Machine
	monitors    map[string]context.CancelFunc
	waiters     map[uint64]chan machine.Reply
	nextToken   uint64
	savedCopy   *machine.Saved // the machine's state as last saved
	savedNextID uint64         // and the machine's next id then
	stateSeq    uint64         // the last line of the state log
	logf        *os.File       // the state log, open for appending
	logBytes    int            // the size of the state log
	snapBytes   int            // the size of the last snapshot

	// cl is the cluster-mode state (nil without a Cluster).
	cl *clusterState
	// methodCgroup is the parent cgroup of method runs ("" without).
	methodCgroup string
	// The controller's conversion of the configuration's groups (guarded
	// by cl.cfgMu).
	ctlCfg    *model.Config
	ctlGroups map[string]*placement.Group

	methodRuns *prometheus.CounterVec

	// The loop's events wait here for the publisher (publishEvents).
	pubMu    sync.Mutex
	pubQueue []event.Event
	pubKick  chan struct{}
}

// New loads the configuration from the store and the runtime state from
// the data directory, and starts converging.
func New(ctx context.Context, opts Options) (*Manager, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{"state", "logs"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("rgm: %w", err)
		}
	}
	var cg cgroup.Dir
	if opts.Cgroup != "" {
		if d, err := cgroup.Writable(filepath.Join(opts.Cgroup, "rgm")); err == nil {
			cg = d
		} else {
			opts.Logger.Info("methods run in process groups only", "reason", err)
		}
	}
	runner, err := method.New(method.Options{Spawner: opts.Spawner, Cgroup: cg, LogDir: filepath.Join(opts.Dir, "logs"),
		BinDir: opts.BinDir, Socket: opts.Socket, Node: opts.Node, OCFRoot: opts.OCFRoot, PMF: opts.PMF, Addresses: opts.Addresses, Logger: opts.Logger, Grace: opts.KillGrace})
	if err != nil {
		return nil, err
	}
	m := &Manager{
		opts: opts, log: opts.Logger, runner: runner,
		inputs: make(chan func(), 256), monitors: map[string]context.CancelFunc{},
		waiters: map[uint64]chan machine.Reply{}, savedCopy: machine.NewSaved(), methodCgroup: string(cg),
		methodRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steady_rgm_methods_total", Help: "Methods run by the resource group manager, by method and result.",
		}, []string{"method", "result"}),
	}
	if opts.Bus != nil {
		m.pub = opts.Bus.Publisher("steady:rgm")
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(m.methodRuns); err != nil {
			return nil, fmt.Errorf("rgm: metrics: %w", err)
		}
	}
	cfg, err := m.loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		m.log.Warn("the stored configuration has problems; resources that are affected stay offline", "err", err)
	}
	m.current = cfg
	snap, err := m.loadState()
	if err != nil {
		return nil, err
	}
	if opts.Member != nil {
		m.cl = newClusterState()
	}
	if opts.Reset {
		m.log.Warn("this node was declared down while its agent was away: every resource starts offline")
		snap = machine.Snapshot{Schema: snap.Schema, NextID: snap.NextID}
	} else if m.rebooted() {
		// What ran before the boot is gone: start from nothing, and the
		// groups that should be online start again.
		m.log.Info("the node booted since the saved state was written; every resource starts offline")
		snap = machine.Snapshot{Schema: snap.Schema, NextID: snap.NextID}
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	var acts []machine.Action
	m.mach, acts = machine.Restore(opts.Node, snap, cfg, opts.Now())
	m.pubKick = make(chan struct{}, 1)
	m.wg.Add(2)
	go m.loop()
	go m.publishEvents()
	m.inputs <- func() {
		// The restored state becomes the snapshot, and the log starts
		// empty.
		if err := m.saveState(); err != nil {
			m.log.Error("cannot save the runtime state", "err", err)
		}
		m.apply(acts)
		if m.cl == nil {
			m.assign()
		}
		m.bootMethods()
	}
	if m.cl != nil {
		m.startCluster()
	}
	if opts.Bus != nil {
		m.wg.Add(1)
		go m.watchProcesses(opts.Bus.Journal().LastSeq())
	}
	return m, nil
}

func (m *Manager) loop() {
	defer m.wg.Done()
	for {
		select {
		case f := <-m.inputs:
			f()
		case <-m.ctx.Done():
			return
		}
	}
}

// do runs f on the loop and waits for it.
func (m *Manager) do(ctx context.Context, f func()) error {
	return m.doUntil(ctx, f, false)
}

// doUntil runs f on the loop and waits for it; with bounded, only until
// ctx ends, after which f may still run, so f must share nothing with
// the caller. The fence uses it: it must not wait on a loop that is
// itself held up, for instance by a method forked into a cgroup the
// fence has just frozen.
func (m *Manager) doUntil(ctx context.Context, f func(), bounded bool) error {
	done := make(chan struct{})
	select {
	case m.inputs <- func() { f(); close(done) }:
	case <-m.ctx.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	var end <-chan struct{}
	if bounded {
		end = ctx.Done()
	}
	select {
	case <-done:
		return nil
	case <-m.ctx.Done():
		return ErrClosed
	case <-end:
		return ctx.Err()
	}
}

// post queues f for the loop from a background goroutine.
func (m *Manager) post(f func()) {
	select {
	case m.inputs <- f:
	case <-m.ctx.Done():
	}
}

// assign applies the single-node rule: a managed group that should be
// online, and whose Nodelist is empty or names this node, is assigned
// here. (In a cluster the controller decides instead.)
func (m *Manager) assign() {
	cfg := m.mach.Config()
	for _, name := range sortedKeys(cfg.Groups) {
		g := cfg.Groups[name]
		want := g.Managed && g.Online && inNodelist(cfg.GroupValues(g).List("Nodelist"), m.opts.Node)
		if info, ok := m.mach.Group(name); ok && info.Assigned != want {
			m.apply(m.mach.Assign(name, want, m.opts.Now()))
		}
	}
}

func inNodelist(list []string, node string) bool {
	if len(list) == 0 {
		return true
	}
	for _, n := range list {
		if n == node {
			return true
		}
	}
	return false
}

// setConfig gives the loop a new configuration.
func (m *Manager) setConfig(cfg *model.Config) {
	m.post(func() {
		m.apply(m.mach.SetConfig(cfg, m.opts.Now()))
		if m.cl == nil {
			m.assign()
		} else {
			m.applyAssigns(nil)
			m.notifyConfig()
		}
	})
}

// apply carries out the machine's actions; the runtime state is saved
// first. Runs on the loop.
func (m *Manager) apply(acts []machine.Action) {
	if len(acts) == 0 {
		return
	}
	if err := m.saveState(); err != nil {
		m.log.Error("cannot save the runtime state", "err", err)
	}
	if m.cl != nil && m.cl.frozen {
		// Fenced: nothing runs until the fence ends (Thaw) or the node is
		// declared down (Kill, which drops this).
		m.cl.held = append(m.cl.held, acts...)
		return
	}
	var events []event.Event
	var changedGroups []string
	for _, a := range acts {
		switch a := a.(type) {
		case machine.Publish:
			events = append(events, event.Event{Class: machine.ClassRGM, Subclass: a.Subclass, Publisher: "steady:rgm", Attrs: a.Attrs})
			m.logDecision(a)
			if a.Subclass == machine.SubGroupState && m.cl != nil {
				if g, ok := a.Attrs["group"].Str(); ok {
					changedGroups = append(changedGroups, g)
				}
			}
		case machine.Run:
			m.runMethod(a)
		case machine.StartMonitor:
			m.startMonitor(a)
		case machine.StopMonitor:
			if stop, ok := m.monitors[a.Resource]; ok {
				stop()
				delete(m.monitors, a.Resource)
			}
		case machine.Reply:
			if ch, ok := m.waiters[a.Token]; ok {
				ch <- a
				delete(m.waiters, a.Token)
			}
		case machine.Fence:
			if m.cl != nil {
				m.fenceSelf(a)
				events = append(events, event.Event{Class: machine.ClassRGM, Subclass: machine.SubFence, Publisher: "steady:rgm",
					Attrs: api.Attrs{"resource": api.String(a.Resource), "group": api.String(a.Group), "reason": api.String(a.Reason),
						"node": api.String(m.opts.Node)}})
				continue
			}
			m.log.Error("a stop method failed under Failover_mode HARD; on a cluster node the node would fence itself now",
				"resource", a.Resource, "group", a.Group, "reason", a.Reason)
			events = append(events, event.Event{Class: machine.ClassRGM, Subclass: machine.SubFence, Publisher: "steady:rgm",
				Attrs: api.Attrs{"resource": api.String(a.Resource), "group": api.String(a.Group), "reason": api.String(a.Reason),
					"node": api.String(m.opts.Node)}})
		case machine.Relocate:
			m.log.Info("a relocation was asked for", "group", a.Group, "reason", a.Reason)
			if m.cl != nil {
				kind := placement.StartFailed
				if a.Giveover {
					kind = placement.Giveover
				}
				m.requestRelocation(a, kind)
			}
		}
	}
	for _, g := range changedGroups {
		m.markStatus(g)
	}
	if len(events) > 0 && m.opts.Bus != nil {
		m.pubMu.Lock()
		m.pubQueue = append(m.pubQueue, events...)
		m.pubMu.Unlock()
		select {
		case m.pubKick <- struct{}{}:
		default:
		}
	}
}

// publishEvents publishes the loop's events, in order, as they come. The
// journal returns only once events are on disk, and the loop must not
// wait for a sync on every step: with thousands of groups starting that
// wait alone took seconds. Whatever queued meanwhile goes in one batch.
func (m *Manager) publishEvents() {
	defer m.wg.Done()
	for {
		stopping := false
		select {
		case <-m.pubKick:
		case <-m.ctx.Done():
			stopping = true
		}
		m.pubMu.Lock()
		batch := m.pubQueue
		m.pubQueue = nil
		m.pubMu.Unlock()
		if len(batch) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := m.opts.Bus.PublishBatch(ctx, batch); err != nil {
				m.log.Error("cannot publish", "err", err)
			}
			cancel()
		}
		if stopping {
			return
		}
	}
}

func (m *Manager) logDecision(p machine.Publish) {
	str := func(k string) string { s, _ := p.Attrs[k].Str(); return s }
	switch p.Subclass {
	case machine.SubDecision:
		m.log.Info("decision", "resource", str("resource"), "group", str("group"), "decision", str("decision"))
	case machine.SubGroupState:
		m.log.Info("group state", "group", str("group"), "state", str("state"))
	}
}

// call builds the method call of a resource.
func (m *Manager) call(cfg *model.Config, name, meth string, timeout time.Duration) (method.Call, bool) {
	r := cfg.Resources[name]
	if r == nil {
		return method.Call{}, false
	}
	t := cfg.TypeOf(r)
	if t == nil {
		return method.Call{}, false
	}
	c := method.Call{Resource: name, Group: r.Group, Type: t, Values: cfg.Effective(r), Method: meth, Timeout: timeout}
	if m.cl != nil {
		m.cl.epochMu.Lock()
		c.Epoch = m.cl.groupEpoch[r.Group]
		m.cl.epochMu.Unlock()
	}
	return c, true
}

// runMethod runs a method in the background and reports back.
func (m *Manager) runMethod(a machine.Run) {
	c, ok := m.call(m.mach.Config(), a.Resource, a.Method, a.Timeout)
	if !ok {
		res := machine.Result{Err: "the resource or its type is gone"}
		m.post(func() { m.apply(m.mach.MethodDone(a.ID, res, m.opts.Now())) })
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		res := m.runner.Run(m.ctx, c)
		if m.ctx.Err() != nil {
			return // the agent stops; the restored state redoes it
		}
		result := "ok"
		if !res.Succeeded() {
			result = "failed"
		}
		m.methodRuns.WithLabelValues(a.Method, result).Inc()
		m.post(func() { m.apply(m.mach.MethodDone(a.ID, res, m.opts.Now())) })
	}()
}

// startMonitor probes a resource every interval until stopped.
func (m *Manager) startMonitor(a machine.StartMonitor) {
	if stop, ok := m.monitors[a.Resource]; ok {
		stop()
	}
	ctx, cancel := context.WithCancel(m.ctx)
	m.monitors[a.Resource] = cancel
	cfg := m.mach.Config()
	c, ok := m.call(cfg, a.Resource, method.MethodProbe, a.Timeout)
	if !ok {
		cancel()
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		tick := time.NewTicker(a.Interval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			p := m.runner.Probe(ctx, c)
			if ctx.Err() != nil {
				return
			}
			m.post(func() {
				if m.monitors[a.Resource] == nil || ctx.Err() != nil || m.cl != nil && m.cl.frozen {
					return // stopped meanwhile, or fenced
				}
				m.apply(m.mach.ProbeResult(a.Resource, p.OK, p.Degraded, p.Msg, m.opts.Now()))
			})
		}
	}()
}

// watchProcesses turns the process monitor's give-ups on steady.Process
// tags (ESC_pmf_exhausted, or a stop by someone else) into GaveUp inputs.
func (m *Manager) watchProcesses(after uint64) {
	defer m.wg.Done()
	sub := m.opts.Bus.Subscribe(after, event.Filter{Class: pmf.ClassPMF})
	for {
		ev, err := sub.Next(m.ctx)
		if err != nil {
			var gap *event.GapError
			if errors.As(err, &gap) {
				continue
			}
			return
		}
		if ev.Subclass != pmf.SubclassExhausted && ev.Subclass != pmf.SubclassStopped {
			continue
		}
		tag, _ := ev.Attrs["tag"].Str()
		parts := strings.Split(tag, ",")
		if len(parts) != 3 || parts[2] != "0.svc" {
			continue
		}
		resource := parts[1]
		msg := "tag " + tag + " was stopped"
		if reason, ok := ev.Attrs["reason"].Str(); ok {
			msg = reason
		}
		m.post(func() {
			// Only steady.Process owns its tag; an RTR type's methods use
			// the same tag form, and its own monitor decides what a
			// give-up means, as in Sun Cluster.
			cfg := m.mach.Config()
			if r := cfg.Resources[resource]; r == nil || r.Group != parts[0] || cfg.TypeOf(r) == nil || cfg.TypeOf(r).Source != model.SourceBuiltin {
				return
			}
			m.apply(m.mach.GaveUp(resource, msg, m.opts.Now()))
		})
	}
}

// Close stops the loop, the monitors and the methods in progress. Services
// keep running; the next agent re-adopts them from the saved state.
func (m *Manager) Close() error {
	m.cancel()
	m.wg.Wait()
	if m.logf != nil {
		m.logf.Close()
		m.logf = nil
	}
	return nil
}

func sortedKeys[V any](mp map[string]V) []string {
	keys := make([]string, 0, len(mp))
	for k := range mp {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}
