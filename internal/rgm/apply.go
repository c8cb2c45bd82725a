package rgm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/rgm/machine"
	"github.com/steady-ha/steady/internal/rgm/model"
	"github.com/steady-ha/steady/internal/store"
)

// Export returns the configuration as a declaration that Apply accepts:
// the registered types (built-in ones left out), every group with its
// explicit properties and intent, and its resources.
func (m *Manager) Export() api.RGMDeclaration {
	cfg := m.Config()
	var d api.RGMDeclaration
	for _, name := range sortedKeys(cfg.Types) {
		t := cfg.Types[name]
		switch t.Source {
		case model.SourceRTR:
			d.Types = append(d.Types, api.RGMTypeDecl{Name: t.Name, RTR: t.File})
		case model.SourceOCF:
			d.Types = append(d.Types, api.RGMTypeDecl{Name: t.Name, OCF: t.Name})
		}
	}
	for _, gname := range sortedKeys(cfg.Groups) {
		g := cfg.Groups[gname]
		gd := api.RGMGroupDecl{Name: g.Name, Props: declProps(g.Props),
			Managed: &g.Managed, Online: &g.Online, Suspended: &g.Suspended}
		for _, r := range cfg.StartOrder(gname) {
			gd.Resources = append(gd.Resources, api.RGMResourceDecl{Name: r.Name, Type: r.Type,
				Props: declProps(r.Props), Enabled: &r.Enabled, Monitored: &r.Monitored})
		}
		d.Groups = append(d.Groups, gd)
	}
	return d
}

func declProps(v model.Values) map[string][]string {
	if len(v) == 0 {
		return nil
	}
	out := make(map[string][]string, len(v))
	for k, x := range v {
		out[k] = append([]string{}, x...)
	}
	return out
}

// declValues turns declared values into the schema's canonical values: a
// one-element STRINGARRAY value is split at commas, as on the command line.
func declValues(schema model.Schema, props map[string][]string) model.Values {
	out := model.Values{}
	for k, v := range props {
		if p, ok := schema.Lookup(k); ok && p.Type == model.TypeStringArray && len(v) == 1 {
			out[k] = model.SplitArray(v[0])
		} else {
			out[k] = append([]string{}, v...)
		}
	}
	return out
}

// applyPlan is what Apply computed against one configuration.
type applyPlan struct {
	base    *model.Config
	cfg     *model.Config
	changes []api.RGMChange
	ops     []store.Op
	conds   []store.Cond
	newRes  []string // created resources, for INIT
	changed []string // resources whose properties changed, for UPDATE
	manage  []string // groups taken under management, for INIT
}

// Apply makes the configuration what the declaration says: types are
// registered, groups and resources created or changed so that their
// explicit properties are exactly those declared, intent flags that are
// given are set. Everything is checked (values, tunability, the whole
// configuration, each new or changed resource's VALIDATE) before anything
// changes; then every change is written in one transaction. Objects the
// declaration does not name are left as they are. With dryRun nothing is
// written.
func (m *Manager) Apply(ctx context.Context, d api.RGMDeclaration, dryRun bool) (api.RGMApplyResult, error) {
	p, err := m.plan(ctx, d)
	if err != nil {
		return api.RGMApplyResult{}, err
	}
	res := api.RGMApplyResult{Changes: p.changes}
	if dryRun || len(p.ops) == 0 {
		return res, nil
	}
	err = m.change(ctx, func(cfg *model.Config) ([]store.Op, []store.Cond, error) {
		// The plan was made against p.base; anything changed since then
		// makes it stale.
		if !sameObjects(cfg, p.base) {
			return nil, nil, fmt.Errorf("%w: the configuration changed while the declaration was checked; apply it again", ErrExists)
		}
		*cfg = *p.cfg.Clone()
		return p.ops, p.conds, nil
	})
	if err != nil {
		return api.RGMApplyResult{}, err
	}
	res.Applied = true
	cfg := m.Config()
	for _, g := range p.manage {
		m.auxAll(g, model.MethodInit)
	}
	for _, name := range p.newRes {
		if g := cfg.Groups[cfg.Resources[name].Group]; g != nil && g.Managed && !slices.Contains(p.manage, g.Name) {
			m.aux(name, model.MethodInit)
		}
	}
	for _, name := range p.changed {
		if info, ok := m.resourceInfo(ctx, name); ok && (info.State == machine.Online || info.State == machine.OnlineNotMonitored) {
			m.aux(name, model.MethodUpdate)
		}
	}
	return res, nil
}

