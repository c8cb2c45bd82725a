package rgm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/cluster"
	"github.com/steady-ha/steady/internal/pmf"
	"github.com/steady-ha/steady/internal/rgm/machine"
	"github.com/steady-ha/steady/internal/rgm/model"
	"github.com/steady-ha/steady/internal/rgm/placement"
	"github.com/steady-ha/steady/internal/store"
	"github.com/steady-ha/steady/internal/watchdog"
	"golang.org/x/sys/unix"
)

// This file is the node's side of the cluster: it follows the
// configuration and the assignments in the store, converges the node to
// them, reports each group's state, asks the controller to relocate a
// group, runs MONITOR_CHECK when asked, and stops the node's work when
// the membership fences the node.

// Membership is what the manager needs of the node's cluster membership
// (*cluster.Member).
type Membership interface {
	Epoch() uint64
	Fenced() bool
	IsController() bool
	Nodes() []cluster.NodeView
	NodesChanged() <-chan struct{}
	FenceSelf(ctx context.Context, reason string) error
}

// Store keys of the cluster's placement.
const (
	assignPrefix   = "rgm/assign/"
	statusPrefix   = "rgm/status/"
	requestPrefix  = "rgm/requests/"
	pingpongPrefix = "rgm/pingpong/"
	checkPrefix    = "rgm/checks/"
	evacuatePrefix = "rgm/evacuate/"
	controllerKey  = "rgm/controller"
	placeSchema    = 1
	// maxTxnOps keeps transactions under etcd's default limit (128).
	maxTxnOps = 120
)

