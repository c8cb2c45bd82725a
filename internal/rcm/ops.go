package rcm

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// phases names the states one kind of two-phase request goes through.
type phases struct {
	op                                                 Op
	querying, queried, queryFail, doing, done, failing State
}

var (
	offlinePhases = phases{OpOffline, StateOfflineQuerying, StateOfflineQuery, StateOfflineQueryFail,
		StateOfflining, StateOffline, StateOfflineFail}
	suspendPhases = phases{OpSuspend, StateSuspendQuerying, StateSuspendQuery, StateSuspendQueryFail,
		StateSuspending, StateSuspended, StateSuspendFail}
)

// maxDepth bounds cascades (the depth is 8 bits of the sequence number).
const maxDepth = 255

// RequestOffline asks the clients of names and everything below them to
// let go. First every client is queried and every refusal collected; if
// all agree and flags has no Query, the real pass follows, stopping at
// the first resource one of whose clients fails (after asking all of that
// resource's clients), and undoing what was done. On success the names
// stay locked until NotifyOnline or NotifyRemove with the result's ID.
func (e *Engine) RequestOffline(ctx context.Context, names []string, flags Flags, initiator string) (*Result, error) {
	return e.request(ctx, offlinePhases, names, flags, 0, initiator)
}

// RequestSuspend is RequestOffline for a suspension of interval; it ends
// with NotifyResume.
func (e *Engine) RequestSuspend(ctx context.Context, names []string, interval time.Duration, flags Flags, initiator string) (*Result, error) {
	return e.request(ctx, suspendPhases, names, flags, interval, initiator)
}

func (e *Engine) request(ctx context.Context, ph phases, names []string, flags Flags, interval time.Duration, initiator string) (*Result, error) {
	if flags&^(Query|Force|Scope) != 0 {
		return nil, fmt.Errorf("%w: flags %s are not for a request", ErrInvalid, flags&^(Query|Force|Scope))
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no resource named", ErrInvalid)
	}
	names = e.canon(names)
	e.resync(ctx)
	op, busy, err := e.begin(Entry{Op: ph.op, Resources: names, Flags: flags, State: ph.querying, Interval: interval, Initiator: initiator})
	if err != nil {
		if busy != nil {
			e.opts.Observer(Phase{Op: ph.op, Step: "busy", Resources: names, Flags: flags, Err: err, Answers: busy.Answers})
		}
		return busy, err
	}
	call := Call{Op: ph.op, Flags: flags | Query, Interval: interval}
	qerr := e.pass(ctx, op, 0, names, ph, call, true)
	e.observe(op, 0, ph.op, "query", names, flags, qerr)
	if qerr != nil || flags&Query != 0 {
		// Cancel: the clients are not called, only their states reset.
		e.reset(op)
		res := op.result()
		if err := e.release(op); err != nil {
			return res, err
		}
		if qerr != nil {
			e.observe(op, 0, ph.op, "refused", names, flags, qerr)
			return res, qerr
		}
		return res, nil
	}
	if err := e.setState(op, ph.doing); err != nil {
		e.undo(ctx, op, ph)
		return op.result(), err
	}
	call.Flags = flags
	rerr := e.pass(ctx, op, 0, names, ph, call, false)
	e.observe(op, 0, ph.op, "request", names, flags, rerr)
	if rerr != nil {
		// The clients that had let go take it back: nothing stays half done.
		e.undo(ctx, op, ph)
		e.observe(op, 0, ph.op, "refused", names, flags, rerr)
		return op.result(), rerr
	}
	if err := e.setState(op, ph.done); err != nil {
		e.undo(ctx, op, ph)
		return op.result(), err
	}
	return op.result(), nil
}

