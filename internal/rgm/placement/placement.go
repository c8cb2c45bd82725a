// Package placement decides where resource groups run in a cluster: a
// deterministic core that takes what the controller read from the store
// (nodes, groups, current assignments, what each node reports, pingpong
// marks, requests, MONITOR_CHECK results, the time) and returns the
// assignments to write, and why. It does no I/O; the controller in
// package rgm reads its input and writes its output.
//
// The rules (docs/failover.md says them for users):
//
//   - A managed group that should be online goes to Desired_primaries
//     nodes of its Nodelist (every node when empty), in preference order,
//     never more than Maximum_primaries, only on nodes that are up and not
//     evacuated, not within Pingpong_interval of a failed start or a
//     giveover there, and where its strong affinities allow.
//   - A group stays where it is unless it must move: its node went down,
//     no longer qualifies, asked to be relieved (a failed start under
//     SOFT or HARD, a giveover), or an administrator switched it; or
//     Failback is set and a more preferred node came up after the group
//     was placed.
//   - A node is added to a group only while the nodes that may still run
//     it number fewer than Maximum_primaries: a node taken off a group
//     counts until it reports the group offline after seeing that
//     assignment, or is down. So a failover group moves in two steps
//     (stop, then start), and never runs twice.
//   - A group whose RG_dependencies are not online anywhere waits.
//
// Every assignment carries an epoch that only grows; nodes are named
// with their own epoch, so a node that rejoined in a new epoch does not
// act on an assignment made for its previous life.
package placement

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Node is a member of the cluster.
type Node struct {
	Name  string
	Up    bool
	Epoch uint64
	// UpRev is the store revision at which the node came up in Epoch.
	UpRev int64
	// EvacuatedUntil keeps groups off the node (steady cluster evacuate).
	EvacuatedUntil time.Time
}

// Affinity is one entry of RG_affinities.
type Affinity struct {
	Group    string
	Strong   bool
	Positive bool
}

// ParseAffinity reads +RG, ++RG, -RG or --RG.
func ParseAffinity(s string) (Affinity, error) {
	var a Affinity
	switch {
	case strings.HasPrefix(s, "++"):
		a = Affinity{Group: s[2:], Strong: true, Positive: true}
	case strings.HasPrefix(s, "--"):
		a = Affinity{Group: s[2:], Strong: true}
	case strings.HasPrefix(s, "+"):
		a = Affinity{Group: s[1:], Positive: true}
	case strings.HasPrefix(s, "-"):
		a = Affinity{Group: s[1:]}
	default:
		return a, fmt.Errorf("affinity %q: write +RG, ++RG, -RG or --RG", s)
	}
	if a.Group == "" || strings.ContainsAny(a.Group, "+-") && strings.Trim(a.Group, "+-") == "" {
		return a, fmt.Errorf("affinity %q names no group", s)
	}
	return a, nil
}

func (a Affinity) String() string {
	p := "-"
	if a.Positive {
		p = "+"
	}
	if a.Strong {
		p += p
	}
	return p + a.Group
}

// Group is what placement needs of a resource group.
type Group struct {
	Name                       string
	Managed, Online, Suspended bool
	Nodelist                   []string // empty: every node, by name
	MaxPrimaries               int
	DesiredPrimaries           int
	Failback                   bool
	Pingpong                   time.Duration
	Deps                       []string
	Affinities                 []Affinity
	// Checks: a resource of the group has a MONITOR_CHECK method, run on
	// a candidate before a giveover moves the group there.
	Checks bool
}

// Placed is a node of an assignment, with the node's epoch.
type Placed struct {
	Node  string `json:"node"`
	Epoch uint64 `json:"epoch"`
}

