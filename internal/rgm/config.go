package rgm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/atomicfile"
	"github.com/steady-ha/steady/internal/rgm/machine"
	"github.com/steady-ha/steady/internal/rgm/method"
	"github.com/steady-ha/steady/internal/rgm/model"
	"github.com/steady-ha/steady/internal/rgm/ocf"
	"github.com/steady-ha/steady/internal/rgm/rtr"
	"github.com/steady-ha/steady/internal/store"
)

// change applies edit to a copy of the configuration, validates the whole,
// commits it in one store transaction and hands it to the loop. edit
// returns the store operations (and conditions) of its change.
func (m *Manager) change(ctx context.Context, edit func(cfg *model.Config) ([]store.Op, []store.Cond, error)) error {
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	cfg := m.current.Clone()
	ops, conds, err := edit(cfg)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if m.opts.Store != nil && len(ops) > 0 {
		res, err := m.opts.Store.Txn(ctx, conds, ops, nil)
		if err != nil {
			return err
		}
		if !res.Succeeded {
			return fmt.Errorf("%w: the configuration changed meanwhile; try again", ErrExists)
		}
	}
	m.current = cfg
	m.setConfig(cfg)
	return nil
}

func put(key string, schema int, v any) ([]store.Op, error) {
	op, err := store.OpPut(key, schema, v)
	if err != nil {
		return nil, err
	}
	return []store.Op{op}, nil
}

func del(key string) []store.Op {
	op, _ := store.OpDelete(key)
	return []store.Op{op}
}

// Config returns the committed configuration (do not change it).
func (m *Manager) Config() *model.Config {
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	return m.current
}

// RegisterRTR registers the resource type an RTR file describes.
func (m *Manager) RegisterRTR(ctx context.Context, file string, src []byte) (*model.ResourceType, error) {
	t, err := parseRTR(file, src)
	if err != nil {
		return nil, err
	}
	return t, m.registerType(ctx, t)
}

// parseRTR compiles an RTR file into a type; an absolute file name is
// kept, so that "steady config export" can name it.
func parseRTR(file string, src []byte) (*model.ResourceType, error) {
	f, err := rtr.Parse(file, src)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", model.ErrInvalid, err)
	}
	t, err := model.FromRTR(file, f)
	if err != nil {
		return nil, err
	}
	if filepath.IsAbs(file) {
		t.File = file
	}
	return t, nil
}

// RegisterOCF registers an OCF agent (ocf:PROVIDER:AGENT) as a type.
func (m *Manager) RegisterOCF(ctx context.Context, name string) (*model.ResourceType, error) {
	t, err := m.readOCF(ctx, name)
	if err != nil {
		return nil, err
	}
	return t, m.registerType(ctx, t)
}