// pass asks every DR client of the subtrees of names; see RequestOffline
// for when it stops. It returns ErrRefused naming the refusals.
func (e *Engine) pass(ctx context.Context, op *operation, depth int, names []string, ph phases, call Call, query bool) error {
	ts := e.targets(names, KindDR, true)
	defer e.done(ts)
	var refusals []string
	for i, t := range ts {
		if i > 0 && !query && len(refusals) > 0 && ts[i-1].r.at != t.r.at {
			break // the real pass stops after the first resource that failed
		}
		from, ok, bad := ph.querying, ph.queried, ph.queryFail
		if !query {
			from, ok, bad = ph.doing, ph.done, ph.failing
		}
		if !op.first(call, t) {
			continue
		}
		op.touch(t.r)
		e.putState(t.r, from)
		if err := e.ask(ctx, op, depth, t, call, ok, bad); err != nil {
			refusals = append(refusals, fmt.Sprintf("%s (%s): %v", t.name, t.r.c.c.Name(), err))
		}
	}
	return refusedErr(refusals)
}

func refusedErr(refusals []string) error {
	switch len(refusals) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%w: %s", ErrRefused, refusals[0])
	}
	return fmt.Errorf("%w: %s (and %d more)", ErrRefused, refusals[0], len(refusals)-1)
}

// first reports whether this call to t is the first of its kind in the
// operation, which breaks cycles in cascades and asks each client once.
type visitKey struct {
	op    Op
	query bool
	r     *reg
}

func (op *operation) first(c Call, t target) bool {
	key := visitKey{c.Op, c.Flags&Query != 0, t.r}
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.visited[key] {
		return false
	}
	op.visited[key] = true
	return true
}

func (op *operation) touch(r *reg) {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.touchedSet == nil {
		op.touchedSet = map[*reg]bool{}
	}
	if !op.touchedSet[r] {
		op.touchedSet[r] = true
		op.touched = append(op.touched, r)
	}
}

func (op *operation) touchedRegs() []*reg {
	op.mu.Lock()
	defer op.mu.Unlock()
	return append([]*reg(nil), op.touched...)
}

// reset puts every client the operation touched back to online without
// calling it (the cancel of a query).
func (e *Engine) reset(op *operation) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range op.touchedRegs() {
		r.state = StateOnline
	}
}

// undo tells every client that let go (or failed to) that the resources
// are back, then releases the operation.
func (e *Engine) undo(ctx context.Context, op *operation, ph phases) {
	back := OpOnline
	if ph.op == OpSuspend {
		back = OpResume
	}
	if back == OpResume {
		e.setState(op, StateResuming)
	} else {
		e.setState(op, StateOnlining)
	}
	e.notify(ctx, op, back, op.entry.Resources)
	e.release(op)
	e.observe(op, 0, back, "undo", op.entry.Resources, 0, nil)
}

// notify delivers online, resume or remove: through the top-level names
// first (clients cascade onto what they export), then directly to any
// client the operation touched that is still not back, so that nothing
// stays offline because a client did not cascade.
func (e *Engine) notify(ctx context.Context, op *operation, o Op, names []string) {
	e.notifyNames(ctx, op, 0, o, names)
	for _, r := range op.touchedRegs() {
		if !needsNotice(o, e.getState(r)) {
			continue
		}
		e.notifyOne(ctx, op, 1, o, target{r.name, r})
	}
}

func needsNotice(o Op, s State) bool {
	if o == OpRemove {
		return s != StateRemoved
	}
	return s != StateOnline
}

func (e *Engine) notifyNames(ctx context.Context, op *operation, depth int, o Op, names []string) {
	ts := e.targets(names, KindDR, true)
	defer e.done(ts)
	for _, t := range ts {
		if o == OpRemove || op.recovering || e.getState(t.r) != StateOnline {
			e.notifyOne(ctx, op, depth, o, t)
		}
	}
}

func (e *Engine) notifyOne(ctx context.Context, op *operation, depth int, o Op, t target) {
	s := e.getState(t.r)
	c := Call{Op: o, Suspended: s == StateSuspended || s == StateResuming || (op.recovering && op.suspended)}
	if !op.first(c, t) {
		return
	}
	op.touch(t.r)
	if o == OpRemove {
		e.putState(t.r, StateRemoving)
	} else if o == OpResume {
		e.putState(t.r, StateResuming)
	} else {
		e.putState(t.r, StateOnlining)
	}
	// A notice cannot be refused; a failure is reported, and the state
	// moves on all the same.
	end := StateOnline
	if o == OpRemove {
		end = StateRemoved
	}
	e.ask(ctx, op, depth, t, c, end, end)
}