// Assignment says where a group should run.
type Assignment struct {
	Nodes []Placed `json:"nodes"`
	Epoch uint64   `json:"epoch"`
	// Stopping holds the nodes taken off the group, with the epoch of the
	// assignment that did it; each counts as running the group until it
	// reports it offline having seen that epoch.
	Stopping map[string]uint64 `json:"stopping,omitempty"`
	// Pending are the nodes chosen that wait for Stopping ones to stop.
	Pending []string  `json:"pending,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Time    time.Time `json:"time"`
	// Rev is the store revision of the assignment (not stored in it).
	Rev int64 `json:"-"`
}

// Names are the assignment's nodes.
func (a Assignment) Names() []string {
	out := make([]string, len(a.Nodes))
	for i, p := range a.Nodes {
		out[i] = p.Node
	}
	return out
}

// Has reports whether the assignment names node in its epoch.
func (a Assignment) Has(node string, epoch uint64) bool {
	for _, p := range a.Nodes {
		if p.Node == node && p.Epoch == epoch {
			return true
		}
	}
	return false
}

// Status is what a node reports of a group.
type Status struct {
	Epoch uint64 `json:"epoch"` // the node's epoch
	Seen  uint64 `json:"seen"`  // the assignment epoch it acts on
	State string `json:"state"`
}

// Offline reports whether a reported state means nothing runs.
func Offline(state string) bool {
	return state == "" || state == "OFFLINE" || state == "UNMANAGED"
}

// Request kinds.
const (
	StartFailed = "start_failed" // a start method failed under SOFT or HARD
	Giveover    = "giveover"     // a monitor asked for the group to move
	Switch      = "switch"       // an administrator moves the group
)

// Request asks for a group to move.
type Request struct {
	ID    string
	Kind  string
	Group string
	// Node is the node asking to be relieved, or for a switch the node
	// the group should go to.
	Node string
	// Epoch is the assignment epoch a relocation was asked under.
	Epoch  uint64
	Reason string
	Time   time.Time
}

// Check is the outcome of MONITOR_CHECK on a candidate.
type Check struct {
	Request string
	Done    bool
	OK      bool
	Msg     string
}

// Input is everything placement looks at.
type Input struct {
	Now      time.Time
	Rev      int64 // the store revision the input reflects
	Nodes    []Node
	Groups   map[string]*Group
	Assign   map[string]Assignment
	Status   map[string]map[string]Status    // group, node
	Pingpong map[string]map[string]time.Time // group, node: when it failed or was given over there
	Requests []Request
	Checks   map[string]map[string]Check // group, node
	// ConfigRev is the store revision of each group's configuration:
	// failback counts only nodes that came up after the group was placed
	// and after it was last changed (turning Failback on moves nothing).
	ConfigRev map[string]int64
}

// Mark is a pingpong mark to record.
type Mark struct {
	Group, Node string
	Time        time.Time
}

// CheckAsk asks node to run MONITOR_CHECK for group.
type CheckAsk struct {
	Group, Node, Request string
}

// Decision is what placement decided for a group, in words.
type Decision struct {
	Group, Text string
}

// Output is what to write.
type Output struct {
	Assign    map[string]Assignment // the assignments that change
	Marks     []Mark
	Done      []string // requests handled (to delete)
	AskChecks []CheckAsk
	Decisions []Decision
}

// state is one run of Place.
type state struct {
	in      *Input
	nodes   map[string]*Node
	names   []string            // every node, by name
	targets map[string][]string // the new node list of each group placed so far
	out     Output
	reqs    map[string][]Request
}

// Place decides every group's assignment.
func Place(in *Input) Output {
	s := newState(in)
	for _, name := range order(in.Groups) {
		s.place(in.Groups[name])
	}
	return s.out
}

func newState(in *Input) *state {
	s := &state{in: in, nodes: map[string]*Node{}, targets: map[string][]string{}, reqs: map[string][]Request{},
		out: Output{Assign: map[string]Assignment{}}}
	for i := range in.Nodes {
		n := &in.Nodes[i]
		s.nodes[n.Name] = n
		s.names = append(s.names, n.Name)
	}
	sort.Strings(s.names)
	for _, r := range in.Requests {
		s.reqs[r.Group] = append(s.reqs[r.Group], r)
	}
	for g := range s.reqs {
		rs := s.reqs[g]
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].Time.Before(rs[j].Time) })
	}
	return s
}

// order puts every group after the groups it depends on or has a strong
// affinity for (placing them first lets it follow them); cycles (which
// the configuration refuses for dependencies) fall back to name order.
func order(groups map[string]*Group) []string {
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	sort.Strings(names)
	const (
		unseen = iota
		visiting
		done
	)
	mark := map[string]int{}
	out := make([]string, 0, len(names))
	var visit func(n string)
	visit = func(n string) {
		if mark[n] != unseen {
			return
		}
		mark[n] = visiting
		g := groups[n]
		var before []string
		before = append(before, g.Deps...)
		for _, a := range g.Affinities {
			before = append(before, a.Group)
		}
		sort.Strings(before)
		for _, h := range before {
			if _, ok := groups[h]; ok && mark[h] == unseen {
				visit(h)
			}
		}
		mark[n] = done
		out = append(out, n)
	}
	for _, n := range names {
		visit(n)
	}
	return out
}

// nodelist is the group's preference list.
func (s *state) nodelist(g *Group) []string {
	if len(g.Nodelist) > 0 {
		return g.Nodelist
	}
	return s.names
}

// exclusion says why node cannot host g now, or "".
func (s *state) exclusion(g *Group, name string) string {
	n := s.nodes[name]
	switch {
	case n == nil:
		return "is not a member of the cluster"
	case !n.Up:
		return "is down"
	case s.in.Now.Before(n.EvacuatedUntil):
		return fmt.Sprintf("is evacuated until %s", n.EvacuatedUntil.Local().Format("15:04:05"))
	}
	if t, ok := s.in.Pingpong[g.Name][name]; ok && g.Pingpong > 0 && s.in.Now.Sub(t) < g.Pingpong {
		return fmt.Sprintf("failed to start %s or gave it over at %s; Pingpong_interval (%v) keeps it away until %s",
			g.Name, t.Local().Format("15:04:05"), g.Pingpong, t.Add(g.Pingpong).Local().Format("15:04:05"))
	}
	for _, a := range g.Affinities {
		if !a.Strong {
			continue
		}
		on := contains(s.targets[a.Group], name)
		if a.Positive && !on {
			return fmt.Sprintf("does not run %s (RG_affinities %s)", a.Group, a)
		}
		if !a.Positive && on {
			return fmt.Sprintf("runs %s (RG_affinities %s)", a.Group, a)
		}
	}
	return ""
}

// candidates are the nodes that may host g, most preferred first, and
// why each other node of its list may not.
func (s *state) candidates(g *Group) ([]string, map[string]string) {
	why := map[string]string{}
	var out []string
	for _, n := range s.nodelist(g) {
		if w := s.exclusion(g, n); w != "" {
			why[n] = w
			continue
		}
		out = append(out, n)
	}
	if len(g.Affinities) > 0 {
		score := map[string]int{}
		for _, n := range out {
			for _, a := range g.Affinities {
				if a.Strong || !contains(s.targets[a.Group], n) {
					continue
				}
				if a.Positive {
					score[n]++
				} else {
					score[n]--
				}
			}
		}
		sort.SliceStable(out, func(i, j int) bool { return score[out[i]] > score[out[j]] })
	}
	return out, why
}

// running are the nodes that may be running g: those its assignment
// names (in their epoch), those it was taken from that have not reported
// it offline since, and any reporting it not offline. Down nodes run
// nothing: they fenced themselves before they could be declared down.
func (s *state) running(g *Group, cur Assignment) []string {
	var out []string
	for _, name := range s.names {
		n := s.nodes[name]
		if !n.Up {
			continue
		}
		st, valid := s.in.Status[g.Name][name]
		valid = valid && st.Epoch == n.Epoch
		switch ep, stopping := cur.Stopping[name]; {
		case cur.Has(name, n.Epoch):
			out = append(out, name)
		case stopping:
			if !valid || st.Seen < ep || !Offline(st.State) {
				out = append(out, name)
			}
		case valid && !Offline(st.State):
			out = append(out, name)
		}
	}
	return out
}

// online reports whether group h is online on some up node.
func (s *state) online(h string) bool {
	for node, st := range s.in.Status[h] {
		if n := s.nodes[node]; n != nil && n.Up && st.Epoch == n.Epoch && (st.State == "ONLINE" || st.State == "ONLINE_FAULTED") {
			return true
		}
	}
	return false
}

func (s *state) decide(g string, format string, args ...any) string {
	text := fmt.Sprintf(format, args...)
	s.out.Decisions = append(s.out.Decisions, Decision{Group: g, Text: text})
	return text
}

// place decides one group.
func (s *state) place(g *Group) {
	cur := s.in.Assign[g.Name]
	desired := min(max(g.DesiredPrimaries, 0), max(g.MaxPrimaries, 1))
	maxp := max(g.MaxPrimaries, 1)
	running := s.running(g, cur)
	var keep []string
	for _, p := range cur.Nodes {
		if n := s.nodes[p.Node]; n != nil && n.Up && n.Epoch == p.Epoch {
			keep = append(keep, p.Node)
		}
	}
	for _, p := range cur.Pending {
		if n := s.nodes[p]; n != nil && n.Up && !contains(keep, p) {
			keep = append(keep, p)
		}
	}
	var target []string
	reason := ""
	switch {
	case !g.Managed || !g.Online:
		if len(cur.Nodes) > 0 {
			reason = "taken offline"
		}
		for _, r := range s.reqs[g.Name] {
			s.out.Done = append(s.out.Done, r.ID)
		}
	case g.Suspended:
		// No automatic moves: it stays where it runs, and requests wait.
		target = keep
	default:
		cands, why := s.candidates(g)
		var relieve *Request
		var sw *Request
		for i := range s.reqs[g.Name] {
			r := &s.reqs[g.Name][i]
			switch {
			case r.Kind == Switch:
				if sw != nil {
					s.out.Done = append(s.out.Done, sw.ID) // a newer switch wins
				}
				sw = r
			case r.Epoch != cur.Epoch || !contains(keep, r.Node) || relieve != nil:
				s.out.Done = append(s.out.Done, r.ID) // stale, or one at a time
			default:
				relieve = r
			}
		}
		var stay []string
		for _, n := range keep {
			if contains(cands, n) && (relieve == nil || n != relieve.Node) {
				stay = append(stay, n)
			}
		}
		for _, p := range cur.Nodes {
			n := p.Node
			switch {
			case contains(stay, n) || relieve != nil && n == relieve.Node:
			case why[n] != "":
				reason = fmt.Sprintf("%s %s", n, why[n])
			case s.nodes[n] == nil || !contains(s.nodelist(g), n):
				reason = fmt.Sprintf("%s is no longer in its Nodelist", n)
			case s.nodes[n].Epoch != p.Epoch:
				reason = fmt.Sprintf("%s rejoined the cluster in epoch %d", n, s.nodes[n].Epoch)
			}
		}
		fill := func(from []string, base []string) []string {
			out := append([]string(nil), base...)
			for _, n := range from {
				if len(out) >= desired {
					break
				}
				if !contains(out, n) {
					out = append(out, n)
				}
			}
			return out
		}
		switch {
		case sw != nil:
			s.out.Done = append(s.out.Done, sw.ID)
			if w := s.exclusion(g, sw.Node); w != "" && w != why[sw.Node] || !contains(s.nodelist(g), sw.Node) || !s.nodes[sw.Node].Up {
				if w == "" {
					w = "is not in its Nodelist"
				}
				s.decide(g.Name, "cannot switch %s to %s: %s %s", g.Name, sw.Node, sw.Node, w)
				target = fill(cands, stay)
			} else {
				var base []string
				if maxp > 1 {
					base = stay
				}
				base = append([]string{sw.Node}, without(base, sw.Node)...)
				target = fill(cands, base)
				reason = "switched to " + sw.Node + " by an administrator"
			}
		case relieve != nil:
			target, reason = s.relieve(g, relieve, cands, stay, keep, desired)
		case g.Failback && s.failback(cur, max(cur.Rev, s.in.ConfigRev[g.Name]), cands, stay, desired):
			target = fill(cands, nil)
			reason = "failback: a more preferred node came up"
		default:
			target = fill(cands, stay)
		}
		if len(running) == 0 && len(target) > 0 {
			for _, h := range g.Deps {
				if !s.online(h) {
					if len(cur.Nodes) > 0 || cur.Epoch == 0 {
						reason = fmt.Sprintf("waits for group %s to be online (RG_dependencies)", h)
					}
					target = nil
					break
				}
			}
		}
		if len(target) == 0 && len(cands) == 0 && reason == "" && len(cur.Nodes) > 0 {
			reason = "no node can host it"
		}
	}
	// A node joins only while fewer than Maximum_primaries may run it.
	count := len(running)
	var nodes []Placed
	var waiting []string
	for _, n := range target {
		switch {
		case contains(running, n):
		case count < maxp:
			count++
		default:
			waiting = append(waiting, n)
			continue
		}
		nodes = append(nodes, Placed{Node: n, Epoch: s.nodes[n].Epoch})
	}
	s.targets[g.Name] = target
	if samePlaced(nodes, cur.Nodes) && sameNames(waiting, cur.Pending) {
		return
	}
	epoch := max(cur.Epoch+1, uint64(s.in.Rev)+1)
	next := Assignment{Nodes: nodes, Epoch: epoch, Time: s.in.Now, Pending: waiting}
	if next.Nodes == nil {
		next.Nodes = []Placed{}
	}
	for n, ep := range cur.Stopping {
		if contains(running, n) && !contains(next.Names(), n) {
			next.Stopping = setStop(next.Stopping, n, ep)
		}
	}
	for _, p := range cur.Nodes {
		if !contains(next.Names(), p.Node) && contains(running, p.Node) {
			next.Stopping = setStop(next.Stopping, p.Node, epoch)
		}
	}
	if reason == "" && len(cur.Pending) > 0 {
		// The second step of a move: its reason is the first step's.
		reason, _, _ = strings.Cut(cur.Reason, "; waits for ")
	}
	switch {
	case len(waiting) > 0:
		reason = fmt.Sprintf("%s; waits for %s to stop it before it starts on %s", orDefault(reason, "moving"), strings.Join(without(running, target...), ", "), strings.Join(waiting, ", "))
	case reason == "" && len(nodes) > 0:
		reason = "placed on " + strings.Join(next.Names(), ", ")
	case reason == "":
		reason = "offline"
	}
	next.Reason = reason
	s.out.Assign[g.Name] = next
	s.decide(g.Name, "%s", reason)
}

// failback reports whether a more preferred candidate than a node the
// group stays on came up after since (the group's placement or its last
// change).
func (s *state) failback(cur Assignment, since int64, cands, stay []string, desired int) bool {
	best := cands
	if len(best) > desired {
		best = best[:desired]
	}
	for _, n := range best {
		if !contains(stay, n) && s.nodes[n].UpRev > since && len(stay) > 0 {
			return true
		}
	}
	return false
}

// relieve moves the group off the node that asked (a failed start, a
// giveover) to the next candidate; a giveover waits for MONITOR_CHECK
// on each candidate in turn. Without another node the group stays.
func (s *state) relieve(g *Group, r *Request, cands, stay, keep []string, desired int) ([]string, string) {
	var alt []string
	for _, n := range cands {
		if n != r.Node && !contains(stay, n) {
			alt = append(alt, n)
		}
	}
	chosen := ""
	for _, n := range alt {
		if r.Kind != Giveover || !g.Checks {
			chosen = n
			break
		}
		c, ok := s.in.Checks[g.Name][n]
		if !ok || c.Request != r.ID {
			s.out.AskChecks = append(s.out.AskChecks, CheckAsk{Group: g.Name, Node: n, Request: r.ID})
			return keep, "" // waits for the check; stays meanwhile
		}
		if !c.Done {
			return keep, ""
		}
		if c.OK {
			chosen = n
			break
		}
	}
	s.out.Done = append(s.out.Done, r.ID)
	what := "a start failed on " + r.Node
	if r.Kind == Giveover {
		what = "a giveover was asked for on " + r.Node
	}
	if r.Reason != "" {
		what += " (" + r.Reason + ")"
	}
	if chosen == "" {
		text := fmt.Sprintf("%s, but no other node can take %s: it stays there", what, g.Name)
		if r.Kind == Giveover && g.Checks && len(alt) > 0 {
			text = fmt.Sprintf("%s, but MONITOR_CHECK failed on every other candidate (%s): it stays there", what, strings.Join(alt, ", "))
		}
		s.decide(g.Name, "%s", text)
		return keep, ""
	}
	s.out.Marks = append(s.out.Marks, Mark{Group: g.Name, Node: r.Node, Time: s.in.Now})
	out := append([]string{chosen}, stay...)
	for _, n := range alt {
		if len(out) >= desired {
			break
		}
		if !contains(out, n) {
			out = append(out, n)
		}
	}
	return out, fmt.Sprintf("%s: moved to %s", what, chosen)
}

// Explain says where a group is and why, and why each other node of its
// list does not run it.
func Explain(in *Input, group string) []string {
	s := newState(in)
	var lines []string
	for _, name := range order(in.Groups) {
		g := in.Groups[name]
		if name != group {
			s.place(g)
			continue
		}
		cur := in.Assign[name]
		cands, why := s.candidates(g)
		where := cur.Names()
		switch {
		case !g.Managed:
			lines = append(lines, fmt.Sprintf("%s is unmanaged: it is placed nowhere.", name))
		case !g.Online:
			lines = append(lines, fmt.Sprintf("%s is offline by request: it is placed nowhere (\"steady rg online %s\").", name, name))
		case len(where) == 0:
			lines = append(lines, fmt.Sprintf("%s is placed on no node now.", name))
		default:
			lines = append(lines, fmt.Sprintf("%s is placed on %s (assignment epoch %d, since %s).", name, strings.Join(where, ", "),
				cur.Epoch, cur.Time.Local().Format("2006-01-02 15:04:05")))
		}
		if cur.Reason != "" {
			lines = append(lines, "  last placement: "+cur.Reason)
		}
		if g.Suspended {
			lines = append(lines, "  it is suspended: it is not moved automatically.")
		}
		lines = append(lines, fmt.Sprintf("  Nodelist %s; Desired_primaries %d, Maximum_primaries %d, Failback %v, Pingpong_interval %v.",
			strings.Join(s.nodelist(g), ","), g.DesiredPrimaries, g.MaxPrimaries, g.Failback, g.Pingpong))
		for i, n := range s.nodelist(g) {
			switch {
			case contains(where, n):
				lines = append(lines, fmt.Sprintf("  %s: runs it (preference %d).", n, i+1))
			case why[n] != "":
				lines = append(lines, fmt.Sprintf("  %s: not here: %s %s.", n, n, why[n]))
			case contains(cands, n) && len(where) >= max(min(g.DesiredPrimaries, g.MaxPrimaries), 1):
				reason := fmt.Sprintf("  %s: could run it, but it has its %d primar", n, len(where))
				if len(where) == 1 {
					reason += "y"
				} else {
					reason += "ies"
				}
				if !g.Failback {
					reason += " (Failback is off: it does not move back by itself)"
				}
				lines = append(lines, reason+".")
			default:
				lines = append(lines, fmt.Sprintf("  %s: could run it.", n))
			}
		}
		for _, h := range g.Deps {
			if !s.online(h) {
				lines = append(lines, fmt.Sprintf("  it depends on group %s (RG_dependencies), which is online nowhere.", h))
			}
		}
		for _, r := range s.reqs[name] {
			lines = append(lines, fmt.Sprintf("  pending: %s from %s at %s: %s", r.Kind, r.Node, r.Time.Local().Format("15:04:05"), r.Reason))
		}
		return lines
	}
	return []string{fmt.Sprintf("no group %s", group)}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func without(list []string, vs ...string) []string {
	var out []string
	for _, x := range list {
		if !contains(vs, x) {
			out = append(out, x)
		}
	}
	return out
}

func samePlaced(a, b []Placed) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func setStop(m map[string]uint64, n string, ep uint64) map[string]uint64 {
	if m == nil {
		m = map[string]uint64{}
	}
	m[n] = ep
	return m
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
