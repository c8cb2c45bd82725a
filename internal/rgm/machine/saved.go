package machine

import "slices"

// Saved remembers the runtime state as it was last saved, so that a save
// encodes and writes only what changed since. The state is saved before
// every step's actions; encoding thousands of resources on each step
// would cost more than all the rest of the step, while comparing copies
// costs a few nanoseconds each.
type Saved struct {
	res    map[string]resState
	groups map[string]groupState
}

// NewSaved is a Saved that has seen nothing (everything is changed).
func NewSaved() *Saved {
	return &Saved{res: map[string]resState{}, groups: map[string]groupState{}}
}

// Empty reports whether s has seen nothing yet.
func (s *Saved) Empty() bool { return len(s.res) == 0 && len(s.groups) == 0 }

// Changed returns the resources and groups whose state differs from s,
// and those in s that are gone; s then matches the machine. After a step
// that concerned a few groups (a method's result, an assignment) only
// those are compared; after one that may have touched any, everything is.
func (m *Machine) Changed(s *Saved) (res, groups, goneRes, goneGroups []string) {
	all, scope := m.saveAll || s.Empty(), m.saveGroups
	m.saveAll, m.saveGroups = false, nil
	if !all {
		for g := range scope {
			if gs := m.groups[g]; gs != nil {
				if old, ok := s.groups[g]; !ok || !gs.equal(&old) {
					groups = append(groups, g)
					s.groups[g] = gs.clone()
				}
			}
			for _, r := range m.idx.members[g] {
				if rs := m.res[r.Name]; rs != nil {
					if old, ok := s.res[r.Name]; !ok || !rs.equal(&old) {
						res = append(res, r.Name)
						s.res[r.Name] = rs.clone()
					}
				}
			}
		}
		return res, groups, nil, nil
	}
	for name, rs := range m.res {
		if old, ok := s.res[name]; !ok || !rs.equal(&old) {
			res = append(res, name)
			s.res[name] = rs.clone()
		}
	}
	for name, gs := range m.groups {
		if old, ok := s.groups[name]; !ok || !gs.equal(&old) {
			groups = append(groups, name)
			s.groups[name] = gs.clone()
		}
	}
	if len(s.res) > len(m.res) {
		for name := range s.res {
			if m.res[name] == nil {
				goneRes = append(goneRes, name)
				delete(s.res, name)
			}
		}
	}
	if len(s.groups) > len(m.groups) {
		for name := range s.groups {
			if m.groups[name] == nil {
				goneGroups = append(goneGroups, name)
				delete(s.groups, name)
			}
		}
	}
	return res, groups, goneRes, goneGroups
}

// equal compares what is saved of two resource states (Waiters is not).
func (a *resState) equal(b *resState) bool {
	return a.State == b.State && a.Status == b.Status && a.StatusMsg == b.StatusMsg &&
		slices.Equal(a.Plan, b.Plan) && a.Running == b.Running && a.Going == b.Going &&
		a.Monitoring == b.Monitoring && a.Restart == b.Restart && slices.Equal(a.Restarts, b.Restarts) &&
		a.IgnoreFailedStart == b.IgnoreFailedStart && a.GiveoverAsked == b.GiveoverAsked &&
		a.Last.equal(b.Last) && a.Decision.equal(b.Decision)
}

func (a *resState) clone() resState {
	c := *a
	c.Plan, c.Restarts, c.Waiters = slices.Clone(a.Plan), slices.Clone(a.Restarts), nil
	c.Last, c.Decision = a.Last.clone(), a.Decision.clone()
	return c
}

func (a *groupState) equal(b *groupState) bool {
	return a.State == b.State && a.Assigned == b.Assigned && slices.Equal(a.Restarts, b.Restarts) &&
		a.Cycling == b.Cycling && a.Decision.equal(b.Decision) && slices.Equal(a.Waiters, b.Waiters)
}

func (a *groupState) clone() groupState {
	c := *a
	c.Restarts, c.Waiters, c.Decision = slices.Clone(a.Restarts), slices.Clone(a.Waiters), a.Decision.clone()
	return c
}

func (a *record) equal(b *record) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (a *record) clone() *record {
	if a == nil {
		return nil
	}
	c := *a
	return &c
}
