package model

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Resource is a configured resource.
type Resource struct {
	Name  string `json:"name"`
	Group string `json:"group"`
	Type  string `json:"type"`
	// Props are the values set explicitly, under canonical names; the
	// type's defaults fill in the rest (Effective).
	Props     Values    `json:"props"`
	Enabled   bool      `json:"enabled"`   // On_off_switch
	Monitored bool      `json:"monitored"` // Monitored_switch
	Created   time.Time `json:"created"`
}

// Group is a configured resource group.
type Group struct {
	Name  string `json:"name"`
	Props Values `json:"props"`
	// Managed groups are under the RGM's control; an unmanaged one is left
	// alone (its resources are DETACHED).
	Managed bool `json:"managed"`
	// Online is the administrator's intent: online or offline.
	Online bool `json:"online"`
	// Suspended groups get no automatic recovery (restarts, giveovers).
	Suspended bool      `json:"suspended,omitempty"`
	Created   time.Time `json:"created"`
}

// ValidName reports whether s can name a resource or a group: a letter,
// then letters, digits and _ . -, at most 64.
func ValidName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// Config is the whole desired configuration of the RGM.
type Config struct {
	Types     map[string]*ResourceType `json:"types"`
	Groups    map[string]*Group        `json:"groups"`
	Resources map[string]*Resource     `json:"resources"`

	// memo keeps effective values, shared by a configuration and its
	// clones: objects are never changed in place, so an entry whose
	// pointers still match is still right. Without it, every pass over a
	// thousand resources rebuilds a thousand maps.
	memo *memo
}

type memo struct {
	mu     sync.Mutex
	res    map[string]resMemo
	groups map[string]groupMemo
}

type resMemo struct {
	r *Resource
	t *ResourceType
	v Values
}

type groupMemo struct {
	g *Group
	v Values
}

func (c *Config) memoOf() *memo {
	if c.memo == nil {
		c.memo = &memo{res: map[string]resMemo{}, groups: map[string]groupMemo{}}
	}
	return c.memo
}

// NewConfig returns an empty configuration with the built-in types.
func NewConfig() *Config {
	c := &Config{Types: map[string]*ResourceType{}, Groups: map[string]*Group{}, Resources: map[string]*Resource{}}
	c.memoOf()
	for _, t := range BuiltinTypes() {
		c.Types[t.Name] = t
	}
	return c
}

// Clone copies the maps (the objects are shared and must not be changed
// in place).
func (c *Config) Clone() *Config {
	n := &Config{Types: map[string]*ResourceType{}, Groups: map[string]*Group{}, Resources: map[string]*Resource{},
		memo: c.memoOf()}
	for k, v := range c.Types {
		n.Types[k] = v
	}
	for k, v := range c.Groups {
		n.Groups[k] = v
	}
	for k, v := range c.Resources {
		n.Resources[k] = v
	}
	return n
}

// TypeOf returns the type of r.
func (c *Config) TypeOf(r *Resource) *ResourceType { return c.Types[r.Type] }

// Effective returns the values of r: explicit ones over the type's
// defaults. The result is shared and must not be changed.
func (c *Config) Effective(r *Resource) Values {
	t := c.TypeOf(r)
	if t == nil {
		return r.Props
	}
	m := c.memoOf()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.res[r.Name]; ok && e.r == r && e.t == t {
		return e.v
	}
	v := t.Props.Effective(r.Props)
	m.res[r.Name] = resMemo{r: r, t: t, v: v}
	return v
}

// GroupValues returns the values of g: explicit ones over the defaults.
// The result is shared and must not be changed.
func (c *Config) GroupValues(g *Group) Values {
	m := c.memoOf()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.groups[g.Name]; ok && e.g == g {
		return e.v
	}
	v := GroupSchema.Effective(g.Props)
	m.groups[g.Name] = groupMemo{g: g, v: v}
	return v
}

