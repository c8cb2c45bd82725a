package dr

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/steady-ha/steady/internal/rcm"
)

// Options configures NewManager.
type Options struct {
	Engine  *rcm.Engine
	Drivers []Driver
	// Changed hears every state change of an AP (the EC_dr event).
	Changed func(ap AP, hint string)
	// Requested hears every operation as it starts, with the cfgadm
	// request type (dr_request_outgoing_resource when resources are to
	// go, dr_request_incoming_resource when they come): the ESC_dr_req
	// event.
	Requested func(ap AP, requestType string)
}

// Manager runs DR operations through the rcm engine.
type Manager struct {
	opts    Options
	drivers map[string]Driver
	mu      sync.Mutex
	busy    map[string]bool // APs with an operation in progress
}

// NewManager builds a manager.
func NewManager(opts Options) *Manager {
	if opts.Changed == nil {
		opts.Changed = func(AP, string) {}
	}
	if opts.Requested == nil {
		opts.Requested = func(AP, string) {}
	}
	m := &Manager{opts: opts, drivers: map[string]Driver{}, busy: map[string]bool{}}
	for _, d := range opts.Drivers {
		m.drivers[d.Class()] = d
	}
	return m
}

// List reads every AP of every driver, in class then id order.
func (m *Manager) List(ctx context.Context) ([]AP, error) {
	var out []AP
	var errs []error
	classes := make([]string, 0, len(m.drivers))
	for c := range m.drivers {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		aps, err := m.drivers[c].List(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.mu.Lock()
		for i := range aps {
			aps[i].Busy = aps[i].Busy || m.busy[aps[i].ID]
		}
		m.mu.Unlock()
		out = append(out, aps...)
	}
	return out, errors.Join(errs...)
}

// Get finds one AP by id.
func (m *Manager) Get(ctx context.Context, id string) (Driver, AP, error) {
	// Each driver knows its own ids and says ErrNotFound for the others.
	for _, d := range m.drivers {
		ap, err := d.Get(ctx, id)
		if err == nil {
			return d, ap, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, AP{}, err
		}
	}
	return nil, AP{}, fmt.Errorf("%w: %s", ErrNotFound, id)
}

// Request qualifies an operation.
type Request struct {
	Force  bool
	DryRun bool // the query phase only: what each client would say
}

// Outcome is what an operation did.
type Outcome struct {
	AP       AP           `json:"ap"`
	Function string       `json:"function"`
	Done     bool         `json:"done"`
	DryRun   bool         `json:"dry_run,omitempty"`
	Answers  []rcm.Answer `json:"answers,omitempty"`
	Restored string       `json:"restored,omitempty"` // what was given back after a failure
	Error    string       `json:"error,omitempty"`
}

func (m *Manager) claim(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy[id] {
		return fmt.Errorf("%w: attachment point %s is busy, try again", rcm.ErrBusy, id)
	}
	m.busy[id] = true
	return nil
}

func (m *Manager) free(id string) {
	m.mu.Lock()
	delete(m.busy, id)
	m.mu.Unlock()
}

// Unconfigure takes an AP away: capacity request (CPUs, memory), request
// offline of its resources, the driver step, notify remove, capacity
// notice. On a refusal nothing is changed; on a failing driver step the
// clients are told the resources are back and the AP is configured again.
func (m *Manager) Unconfigure(ctx context.Context, id string, req Request) (*Outcome, error) {
	d, ap, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if ap.Occupant != Configured {
		return &Outcome{AP: ap, Function: "unconfigure"}, fmt.Errorf("%w: %s is %s already", ErrState, id, ap.Occupant)
	}
	return m.takeAway(ctx, d, ap, req, "unconfigure", d.Unconfigure)
}

// Disconnect isolates an AP's receptacle (powers a slot off). A
// configured occupant is taken away first, through RCM as for an
// unconfigure: the power-off is the driver step.
func (m *Manager) Disconnect(ctx context.Context, id string, req Request) (*Outcome, error) {
	d, ap, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	c, ok := d.(Connector)
	if !ok {
		return &Outcome{AP: ap, Function: "disconnect"}, fmt.Errorf("%w: disconnect of %s (%s attachment points have no receptacle to isolate)", ErrNotSupported, id, d.Class())
	}
	if ap.Receptacle != Connected {
		return &Outcome{AP: ap, Function: "disconnect"}, fmt.Errorf("%w: %s is %s already", ErrState, id, ap.Receptacle)
	}
	if ap.Occupant == Configured {
		return m.takeAway(ctx, d, ap, req, "disconnect", c.Disconnect)
	}
	return m.change(ctx, d, ap, "disconnect", c.Disconnect)
}

// Connect powers an AP's receptacle (a slot) on.
func (m *Manager) Connect(ctx context.Context, id string, req Request) (*Outcome, error) {
	d, ap, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	c, ok := d.(Connector)
	if !ok {
		return &Outcome{AP: ap, Function: "connect"}, fmt.Errorf("%w: connect of %s (%s attachment points have no receptacle to power)", ErrNotSupported, id, d.Class())
	}
	if ap.Receptacle == Connected {
		return &Outcome{AP: ap, Function: "connect"}, fmt.Errorf("%w: %s is connected already", ErrState, id)
	}
	if !req.Force && ap.Condition != CondOK && ap.Condition != CondUnknown {
		return &Outcome{AP: ap, Function: "connect"}, fmt.Errorf("%w: %s: condition %s does not allow connect (force to try)", ErrState, id, ap.Condition)
	}
	return m.change(ctx, d, ap, "connect", c.Connect)
}

// Test re-evaluates an AP's condition.
func (m *Manager) Test(ctx context.Context, id string) (*Outcome, error) {
	d, ap, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	out := &Outcome{AP: ap, Function: "test", Done: true}
	if t, ok := d.(Tester); ok {
		cond, err := t.Test(ctx, ap)
		if err != nil {
			out.Done, out.Error = false, err.Error()
			return out, fmt.Errorf("%s: %w", id, err)
		}
		out.AP.Condition = cond
	}
	return out, nil
}

// change runs a step that adds (or takes away nothing in use), then tells
// the users what came back.
func (m *Manager) change(ctx context.Context, d Driver, ap AP, function string, step func(context.Context, AP) error) (*Outcome, error) {
	out := &Outcome{AP: ap, Function: function}
	if err := m.claim(ap.ID); err != nil {
		return out, err
	}
	defer m.free(ap.ID)
	m.opts.Requested(ap, "dr_request_incoming_resource")
	if err := step(ctx, ap); err != nil {
		out.Error = err.Error()
		return out, fmt.Errorf("%s: %w", ap.ID, err)
	}
	m.opts.Engine.Refresh(ctx)
	out.Done = true
	if now, err := d.Get(ctx, ap.ID); err == nil {
		out.AP = now
	}
	m.opts.Changed(out.AP, hintOf(function))
	return out, nil
}

// hintOf is the dr_hint of a finished function.
func hintOf(function string) string {
	switch function {
	case "configure", "connect":
		return "dr_insert"
	case "unconfigure", "disconnect":
		return "dr_remove"
	}
	return ""
}

// takeAway runs an operation that takes an AP's resources away: RCM
// first, step as the point of no return, then the notices.
func (m *Manager) takeAway(ctx context.Context, d Driver, ap AP, req Request, function string, step func(context.Context, AP) error) (*Outcome, error) {
	id := ap.ID
	out := &Outcome{AP: ap, Function: function, DryRun: req.DryRun}
	var err error
	if ap.Fixed != "" && !req.DryRun {
		return out, fmt.Errorf("%w: %s: %s", ErrState, id, ap.Fixed)
	}
	if err := m.claim(id); err != nil {
		return out, err
	}
	defer m.free(id)
	if !req.DryRun {
		m.opts.Requested(ap, "dr_request_outgoing_resource")
	}
	flags := rcm.Flags(0)
	if req.Force {
		flags |= rcm.Force
	}
	if req.DryRun {
		flags |= rcm.Query | rcm.Scope
	}
	eng := m.opts.Engine
	// Capacity first, as Solaris's sbd does: the pools learn before the
	// CPU goes.
	capName, change := "", rcm.Capacity{}
	if cd, ok := d.(CapacityDriver); ok {
		if capName, change, err = cd.Capacity(ctx, ap, false); err != nil {
			return out, err
		}
		res, err := eng.RequestCapacity(ctx, capName, change, flags&^rcm.Scope)
		if res != nil {
			out.Answers = append(out.Answers, res.Answers...)
		}
		if err != nil {
			out.Error = err.Error()
			return out, err
		}
	}
	undoCapacity := func() {
		if capName != "" && !req.DryRun {
			back := rcm.Capacity{OldTotal: change.NewTotal, NewTotal: change.OldTotal, OldCPUs: change.NewCPUs, NewCPUs: change.OldCPUs, PageSize: change.PageSize}
			eng.NotifyCapacity(ctx, capName, back)
		}
	}
	res, err := eng.RequestOffline(ctx, ap.Resources, flags, "dr "+id)
	if res != nil {
		out.Answers = append(out.Answers, res.Answers...)
	}
	if err != nil {
		undoCapacity()
		out.Error = err.Error()
		return out, err
	}
	if req.DryRun {
		return out, nil
	}
	if err := eng.MarkRemoving(res.ID); err != nil {
		eng.NotifyOnline(ctx, res.ID)
		undoCapacity()
		return out, err
	}
	if err := step(ctx, ap); err != nil {
		// The point of no return was not passed: give everything back.
		eng.NotifyOnline(ctx, res.ID)
		undoCapacity()
		out.Restored = "the users of " + strings.Join(ap.Resources, ", ") + " were told the resources are back"
		if now, gerr := d.Get(ctx, id); gerr == nil && now.Occupant != Configured {
			if cerr := d.Configure(ctx, now); cerr == nil {
				out.Restored += "; " + id + " was configured again"
			}
		}
		out.Error = err.Error()
		return out, fmt.Errorf("%s: %w", id, err)
	}
	if rres, err := eng.NotifyRemove(ctx, res.ID); err == nil && rres != nil {
		out.Answers = append(out.Answers, rres.Answers...)
	}
	if capName != "" {
		eng.NotifyCapacity(ctx, capName, change)
	}
	out.Done = true
	if now, err := d.Get(ctx, id); err == nil {
		out.AP = now
	}
	m.opts.Changed(out.AP, hintOf(function))
	return out, nil
}

// Configure gives an AP back and tells the users: notify online of its
// resources (nothing to ask: something is added), capacity notice.
func (m *Manager) Configure(ctx context.Context, id string, req Request) (*Outcome, error) {
	d, ap, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	out := &Outcome{AP: ap, Function: "configure"}
	if ap.Occupant == Configured {
		return out, fmt.Errorf("%w: %s is configured already", ErrState, id)
	}
	if !req.Force && ap.Condition != CondOK && ap.Condition != CondUnknown {
		return out, fmt.Errorf("%w: %s: condition %s does not allow configure (force to try)", ErrState, id, ap.Condition)
	}
	capName, change := "", rcm.Capacity{}
	if cd, ok := d.(CapacityDriver); ok {
		capName, change, _ = cd.Capacity(ctx, ap, true)
	}
	out, err = m.change(ctx, d, ap, "configure", d.Configure)
	if err == nil && capName != "" {
		m.opts.Engine.NotifyCapacity(ctx, capName, change)
	}
	return out, err
}