// sameObjects reports whether a and b hold the very same objects.
func sameObjects(a, b *model.Config) bool {
	if len(a.Types) != len(b.Types) || len(a.Groups) != len(b.Groups) || len(a.Resources) != len(b.Resources) {
		return false
	}
	for k, v := range a.Types {
		if b.Types[k] != v {
			return false
		}
	}
	for k, v := range a.Groups {
		if b.Groups[k] != v {
			return false
		}
	}
	for k, v := range a.Resources {
		if b.Resources[k] != v {
			return false
		}
	}
	return true
}

func (m *Manager) plan(ctx context.Context, d api.RGMDeclaration) (*applyPlan, error) {
	base := m.Config()
	p := &applyPlan{base: base, cfg: base.Clone()}
	var errs []string
	bad := func(format string, args ...any) {
		// The sentinels' "rgm: ..." prefixes would repeat on every line.
		msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "rgm: invalid: ", "")
		errs = append(errs, strings.ReplaceAll(msg, "rgm: ", ""))
	}

	for i, td := range d.Types {
		if err := m.planType(ctx, p, td); err != nil {
			bad("types[%d]: %v", i, err)
		}
	}
	declared := map[string]bool{}
	for _, gd := range d.Groups {
		if declared["g/"+gd.Name] {
			bad("group %s is declared twice", gd.Name)
			continue
		}
		declared["g/"+gd.Name] = true
		if err := m.planGroup(p, gd); err != nil {
			bad("group %s: %v", gd.Name, err)
		}
		for _, rd := range gd.Resources {
			if declared["r/"+rd.Name] {
				bad("resource %s is declared twice", rd.Name)
				continue
			}
			declared["r/"+rd.Name] = true
			if err := m.planResource(ctx, p, gd.Name, rd); err != nil {
				bad("resource %s: %v", rd.Name, err)
			}
		}
	}
	if len(errs) > 0 {
		if len(errs) == 1 {
			return nil, fmt.Errorf("%w: %s", model.ErrInvalid, errs[0])
		}
		return nil, fmt.Errorf("%w: %d problems:\n  %s", model.ErrInvalid, len(errs), strings.Join(errs, "\n  "))
	}
	if err := p.cfg.Validate(); err != nil {
		return nil, err
	}
	// VALIDATE last, once every value is known to be well formed.
	for _, c := range p.changes {
		if c.Kind != "resource" || (c.Action != "create" && c.Action != "update") {
			continue
		}
		r := p.cfg.Resources[c.Name]
		if c.Action == "update" && !slices.Contains(p.changed, c.Name) {
			continue // only switches changed
		}
		if err := m.validate(ctx, p.cfg, r, p.cfg.Groups[r.Group], c.Action == "create"); err != nil {
			return nil, err
		}
	}
	for _, kind := range []struct {
		name string
		keys []string
	}{{"group", sortedKeys(base.Groups)}, {"resource", sortedKeys(base.Resources)}} {
		for _, k := range kind.keys {
			if !declared[kind.name[:1]+"/"+k] {
				p.changes = append(p.changes, api.RGMChange{Kind: kind.name, Name: k, Action: "kept"})
			}
		}
	}
	return p, nil
}