// NotifyOnline ends an offline (or the cancel of a suspend, with resume
// semantics) by telling the clients the resources are usable again.
func (e *Engine) NotifyOnline(ctx context.Context, id uint64) (*Result, error) {
	op, err := e.lookup(id, OpOffline, StateOffline, StateOfflineFail, StateRemoving)
	if err != nil {
		return nil, err
	}
	e.undo(ctx, op, offlinePhases)
	return op.result(), nil
}

// NotifyResume ends a suspend.
func (e *Engine) NotifyResume(ctx context.Context, id uint64) (*Result, error) {
	op, err := e.lookup(id, OpSuspend, StateSuspended, StateSuspendFail)
	if err != nil {
		return nil, err
	}
	e.undo(ctx, op, suspendPhases)
	return op.result(), nil
}

// MarkRemoving records that the irrevocable step (the driver's) begins:
// after a crash from here on, Recover asks whether it happened instead of
// assuming the resources are still there.
func (e *Engine) MarkRemoving(id uint64) error {
	op, err := e.lookup(id, OpOffline, StateOffline)
	if err != nil {
		return err
	}
	return e.setState(op, StateRemoving)
}

// NotifyRemove tells the clients the resources are gone and ends the
// operation. The clients are asked to register again before the next
// operation, so they drop the names.
func (e *Engine) NotifyRemove(ctx context.Context, id uint64) (*Result, error) {
	op, err := e.lookup(id, OpOffline, StateOffline, StateOfflineFail, StateRemoving)
	if err != nil {
		return nil, err
	}
	if err := e.setState(op, StateRemoving); err != nil {
		return nil, err
	}
	e.observe(op, 0, OpRemove, "notify", op.entry.Resources, 0, nil)
	e.notify(ctx, op, OpRemove, op.entry.Resources)
	e.mu.Lock()
	for _, r := range op.touchedRegs() {
		r.state = StateOnline
		r.c.registered = time.Time{}
	}
	e.mu.Unlock()
	return op.result(), e.release(op)
}

func (e *Engine) lookup(id uint64, o Op, states ...State) (*operation, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	op := e.ops[id]
	if op == nil || op.entry.Op != o {
		return nil, fmt.Errorf("%w: no %s operation %d in flight", ErrNotFound, o, id)
	}
	for _, s := range states {
		if op.entry.State == s {
			return op, nil
		}
	}
	return nil, fmt.Errorf("%w: operation %d is %s", ErrInvalid, id, op.entry.State)
}

// RequestCapacity asks the capacity clients of name (exactly) whether the
// capacity may change, then tells them it will. Capacity requests hold no
// lock: the CPU or memory DR that follows takes its own.
func (e *Engine) RequestCapacity(ctx context.Context, name string, change Capacity, flags Flags) (*Result, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if flags&^(Query|Force|Scope) != 0 {
		return nil, fmt.Errorf("%w: flags %s are not for a request", ErrInvalid, flags&^(Query|Force|Scope))
	}
	e.resync(ctx)
	op := e.transient(OpCapacity, name)
	for _, query := range []bool{true, false} {
		if !query && flags&Query != 0 {
			break
		}
		f := flags | Query
		if !query {
			f = flags
		}
		err := e.simple(ctx, op, OpCapacity, name, KindCapacity, Call{Op: OpCapacity, Flags: f, Capacity: &change})
		step := "query"
		if !query {
			step = "request"
		}
		e.observe(op, 0, OpCapacity, step, []string{name}, flags, err)
		if err != nil {
			e.observe(op, 0, OpCapacity, "refused", []string{name}, flags, err)
			return op.result(), err
		}
	}
	return op.result(), nil
}

// NotifyCapacity tells the capacity clients of name that it changed (or,
// after a failed change, that it is back to the old value).
func (e *Engine) NotifyCapacity(ctx context.Context, name string, change Capacity) (*Result, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	op := e.transient(OpCapacityDone, name)
	err := e.simple(ctx, op, OpCapacityDone, name, KindCapacity, Call{Op: OpCapacityDone, Capacity: &change})
	e.observe(op, 0, OpCapacityDone, "notify", []string{name}, 0, err)
	return op.result(), nil
}

