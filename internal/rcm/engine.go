package rcm

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configures New.
type Options struct {
	// Store persists the in-flight list; nil keeps it in memory only.
	Store Store
	// Restored is the snapshot a previous engine saved; its entries are
	// finished or undone by Recover.
	Restored Snapshot
	// Observer hears every phase of every operation (events, logs).
	Observer func(Phase)
	// Now is the clock (tests replace it).
	Now func() time.Time
	// Resync is how old a client's registration may be before an
	// operation asks it again; 5 s as in Solaris.
	Resync time.Duration
	// Canon maps a name as a client or an initiator wrote it onto its
	// place in the tree (/dev/sdb1 onto its /sys/devices path), so that
	// a disk contains its partitions whatever name each user knows them
	// by. Clients are still called with their own name. Nil keeps names
	// as written.
	Canon func(name string) string
}

// Engine coordinates clients. It is safe for concurrent use: operations
// on unrelated subtrees run at the same time.
type Engine struct {
	opts Options

	mu      sync.Mutex // guards everything below
	tree    *tree
	clients map[string]*clientEntry
	locks   map[string]*lock // resource -> the operation holding it
	ops     map[uint64]*operation
	nextID  uint64
	pending []Entry // restored entries Recover has yet to settle
}

type clientEntry struct {
	c          Client
	interests  []Interest
	regs       map[string]*reg // by name
	registered time.Time
	err        error
	busy       int // operations in progress that involve the client
}

type lock struct {
	op    *operation
	depth int
}

// operation is one top-level request and everything it cascaded into.
type operation struct {
	id    uint64
	entry Entry
	mu    sync.Mutex // guards answers and visited
	// answers collects the words of every client at every depth.
	answers    []Answer
	visited    map[visitKey]bool // calls already made (breaks cascade cycles)
	touched    []*reg            // registrations the operation changed, in order
	touchedSet map[*reg]bool
	// recovering: the states of the clients are unknown (the agent that
	// knew them died), so notices reach every client, also in cascades.
	recovering bool
	suspended  bool     // recovering a suspend that had been done
	names      []string // every name locked, top-level first
}

// New builds an engine. Its in-flight list starts with what opts.Restored
// holds; call Recover (after adding the clients) to settle it.
func New(opts Options) *Engine {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Resync <= 0 {
		opts.Resync = 5 * time.Second
	}
	if opts.Observer == nil {
		opts.Observer = func(Phase) {}
	}
	if opts.Canon == nil {
		opts.Canon = func(n string) string { return n }
	}
	e := &Engine{opts: opts, tree: newTree(), clients: map[string]*clientEntry{},
		locks: map[string]*lock{}, ops: map[uint64]*operation{}, nextID: max(opts.Restored.NextID, 1)}
	e.pending = slices.Clone(opts.Restored.Entries)
	for _, en := range e.pending {
		e.nextID = max(e.nextID, en.ID+1)
	}
	return e
}

// AddClient adds a client and registers its interests at once.
func (e *Engine) AddClient(ctx context.Context, c Client) error {
	e.mu.Lock()
	if _, ok := e.clients[c.Name()]; ok {
		e.mu.Unlock()
		return fmt.Errorf("%w: client %s is already there", ErrInvalid, c.Name())
	}
	ce := &clientEntry{c: c, regs: map[string]*reg{}}
	e.clients[c.Name()] = ce
	e.mu.Unlock()
	return e.register(ctx, ce)
}

// RemoveClient drops a client and its registrations. A client taking part
// in an operation in flight stays until that ends.
func (e *Engine) RemoveClient(name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ce := e.clients[name]
	if ce == nil {
		return fmt.Errorf("%w: no client %s", ErrNotFound, name)
	}
	if ce.busy > 0 {
		return fmt.Errorf("%w: client %s takes part in an operation in flight", ErrBusy, name)
	}
	e.setInterests(ce, nil)
	delete(e.clients, name)
	return nil
}

