package placement

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// world is a cluster to place groups in, step by step.
type world struct {
	t  *testing.T
	in *Input
}

func newWorld(t *testing.T, nodes ...string) *world {
	w := &world{t: t, in: &Input{Now: t0, Rev: 10, Groups: map[string]*Group{}, Assign: map[string]Assignment{},
		Status: map[string]map[string]Status{}, Pingpong: map[string]map[string]time.Time{}, Checks: map[string]map[string]Check{}}}
	for _, n := range nodes {
		w.in.Nodes = append(w.in.Nodes, Node{Name: n, Up: true, Epoch: 1, UpRev: 1})
	}
	return w
}

func (w *world) group(name string, edit func(g *Group)) *Group {
	g := &Group{Name: name, Managed: true, Online: true, MaxPrimaries: 1, DesiredPrimaries: 1, Pingpong: time.Hour}
	if edit != nil {
		edit(g)
	}
	w.in.Groups[name] = g
	return g
}

func (w *world) node(name string) *Node {
	for i := range w.in.Nodes {
		if w.in.Nodes[i].Name == name {
			return &w.in.Nodes[i]
		}
	}
	w.t.Fatalf("no node %s", name)
	return nil
}

// step runs placement, applies what it decided as the controller would
// (assignments, marks, done requests), and returns the output.
func (w *world) step() Output {
	w.t.Helper()
	out := Place(w.in)
	w.in.Rev += 5
	for g, a := range out.Assign {
		if old, ok := w.in.Assign[g]; ok && a.Epoch <= old.Epoch {
			w.t.Fatalf("group %s: epoch %d after %d", g, a.Epoch, old.Epoch)
		}
		a.Rev = w.in.Rev
		w.in.Assign[g] = a
	}
	for _, m := range out.Marks {
		if w.in.Pingpong[m.Group] == nil {
			w.in.Pingpong[m.Group] = map[string]time.Time{}
		}
		w.in.Pingpong[m.Group][m.Node] = m.Time
	}
	done := map[string]bool{}
	for _, d := range out.Done {
		done[d] = true
	}
	var left []Request
	for _, r := range w.in.Requests {
		if !done[r.ID] {
			left = append(left, r)
		}
	}
	w.in.Requests = left
	return out
}

// report makes every up node report each group as a converged node would:
// online where assigned, offline elsewhere, with the assignment seen.
func (w *world) report(except ...string) {
	for g, a := range w.in.Assign {
		if w.in.Status[g] == nil {
			w.in.Status[g] = map[string]Status{}
		}
		for _, n := range w.in.Nodes {
			if !n.Up || contains(except, n.Name) {
				continue
			}
			st := "OFFLINE"
			if a.Has(n.Name, n.Epoch) {
				st = "ONLINE"
			}
			w.in.Status[g][n.Name] = Status{Epoch: n.Epoch, Seen: a.Epoch, State: st}
		}
	}
}

// settle steps and reports until nothing changes.
func (w *world) settle() {
	w.t.Helper()
	for i := 0; i < 10; i++ {
		out := w.step()
		w.report()
		if len(out.Assign) == 0 {
			return
		}
	}
	w.t.Fatal("placement does not settle")
}

func (w *world) where(g string) string { return strings.Join(w.in.Assign[g].Names(), ",") }

func (w *world) expect(g, nodes string) {
	w.t.Helper()
	if got := w.where(g); got != nodes {
		w.t.Fatalf("group %s on %q, want %q (reason %q)", g, got, nodes, w.in.Assign[g].Reason)
	}
}

func (w *world) down(n string) {
	nd := w.node(n)
	nd.Up = false
}

func (w *world) up(n string) {
	nd := w.node(n)
	nd.Up, nd.Epoch, nd.UpRev = true, nd.Epoch+1, w.in.Rev
	w.in.Rev++
}