// NotifyEvent delivers an event to the event clients of name (exactly).
func (e *Engine) NotifyEvent(ctx context.Context, name string, attrs map[string]string) (*Result, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	op := e.transient(OpEvent, name)
	err := e.simple(ctx, op, OpEvent, name, KindEvent, Call{Op: OpEvent, Event: attrs})
	e.observe(op, 0, OpEvent, "notify", []string{name}, 0, err)
	return op.result(), nil
}

// transient numbers an operation that holds no lock and is not persisted.
func (e *Engine) transient(o Op, name string) *operation {
	e.mu.Lock()
	defer e.mu.Unlock()
	op := &operation{id: e.nextID, entry: Entry{Op: o, Resources: []string{name}}, visited: map[visitKey]bool{}}
	op.entry.ID = op.id
	e.nextID++
	return op
}

// simple calls the clients of exactly name.
func (e *Engine) simple(ctx context.Context, op *operation, o Op, name string, kind Kind, call Call) error {
	ts := e.targets([]string{name}, kind, false)
	defer e.done(ts)
	var refusals []string
	for _, t := range ts {
		if !op.first(call, t) {
			continue
		}
		if err := e.ask(ctx, op, 0, t, call, StateOnline, StateOnline); err != nil {
			refusals = append(refusals, fmt.Sprintf("%s (%s): %v", t.name, t.r.c.c.Name(), err))
		}
	}
	return refusedErr(refusals)
}

// Info asks the clients of names and everything below them how they use
// them. With Dependents, clients follow what they export.
func (e *Engine) Info(ctx context.Context, names []string, flags Flags) (*Result, error) {
	for _, n := range names {
		if err := CheckName(n); err != nil {
			return nil, err
		}
	}
	names = e.canon(names)
	e.resync(ctx)
	op := e.transient(OpInfo, "")
	op.entry.Flags = flags
	e.info(ctx, op, 0, names)
	return op.result(), nil
}

func (e *Engine) info(ctx context.Context, op *operation, depth int, names []string) {
	ts := e.targets(names, KindDR, true)
	defer e.done(ts)
	for _, t := range ts {
		c := Call{Op: OpInfo, Flags: op.entry.Flags & Dependents}
		if !op.first(c, t) {
			continue
		}
		c.Resource = t.name
		c.Handle = &Handle{e: e, op: op, depth: depth + 1, quiet: op.entry.Flags&Dependents == 0}
		usage, err := t.r.c.c.Call(ctx, c)
		a := Answer{Resource: t.name, Client: t.r.c.c.Name(), Info: usage, State: e.getState(t.r), Seq: Seq(op.id<<8 | uint64(depth)).String()}
		if err != nil {
			a.Error = err.Error()
		}
		op.add(a)
	}
}

// Handle lets a client cascade an operation onto the names it exports.
// The nested calls belong to the caller's operation: they take its locks,
// their answers join its result, and they cannot conflict with it.
type Handle struct {
	e     *Engine
	op    *operation
	depth int
	quiet bool // an info call made only to describe a refusal: no cascades
}

// ID is the operation's number; Depth the cascade depth of this call.
func (h *Handle) ID() uint64 { return h.op.id }

// Depth is how deep in the cascade the calls made through h are.
func (h *Handle) Depth() int { return h.depth }

func (h *Handle) check(names []string) ([]string, error) {
	if h.depth > maxDepth {
		return nil, fmt.Errorf("%w: cascade deeper than %d", ErrInvalid, maxDepth)
	}
	for _, n := range names {
		if err := CheckName(n); err != nil {
			return nil, err
		}
	}
	return h.e.canon(names), nil
}

// lock takes names for the operation, or reports the operations in the way.
func (h *Handle) lock(names []string) error {
	e := h.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if res, err := e.conflicts(h.op, names); err != nil {
		for _, a := range res.Answers {
			h.op.add(a)
		}
		return err
	}
	for _, n := range names {
		e.lockName(h.op, n, h.depth)
	}
	return nil
}

// Offline cascades a request offline (a query if flags has Query: the
// nested call does one pass, the caller's phase). Refusals join the
// caller's answer; the error says the dependents refused.
func (h *Handle) Offline(ctx context.Context, names []string, flags Flags) error {
	return h.request(ctx, offlinePhases, names, flags, 0)
}

