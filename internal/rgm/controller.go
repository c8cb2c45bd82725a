package rgm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/event"
	"github.com/steady-ha/steady/internal/rgm/machine"
	"github.com/steady-ha/steady/internal/rgm/model"
	"github.com/steady-ha/steady/internal/rgm/placement"
	"github.com/steady-ha/steady/internal/store"
)

// The controller runs on the node the cluster elected: it reads the
// placement state from the store, runs the placement core on every
// change, and writes what it decided. Everything it knows is in the
// store, so a new controller takes over where the last one stopped: it
// moves nothing that is healthy. Its writes carry the condition that its
// term (rgm/controller, written when it took office) is still the
// newest, so a controller that lost office without knowing writes
// nothing.

// SubPlacement is the event of a placement decision.
const SubPlacement = "ESC_rgm_placement"

type termRecord struct {
	Node  string    `json:"node"`
	Epoch uint64    `json:"epoch"`
	Since time.Time `json:"since"`
}

// ctlState is the controller's copy of rgm/'s placement keys.
type ctlState struct {
	assign   map[string]placement.Assignment
	status   map[string]map[string]placement.Status
	pingpong map[string]map[string]time.Time
	requests map[string]placement.Request
	checks   map[string]map[string]placement.Check
	evac     map[string]time.Time
	cfgRev   map[string]int64 // the revision of each group's configuration
}

func newCtlState() *ctlState {
	return &ctlState{assign: map[string]placement.Assignment{}, status: map[string]map[string]placement.Status{},
		pingpong: map[string]map[string]time.Time{}, requests: map[string]placement.Request{},
		checks: map[string]map[string]placement.Check{}, evac: map[string]time.Time{}, cfgRev: map[string]int64{}}
}

// take applies one change; it reports whether placement may change.
func (s *ctlState) take(ev store.WatchEvent) bool {
	key := ev.Item.Key
	del := ev.Type == store.Deleted
	two := func(prefix string) (string, string, bool) {
		return strings.Cut(key[len(prefix):], "/")
	}
	switch {
	case strings.HasPrefix(key, assignPrefix):
		g := key[len(assignPrefix):]
		if del {
			delete(s.assign, g)
			return true
		}
		var a placement.Assignment
		if ev.Item.Decode(&a, placeSchema) == nil {
			a.Rev = ev.Item.ModRevision
			s.assign[g] = a
		}
		return false // its own writes
	case strings.HasPrefix(key, statusPrefix):
		node, g, ok := two(statusPrefix)
		if !ok {
			return false
		}
		if del {
			delete(s.status[g], node)
			return true
		}
		var st placement.Status
		if ev.Item.Decode(&st, placeSchema) == nil {
			if s.status[g] == nil {
				s.status[g] = map[string]placement.Status{}
			}
			s.status[g][node] = st
		}
		return true
	case strings.HasPrefix(key, pingpongPrefix):
		g, node, ok := two(pingpongPrefix)
		if !ok {
			return false
		}
		if del {
			delete(s.pingpong[g], node)
			return true
		}
		var p pingpongRecord
		if ev.Item.Decode(&p, placeSchema) == nil {
			if s.pingpong[g] == nil {
				s.pingpong[g] = map[string]time.Time{}
			}
			s.pingpong[g][node] = p.Time
		}
		return true
	case strings.HasPrefix(key, requestPrefix):
		if del {
			delete(s.requests, key)
			return true
		}
		g, _, ok := two(requestPrefix)
		var r requestRecord
		if ok && ev.Item.Decode(&r, placeSchema) == nil {
			s.requests[key] = placement.Request{ID: key, Kind: r.Kind, Group: g, Node: r.Node, Epoch: r.Epoch, Reason: r.Reason, Time: r.Time}
		}
		return true
	case strings.HasPrefix(key, checkPrefix):
		g, node, ok := two(checkPrefix)
		if !ok {
			return false
		}
		if del {
			delete(s.checks[g], node)
			return true
		}
		var c checkRecord
		if ev.Item.Decode(&c, placeSchema) == nil {
			if s.checks[g] == nil {
				s.checks[g] = map[string]placement.Check{}
			}
			s.checks[g][node] = placement.Check{Request: c.Request, Done: c.Done, OK: c.OK, Msg: c.Msg}
		}
		return true
	case strings.HasPrefix(key, groupsPrefix):
		g := key[len(groupsPrefix):]
		if del {
			delete(s.cfgRev, g)
		} else {
			s.cfgRev[g] = ev.Item.ModRevision
		}
		return false // placement follows the configuration the loop has
	case strings.HasPrefix(key, evacuatePrefix):
		node := key[len(evacuatePrefix):]
		if del {
			delete(s.evac, node)
			return true
		}
		var e evacuateRecord
		if ev.Item.Decode(&e, placeSchema) == nil {
			s.evac[node] = e.Until
		}
		return true
	}
	return false
}