// Clients lists the clients in name order.
func (e *Engine) Clients() []ClientInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]ClientInfo, 0, len(e.clients))
	for _, ce := range e.clients {
		ci := ClientInfo{Name: ce.c.Name(), Registered: ce.registered}
		for _, in := range ce.interests {
			ci.Interests = append(ci.Interests, in.Name)
		}
		if ce.err != nil {
			ci.Error = ce.err.Error()
		}
		out = append(out, ci)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Refresh asks every client to register again now.
func (e *Engine) Refresh(ctx context.Context) {
	e.mu.Lock()
	var all []*clientEntry
	for _, ce := range e.clients {
		all = append(all, ce)
	}
	e.mu.Unlock()
	for _, ce := range all {
		e.register(ctx, ce)
	}
}

// Reregister asks one client to register again now.
func (e *Engine) Reregister(ctx context.Context, name string) error {
	e.mu.Lock()
	ce := e.clients[name]
	e.mu.Unlock()
	if ce == nil {
		return fmt.Errorf("%w: no client %s", ErrNotFound, name)
	}
	return e.register(ctx, ce)
}

// register asks ce for its names and replaces its registrations. A
// failing register keeps the previous set (and is shown in listings).
func (e *Engine) register(ctx context.Context, ce *clientEntry) error {
	ins, err := ce.c.Register(ctx)
	e.mu.Lock()
	defer e.mu.Unlock()
	ce.registered = e.opts.Now()
	if err != nil {
		ce.err = fmt.Errorf("register: %w", err)
		return ce.err
	}
	for _, in := range ins {
		if err := CheckName(in.Name); err != nil {
			ce.err = fmt.Errorf("register: %w", err)
			return ce.err
		}
	}
	ce.err = nil
	if ce.busy > 0 {
		return nil // never change the names of a client in the middle of an operation
	}
	e.setInterests(ce, ins)
	return nil
}

// setInterests replaces ce's registrations (e.mu held).
func (e *Engine) setInterests(ce *clientEntry, ins []Interest) {
	keep := map[string]Kind{}
	for _, in := range ins {
		if in.Name == "/" || in.Kind == 0 {
			continue // "/" never goes away
		}
		keep[in.Name] |= in.Kind
	}
	for name, r := range ce.regs {
		if k, ok := keep[name]; ok {
			r.kind = k
			continue
		}
		n := e.tree.find(r.at, false)
		if n != nil {
			n.regs = slices.DeleteFunc(n.regs, func(x *reg) bool { return x == r })
			n.prune()
		}
		delete(ce.regs, name)
	}
	for name, k := range keep {
		if ce.regs[name] != nil {
			continue
		}
		at := e.canonical(name)
		n := e.tree.find(at, true)
		r := &reg{c: ce, name: name, at: at, kind: k}
		// Keep the registrations of a name in client order, the order in
		// which they are asked.
		i := sort.Search(len(n.regs), func(i int) bool { return n.regs[i].c.c.Name() > ce.c.Name() })
		n.regs = slices.Insert(n.regs, i, r)
		ce.regs[name] = r
	}
	ce.interests = ce.interests[:0]
	for name, k := range keep {
		ce.interests = append(ce.interests, Interest{name, k})
	}
	sort.Slice(ce.interests, func(i, j int) bool { return ce.interests[i].Name < ce.interests[j].Name })
}

// resync asks clients whose registration is older than the resync
// interval to register again, before an operation looks at the tree.
func (e *Engine) resync(ctx context.Context) {
	now := e.opts.Now()
	e.mu.Lock()
	var stale []*clientEntry
	for _, ce := range e.clients {
		_, live := ce.c.(Live)
		if ce.busy == 0 && (live || now.Sub(ce.registered) >= e.opts.Resync) {
			stale = append(stale, ce)
		}
	}
	e.mu.Unlock()
	sort.Slice(stale, func(i, j int) bool { return stale[i].c.Name() < stale[j].c.Name() })
	for _, ce := range stale {
		e.register(ctx, ce)
	}
}

// canonical is the tree name of name: Canon's answer when it is a valid
// name, name itself otherwise.
func (e *Engine) canonical(name string) string {
	if c := e.opts.Canon(name); c != "" && CheckName(c) == nil {
		return c
	}
	return name
}

// canon maps names onto their tree names.
func (e *Engine) canon(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = e.canonical(n)
	}
	return out
}