// Suspend cascades a request to suspend.
func (h *Handle) Suspend(ctx context.Context, names []string, interval time.Duration, flags Flags) error {
	return h.request(ctx, suspendPhases, names, flags, interval)
}

func (h *Handle) request(ctx context.Context, ph phases, names []string, flags Flags, interval time.Duration) error {
	names, err := h.check(names)
	if err != nil {
		return err
	}
	if err := h.lock(names); err != nil {
		return err
	}
	query := flags&Query != 0
	err = h.e.pass(ctx, h.op, h.depth, names, ph, Call{Op: ph.op, Flags: flags &^ Dependents, Interval: interval}, query)
	h.e.observe(h.op, h.depth, ph.op, map[bool]string{true: "query", false: "request"}[query], names, flags, err)
	return err
}

// Online cascades a notice that names are usable again.
func (h *Handle) Online(ctx context.Context, names []string) error {
	return h.notice(ctx, OpOnline, names)
}

// Resume cascades the end of a suspend.
func (h *Handle) Resume(ctx context.Context, names []string) error {
	return h.notice(ctx, OpResume, names)
}

// Remove cascades a notice that names are gone.
func (h *Handle) Remove(ctx context.Context, names []string) error {
	return h.notice(ctx, OpRemove, names)
}

func (h *Handle) notice(ctx context.Context, o Op, names []string) error {
	names, err := h.check(names)
	if err != nil {
		return err
	}
	h.e.notifyNames(ctx, h.op, h.depth, o, names)
	h.e.observe(h.op, h.depth, o, "notify", names, 0, nil)
	return nil
}

// Info cascades a question about usage (only when the caller asked for
// dependents; otherwise it does nothing).
func (h *Handle) Info(ctx context.Context, names []string) error {
	if h.quiet {
		return nil
	}
	names, err := h.check(names)
	if err != nil {
		return err
	}
	h.e.info(ctx, h.op, h.depth, names)
	return nil
}

// Recover settles the operations a previous agent left in flight, as
// Solaris RCM does for an initiator that died: a request still in a query
// or offline state is undone (online), a suspend is resumed, and an
// offline that had begun its irrevocable step is finished (remove) when
// removed says the step happened, undone otherwise. Every client of the
// resources is told, as nobody knows which ones had let go.
func (e *Engine) Recover(ctx context.Context, removed func(Entry) bool) error {
	e.mu.Lock()
	pending := e.pending
	e.pending = nil
	var ops []*operation
	for _, en := range pending {
		op := &operation{id: en.ID, entry: en, visited: map[visitKey]bool{}, recovering: true}
		e.ops[op.id] = op
		for _, n := range en.Resources {
			e.lockName(op, n, 0)
		}
		ops = append(ops, op)
	}
	e.mu.Unlock()
	var errs []error
	for _, op := range ops {
		en := op.entry
		ph := offlinePhases
		if en.Op == OpSuspend {
			ph = suspendPhases
		}
		finish := en.Op == OpOffline && en.State == StateRemoving && removed != nil && removed(en)
		// Mark every client of the resources as having let go, so that
		// the notice reaches each of them.
		ts := e.targets(en.Resources, KindDR, true)
		for _, t := range ts {
			switch {
			case ph.op == OpSuspend && en.State >= StateSuspendQuerying && en.State <= StateSuspendQueryFail:
				e.putState(t.r, StateSuspendQuery) // never suspended: a cancel
			case ph.op == OpSuspend:
				e.putState(t.r, StateSuspended)
				op.suspended = true
			default:
				e.putState(t.r, StateOffline)
			}
			op.touch(t.r)
		}
		e.done(ts)
		if finish {
			e.observe(op, 0, OpRemove, "recover", en.Resources, 0, nil)
			if _, err := e.NotifyRemove(ctx, op.id); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		back := OpOnline
		if ph.op == OpSuspend {
			back = OpResume
		}
		e.observe(op, 0, back, "recover", en.Resources, 0, nil)
		e.undo(ctx, op, ph)
	}
	return errors.Join(errs...)
}