// placementGroups converts the configuration's groups (cached per
// configuration: it does not change once the loop has it).
func (m *Manager) placementGroups(cfg *model.Config) map[string]*placement.Group {
	m.cl.cfgMu.Lock()
	defer m.cl.cfgMu.Unlock()
	if m.ctlCfg == cfg {
		return m.ctlGroups
	}
	checks := map[string]bool{}
	for _, r := range cfg.Resources {
		if t := cfg.TypeOf(r); t != nil && t.HasMethod(model.MethodMonitorCheck) {
			checks[r.Group] = true
		}
	}
	out := make(map[string]*placement.Group, len(cfg.Groups))
	for name, g := range cfg.Groups {
		v := cfg.GroupValues(g)
		pg := &placement.Group{Name: name, Managed: g.Managed, Online: g.Online, Suspended: g.Suspended,
			Nodelist: v.List("Nodelist"), MaxPrimaries: v.Int("Maximum_primaries", 1), DesiredPrimaries: v.Int("Desired_primaries", 1),
			Failback: v.Bool("Failback", false), Pingpong: time.Duration(v.Int("Pingpong_interval", 3600)) * time.Second,
			Deps: v.List("RG_dependencies"), Checks: checks[name]}
		for _, s := range v.List("RG_affinities") {
			if a, err := placement.ParseAffinity(s); err == nil {
				pg.Affinities = append(pg.Affinities, a)
			}
		}
		out[name] = pg
	}
	m.ctlCfg, m.ctlGroups = cfg, out
	return out
}

// placementInput builds the input of the placement core.
func (m *Manager) placementInput(s *ctlState, rev int64) *placement.Input {
	in := &placement.Input{Now: m.opts.Now(), Rev: rev, Groups: m.placementGroups(m.Config()), Assign: s.assign,
		Status: s.status, Pingpong: s.pingpong, Checks: s.checks, ConfigRev: s.cfgRev}
	for _, n := range m.opts.Member.Nodes() {
		in.Nodes = append(in.Nodes, placement.Node{Name: n.Name, Up: n.Up, Epoch: n.Epoch, UpRev: n.UpRev, EvacuatedUntil: s.evac[n.Name]})
	}
	for _, r := range s.requests {
		in.Requests = append(in.Requests, r)
	}
	return in
}