func TestPlaceAndFailover(t *testing.T) {
	w := newWorld(t, "n1", "n2", "n3")
	w.group("web", func(g *Group) { g.Nodelist = []string{"n1", "n2", "n3"} })
	w.settle()
	w.expect("web", "n1")
	first := w.in.Assign["web"].Epoch
	// n1 is down: it stopped before it could be declared down, so the
	// group moves in one step.
	w.down("n1")
	out := w.step()
	w.expect("web", "n2")
	if w.in.Assign["web"].Epoch <= first || !strings.Contains(out.Decisions[0].Text, "n1 is down") {
		t.Fatalf("epoch %d, decisions %+v", w.in.Assign["web"].Epoch, out.Decisions)
	}
	w.report()
	// Back without Failback: it stays.
	w.up("n1")
	w.settle()
	w.expect("web", "n2")
	// Turning Failback on moves nothing by itself.
	w.in.Groups["web"].Failback = true
	w.in.ConfigRev = map[string]int64{"web": w.in.Rev}
	w.in.Rev++
	w.settle()
	w.expect("web", "n2")
	// With Failback, a more preferred node that comes up takes it back,
	// in two steps: n2 stops it first.
	w.down("n1")
	w.settle()
	w.up("n1")
	w.step()
	a := w.in.Assign["web"]
	if len(a.Nodes) != 0 || a.Stopping["n2"] != a.Epoch || len(a.Pending) != 1 || a.Pending[0] != "n1" {
		t.Fatalf("failback first step: %+v", a)
	}
	// n2 has not reported yet: nothing starts on n1.
	w.step()
	w.expect("web", "")
	w.report()
	w.step()
	w.expect("web", "n1")
}

func TestNeverTwiceWhileStopping(t *testing.T) {
	w := newWorld(t, "n1", "n2")
	w.group("db", nil)
	w.settle()
	w.expect("db", "n1")
	// An administrator switches it; n1's stop fails.
	w.in.Requests = []Request{{ID: "r1", Kind: Switch, Group: "db", Node: "n2", Time: t0}}
	w.step()
	w.expect("db", "")
	ep := w.in.Assign["db"].Epoch
	w.in.Status["db"]["n1"] = Status{Epoch: 1, Seen: ep, State: "ERROR_STOP_FAILED"}
	for i := 0; i < 3; i++ {
		w.step()
		w.expect("db", "")
	}
	// Cleared: it reports offline, and n2 may start it.
	w.in.Status["db"]["n1"] = Status{Epoch: 1, Seen: ep, State: "OFFLINE"}
	w.step()
	w.expect("db", "n2")
	// An offline report from before the assignment that took it off does
	// not count.
	w.in.Requests = []Request{{ID: "r2", Kind: Switch, Group: "db", Node: "n1", Time: t0}}
	w.report()
	w.step()
	ep = w.in.Assign["db"].Epoch
	w.in.Status["db"]["n2"] = Status{Epoch: 1, Seen: ep - 1, State: "OFFLINE"}
	w.step()
	w.expect("db", "")
	w.in.Status["db"]["n2"] = Status{Epoch: 1, Seen: ep, State: "OFFLINE"}
	w.step()
	w.expect("db", "n1")
}

func TestRelocation(t *testing.T) {
	w := newWorld(t, "n1", "n2", "n3")
	w.group("app", nil)
	w.settle()
	ep := w.in.Assign["app"].Epoch
	// A stale request (an older assignment) is dropped.
	w.in.Requests = []Request{{ID: "old", Kind: StartFailed, Group: "app", Node: "n1", Epoch: ep - 1, Time: t0}}
	out := w.step()
	if len(out.Done) != 1 || len(out.Assign) != 0 {
		t.Fatalf("stale request: %+v", out)
	}
	w.in.Requests = []Request{{ID: "r", Kind: StartFailed, Group: "app", Node: "n1", Epoch: ep, Reason: "START failed", Time: t0}}
	w.settle()
	w.expect("app", "n2")
	if w.in.Pingpong["app"]["n1"].IsZero() {
		t.Fatal("no pingpong mark on n1")
	}
	// n2 fails too: n1 is avoided (Pingpong_interval), n3 is next.
	w.in.Requests = []Request{{ID: "r2", Kind: StartFailed, Group: "app", Node: "n2", Epoch: w.in.Assign["app"].Epoch, Time: t0}}
	w.settle()
	w.expect("app", "n3")
	// And n3: nobody is left; it stays there.
	w.in.Requests = []Request{{ID: "r3", Kind: StartFailed, Group: "app", Node: "n3", Epoch: w.in.Assign["app"].Epoch, Time: t0}}
	out = w.step()
	w.expect("app", "n3")
	if len(out.Decisions) != 1 || !strings.Contains(out.Decisions[0].Text, "no other node") {
		t.Fatalf("decisions %+v", out.Decisions)
	}
	// After the interval n1 may host it again: n3 goes down, n1 takes it.
	w.in.Now = t0.Add(2 * time.Hour)
	w.down("n3")
	w.step()
	w.expect("app", "n1")
}