// readOCF makes a type of an OCF agent from its meta-data.
func (m *Manager) readOCF(ctx context.Context, name string) (*model.ResourceType, error) {
	root := m.opts.OCFRoot
	if root == "" {
		root = ocf.DefaultRoot
	}
	meta, path, err := ocf.ReadMetadata(ctx, m.opts.Spawner, root, name)
	if err != nil {
		if errors.Is(err, ocf.ErrNotFound) {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, fmt.Errorf("%w: %w", model.ErrInvalid, err)
	}
	return model.FromOCF(name, path, meta)
}

func (m *Manager) registerType(ctx context.Context, t *model.ResourceType) error {
	return m.change(ctx, func(cfg *model.Config) ([]store.Op, []store.Cond, error) {
		if _, exists := cfg.Types[t.Name]; exists {
			return nil, nil, fmt.Errorf("%w: resource type %s is already registered (unregister it first)", ErrExists, t.Name)
		}
		cfg.Types[t.Name] = t
		ops, err := put(typesPrefix+t.Name, typeSchema, t)
		return ops, []store.Cond{store.Missing(typesPrefix + t.Name)}, err
	})
}

// UnregisterType removes a type no resource uses.
func (m *Manager) UnregisterType(ctx context.Context, name string) error {
	return m.change(ctx, func(cfg *model.Config) ([]store.Op, []store.Cond, error) {
		t, err := resolveType(cfg, name)
		if err != nil {
			return nil, nil, err
		}
		name = t.Name
		if t.Source == model.SourceBuiltin {
			return nil, nil, fmt.Errorf("%w: %s is built in", ErrState, name)
		}
		for _, r := range cfg.Resources {
			if r.Type == name {
				return nil, nil, fmt.Errorf("%w: resource %s is of type %s; delete it first", ErrState, r.Name, name)
			}
		}
		delete(cfg.Types, name)
		return del(typesPrefix + name), nil, nil
	})
}

// values turns text property values into lists, splitting STRINGARRAY
// values at commas (the schema says which are arrays).
func values(schema model.Schema, props map[string]string) model.Values {
	out := model.Values{}
	for k, v := range props {
		if p, ok := schema.Lookup(k); ok && p.Type == model.TypeStringArray {
			out[k] = model.SplitArray(v)
		} else {
			out[k] = []string{v}
		}
	}
	return out
}

// CreateGroup creates a managed, offline group.
func (m *Manager) CreateGroup(ctx context.Context, name string, props map[string]string) error {
	if !model.ValidName(name) {
		return fmt.Errorf("%w: %q is not a valid group name (a letter, then letters, digits, _ . -, at most 64)", model.ErrInvalid, name)
	}
	vals, err := model.GroupSchema.Check(values(model.GroupSchema, props), true)
	if err != nil {
		return err
	}
	return m.change(ctx, func(cfg *model.Config) ([]store.Op, []store.Cond, error) {
		if _, exists := cfg.Groups[name]; exists {
			return nil, nil, fmt.Errorf("%w: group %s", ErrExists, name)
		}
		g := &model.Group{Name: name, Props: vals, Managed: true, Created: time.Now().UTC()}
		cfg.Groups[name] = g
		ops, err := put(groupsPrefix+name, groupSchema, g)
		return ops, []store.Cond{store.Missing(groupsPrefix + name)}, err
	})
}

// editGroup changes one group.
func (m *Manager) editGroup(ctx context.Context, name string, edit func(g *model.Group) error) error {
	return m.change(ctx, func(cfg *model.Config) ([]store.Op, []store.Cond, error) {
		old, ok := cfg.Groups[name]
		if !ok {
			return nil, nil, fmt.Errorf("%w: group %s", ErrNotFound, name)
		}
		g := *old
		g.Props = model.Values{}
		for k, v := range old.Props {
			g.Props[k] = v
		}
		if err := edit(&g); err != nil {
			return nil, nil, err
		}
		cfg.Groups[name] = &g
		ops, err := put(groupsPrefix+name, groupSchema, &g)
		return ops, nil, err
	})
}

// SetGroup changes group properties.
func (m *Manager) SetGroup(ctx context.Context, name string, props map[string]string) error {
	vals, err := model.GroupSchema.Check(values(model.GroupSchema, props), false)
	if err != nil {
		return err
	}
	return m.editGroup(ctx, name, func(g *model.Group) error {
		for k, v := range vals {
			g.Props[k] = v
		}
		return nil
	})
}

// DeleteGroup deletes an empty, offline group.
func (m *Manager) DeleteGroup(ctx context.Context, name string) error {
	if info, ok := m.groupInfo(ctx, name); ok && info.State != machine.GroupOffline && info.State != machine.GroupUnmanaged {
		return fmt.Errorf("%w: group %s is %s; take it offline first", ErrState, name, info.State)
	}
	return m.change(ctx, func(cfg *model.Config) ([]store.Op, []store.Cond, error) {
		if _, ok := cfg.Groups[name]; !ok {
			return nil, nil, fmt.Errorf("%w: group %s", ErrNotFound, name)
		}
		if res := cfg.GroupResources(name); len(res) > 0 {
			return nil, nil, fmt.Errorf("%w: group %s still has resources (%s); delete them first", ErrState, name, res[0].Name)
		}
		delete(cfg.Groups, name)
		return del(groupsPrefix + name), nil, nil
	})
}

// Group actions.
const (
	ActOnline   = "online"
	ActOffline  = "offline"
	ActRestart  = "restart"
	ActManage   = "manage"
	ActUnmanage = "unmanage"
	ActSuspend  = "suspend"
	ActResume   = "resume"
)

// GroupAction carries out an administrative verb on a group.
func (m *Manager) GroupAction(ctx context.Context, name, action string) error {
	info, ok := m.groupInfo(ctx, name)
	if !ok {
		return fmt.Errorf("%w: group %s", ErrNotFound, name)
	}
	switch action {
	case ActOnline:
		if m.cl != nil {
			if g, err := m.Group(ctx, name); err == nil && len(g.Primaries) > 0 && g.Online {
				// Online somewhere: try again what failed, where it runs.
				if info.Assigned {
					return m.do(ctx, func() { m.apply(m.mach.Retry(name, m.opts.Now())) })
				}
				return nil
			}
			return m.editGroup(ctx, name, func(g *model.Group) error { g.Online, g.Managed = true, true; return nil })
		}
		if info.Assigned {
			// Already online here: try again what failed.
			return m.do(ctx, func() { m.apply(m.mach.Retry(name, m.opts.Now())) })
		}
		return m.editGroup(ctx, name, func(g *model.Group) error { g.Online, g.Managed = true, true; return nil })
	case ActOffline:
		return m.editGroup(ctx, name, func(g *model.Group) error { g.Online = false; return nil })
	case ActRestart:
		if !info.Assigned {
			return fmt.Errorf("%w: group %s is not online on this node (%s); restart it on the node that runs it", ErrState, name, m.opts.Node)
		}
		return m.do(ctx, func() { m.apply(m.mach.RestartGroup(name, m.opts.Now())) })
	case ActManage:
		err := m.editGroup(ctx, name, func(g *model.Group) error { g.Managed = true; return nil })
		if err == nil {
			m.auxAll(name, model.MethodInit)
		}
		return err
	case ActUnmanage:
		if info.State != machine.GroupOffline && info.State != machine.GroupUnmanaged {
			return fmt.Errorf("%w: group %s is %s; take it offline first", ErrState, name, info.State)
		}
		err := m.editGroup(ctx, name, func(g *model.Group) error { g.Managed, g.Online = false, false; return nil })
		if err == nil {
			m.auxAll(name, model.MethodFini)
		}
		return err
	case ActSuspend, ActResume:
		return m.editGroup(ctx, name, func(g *model.Group) error { g.Suspended = action == ActSuspend; return nil })
	}
	return fmt.Errorf("%w: unknown group action %q", model.ErrInvalid, action)
}

// WaitGroup waits until the group is no longer pending on this node
// (in a cluster: anywhere).
func (m *Manager) WaitGroup(ctx context.Context, name string) (machine.GroupInfo, error) {
	if m.cl != nil {
		err := m.waitCluster(ctx, name)
		info, _ := m.groupInfo(ctx, name)
		return info, err
	}
	for {
		info, ok := m.groupInfo(ctx, name)
		if !ok {
			return info, fmt.Errorf("%w: group %s", ErrNotFound, name)
		}
		switch info.State {
		case machine.GroupPendingOnline, machine.GroupPendingOffline:
		default:
			return info, nil
		}
		select {
		case <-ctx.Done():
			return info, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// resolveType finds a type by its full name (VENDOR_ID.RESOURCE_TYPE) or,
// as Sun Cluster allows, by the name without the vendor prefix when only
// one registered type has it. Case is ignored.
func resolveType(cfg *model.Config, name string) (*model.ResourceType, error) {
	if t, ok := cfg.Types[name]; ok {
		return t, nil
	}
	var found []*model.ResourceType
	for _, tn := range sortedKeys(cfg.Types) {
		t := cfg.Types[tn]
		// The name without its vendor (STDY.dns) or provider
		// (ocf:heartbeat:Dummy).
		short := tn
		if i := strings.LastIndexByte(tn, '.'); i >= 0 && t.Source == model.SourceRTR {
			short = tn[i+1:]
		}
		if i := strings.LastIndexByte(tn, ':'); i >= 0 && t.Source == model.SourceOCF {
			short = tn[i+1:]
		}
		if strings.EqualFold(tn, name) || strings.EqualFold(short, name) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, fmt.Errorf("%w: resource type %s is not registered", ErrNotFound, name)
	}
	names := make([]string, len(found))
	for i, t := range found {
		names[i] = t.Name
	}
	return nil, fmt.Errorf("%w: resource type %s is ambiguous (%s); give the full name", model.ErrInvalid, name, strings.Join(names, ", "))
}

// CreateResource creates a resource after its type's VALIDATE accepts it.
func (m *Manager) CreateResource(ctx context.Context, req api.RGMResourceRequest) error {
	if !model.ValidName(req.Name) {
		return fmt.Errorf("%w: %q is not a valid resource name (a letter, then letters, digits, _ . -, at most 64)", model.ErrInvalid, req.Name)
	}
	cfg := m.Config()
	t, err := resolveType(cfg, req.Type)
	if err != nil {
		return err
	}
	req.Type = t.Name
	g, ok := cfg.Groups[req.Group]
	if !ok {
		return fmt.Errorf("%w: group %s", ErrNotFound, req.Group)
	}
	if _, exists := cfg.Resources[req.Name]; exists {
		return fmt.Errorf("%w: resource %s", ErrExists, req.Name)
	}
	for k := range req.Props {
		if model.IsQueryOnly(k) {
			return fmt.Errorf("%w: %s can only be read", model.ErrInvalid, k)
		}
	}
	vals, err := t.Props.Check(values(t.Props, req.Props), true)
	if err != nil {
		return err
	}
	r := &model.Resource{Name: req.Name, Group: req.Group, Type: req.Type, Props: vals,
		Enabled: !req.Disabled, Monitored: true, Created: time.Now().UTC()}
	if err := m.validate(ctx, cfg, r, g, true); err != nil {
		return err
	}
	err = m.change(ctx, func(cfg *model.Config) ([]store.Op, []store.Cond, error) {
		if _, exists := cfg.Resources[r.Name]; exists {
			return nil, nil, fmt.Errorf("%w: resource %s", ErrExists, r.Name)
		}
		cfg.Resources[r.Name] = r
		ops, err := put(resourcesPrefix+r.Name, resourceSchema, r)
		return ops, []store.Cond{store.Missing(resourcesPrefix + r.Name)}, err
	})
	if err == nil && g.Managed {
		m.aux(r.Name, model.MethodInit)
	}
	return err
}

// validate runs the VALIDATE method of r's type (as creating or
// updating) with r's values; a failure refuses the change.
func (m *Manager) validate(ctx context.Context, cfg *model.Config, r *model.Resource, g *model.Group, creating bool) error {
	t := cfg.TypeOf(r)
	if !t.HasMethod(model.MethodValidate) {
		return nil
	}
	var args []string
	for _, k := range sortedKeys(r.Props) {
		flag := "-r"
		if p, ok := t.Props.Lookup(k); ok && p.Extension {
			flag = "-x"
		}
		args = append(args, flag, k+"="+strings.Join(r.Props[k], ","))
	}
	for _, k := range sortedKeys(g.Props) {
		args = append(args, "-g", k+"="+strings.Join(g.Props[k], ","))
	}
	timeout := time.Duration(t.Props.Effective(r.Props).Int("Validate_timeout", 300)) * time.Second
	res := m.runner.Run(ctx, method.Call{Resource: r.Name, Group: r.Group, Type: t, Values: t.Props.Effective(r.Props),
		Method: model.MethodValidate, Timeout: timeout, Creating: creating, ValidateArgs: args})
	if res.Succeeded() {
		return nil
	}
	reason := res.Output
	if res.TimedOut {
		reason = "timed out"
	} else if res.Err != "" {
		reason = res.Err
	}
	return fmt.Errorf("%w: VALIDATE of %s failed (exit code %d): %s", ErrRefused, r.Name, res.Code, strings.TrimSpace(reason))
}

// editResource changes one resource.
func (m *Manager) editResource(ctx context.Context, name string, edit func(r *model.Resource) error) error {
	return m.change(ctx, func(cfg *model.Config) ([]store.Op, []store.Cond, error) {
		old, ok := cfg.Resources[name]
		if !ok {
			return nil, nil, fmt.Errorf("%w: resource %s", ErrNotFound, name)
		}
		r := *old
		r.Props = model.Values{}
		for k, v := range old.Props {
			r.Props[k] = v
		}
		if err := edit(&r); err != nil {
			return nil, nil, err
		}
		cfg.Resources[name] = &r
		ops, err := put(resourcesPrefix+name, resourceSchema, &r)
		return ops, nil, err
	})
}

// SetResource changes resource properties that may be changed now, after
// VALIDATE accepts them; an online resource then gets its UPDATE method.
func (m *Manager) SetResource(ctx context.Context, name string, props map[string]string) error {
	cfg := m.Config()
	old, ok := cfg.Resources[name]
	if !ok {
		return fmt.Errorf("%w: resource %s", ErrNotFound, name)
	}
	t := cfg.TypeOf(old)
	for k := range props {
		if model.IsQueryOnly(k) {
			return fmt.Errorf("%w: %s can only be read", model.ErrInvalid, k)
		}
		p, ok := t.Props.Lookup(k)
		if !ok {
			continue // Check reports it
		}
		switch p.Tunable {
		case model.TunableNone:
			return fmt.Errorf("%w: property %s is not tunable", model.ErrInvalid, p.Name)
		case model.TunableAtCreation:
			return fmt.Errorf("%w: property %s can only be set when the resource is created", model.ErrInvalid, p.Name)
		case model.TunableWhenDisabled:
			if old.Enabled {
				return fmt.Errorf("%w: property %s can only be changed while %s is disabled (steady resource disable %s)", ErrState, p.Name, name, name)
			}
		}
	}
	vals, err := t.Props.Check(values(t.Props, props), false)
	if err != nil {
		return err
	}
	r := *old
	r.Props = model.Values{}
	for k, v := range old.Props {
		r.Props[k] = v
	}
	for k, v := range vals {
		r.Props[k] = v
	}
	if err := m.validate(ctx, cfg, &r, cfg.Groups[r.Group], false); err != nil {
		return err
	}
	if err := m.editResource(ctx, name, func(x *model.Resource) error { x.Props = r.Props; return nil }); err != nil {
		return err
	}
	if info, ok := m.resourceInfo(ctx, name); ok && (info.State == machine.Online || info.State == machine.OnlineNotMonitored) {
		m.aux(name, model.MethodUpdate)
	}
	return nil
}

// Resource actions.
const (
	ActEnable    = "enable"
	ActDisable   = "disable"
	ActMonitor   = "monitor"
	ActUnmonitor = "unmonitor"
)

// ResourceAction enables, disables, monitors or unmonitors a resource.
func (m *Manager) ResourceAction(ctx context.Context, name, action string) error {
	switch action {
	case ActEnable, ActDisable:
		return m.editResource(ctx, name, func(r *model.Resource) error { r.Enabled = action == ActEnable; return nil })
	case ActMonitor, ActUnmonitor:
		return m.editResource(ctx, name, func(r *model.Resource) error { r.Monitored = action == ActMonitor; return nil })
	}
	return fmt.Errorf("%w: unknown resource action %q", model.ErrInvalid, action)
}

// DeleteResource deletes a disabled, offline resource.
func (m *Manager) DeleteResource(ctx context.Context, name string) error {
	cfg := m.Config()
	r, ok := cfg.Resources[name]
	if !ok {
		return fmt.Errorf("%w: resource %s", ErrNotFound, name)
	}
	if r.Enabled {
		return fmt.Errorf("%w: resource %s is enabled; disable it first", ErrState, name)
	}
	if info, ok := m.resourceInfo(ctx, name); ok && info.State != machine.Offline && info.State != machine.Detached {
		return fmt.Errorf("%w: resource %s is %s, not offline", ErrState, name, info.State)
	}
	managed := cfg.Groups[r.Group] != nil && cfg.Groups[r.Group].Managed
	if managed {
		m.auxSync(ctx, cfg, name, model.MethodFini)
	}
	return m.change(ctx, func(cfg *model.Config) ([]store.Op, []store.Cond, error) {
		delete(cfg.Resources, name)
		return del(resourcesPrefix + name), nil, nil
	})
}

// Clear clears a flag of a resource: STOP_FAILED.
func (m *Manager) Clear(ctx context.Context, name, flag string) error {
	if !strings.EqualFold(flag, "STOP_FAILED") {
		return fmt.Errorf("%w: the only flag to clear is STOP_FAILED, not %q", model.ErrInvalid, flag)
	}
	var err error
	if derr := m.do(ctx, func() {
		var acts []machine.Action
		acts, err = m.mach.ClearStopFailed(name, m.opts.Now())
		m.apply(acts)
	}); derr != nil {
		return derr
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	return nil
}

// Statuses scha_resource_setstatus accepts.
var statuses = map[string]bool{machine.StatusOK: true, machine.StatusDegraded: true, machine.StatusFaulted: true,
	machine.StatusUnknown: true, machine.StatusOffline: true}

// SetStatus sets a resource's status and message.
func (m *Manager) SetStatus(ctx context.Context, name, group, status, msg string) error {
	status = strings.ToUpper(status)
	if !statuses[status] {
		return fmt.Errorf("%w: status %q is not OK, DEGRADED, FAULTED, UNKNOWN or OFFLINE", model.ErrInvalid, status)
	}
	r, ok := m.Config().Resources[name]
	if !ok {
		return fmt.Errorf("%w: resource %s", ErrNotFound, name)
	}
	if group != "" && r.Group != group {
		return fmt.Errorf("%w: resource %s is not in group %s", ErrNotFound, name, group)
	}
	return m.do(ctx, func() { m.apply(m.mach.SetStatus(name, status, msg, m.opts.Now())) })
}

// Control carries out a scha_control request and, when it is accepted,
// waits until it is done (the resource or group is back).
func (m *Manager) Control(ctx context.Context, req api.ControlRequest) api.ControlResponse {
	var (
		done bool
		code api.SchaErr
		msg  string
		ch   = make(chan machine.Reply, 1)
	)
	if err := m.do(ctx, func() {
		m.nextToken++
		token := m.nextToken
		var acts []machine.Action
		done, code, msg, acts = m.mach.Control(req.Op, req.Group, req.Resource, token, m.opts.Now())
		if !done {
			m.waiters[token] = ch
		}
		m.apply(acts)
	}); err != nil {
		return api.ControlResponse{Code: api.SchaInternal, Message: err.Error()}
	}
	if done {
		return api.ControlResponse{Code: code, Message: msg}
	}
	select {
	case r := <-ch:
		return api.ControlResponse{Code: api.SchaErr(r.Code), Message: r.Msg}
	case <-ctx.Done():
		return api.ControlResponse{Code: api.SchaInternal, Message: "the request was abandoned before it finished: " + ctx.Err().Error()}
	}
}

// aux runs a method outside the state machine (INIT, FINI, BOOT, UPDATE)
// in the background; its failure is only logged and published.
func (m *Manager) aux(resource, meth string) {
	cfg := m.Config()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.auxSync(m.ctx, cfg, resource, meth)
	}()
}

func (m *Manager) auxSync(ctx context.Context, cfg *model.Config, resource, meth string) {
	r := cfg.Resources[resource]
	if r == nil {
		return
	}
	t := cfg.TypeOf(r)
	if t == nil || !t.HasMethod(meth) {
		return
	}
	timeout := time.Duration(cfg.Effective(r).Int(model.TimeoutProp(meth), 3600)) * time.Second
	c, _ := m.call(cfg, resource, meth, timeout)
	res := m.runner.Run(ctx, c)
	attrs := api.Attrs{"resource": api.String(resource), "group": api.String(r.Group), "method": api.String(meth),
		"exit_code": api.Int(int64(res.Code)), "timed_out": api.Bool(res.TimedOut), "result": api.String(res.Describe())}
	if !res.Succeeded() {
		m.log.Warn("method failed", "resource", resource, "method", meth, "result", res.Describe(), "output", res.Output)
		attrs["output"] = api.String(res.Output)
	}
	if _, err := m.pub.Publish(context.Background(), machine.ClassRGM, machine.SubMethod, attrs); err != nil {
		m.log.Error("cannot publish", "err", err)
	}
}

// auxAll runs an aux method for every resource of a group.
func (m *Manager) auxAll(group, meth string) {
	for _, r := range m.Config().GroupResources(group) {
		m.aux(r.Name, meth)
	}
}

// bootIDFile is where the kernel names the current boot.
var bootIDFile = "/proc/sys/kernel/random/boot_id"

// rebooted reports whether the node booted since the boot id was last
// recorded (false when none was, as on the first start).
func (m *Manager) rebooted() bool {
	cur, err := os.ReadFile(bootIDFile)
	prev, perr := os.ReadFile(filepath.Join(m.opts.Dir, "boot_id"))
	return err == nil && perr == nil && string(prev) != string(cur)
}

// bootMethods runs BOOT for the resources of managed groups once per boot
// of the node: an agent restart is not a boot, so the boot id the kernel
// gives each boot is kept in the data directory.
func (m *Manager) bootMethods() {
	cur, err := os.ReadFile(bootIDFile)
	if err != nil {
		m.log.Warn("cannot tell whether the node booted; BOOT methods run now", "err", err)
	}
	mark := filepath.Join(m.opts.Dir, "boot_id")
	if prev, perr := os.ReadFile(mark); err == nil && perr == nil && string(prev) == string(cur) {
		return
	}
	cfg := m.Config()
	for _, r := range cfg.Resources {
		if g := cfg.Groups[r.Group]; g != nil && g.Managed {
			m.aux(r.Name, model.MethodBoot)
		}
	}
	if err == nil {
		if werr := atomicfile.Write(mark, cur, 0o640); werr != nil {
			m.log.Warn("cannot record the boot id", "err", werr)
		}
	}
}

// RunsAs is the user id the methods of a resource run as.
func (m *Manager) RunsAs(name string) (uint32, error) {
	cfg := m.Config()
	c, ok := m.call(cfg, name, model.MethodStart, 0)
	if !ok {
		return 0, fmt.Errorf("%w: resource %s", ErrNotFound, name)
	}
	id, err := method.RunsAs(c)
	if err != nil {
		return 0, err
	}
	return id.UID, nil
}