// controllerLoop runs the controller whenever this node is elected.
func (m *Manager) controllerLoop() {
	for m.ctx.Err() == nil {
		ch := m.opts.Member.NodesChanged()
		if m.opts.Member.IsController() {
			if err := m.runController(); err != nil && m.ctx.Err() == nil {
				m.log.Warn("the controller stopped", "err", err)
			}
		}
		select {
		case <-m.ctx.Done():
			return
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// errTermLost: another controller took office.
var errTermLost = errors.New("rgm: another node took over as controller")

// runController is one term of office.
func (m *Manager) runController() error {
	ctx, cancel := context.WithCancel(m.ctx)
	defer cancel()
	termRev, err := m.takeTerm(ctx)
	if err != nil {
		return err
	}
	items, rev, err := m.opts.Store.List(ctx, "rgm/")
	if err != nil {
		return err
	}
	st := newCtlState()
	for _, it := range items {
		st.take(store.WatchEvent{Type: store.Put, Item: it})
	}
	ch, err := m.opts.Store.Watch(ctx, "rgm/", rev+1)
	if err != nil {
		return err
	}
	m.log.Info("controller: placing resource groups", "groups", len(m.Config().Groups), "term", termRev)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	dirty := true
	var next time.Time        // the earliest the next round may start
	var wait <-chan time.Time // set while a round waits for next
	for {
		if !m.opts.Member.IsController() {
			return nil
		}
		if dirty && wait == nil {
			if d := time.Until(next); d > 0 {
				wait = time.After(d)
			} else {
				dirty = false
				start := time.Now()
				out := placement.Place(m.placementInput(st, rev))
				if err := m.writePlacement(ctx, st, out, termRev); err != nil {
					return err
				}
				next = time.Now().Add(roundGap(time.Since(start)))
			}
		}
		nodes, cfgCh := m.opts.Member.NodesChanged(), m.configChanged()
		select {
		case <-ctx.Done():
			return nil
		case <-wait:
			wait = nil
		case b, ok := <-ch:
			if !ok {
				return errors.New("rgm: the controller's watch ended")
			}
			if b.Err != nil {
				return b.Err
			}
			// Take whatever else is already there before placing again.
			for more := true; more; {
				for _, ev := range b.Events {
					if st.take(ev) {
						dirty = true
					}
				}
				rev = max(rev, b.Revision)
				select {
				case b, ok = <-ch:
					if !ok || b.Err != nil {
						return errors.New("rgm: the controller's watch ended")
					}
				default:
					more = false
				}
			}
		case <-nodes:
			dirty = true
		case <-cfgCh:
			dirty = true
		case <-tick.C:
			dirty = true // pingpong and evacuation windows end
		}
	}
}

// roundGap is how long the controller lets changes gather after a
// placement round that took d. A round over a few groups costs
// microseconds and the next one starts at once; over thousands, while
// agents report every group that comes online, placing again on every
// report would keep a core busy and delay the very writes it waits for,
// so it waits twice as long as the round took (at most a quarter second)
// and places everything that came in meanwhile in one round.
func roundGap(d time.Duration) time.Duration {
	const limit = 250 * time.Millisecond
	if d < time.Millisecond {
		return 0
	}
	return min(2*d, limit)
}

// takeTerm writes the controller's term; its revision is the condition
// of every later write.
func (m *Manager) takeTerm(ctx context.Context) (int64, error) {
	prev := int64(0)
	if it, err := m.opts.Store.Get(ctx, controllerKey); err == nil {
		prev = it.ModRevision
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	op, err := store.OpPut(controllerKey, placeSchema, termRecord{Node: m.opts.Node, Epoch: m.opts.Member.Epoch(), Since: time.Now().UTC()})
	if err != nil {
		return 0, err
	}
	res, err := m.opts.Store.Txn(ctx, []store.Cond{store.Unchanged(controllerKey, prev)}, []store.Op{op}, nil)
	if err != nil {
		return 0, err
	}
	if !res.Succeeded {
		return 0, errTermLost
	}
	return res.Revision, nil
}

// writePlacement writes what placement decided, under the term.
func (m *Manager) writePlacement(ctx context.Context, st *ctlState, out placement.Output, term int64) error {
	var ops []store.Op
	add := func(op store.Op, err error) {
		if err == nil {
			ops = append(ops, op)
		}
	}
	for g, a := range out.Assign {
		add(store.OpPut(assignPrefix+g, placeSchema, a))
	}
	for _, mk := range out.Marks {
		add(store.OpPut(pingpongPrefix+mk.Group+"/"+mk.Node, placeSchema, pingpongRecord{Time: mk.Time.UTC()}))
	}
	for _, id := range out.Done {
		add(store.OpDelete(id))
	}
	for _, c := range out.AskChecks {
		if cur, ok := st.checks[c.Group][c.Node]; ok && cur.Request == c.Request {
			continue // asked already
		}
		add(store.OpPut(checkPrefix+c.Group+"/"+c.Node, placeSchema, checkRecord{Request: c.Request}))
	}
	written := int64(0)
	for i := 0; i < len(ops); i += maxTxnOps {
		j := min(i+maxTxnOps, len(ops))
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := m.opts.Store.Txn(wctx, []store.Cond{store.Unchanged(controllerKey, term)}, ops[i:j], nil)
		cancel()
		if err != nil {
			return fmt.Errorf("rgm: writing placement: %w", err)
		}
		if !res.Succeeded {
			return errTermLost
		}
		written = res.Revision
	}
	// What it wrote is what it knows now (the watch confirms it later);
	// the last revision is at least each assignment's, which is what
	// failback compares with.
	for g, a := range out.Assign {
		a.Rev = written
		st.assign[g] = a
	}
	for _, id := range out.Done {
		delete(st.requests, id)
	}
	m.publishDecisions(out.Decisions)
	return nil
}

// publishDecisions logs and publishes placement decisions.
func (m *Manager) publishDecisions(ds []placement.Decision) {
	if len(ds) == 0 {
		return
	}
	if len(ds) <= 20 {
		for _, d := range ds {
			m.log.Info("placement", "group", d.Group, "decision", d.Text)
		}
	} else {
		m.log.Info("placement", "groups", len(ds), "first", ds[0].Group, "decision", ds[0].Text)
	}
	if m.opts.Bus == nil {
		return
	}
	events := make([]event.Event, 0, len(ds))
	for _, d := range ds {
		events = append(events, event.Event{Class: machine.ClassRGM, Subclass: SubPlacement, Publisher: "steady:rgm",
			Attrs: api.Attrs{"group": api.String(d.Group), "decision": api.String(d.Text), "controller": api.String(m.opts.Node)}})
	}
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	if err := m.opts.Bus.PublishBatch(ctx, events); err != nil {
		m.log.Error("cannot publish", "err", err)
	}
}