// InFlight lists the operations in flight, oldest first.
func (e *Engine) InFlight() []Entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Entry, 0, len(e.ops)+len(e.pending))
	out = append(out, e.pending...)
	for _, op := range e.ops {
		out = append(out, op.entry)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// save persists the in-flight list (e.mu held). Only top-level operations
// that hold resources are kept: cascades are redone from their top.
func (e *Engine) save() error {
	if e.opts.Store == nil {
		return nil
	}
	snap := Snapshot{NextID: e.nextID}
	snap.Entries = append(snap.Entries, e.pending...)
	for _, op := range e.ops {
		snap.Entries = append(snap.Entries, op.entry)
	}
	sort.Slice(snap.Entries, func(i, j int) bool { return snap.Entries[i].ID < snap.Entries[j].ID })
	if err := e.opts.Store.Save(snap); err != nil {
		return fmt.Errorf("rcm: saving the in-flight list: %w", err)
	}
	return nil
}

// setState changes an operation's state and persists it.
func (e *Engine) setState(op *operation, s State) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	op.entry.State = s
	return e.save()
}

// begin locks names for a new top-level operation, or reports every
// operation in the way.
func (e *Engine) begin(entry Entry) (*operation, *Result, error) {
	for _, n := range entry.Resources {
		if err := CheckName(n); err != nil {
			return nil, nil, err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.pending) > 0 {
		return nil, nil, fmt.Errorf("%w: operations of the previous agent are still being recovered", ErrBusy)
	}
	if res, err := e.conflicts(nil, entry.Resources); err != nil {
		return nil, res, err
	}
	op := &operation{id: e.nextID, entry: entry, visited: map[visitKey]bool{}}
	e.nextID++
	op.entry.ID = op.id
	op.entry.Started = e.opts.Now()
	e.ops[op.id] = op
	for _, n := range entry.Resources {
		e.lockName(op, n, 0)
	}
	if err := e.save(); err != nil {
		e.releaseLocked(op)
		return nil, nil, err
	}
	return op, nil, nil
}

// conflicts checks names against the locks of other operations (e.mu
// held) and describes each one in the way.
func (e *Engine) conflicts(self *operation, names []string) (*Result, error) {
	var answers []Answer
	var first string
	for _, n := range names {
		for held, l := range e.locks {
			if l.op == self || !related(n, held) {
				continue
			}
			answers = append(answers, Answer{Resource: held, Client: "rcm", Info: "DR operation in progress",
				Error: "Resource is busy", State: l.op.entry.State, Seq: Seq(l.op.id<<8 | uint64(l.depth)).String()})
			if first == "" {
				first = fmt.Sprintf("%s: operation %d (%s of %s) holds %s", n, l.op.id, l.op.entry.Op,
					strings.Join(l.op.entry.Resources, ", "), held)
			}
		}
	}
	if answers == nil {
		return nil, nil
	}
	sort.Slice(answers, func(i, j int) bool { return answers[i].Resource < answers[j].Resource })
	answers = slices.CompactFunc(answers, func(a, b Answer) bool { return a.Resource == b.Resource })
	return &Result{Answers: answers}, fmt.Errorf("%w: %s", ErrBusy, first)
}

func (e *Engine) lockName(op *operation, n string, depth int) {
	if _, ok := e.locks[n]; !ok {
		e.locks[n] = &lock{op: op, depth: depth}
		op.names = append(op.names, n)
	}
}

// release drops every lock of op and forgets it.
func (e *Engine) release(op *operation) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.releaseLocked(op)
	return e.save()
}

