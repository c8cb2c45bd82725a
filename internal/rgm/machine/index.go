package machine

import (
	"sort"

	"github.com/steady-ha/steady/internal/rgm/model"
)

// index is what the machine derives from one configuration: groups in
// order, each group's resources in creation and start order, and
// dependencies both ways. The configuration is immutable once the machine
// has it, so the index is built once per SetConfig; without it every
// reconcile pass would scan every resource for every group.
type index struct {
	groups       []string
	members      map[string][]*model.Resource // creation order
	order        map[string][]*model.Resource // start order
	deps         map[string][]model.Dep
	dependents   map[string][]*model.Resource // resources with a dependency on the key
	rgDeps       map[string][]string          // RG_dependencies
	rgDependents map[string][]string          // groups with an RG_dependency on the key
	// related are the other groups a change in the key group may let
	// move: linked by a group dependency or a resource dependency, either
	// way.
	related map[string][]string
}

func newIndex(cfg *model.Config) *index {
	x := &index{
		members: map[string][]*model.Resource{}, order: map[string][]*model.Resource{},
		deps: map[string][]model.Dep{}, dependents: map[string][]*model.Resource{},
		rgDeps: map[string][]string{}, rgDependents: map[string][]string{},
	}
	for name := range cfg.Groups {
		x.groups = append(x.groups, name)
	}
	sort.Strings(x.groups)
	var all []*model.Resource
	for _, r := range cfg.Resources {
		all = append(all, r)
	}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].Created.Equal(all[j].Created) {
			return all[i].Created.Before(all[j].Created)
		}
		return all[i].Name < all[j].Name
	})
	for _, r := range all {
		x.members[r.Group] = append(x.members[r.Group], r)
		ds := cfg.Deps(r)
		x.deps[r.Name] = ds
		seen := map[string]bool{}
		for _, d := range ds {
			if !seen[d.On] {
				seen[d.On] = true
				x.dependents[d.On] = append(x.dependents[d.On], r)
			}
		}
	}
	for _, g := range x.groups {
		x.order[g] = model.OrderByDeps(x.members[g], func(r *model.Resource) []model.Dep { return x.deps[r.Name] })
		hs := cfg.GroupValues(cfg.Groups[g]).List("RG_dependencies")
		x.rgDeps[g] = hs
		for _, h := range hs {
			x.rgDependents[h] = append(x.rgDependents[h], g)
		}
	}
	rel := map[string]map[string]bool{}
	link := func(a, b string) {
		if a == b || a == "" || b == "" {
			return
		}
		for _, p := range [][2]string{{a, b}, {b, a}} {
			if rel[p[0]] == nil {
				rel[p[0]] = map[string]bool{}
			}
			rel[p[0]][p[1]] = true
		}
	}
	for g, hs := range x.rgDeps {
		for _, h := range hs {
			link(g, h)
		}
	}
	for _, r := range all {
		for _, d := range x.deps[r.Name] {
			if on := cfg.Resources[d.On]; on != nil {
				link(r.Group, on.Group)
			}
		}
	}
	x.related = map[string][]string{}
	for g, set := range rel {
		for h := range set {
			x.related[g] = append(x.related[g], h)
		}
		sort.Strings(x.related[g])
	}
	return x
}