// requestRecord is a relocation or switch request in the store.
type requestRecord struct {
	Kind   string    `json:"kind"`
	Node   string    `json:"node"`
	Epoch  uint64    `json:"epoch,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
}

type pingpongRecord struct {
	Time time.Time `json:"time"`
}

type evacuateRecord struct {
	Until time.Time `json:"until"`
}

type checkRecord struct {
	Request string `json:"request"`
	Done    bool   `json:"done"`
	OK      bool   `json:"ok"`
	Msg     string `json:"msg,omitempty"`
}

// clusterState is the manager's cluster-mode state; the fields marked
// "loop" are owned by the loop.
type clusterState struct {
	assigns map[string]placement.Assignment // loop
	seen    map[string]uint64               // loop: the assignment epoch applied, by group
	frozen  bool                            // loop
	held    []machine.Action                // loop: actions held while frozen
	epoch   uint64                          // loop: the node epoch assignments were applied in

	statusMu sync.Mutex // guards pending
	pending  map[string]placement.Status
	kick     chan struct{}

	checksMu sync.Mutex // guards checking
	checking map[string]bool

	cfgMu      sync.Mutex // guards cfgChanged
	cfgChanged chan struct{}

	epochMu    sync.Mutex        // guards groupEpoch
	groupEpoch map[string]uint64 // the assignment epoch of each group, for methods (STEADY_EPOCH)

	targetsMu  sync.Mutex // guards targetsCfg and targets
	targetsCfg *model.Config
	targets    watchdog.Targets
}

func newClusterState() *clusterState {
	return &clusterState{assigns: map[string]placement.Assignment{}, seen: map[string]uint64{},
		pending: map[string]placement.Status{}, kick: make(chan struct{}, 1), checking: map[string]bool{}, groupEpoch: map[string]uint64{},
		cfgChanged: make(chan struct{})}
}

// startCluster starts the goroutines of cluster mode.
func (m *Manager) startCluster() {
	m.mach.ClusterDeps(true)
	m.cl.epoch = m.opts.Member.Epoch()
	m.wg.Add(4)
	go func() { defer m.wg.Done(); m.followStore() }()
	go func() { defer m.wg.Done(); m.writeStatuses() }()
	go func() { defer m.wg.Done(); m.followNodes() }()
	go func() { defer m.wg.Done(); m.controllerLoop() }()
}

// configChanged returns a channel closed at the next configuration the
// loop is given.
func (m *Manager) configChanged() <-chan struct{} {
	m.cl.cfgMu.Lock()
	defer m.cl.cfgMu.Unlock()
	return m.cl.cfgChanged
}

func (m *Manager) notifyConfig() {
	if m.cl == nil {
		return
	}
	m.cl.cfgMu.Lock()
	close(m.cl.cfgChanged)
	m.cl.cfgChanged = make(chan struct{})
	m.cl.cfgMu.Unlock()
}

// followStore lists and watches rgm/: configuration changes (made on any
// node) are reloaded, assignments are applied, checks asked of this node
// are run.
func (m *Manager) followStore() {
	ctx := m.ctx
	for ctx.Err() == nil {
		if err := m.followOnce(ctx); err != nil && ctx.Err() == nil {
			m.log.Debug("following the store", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

func (m *Manager) followOnce(ctx context.Context) error {
	items, rev, err := m.opts.Store.List(ctx, "rgm/")
	if err != nil {
		return err
	}
	all := map[string]placement.Assignment{}
	for _, it := range items {
		switch {
		case strings.HasPrefix(it.Key, assignPrefix):
			var a placement.Assignment
			if it.Decode(&a, placeSchema) == nil {
				a.Rev = it.ModRevision
				all[it.Key[len(assignPrefix):]] = a
			}
		case strings.HasPrefix(it.Key, checkPrefix):
			m.maybeCheck(it)
		}
	}
	if err := m.reloadConfig(ctx); err != nil {
		return err
	}
	m.post(func() {
		m.cl.assigns = all
		m.applyAssigns(nil)
	})
	ch, err := m.opts.Store.Watch(ctx, "rgm/", rev+1)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case b, ok := <-ch:
			if !ok {
				return nil
			}
			if b.Err != nil {
				return b.Err
			}
			changed := map[string]*placement.Assignment{}
			var cfgEvents []store.WatchEvent
			for _, ev := range b.Events {
				key := ev.Item.Key
				switch {
				case strings.HasPrefix(key, assignPrefix):
					g := key[len(assignPrefix):]
					if ev.Type == store.Deleted {
						changed[g] = nil
						continue
					}
					var a placement.Assignment
					if ev.Item.Decode(&a, placeSchema) == nil {
						a.Rev = ev.Item.ModRevision
						changed[g] = &a
					}
				case strings.HasPrefix(key, checkPrefix):
					if ev.Type == store.Put {
						m.maybeCheck(ev.Item)
					}
				case strings.HasPrefix(key, typesPrefix), strings.HasPrefix(key, groupsPrefix), strings.HasPrefix(key, resourcesPrefix):
					cfgEvents = append(cfgEvents, ev)
				}
			}
			if len(cfgEvents) > 0 {
				m.applyConfigEvents(cfgEvents)
			}
			if len(changed) > 0 {
				m.post(func() {
					names := make([]string, 0, len(changed))
					for g, a := range changed {
						if a == nil {
							delete(m.cl.assigns, g)
						} else {
							m.cl.assigns[g] = *a
						}
						names = append(names, g)
					}
					m.applyAssigns(names)
				})
			}
		}
	}
}

// applyConfigEvents takes configuration changes seen in the store (made
// by another node, or by this one a moment ago: those are already in
// the current configuration and change nothing).
func (m *Manager) applyConfigEvents(evs []store.WatchEvent) {
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	var cfg *model.Config
	edit := func() *model.Config {
		if cfg == nil {
			cfg = m.current.Clone()
		}
		return cfg
	}
	same := func(a, b any) bool {
		x, err1 := json.Marshal(a)
		y, err2 := json.Marshal(b)
		return err1 == nil && err2 == nil && string(x) == string(y)
	}
	for _, ev := range evs {
		key := ev.Item.Key
		del := ev.Type == store.Deleted
		switch {
		case strings.HasPrefix(key, typesPrefix):
			name := key[len(typesPrefix):]
			cur, has := m.current.Types[name]
			if del {
				if has {
					delete(edit().Types, name)
				}
				continue
			}
			var t model.ResourceType
			if ev.Item.Decode(&t, typeSchema) == nil && (!has || !same(cur, &t)) {
				edit().Types[t.Name] = &t
			}
		case strings.HasPrefix(key, groupsPrefix):
			name := key[len(groupsPrefix):]
			cur, has := m.current.Groups[name]
			if del {
				if has {
					delete(edit().Groups, name)
				}
				continue
			}
			var g model.Group
			if ev.Item.Decode(&g, groupSchema) == nil && (!has || !same(cur, &g)) {
				edit().Groups[g.Name] = &g
			}
		case strings.HasPrefix(key, resourcesPrefix):
			name := key[len(resourcesPrefix):]
			cur, has := m.current.Resources[name]
			if del {
				if has {
					delete(edit().Resources, name)
				}
				continue
			}
			var r model.Resource
			if ev.Item.Decode(&r, resourceSchema) == nil && (!has || !same(cur, &r)) {
				edit().Resources[r.Name] = &r
			}
		}
	}
	if cfg == nil {
		return
	}
	if err := cfg.Validate(); err != nil {
		m.log.Warn("the stored configuration has problems; resources that are affected stay offline", "err", err)
	}
	m.current = cfg
	m.setConfig(cfg)
}

// reloadConfig reads the configuration from the store and gives it to
// the loop when it differs from the current one (a change made on
// another node, or by this one a moment ago).
func (m *Manager) reloadConfig(ctx context.Context) error {
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	cfg, err := m.loadConfig(ctx)
	if err != nil {
		return err
	}
	if sameConfig(m.current, cfg) {
		return nil
	}
	if err := cfg.Validate(); err != nil {
		m.log.Warn("the stored configuration has problems; resources that are affected stay offline", "err", err)
	}
	m.current = cfg
	m.setConfig(cfg)
	return nil
}

// applyAssigns gives the machine what the assignments of groups (nil:
// all) say about this node. Runs on the loop.
func (m *Manager) applyAssigns(groups []string) {
	cfg := m.mach.Config()
	if groups == nil {
		groups = sortedKeys(cfg.Groups)
	}
	epoch := m.opts.Member.Epoch()
	fenced := m.cl.frozen || m.opts.Member.Fenced()
	if epoch != m.cl.epoch {
		m.cl.epoch = epoch
		for g := range cfg.Groups {
			m.markStatus(g)
		}
	}
	want := make(map[string]bool, len(groups))
	for _, g := range groups {
		if _, ok := cfg.Groups[g]; !ok {
			continue
		}
		a := m.cl.assigns[g]
		want[g] = !fenced && a.Has(m.opts.Node, epoch)
		if m.cl.seen[g] != a.Epoch {
			m.cl.seen[g] = a.Epoch
			m.cl.epochMu.Lock()
			m.cl.groupEpoch[g] = a.Epoch
			m.cl.epochMu.Unlock()
		}
	}
	m.apply(m.mach.AssignMany(want, m.opts.Now()))
	for g := range want {
		m.markStatus(g)
	}
}

// markStatus queues the report of a group's state. Runs on the loop.
func (m *Manager) markStatus(group string) {
	info, ok := m.mach.Group(group)
	if !ok {
		return
	}
	st := placement.Status{Epoch: m.cl.epoch, Seen: m.cl.seen[group], State: info.State}
	m.cl.statusMu.Lock()
	m.cl.pending[group] = st
	m.cl.statusMu.Unlock()
	select {
	case m.cl.kick <- struct{}{}:
	default:
	}
}

// writeStatuses writes the queued reports, many per transaction; what
// cannot be written now is tried again.
func (m *Manager) writeStatuses() {
	last := map[string]placement.Status{}
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.cl.kick:
		}
		time.Sleep(2 * time.Millisecond) // let a burst of changes gather
		m.cl.statusMu.Lock()
		batch := m.cl.pending
		m.cl.pending = map[string]placement.Status{}
		m.cl.statusMu.Unlock()
		var ops []store.Op
		var names []string
		for g, st := range batch {
			if last[g] == st {
				continue
			}
			op, err := store.OpPut(statusPrefix+m.opts.Node+"/"+g, placeSchema, st)
			if err != nil {
				continue
			}
			ops, names = append(ops, op), append(names, g)
		}
		failed := false
		for i := 0; i < len(ops); i += maxTxnOps {
			j := min(i+maxTxnOps, len(ops))
			ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
			_, err := m.opts.Store.Txn(ctx, nil, ops[i:j], nil)
			cancel()
			if err != nil {
				failed = true
				m.cl.statusMu.Lock()
				for _, g := range names[i:] {
					if _, newer := m.cl.pending[g]; !newer {
						m.cl.pending[g] = batch[g]
					}
				}
				m.cl.statusMu.Unlock()
				break
			}
			for _, g := range names[i:j] {
				last[g] = batch[g]
			}
		}
		if failed {
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			select {
			case m.cl.kick <- struct{}{}:
			default:
			}
		}
	}
}

// followNodes tells the machine how many other nodes are up (for its
// "no other node" decisions) and re-applies every assignment when this
// node's epoch changed (it rejoined).
func (m *Manager) followNodes() {
	for {
		ch := m.opts.Member.NodesChanged()
		up := 0
		for _, n := range m.opts.Member.Nodes() {
			if n.Up && n.Name != m.opts.Node {
				up++
			}
		}
		m.post(func() {
			m.mach.SetPeers(up)
			if m.opts.Member.Epoch() != m.cl.epoch {
				m.applyAssigns(nil)
			}
		})
		select {
		case <-m.ctx.Done():
			return
		case <-ch:
		case <-time.After(time.Second):
		}
	}
}

// requestRelocation asks the controller to move a group off this node
// (a start failure under SOFT or HARD, a giveover). Runs on the loop.
func (m *Manager) requestRelocation(a machine.Relocate, kind string) {
	rec := requestRecord{Kind: kind, Node: m.opts.Node, Epoch: m.cl.assigns[a.Group].Epoch, Reason: a.Reason, Time: m.opts.Now().UTC()}
	key := fmt.Sprintf("%s%s/%s-%d-%d", requestPrefix, a.Group, m.opts.Node, rec.Epoch, time.Now().UnixNano())
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for i := 0; i < 50 && m.ctx.Err() == nil; i++ {
			ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
			_, err := m.opts.Store.Put(ctx, key, placeSchema, rec)
			cancel()
			if err == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
}

// fenceSelf carries out a HARD stop failure in a cluster: the node
// fences itself (its groups are killed and move), then the configured
// fence action runs.
func (m *Manager) fenceSelf(a machine.Fence) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		reason := fmt.Sprintf("resource %s of group %s failed to stop under Failover_mode HARD: %s", a.Resource, a.Group, a.Reason)
		if err := m.opts.Member.FenceSelf(m.ctx, reason); err != nil {
			m.log.Error("fencing this node", "err", err)
		}
		if act := m.opts.FenceAction; act != "" {
			m.runFenceAction(act, a)
		}
	}()
}

// runFenceAction runs rgm.fence_action: "reboot", or a command (run by
// /bin/sh with STEADY_NODE, STEADY_RESOURCE, STEADY_RESOURCE_GROUP).
func (m *Manager) runFenceAction(act string, a machine.Fence) {
	if act == "reboot" {
		m.log.Error("fence action: rebooting the node")
		unix.Sync()
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
			m.log.Error("fence action: reboot failed", "err", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", act)
	cmd.Env = append(os.Environ(), "STEADY_NODE="+m.opts.Node, "STEADY_RESOURCE="+a.Resource, "STEADY_RESOURCE_GROUP="+a.Group)
	out, err := cmd.CombinedOutput()
	if err != nil {
		m.log.Error("fence action failed", "action", act, "err", err, "output", strings.TrimSpace(string(out)))
		return
	}
	m.log.Warn("fence action ran", "action", act, "output", strings.TrimSpace(string(out)))
}

// maybeCheck runs MONITOR_CHECK for a check the controller asked of
// this node (once per request).
func (m *Manager) maybeCheck(it store.Item) {
	rest := it.Key[len(checkPrefix):]
	group, node, ok := strings.Cut(rest, "/")
	if !ok || node != m.opts.Node {
		return
	}
	var c checkRecord
	if it.Decode(&c, placeSchema) != nil || c.Done {
		return
	}
	m.cl.checksMu.Lock()
	if m.cl.checking[c.Request] {
		m.cl.checksMu.Unlock()
		return
	}
	m.cl.checking[c.Request] = true
	m.cl.checksMu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		c.Done, c.OK, c.Msg = true, true, ""
		cfg := m.Config()
		for _, r := range cfg.StartOrder(group) {
			t := cfg.TypeOf(r)
			if t == nil || !t.HasMethod(model.MethodMonitorCheck) {
				continue
			}
			timeout := time.Duration(cfg.Effective(r).Int(model.TimeoutProp(model.MethodMonitorCheck), 3600)) * time.Second
			call, _ := m.call(cfg, r.Name, model.MethodMonitorCheck, timeout)
			res := m.runner.Run(m.ctx, call)
			if !res.Succeeded() {
				c.OK, c.Msg = false, fmt.Sprintf("MONITOR_CHECK of %s %s", r.Name, res.Describe())
				break
			}
		}
		ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
		defer cancel()
		if _, err := m.opts.Store.Put(ctx, checkPrefix+group+"/"+node, placeSchema, c); err != nil {
			m.log.Warn("reporting MONITOR_CHECK", "group", group, "err", err)
		}
	}()
}

// Targets are the processes of this node's groups, for the fence and
// the watchdog: the method cgroups and the process monitor's tags of the
// groups (in process-group mode, the tags' process groups).
func (m *Manager) Targets() watchdog.Targets {
	cfg := m.Config()
	m.cl.targetsMu.Lock()
	defer m.cl.targetsMu.Unlock()
	ps := m.opts.PMF.Status()
	if m.cl.targetsCfg == cfg && ps.Mode == string(pmf.ModeCgroup) {
		return m.cl.targets
	}
	t := watchdog.Targets{Groups: sortedKeys(cfg.Groups)}
	if m.methodCgroup != "" {
		t.Trees = []string{m.methodCgroup}
	}
	if ps.Mode == string(pmf.ModeCgroup) {
		t.TagDir = ps.Cgroup
	} else {
		for _, tag := range m.opts.PMF.List() {
			if g, _, ok := strings.Cut(tag.Tag, ","); ok && cfg.Groups[g] != nil && tag.MainPID > 0 {
				t.PGIDs = append(t.PGIDs, tag.MainPID)
			}
		}
		sort.Ints(t.PGIDs)
	}
	m.cl.targetsCfg, m.cl.targets = cfg, t
	return t
}

// Freeze keeps the node's groups from running (the membership fenced
// the node): their processes are frozen, and the manager holds what it
// would do until Thaw or Kill.
func (m *Manager) Freeze(ctx context.Context, epoch uint64) {
	if err := watchdog.Freeze(m.Targets()); err != nil {
		m.log.Error("freezing the node's groups", "err", err)
	}
	m.doUntil(ctx, func() { m.cl.frozen = true }, true)
}

// Thaw lets the node's groups run again: the fence ended before anyone
// could take them over.
func (m *Manager) Thaw(epoch uint64) {
	if err := watchdog.Thaw(m.Targets()); err != nil {
		m.log.Error("thawing the node's groups", "err", err)
	}
	m.post(func() {
		m.cl.frozen = false
		held := m.cl.held
		m.cl.held = nil
		m.apply(held)
		m.applyAssigns(nil)
	})
}

// Kill ends the node's groups for good: the node was declared down, so
// they may run elsewhere now. The process monitor stops supervising
// their tags, every process is killed, and the machine takes every
// resource as offline.
func (m *Manager) Kill(ctx context.Context, epoch uint64) {
	m.doUntil(ctx, func() { m.cl.frozen = true }, true)
	cfg := m.Config()
	for _, tag := range m.opts.PMF.List() {
		if g, _, ok := strings.Cut(tag.Tag, ","); ok && cfg.Groups[g] != nil {
			if err := m.opts.PMF.Stop(ctx, tag.Tag, unix.SIGKILL, 0, pmf.Root); err != nil && !errors.Is(err, pmf.ErrNotFound) {
				m.log.Error("stopping a tag of a fenced group", "tag", tag.Tag, "err", err)
			}
		}
	}
	if err := watchdog.Kill(m.Targets()); err != nil {
		m.log.Error("killing the node's groups", "err", err)
	}
	m.do(ctx, func() {
		m.cl.held = nil
		for name, stop := range m.monitors {
			stop()
			delete(m.monitors, name)
		}
		acts := m.mach.Killed(m.opts.Now())
		m.cl.frozen = false
		m.apply(acts)
		for g := range m.mach.Config().Groups {
			m.markStatus(g)
		}
	})
}

// Switch asks the controller to move a group to node.
func (m *Manager) Switch(ctx context.Context, group, node string) error {
	if _, ok := m.Config().Groups[group]; !ok {
		return fmt.Errorf("%w: group %s", ErrNotFound, group)
	}
	if m.opts.Member == nil {
		if node != m.opts.Node {
			return fmt.Errorf("%w: this node is not in a cluster; %s is not a node of it", ErrNotFound, node)
		}
		return nil
	}
	var view *cluster.NodeView
	for _, n := range m.opts.Member.Nodes() {
		if n.Name == node {
			view = &n
		}
	}
	if view == nil {
		return fmt.Errorf("%w: no node %s in the cluster", ErrNotFound, node)
	}
	// What this node can judge is refused here, so that the operator hears
	// it at once; what only the controller knows (affinities, evacuation)
	// it reports as a placement decision.
	cfg := m.Config()
	g := cfg.Groups[group]
	nodelist := cfg.GroupValues(g).List("Nodelist")
	switch {
	case !view.Up:
		return fmt.Errorf("%w: %s is down", ErrState, node)
	case len(nodelist) > 0 && !slices.Contains(nodelist, node):
		return fmt.Errorf("%w: %s is not in the Nodelist of %s (%s)", ErrState, node, group, strings.Join(nodelist, ","))
	case !g.Managed:
		return fmt.Errorf("%w: group %s is unmanaged; \"steady rg manage %s\" first", ErrState, group, group)
	case !g.Online:
		return fmt.Errorf("%w: group %s is offline; \"steady rg online %s --node %s\" brings it online there", ErrState, group, group, node)
	}
	rec := requestRecord{Kind: placement.Switch, Node: node, Time: m.opts.Now().UTC()}
	key := fmt.Sprintf("%s%s/switch-%d", requestPrefix, group, time.Now().UnixNano())
	if _, err := m.opts.Store.Put(ctx, key, placeSchema, rec); err != nil {
		return fmt.Errorf("rgm: asking for the switch: %w", err)
	}
	return nil
}

// Evacuate keeps every group off node for d (they move now).
func (m *Manager) Evacuate(ctx context.Context, node string, d time.Duration) error {
	if m.opts.Member == nil {
		return fmt.Errorf("%w: this node is not in a cluster", ErrState)
	}
	known := false
	for _, n := range m.opts.Member.Nodes() {
		known = known || n.Name == node
	}
	if !known {
		return fmt.Errorf("%w: no node %s in the cluster", ErrNotFound, node)
	}
	if _, err := m.opts.Store.Put(ctx, evacuatePrefix+node, placeSchema, evacuateRecord{Until: m.opts.Now().Add(d).UTC()}); err != nil {
		return fmt.Errorf("rgm: evacuating %s: %w", node, err)
	}
	return nil
}

// ClusterGroups is where every group runs across the cluster, as each
// node reports it.
func (m *Manager) ClusterGroups(ctx context.Context) (map[string]api.RGMPlacement, error) {
	out := map[string]api.RGMPlacement{}
	cfg := m.Config()
	for g := range cfg.Groups {
		out[g] = api.RGMPlacement{Group: g, Nodes: []api.RGMNodeState{}}
	}
	if m.opts.Member == nil {
		for g := range cfg.Groups {
			if info, ok := m.groupInfo(ctx, g); ok {
				p := out[g]
				if info.Assigned {
					p.Primaries = []string{m.opts.Node}
				}
				p.Nodes = append(p.Nodes, api.RGMNodeState{Node: m.opts.Node, State: info.State})
				out[g] = p
			}
		}
		return out, nil
	}
	items, _, err := m.opts.Store.List(ctx, assignPrefix)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		var a placement.Assignment
		g := it.Key[len(assignPrefix):]
		if p, ok := out[g]; ok && it.Decode(&a, placeSchema) == nil {
			p.Primaries, p.Epoch, p.Reason = a.Names(), a.Epoch, a.Reason
			out[g] = p
		}
	}
	epochs := map[string]uint64{}
	up := map[string]bool{}
	for _, n := range m.opts.Member.Nodes() {
		epochs[n.Name], up[n.Name] = n.Epoch, n.Up
	}
	items, _, err = m.opts.Store.List(ctx, statusPrefix)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		node, g, ok := strings.Cut(it.Key[len(statusPrefix):], "/")
		var st placement.Status
		p, known := out[g]
		if !ok || !known || it.Decode(&st, placeSchema) != nil {
			continue
		}
		state := st.State
		switch {
		case !up[node]:
			state = "OFFLINE (node down)"
		case st.Epoch != epochs[node]:
			continue
		}
		p.Nodes = append(p.Nodes, api.RGMNodeState{Node: node, State: state})
		out[g] = p
	}
	return out, nil
}

// placementInput reads what the controller reads, for an explanation on
// any node.
func (m *Manager) explainPlacement(ctx context.Context, group string) ([]string, error) {
	if m.opts.Member == nil {
		return nil, nil
	}
	items, rev, err := m.opts.Store.List(ctx, "rgm/")
	if err != nil {
		return nil, err
	}
	st := newCtlState()
	for _, it := range items {
		st.take(store.WatchEvent{Type: store.Put, Item: it})
	}
	in := m.placementInput(st, rev)
	return placement.Explain(in, group), nil
}

// addPlacement fills in where a group runs across the cluster.
func (m *Manager) addPlacement(ctx context.Context, g *api.RGMGroup) error {
	var a placement.Assignment
	if it, err := m.opts.Store.Get(ctx, assignPrefix+g.Name); err == nil {
		it.Decode(&a, placeSchema)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	g.Primaries, g.Epoch, g.Placement = a.Names(), a.Epoch, a.Reason
	states := map[string]placement.Status{}
	for _, n := range m.opts.Member.Nodes() {
		if !n.Up {
			continue
		}
		it, err := m.opts.Store.Get(ctx, statusPrefix+n.Name+"/"+g.Name)
		var st placement.Status
		if err != nil || it.Decode(&st, placeSchema) != nil || st.Epoch != n.Epoch {
			continue
		}
		states[n.Name] = st
		g.NodeStates = append(g.NodeStates, api.RGMNodeState{Node: n.Name, State: st.State})
	}
	g.ClusterState = summarizeCluster(a, states)
	return nil
}

// summarizeCluster sums a group up across the cluster: pending while a node
// has not acted on its assignment or another still stops it, else the
// state on its primaries (the first that is not ONLINE).
func summarizeCluster(a placement.Assignment, states map[string]placement.Status) string {
	for n, st := range states {
		if !contains(a.Names(), n) && !placement.Offline(st.State) {
			if st.State == machine.GroupErrorStopFailed {
				return st.State
			}
			return machine.GroupPendingOffline
		}
	}
	if len(a.Pending) > 0 {
		return machine.GroupPendingOnline
	}
	if len(a.Nodes) == 0 {
		return machine.GroupOffline
	}
	state := machine.GroupOnline
	for _, p := range a.Nodes {
		st, ok := states[p.Node]
		switch {
		case !ok || st.Seen < a.Epoch:
			return machine.GroupPendingOnline
		case st.State != machine.GroupOnline && state == machine.GroupOnline:
			state = st.State
		}
	}
	return state
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// waitCluster waits until a group is no longer pending anywhere in the
// cluster. A group that should be online but is placed nowhere counts
// as settled once its placement has not changed for a second (no node
// can host it, or it waits for a dependency: "steady rg why" says).
func (m *Manager) waitCluster(ctx context.Context, name string) error {
	var lastEpoch uint64
	var since time.Time
	for {
		g, err := m.Group(ctx, name)
		if err != nil {
			return err
		}
		pending := g.ClusterState == machine.GroupPendingOnline || g.ClusterState == machine.GroupPendingOffline
		// A group wanted online that is nowhere, or faulted where it is,
		// may be about to move (a start failure under SOFT, a giveover):
		// that is the answer only once it has held for a second with the
		// same assignment.
		unsettled := len(g.Primaries) == 0 || g.ClusterState != machine.GroupOnline
		if !pending && g.Managed && g.Online && unsettled {
			if g.Epoch != lastEpoch || since.IsZero() {
				lastEpoch, since = g.Epoch, time.Now()
			}
			pending = time.Since(since) < time.Second
		} else {
			since = time.Time{}
		}
		if !pending {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