func (e *Engine) releaseLocked(op *operation) {
	for _, n := range op.names {
		if l := e.locks[n]; l != nil && l.op == op {
			delete(e.locks, n)
		}
	}
	op.names = nil
	delete(e.ops, op.id)
}

// target is one client registration to call.
type target struct {
	name string // the registered name
	r    *reg
}

// targets lists the registrations a call on names reaches: the whole
// subtree, children first, for DR operations; the exact name for the
// others. It marks their clients busy so that a resync does not move
// names under the operation; done undoes that.
func (e *Engine) targets(names []string, kind Kind, subtree bool) []target {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []target
	seen := map[*reg]bool{}
	add := func(n *node) {
		for _, r := range n.regs {
			if r.kind&kind != 0 && !seen[r] {
				seen[r] = true
				out = append(out, target{r.name, r})
			}
		}
	}
	for _, name := range names {
		n := e.tree.find(name, false)
		if n == nil {
			continue // nobody registered: nothing to ask
		}
		if subtree {
			n.walk(add)
		} else {
			add(n)
		}
	}
	for _, t := range out {
		t.r.c.busy++
	}
	return out
}

func (e *Engine) done(ts []target) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range ts {
		t.r.c.busy--
	}
}

func (e *Engine) getState(r *reg) State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return r.state
}

func (e *Engine) putState(r *reg, s State) {
	e.mu.Lock()
	r.state = s
	e.mu.Unlock()
}

// ask calls one client and moves its state to ok or bad by the outcome,
// recording a refusal (with the client's usage, as the user needs to know
// what it is refusing for) or, with Scope, its usage.
func (e *Engine) ask(ctx context.Context, op *operation, depth int, t target, c Call, ok, bad State) error {
	c.Resource = t.name
	c.Handle = &Handle{e: e, op: op, depth: depth + 1}
	_, err := t.r.c.c.Call(ctx, c)
	state := ok
	if err != nil {
		state = bad
	}
	e.putState(t.r, state)
	if err == nil && c.Flags&Scope == 0 {
		return nil
	}
	a := Answer{Resource: t.name, Client: t.r.c.c.Name(), State: state, Seq: Seq(op.id<<8 | uint64(depth)).String()}
	if err != nil {
		a.Error = err.Error()
	}
	usage, ierr := t.r.c.c.Call(ctx, Call{Op: OpInfo, Resource: t.name, Handle: &Handle{e: e, op: op, depth: depth + 1, quiet: true}})
	if ierr == nil {
		a.Info = usage
	}
	op.add(a)
	return err
}

func (op *operation) add(a Answer) {
	op.mu.Lock()
	op.answers = append(op.answers, a)
	op.mu.Unlock()
}

func (op *operation) result() *Result {
	op.mu.Lock()
	defer op.mu.Unlock()
	// The initiator's own resources first, then what they cascaded into.
	answers := slices.Clone(op.answers)
	sort.SliceStable(answers, func(i, j int) bool { return depthOf(answers[i].Seq) < depthOf(answers[j].Seq) })
	return &Result{Seq: Seq(op.id << 8), ID: op.id, Answers: answers}
}

func (e *Engine) observe(op *operation, depth int, o Op, step string, names []string, flags Flags, err error) {
	p := Phase{ID: op.id, Depth: depth, Op: o, Step: step, Resources: names, Flags: flags, Err: err}
	if step == "refused" || step == "busy" {
		p.Answers = op.result().Answers
	}
	e.opts.Observer(p)
}

func depthOf(seq string) int {
	_, d, _ := strings.Cut(seq, ".")
	n, _ := strconv.Atoi(d)
	return n
}