func TestGiveoverChecks(t *testing.T) {
	w := newWorld(t, "n1", "n2", "n3")
	w.group("svc", func(g *Group) { g.Checks = true })
	w.settle()
	ep := w.in.Assign["svc"].Epoch
	w.in.Requests = []Request{{ID: "g1", Kind: Giveover, Group: "svc", Node: "n1", Epoch: ep, Time: t0}}
	out := w.step()
	if len(out.AskChecks) != 1 || out.AskChecks[0].Node != "n2" {
		t.Fatalf("asks %+v", out.AskChecks)
	}
	w.expect("svc", "n1")
	w.in.Checks["svc"] = map[string]Check{"n2": {Request: "g1", Done: true, OK: false, Msg: "no disk"}}
	out = w.step()
	if len(out.AskChecks) != 1 || out.AskChecks[0].Node != "n3" {
		t.Fatalf("asks %+v", out.AskChecks)
	}
	w.in.Checks["svc"]["n3"] = Check{Request: "g1", Done: true, OK: true}
	w.step()
	w.expect("svc", "")
	w.report()
	w.settle()
	w.expect("svc", "n3") // not n2, whose check failed
	// Every check fails: it stays.
	w.in.Requests = []Request{{ID: "g2", Kind: Giveover, Group: "svc", Node: "n3", Epoch: w.in.Assign["svc"].Epoch, Time: t0}}
	w.in.Checks["svc"] = map[string]Check{"n2": {Request: "g2", Done: true}}
	out = w.step()
	w.expect("svc", "n3")
	if len(out.Decisions) != 1 || !strings.Contains(out.Decisions[0].Text, "MONITOR_CHECK failed") {
		t.Fatalf("decisions %+v", out.Decisions)
	}
}

func TestScalableAndAffinities(t *testing.T) {
	w := newWorld(t, "n1", "n2", "n3")
	w.group("web", func(g *Group) { g.MaxPrimaries, g.DesiredPrimaries = 3, 2 })
	w.group("db", func(g *Group) { g.Nodelist = []string{"n3", "n2", "n1"} })
	w.group("cache", func(g *Group) { g.Affinities = []Affinity{{Group: "db", Strong: true, Positive: true}} })
	w.group("batch", func(g *Group) { g.Affinities = []Affinity{{Group: "db", Strong: true}} })
	w.group("report", func(g *Group) {
		g.Affinities = []Affinity{{Group: "web", Positive: true}, {Group: "db", Positive: true}}
	})
	w.settle()
	w.expect("web", "n1,n2")
	w.expect("db", "n3")
	w.expect("cache", "n3")
	w.expect("batch", "n1")
	w.expect("report", "n1") // n1 and n2 run web, n3 runs db: the first of the best
	// n3 goes: db moves to n2 and cache follows; batch may stay on n1.
	w.down("n3")
	w.settle()
	w.expect("db", "n2")
	w.expect("cache", "n2")
	w.expect("batch", "n1")
	w.down("n1")
	w.settle()
	w.expect("web", "n2")
	w.expect("batch", "") // only n2 is left, and it runs db
	lines := Explain(w.in, "batch")
	if !strings.Contains(strings.Join(lines, "\n"), "n2: not here: n2 runs db (RG_affinities --db)") {
		t.Fatalf("explain:\n%s", strings.Join(lines, "\n"))
	}
}

