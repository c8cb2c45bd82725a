package rgm

import (
	"bufio"
	"context"
	"fmt"
	"os"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/rgm/machine"
	"github.com/steady-ha/steady/internal/rgm/model"
)

func (m *Manager) resourceInfo(ctx context.Context, name string) (info machine.ResourceInfo, ok bool) {
	m.do(ctx, func() { info, ok = m.mach.Resource(name) })
	return info, ok
}

func (m *Manager) groupInfo(ctx context.Context, name string) (info machine.GroupInfo, ok bool) {
	m.do(ctx, func() { info, ok = m.mach.Group(name) })
	return info, ok
}

func props(schema model.Schema, explicit model.Values) []api.RGMProp {
	eff := schema.Effective(explicit)
	out := make([]api.RGMProp, 0, len(schema))
	for _, p := range schema {
		v, has := eff[p.Name]
		if !has && !p.Optional {
			continue
		}
		if v == nil {
			v = []string{}
		}
		_, set := explicit.Get(p.Name)
		out = append(out, api.RGMProp{Name: p.Name, Type: string(p.Type), Values: v, Set: set, Extension: p.Extension, Tunable: string(p.Tunable)})
	}
	return out
}

// Resource describes a resource and its state on this node.
func (m *Manager) Resource(ctx context.Context, name string) (api.RGMResource, error) {
	cfg := m.Config()
	r, ok := cfg.Resources[name]
	if !ok {
		return api.RGMResource{}, fmt.Errorf("%w: resource %s", ErrNotFound, name)
	}
	return m.resourceView(ctx, cfg, r), nil
}

func (m *Manager) resourceView(ctx context.Context, cfg *model.Config, r *model.Resource) api.RGMResource {
	out := api.RGMResource{Name: r.Name, Group: r.Group, Type: r.Type, Node: m.opts.Node, Enabled: r.Enabled, Monitored: r.Monitored}
	if t := cfg.TypeOf(r); t != nil {
		out.TypeVersion = t.Version
		out.Props = props(t.Props, r.Props)
	}
	if info, ok := m.resourceInfo(ctx, r.Name); ok {
		out.State, out.Status, out.StatusMsg, out.Restarts = info.State, info.Status, info.StatusMsg, info.Restarts
		out.Last, out.LastOutput, out.Decision, out.Waiting = info.Last, info.LastOutput, info.Decision, info.Waiting
	}
	if g, ok := m.groupInfo(ctx, r.Group); ok {
		out.RGRestarts = g.Restarts
	}
	return out
}

// Resources describes every resource, by name (of one group when group
// is not empty).
func (m *Manager) Resources(ctx context.Context, group string) []api.RGMResource {
	cfg := m.Config()
	var out []api.RGMResource
	for _, name := range sortedKeys(cfg.Resources) {
		if r := cfg.Resources[name]; group == "" || r.Group == group {
			out = append(out, m.resourceView(ctx, cfg, r))
		}
	}
	return out
}

// Group describes a group and its state on this node and, in a
// cluster, across the cluster.
func (m *Manager) Group(ctx context.Context, name string) (api.RGMGroup, error) {
	cfg := m.Config()
	g, ok := cfg.Groups[name]
	if !ok {
		return api.RGMGroup{}, fmt.Errorf("%w: group %s", ErrNotFound, name)
	}
	out := m.groupView(ctx, cfg, g)
	if m.cl != nil {
		if err := m.addPlacement(ctx, &out); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (m *Manager) groupView(ctx context.Context, cfg *model.Config, g *model.Group) api.RGMGroup {
	out := api.RGMGroup{Name: g.Name, Node: m.opts.Node, Managed: g.Managed, Online: g.Online, Suspended: g.Suspended,
		Props: props(model.GroupSchema, g.Props), Resources: []string{}}
	for _, r := range cfg.StartOrder(g.Name) {
		out.Resources = append(out.Resources, r.Name)
	}
	if info, ok := m.groupInfo(ctx, g.Name); ok {
		out.State, out.Assigned, out.Restarts, out.Decision = info.State, info.Assigned, info.Restarts, info.Decision
	}
	return out
}

// Groups describes every group, by name.
func (m *Manager) Groups(ctx context.Context) []api.RGMGroup {
	cfg := m.Config()
	out := []api.RGMGroup{}
	for _, name := range sortedKeys(cfg.Groups) {
		out = append(out, m.groupView(ctx, cfg, cfg.Groups[name]))
	}
	return out
}

// Type describes a resource type.
func (m *Manager) Type(name string) (api.RGMType, error) {
	cfg := m.Config()
	t, err := resolveType(cfg, name)
	if err != nil {
		return api.RGMType{}, err
	}
	return typeView(cfg, t), nil
}

func typeView(cfg *model.Config, t *model.ResourceType) api.RGMType {
	out := api.RGMType{Name: t.Name, Source: t.Source, Version: t.Version, Vendor: t.Vendor, Description: t.Description,
		APIVersion: t.APIVersion, Failover: t.Failover, SingleInstance: t.SingleInstance, InitNodes: t.InitNodes,
		BaseDir: t.BaseDir, Agent: t.Agent, Methods: t.Methods, Extra: t.Extra, Resources: []string{}}
	for _, p := range t.Props {
		out.Props = append(out.Props, api.RGMPropSpec{Name: p.Name, Type: string(p.Type), Enum: p.Enum, Default: p.Default,
			HasDefault: p.HasDefault, Optional: p.Optional, AgentDefault: p.AgentDefault, Min: p.Min, Max: p.Max,
			Tunable: string(p.Tunable), Extension: p.Extension, PerNode: p.PerNode, Description: p.Description})
	}
	for _, name := range sortedKeys(cfg.Resources) {
		if cfg.Resources[name].Type == t.Name {
			out.Resources = append(out.Resources, name)
		}
	}
	return out
}

// Types describes every registered type, by name.
func (m *Manager) Types() []api.RGMType {
	cfg := m.Config()
	out := []api.RGMType{}
	for _, name := range sortedKeys(cfg.Types) {
		out = append(out, typeView(cfg, cfg.Types[name]))
	}
	return out
}

// Cluster answers scha_cluster_get on a single node.
func (m *Manager) Cluster() api.RGMCluster {
	cfg := m.Config()
	name := m.opts.Cluster
	if name == "" {
		name = m.opts.Node
	}
	return api.RGMCluster{ClusterName: name, LocalNode: m.opts.Node, LocalNodeID: 1,
		Nodes: []string{m.opts.Node}, NodeStates: []string{"UP"},
		ResourceGroups: sortedKeys(cfg.Groups), ResourceTypes: sortedKeys(cfg.Types), SyslogFacility: "daemon"}
}

// Log returns the last lines of a resource's method log.
func (m *Manager) Log(name string, lines int) (api.RGMLog, error) {
	if _, ok := m.Config().Resources[name]; !ok {
		return api.RGMLog{}, fmt.Errorf("%w: resource %s", ErrNotFound, name)
	}
	path := m.runner.LogPath(name)
	out := api.RGMLog{Path: path, Lines: []string{}}
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return out, nil
		}
		return out, fmt.Errorf("rgm: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out.Lines = append(out.Lines, sc.Text())
		if len(out.Lines) > lines {
			out.Lines = out.Lines[1:]
		}
	}
	return out, nil
}

// GroupsOnline counts groups by state, for status.
func (m *Manager) GroupsOnline(ctx context.Context) map[string]int {
	counts := map[string]int{}
	for _, g := range m.Groups(ctx) {
		counts[g.State]++
	}
	return counts
}