func (m *Manager) planType(ctx context.Context, p *applyPlan, td api.RGMTypeDecl) error {
	var t *model.ResourceType
	var err error
	switch {
	case td.RTR != "" && td.OCF != "":
		return fmt.Errorf("give rtr or ocf, not both")
	case td.RTR != "":
		if !filepath.IsAbs(td.RTR) {
			return fmt.Errorf("rtr %q: give an absolute path (the agent reads the file)", td.RTR)
		}
		src, rerr := os.ReadFile(td.RTR)
		if rerr != nil {
			return rerr
		}
		t, err = parseRTR(td.RTR, src)
	case td.OCF != "":
		t, err = m.readOCF(ctx, td.OCF)
	default:
		if td.Name == "" {
			return fmt.Errorf("give name, rtr or ocf")
		}
		if _, err := resolveType(p.cfg, td.Name); err != nil {
			return fmt.Errorf("%w, and neither rtr nor ocf says where it comes from", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if td.Name != "" && !strings.EqualFold(td.Name, t.Name) {
		return fmt.Errorf("the file declares type %s, not %s", t.Name, td.Name)
	}
	if old, ok := p.cfg.Types[t.Name]; ok {
		if old.Version != t.Version {
			return fmt.Errorf("type %s is registered with version %s; this is version %s (unregister the old one first)", t.Name, old.Version, t.Version)
		}
		p.changes = append(p.changes, api.RGMChange{Kind: "type", Name: t.Name, Action: "unchanged"})
		return nil
	}
	t.Registered = time.Now().UTC()
	p.cfg.Types[t.Name] = t
	op, err := store.OpPut(typesPrefix+t.Name, typeSchema, t)
	if err != nil {
		return err
	}
	p.ops = append(p.ops, op)
	p.conds = append(p.conds, store.Missing(typesPrefix+t.Name))
	p.changes = append(p.changes, api.RGMChange{Kind: "type", Name: t.Name, Action: "create",
		Details: []string{fmt.Sprintf("version %s, from %s", t.Version, t.Source)}})
	return nil
}

func (m *Manager) planGroup(p *applyPlan, gd api.RGMGroupDecl) error {
	if !model.ValidName(gd.Name) {
		return fmt.Errorf("%q is not a valid group name", gd.Name)
	}
	vals, err := model.GroupSchema.Check(declValues(model.GroupSchema, gd.Props), true)
	if err != nil {
		return err
	}
	old := p.cfg.Groups[gd.Name]
	g := &model.Group{Name: gd.Name, Props: vals, Managed: true, Created: time.Now().UTC()}
	action := "create"
	if old != nil {
		action = "update"
		g.Managed, g.Online, g.Suspended, g.Created = old.Managed, old.Online, old.Suspended, old.Created
	}
	setFlag(&g.Managed, gd.Managed)
	setFlag(&g.Online, gd.Online)
	setFlag(&g.Suspended, gd.Suspended)
	if g.Online {
		g.Managed = true // as "steady rg online" does
	}
	var details []string
	if old != nil {
		details = propDiff(old.Props, g.Props)
		details = append(details, flagDiff("managed", old.Managed, g.Managed)...)
		details = append(details, flagDiff("online", old.Online, g.Online)...)
		details = append(details, flagDiff("suspended", old.Suspended, g.Suspended)...)
		if len(details) == 0 {
			p.changes = append(p.changes, api.RGMChange{Kind: "group", Name: g.Name, Action: "unchanged"})
			return nil
		}
		if old.Managed && !g.Managed {
			if info, ok := m.groupInfo(context.Background(), g.Name); ok && info.State != machine.GroupOffline && info.State != machine.GroupUnmanaged {
				return fmt.Errorf("it is %s; it can be unmanaged only when offline", info.State)
			}
			g.Online = false
		}
		if !old.Managed && g.Managed {
			p.manage = append(p.manage, g.Name)
		}
	} else {
		details = propDiff(nil, g.Props)
		details = append(details, fmt.Sprintf("managed %v, online %v, suspended %v", g.Managed, g.Online, g.Suspended))
	}
	p.cfg.Groups[g.Name] = g
	op, err := store.OpPut(groupsPrefix+g.Name, groupSchema, g)
	if err != nil {
		return err
	}
	p.ops = append(p.ops, op)
	if old == nil {
		p.conds = append(p.conds, store.Missing(groupsPrefix+g.Name))
	}
	p.changes = append(p.changes, api.RGMChange{Kind: "group", Name: g.Name, Action: action, Details: details})
	return nil
}

func (m *Manager) planResource(ctx context.Context, p *applyPlan, group string, rd api.RGMResourceDecl) error {
	if !model.ValidName(rd.Name) {
		return fmt.Errorf("%q is not a valid resource name", rd.Name)
	}
	old := p.cfg.Resources[rd.Name]
	if old != nil && old.Group != group {
		return fmt.Errorf("it is in group %s, not %s (resources do not move between groups)", old.Group, group)
	}
	var t *model.ResourceType
	switch {
	case rd.Type == "" && old != nil:
		t = p.cfg.TypeOf(old)
	case rd.Type == "":
		return fmt.Errorf("give its type")
	default:
		var err error
		if t, err = resolveType(p.cfg, rd.Type); err != nil {
			return err
		}
		if old != nil && old.Type != t.Name {
			return fmt.Errorf("it is of type %s, not %s (delete and create it to change its type)", old.Type, t.Name)
		}
	}
	for k := range rd.Props {
		if model.IsQueryOnly(k) {
			return fmt.Errorf("%s can only be read", k)
		}
	}
	vals, err := t.Props.Check(declValues(t.Props, rd.Props), true)
	if err != nil {
		return err
	}
	r := &model.Resource{Name: rd.Name, Group: group, Type: t.Name, Props: vals, Enabled: true, Monitored: true, Created: time.Now().UTC()}
	if old != nil {
		r.Enabled, r.Monitored, r.Created = old.Enabled, old.Monitored, old.Created
	}
	setFlag(&r.Enabled, rd.Enabled)
	setFlag(&r.Monitored, rd.Monitored)
	if old == nil {
		details := propDiff(nil, r.Props)
		details = append(details, fmt.Sprintf("type %s, enabled %v, monitored %v", t.Name, r.Enabled, r.Monitored))
		p.cfg.Resources[r.Name] = r
		p.newRes = append(p.newRes, r.Name)
		op, err := store.OpPut(resourcesPrefix+r.Name, resourceSchema, r)
		if err != nil {
			return err
		}
		p.ops = append(p.ops, op)
		p.conds = append(p.conds, store.Missing(resourcesPrefix+r.Name))
		p.changes = append(p.changes, api.RGMChange{Kind: "resource", Name: r.Name, Action: "create", Details: details})
		return nil
	}
	propChanges := propDiff(old.Props, r.Props)
	for _, name := range changedNames(old.Props, r.Props) {
		spec, ok := t.Props.Lookup(name)
		if !ok {
			continue
		}
		switch spec.Tunable {
		case model.TunableNone:
			return fmt.Errorf("property %s is not tunable", spec.Name)
		case model.TunableAtCreation:
			return fmt.Errorf("property %s can only be set when the resource is created", spec.Name)
		case model.TunableWhenDisabled:
			if old.Enabled {
				return fmt.Errorf("property %s can only be changed while %s is disabled", spec.Name, r.Name)
			}
		}
	}
	details := append(propChanges, flagDiff("enabled", old.Enabled, r.Enabled)...)
	details = append(details, flagDiff("monitored", old.Monitored, r.Monitored)...)
	if len(details) == 0 {
		p.changes = append(p.changes, api.RGMChange{Kind: "resource", Name: r.Name, Action: "unchanged"})
		return nil
	}
	if len(propChanges) > 0 {
		p.changed = append(p.changed, r.Name)
	}
	p.cfg.Resources[r.Name] = r
	op, err := store.OpPut(resourcesPrefix+r.Name, resourceSchema, r)
	if err != nil {
		return err
	}
	p.ops = append(p.ops, op)
	p.changes = append(p.changes, api.RGMChange{Kind: "resource", Name: r.Name, Action: "update", Details: details})
	return nil
}

func setFlag(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

func flagDiff(name string, old, new bool) []string {
	if old == new {
		return nil
	}
	return []string{fmt.Sprintf("%s: %v -> %v", name, old, new)}
}

// changedNames lists the properties whose explicit values differ.
func changedNames(old, new model.Values) []string {
	var out []string
	for _, k := range sortedKeys(old) {
		if v, ok := new[k]; !ok || !slices.Equal(v, old[k]) {
			out = append(out, k)
		}
	}
	for _, k := range sortedKeys(new) {
		if _, ok := old[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// propDiff describes the changes of explicit values, one line each.
func propDiff(old, new model.Values) []string {
	show := func(v []string, ok bool) string {
		if !ok {
			return "(default)"
		}
		return fmt.Sprintf("%q", strings.Join(v, ","))
	}
	var out []string
	for _, k := range changedNames(old, new) {
		ov, ook := old[k]
		nv, nok := new[k]
		if old == nil {
			out = append(out, fmt.Sprintf("%s = %s", k, show(nv, nok)))
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s -> %s", k, show(ov, ook), show(nv, nok)))
	}
	return out
}