func TestDependenciesEvacuationAndEpochs(t *testing.T) {
	w := newWorld(t, "n1", "n2")
	w.group("app", func(g *Group) { g.Deps = []string{"db"} })
	db := w.group("db", func(g *Group) { g.Online = false })
	w.settle()
	w.expect("app", "")
	if !strings.Contains(w.in.Assign["app"].Reason+strings.Join(Explain(w.in, "app"), "\n"), "db") {
		t.Fatalf("why app waits: %v", Explain(w.in, "app"))
	}
	db.Online = true
	w.settle()
	w.expect("db", "n1")
	w.expect("app", "n1")
	// Evacuating n1 moves both.
	w.node("n1").EvacuatedUntil = t0.Add(time.Minute)
	w.settle()
	w.expect("db", "n2")
	w.expect("app", "n2")
	// A node that rejoined in a new epoch is not taken to run what its
	// old life was given: the group is placed on it again, in its epoch.
	w.node("n1").EvacuatedUntil = time.Time{}
	w.in.Requests = []Request{{ID: "s", Kind: Switch, Group: "db", Node: "n1", Time: t0}}
	w.settle()
	w.expect("db", "n1")
	w.node("n1").Epoch++
	w.step()
	a := w.in.Assign["db"]
	if len(a.Nodes) != 1 || a.Nodes[0].Node != "n1" || a.Nodes[0].Epoch != 2 {
		t.Fatalf("after the rejoin: %+v", a)
	}
	// A switch to a node that is down is refused, and says so.
	w.down("n2")
	w.in.Requests = []Request{{ID: "s2", Kind: Switch, Group: "db", Node: "n2", Time: t0}}
	out := w.step()
	if len(out.Decisions) == 0 || !strings.Contains(out.Decisions[0].Text, "cannot switch db to n2: n2 is down") {
		t.Fatalf("decisions %+v", out.Decisions)
	}
	w.expect("db", "n1")
}

func TestParseAffinity(t *testing.T) {
	for in, want := range map[string]Affinity{
		"++a": {Group: "a", Strong: true, Positive: true}, "--b": {Group: "b", Strong: true},
		"+c": {Group: "c", Positive: true}, "-d": {Group: "d"},
	} {
		got, err := ParseAffinity(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("%s: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"a", "+", "++", "---"} {
		if _, err := ParseAffinity(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// bigInput is 10,000 failover groups on three nodes, a third preferring
// each, all placed and reported online.
func bigInput() *Input {
	lists := [][]string{{"n1", "n2", "n3"}, {"n2", "n3", "n1"}, {"n3", "n1", "n2"}}
	in := &Input{Now: time.Unix(1e9, 0), Rev: 100, Groups: map[string]*Group{}, Assign: map[string]Assignment{},
		Status: map[string]map[string]Status{}, ConfigRev: map[string]int64{}}
	for _, n := range []string{"n1", "n2", "n3"} {
		in.Nodes = append(in.Nodes, Node{Name: n, Up: true, Epoch: 1, UpRev: 1})
	}
	for k := 0; k < 10000; k++ {
		name := fmt.Sprintf("g%05d", k)
		l := lists[k%3]
		in.Groups[name] = &Group{Name: name, Managed: true, Online: true, Nodelist: l, MaxPrimaries: 1, DesiredPrimaries: 1, Pingpong: time.Hour}
		in.Assign[name] = Assignment{Nodes: []Placed{{Node: l[0], Epoch: 1}}, Epoch: 50, Rev: 50}
		in.Status[name] = map[string]Status{}
		for _, n := range l {
			st := "OFFLINE"
			if n == l[0] {
				st = "ONLINE"
			}
			in.Status[name][n] = Status{Epoch: 1, Seen: 50, State: st}
		}
	}
	return in
}

// BenchmarkPlace10000 is one placement round of 10,000 groups with
// nothing to change: what the controller pays for each batch of changes
// it sees.
func BenchmarkPlace10000(b *testing.B) {
	in := bigInput()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out := Place(in); len(out.Assign) != 0 {
			b.Fatalf("%d assignments changed", len(out.Assign))
		}
	}
}

// BenchmarkPlace10000NodeDown is the round after a node went down: a
// third of the groups move.
func BenchmarkPlace10000NodeDown(b *testing.B) {
	in := bigInput()
	in.Nodes[1].Up = false
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out := Place(in); len(out.Assign) < 3333 {
			b.Fatalf("%d assignments changed", len(out.Assign))
		}
	}
}