// GroupResources lists the resources of group rg in creation order.
func (c *Config) GroupResources(rg string) []*Resource {
	var out []*Resource
	for _, r := range c.Resources {
		if r.Group == rg {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Dependency kinds.
const (
	DepStrong         = "strong"
	DepWeak           = "weak"
	DepRestart        = "restart"
	DepOfflineRestart = "offline_restart"
)

// Dep is one resource dependency.
type Dep struct {
	On    string // the dependee
	Kind  string
	Scope string // LOCAL_NODE, ANY_NODE, FROM_RG_AFFINITIES; empty when not given
}

var depProps = []struct{ prop, kind string }{
	{"Resource_dependencies", DepStrong},
	{"Resource_dependencies_weak", DepWeak},
	{"Resource_dependencies_restart", DepRestart},
	{"Resource_dependencies_offline_restart", DepOfflineRestart},
}

// Deps lists the dependencies of r, from its four dependency properties.
func (c *Config) Deps(r *Resource) []Dep {
	v := c.Effective(r)
	var out []Dep
	for _, dp := range depProps {
		for _, entry := range v.List(dp.prop) {
			on, scope := splitScope(entry)
			if on != "" {
				out = append(out, Dep{On: on, Kind: dp.kind, Scope: scope})
			}
		}
	}
	return out
}

// splitScope separates "res{LOCAL_NODE}" into the name and the scope.
func splitScope(s string) (string, string) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '{'); i >= 0 && strings.HasSuffix(s, "}") {
		return s[:i], strings.ToUpper(s[i+1 : len(s)-1])
	}
	return s, ""
}

// Validate checks the configuration as a whole and returns every problem.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...)))
	}
	for _, name := range sortedKeys(c.Groups) {
		g := c.Groups[name]
		if _, err := GroupSchema.Check(g.Props, false); err != nil {
			bad("group %s: %v", name, err)
			continue
		}
		v := c.GroupValues(g)
		maxp, desired := v.Int("Maximum_primaries", 1), v.Int("Desired_primaries", 1)
		if desired > maxp {
			bad("group %s: Desired_primaries %d is more than Maximum_primaries %d", name, desired, maxp)
		}
		for _, dep := range v.List("RG_dependencies") {
			if _, ok := c.Groups[dep]; !ok {
				bad("group %s: RG_dependencies names %q, which is not a group", name, dep)
			}
			if dep == name {
				bad("group %s depends on itself", name)
			}
		}
		for _, aff := range v.List("RG_affinities") {
			if _, target, err := ParseAffinity(aff); err != nil {
				bad("group %s: %v", name, err)
			} else if _, ok := c.Groups[target]; !ok {
				bad("group %s: RG_affinities names %q, which is not a group", name, target)
			}
		}
	}
	if cycle := findCycle(sortedKeys(c.Groups), func(g string) []string {
		if c.Groups[g] == nil {
			return nil // reported above as "not a group"
		}
		return c.GroupValues(c.Groups[g]).List("RG_dependencies")
	}); cycle != nil {
		bad("RG_dependencies form a cycle: %s", strings.Join(cycle, " -> "))
	}
	singles := map[string]string{}
	for _, name := range sortedKeys(c.Resources) {
		r := c.Resources[name]
		g, ok := c.Groups[r.Group]
		if !ok {
			bad("resource %s: group %q does not exist", name, r.Group)
			continue
		}
		t := c.TypeOf(r)
		if t == nil {
			bad("resource %s: type %q is not registered", name, r.Type)
			continue
		}
		if _, err := t.Props.Check(r.Props, true); err != nil {
			bad("resource %s: %v", name, err)
		}
		if t.Failover && c.GroupValues(g).Int("Maximum_primaries", 1) > 1 {
			bad("resource %s: type %s is a failover type and cannot be in group %s, which may be online on several nodes", name, t.Name, g.Name)
		}
		if t.SingleInstance {
			if other, dup := singles[t.Name]; dup {
				bad("resource %s: type %s allows a single resource, and %s is one", name, t.Name, other)
			}
			singles[t.Name] = name
		}
		for _, d := range c.Deps(r) {
			if _, ok := c.Resources[d.On]; !ok {
				bad("resource %s: depends on %q, which is not a resource", name, d.On)
			}
			if d.On == name {
				bad("resource %s depends on itself", name)
			}
			switch d.Scope {
			case "", "LOCAL_NODE", "ANY_NODE", "FROM_RG_AFFINITIES":
			default:
				bad("resource %s: dependency scope {%s} is not LOCAL_NODE, ANY_NODE or FROM_RG_AFFINITIES", name, d.Scope)
			}
		}
	}
	if cycle := findCycle(sortedKeys(c.Resources), func(n string) []string {
		r := c.Resources[n]
		if r == nil || c.TypeOf(r) == nil {
			return nil // reported above
		}
		var on []string
		for _, d := range c.Deps(r) {
			on = append(on, d.On)
		}
		return on
	}); cycle != nil {
		bad("resource dependencies form a cycle: %s", strings.Join(cycle, " -> "))
	}
	return errors.Join(errs...)
}

// findCycle returns a dependency cycle among nodes, or nil.
func findCycle(nodes []string, edges func(string) []string) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, m := range edges(n) {
			switch color[m] {
			case grey:
				for i, s := range stack {
					if s == m {
						found = append(append([]string(nil), stack[i:]...), m)
					}
				}
				return true
			case white:
				if visit(m) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	for _, n := range nodes {
		if color[n] == white && visit(n) {
			return found
		}
	}
	return nil
}

// Affinity strengths.
const (
	AffStrongPositive = "++"
	AffWeakPositive   = "+"
	AffStrongNegative = "--"
	AffWeakNegative   = "-"
	AffDelegate       = "+++"
)

// ParseAffinity reads one RG_affinities entry such as "++rg" or "-rg".
func ParseAffinity(s string) (kind, group string, err error) {
	for _, k := range []string{AffDelegate, AffStrongPositive, AffStrongNegative, AffWeakPositive, AffWeakNegative} {
		if strings.HasPrefix(s, k) {
			g := s[len(k):]
			if !ValidName(g) {
				break
			}
			return k, g, nil
		}
	}
	return "", "", fmt.Errorf("RG_affinities entry %q is not +rg, ++rg, +++rg, -rg or --rg", s)
}

// StartOrder sorts the resources of a group so that each comes after the
// resources of the same group it depends on (network resources first when
// Implicit_network_dependencies holds), keeping creation order otherwise.
func (c *Config) StartOrder(rg string) []*Resource {
	return OrderByDeps(c.GroupResources(rg), c.Deps)
}

// OrderByDeps orders resources so that each comes after those of the list
// it depends on, keeping the given order otherwise; a loop is cut where it
// closes.
func OrderByDeps(res []*Resource, deps func(*Resource) []Dep) []*Resource {
	index := map[string]int{}
	for i, r := range res {
		index[r.Name] = i
	}
	done := map[string]bool{}
	out := make([]*Resource, 0, len(res))
	var add func(r *Resource, depth int)
	add = func(r *Resource, depth int) {
		if done[r.Name] || depth > len(res) {
			return
		}
		for _, d := range deps(r) {
			if i, same := index[d.On]; same {
				add(res[i], depth+1)
			}
		}
		if !done[r.Name] {
			done[r.Name] = true
			out = append(out, r)
		}
	}
	for _, r := range res {
		add(r, 0)
	}
	return out
}
