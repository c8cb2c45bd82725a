package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
)

// servicePort is where the failover tests' service listens on its node.
const servicePort = "7070"

// markDir holds the service's marks, one log per node; every host sees
// the same file system.
func markDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "steady-marks-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("marks kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

func cli(t *testing.T, h *Host, args ...string) string {
	t.Helper()
	r := h.CLI(args...)
	if r.Code != 0 {
		t.Fatalf("%s: steady %s: exit %d\n%s%s", h.Name, strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// answer asks the service on host at from which node answers ("" when
// none does).
func answer(from, at *Host) string {
	r := from.Exec(markServerPath, "probe", at.Addr+":"+servicePort)
	if r.Code != 0 {
		return ""
	}
	return strings.Fields(r.Stdout)[0]
}

// markServerPath is set by the tests that use the service.
var markServerPath string

// waitServed waits until the service answers on node's address, asked
// from another host, and returns how long that took.
func waitServed(t *testing.T, from, node *Host, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if answer(from, node) == node.Name {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("the service does not answer on %s within %v", node.Name, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func groupOn(t *testing.T, h *Host, name string) api.RGMGroup {
	t.Helper()
	var g api.RGMGroup
	r := h.CLI("-o", "json", "rg", "show", name)
	if r.Code != 0 {
		return g
	}
	json.Unmarshal([]byte(r.Stdout), &g)
	return g
}

// waitPlaced waits until h sees the group online on node.
func waitPlaced(t *testing.T, h *Host, group, node string, within time.Duration) api.RGMGroup {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		g := groupOn(t, h, group)
		if len(g.Primaries) == 1 && g.Primaries[0] == node && g.ClusterState == "ONLINE" {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s is not online on %s within %v: %+v\n%s", group, node, within, g, h.CLI("rg", "why", group).Stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mark is one line of a service's log.
type mark struct {
	node  string
	epoch uint64
	at    time.Time
}

// checkMarks proves, from the marks every instance of the service wrote,
// that no two nodes served at the same time and that epochs only grew.
// A node serves from its first mark to its last without a gap of more
// than gap; those spans must not overlap.
func checkMarks(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "marks-*.log"))
	var all []mark
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) != 3 {
				continue // a line cut short by a kill
			}
			ep, _ := strconv.ParseUint(fs[1], 10, 64)
			ns, _ := strconv.ParseInt(fs[2], 10, 64)
			all = append(all, mark{fs[0], ep, time.Unix(0, ns)})
		}
		fh.Close()
	}
	if len(all) == 0 {
		t.Fatal("no marks")
	}
	sort.Slice(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	const gap = 150 * time.Millisecond
	type span struct {
		node     string
		from, to time.Time
		epoch    uint64
	}
	var spans []span
	open := map[string]int{}
	var maxEpoch uint64
	var maxFrom string
	for _, m := range all {
		if m.epoch < maxEpoch {
			t.Errorf("epoch went back: %s served with epoch %d at %s after %s served with %d",
				m.node, m.epoch, m.at.Format("15:04:05.000"), maxFrom, maxEpoch)
		}
		if m.epoch > maxEpoch {
			maxEpoch, maxFrom = m.epoch, m.node
		}
		if i, ok := open[m.node]; ok && m.at.Sub(spans[i].to) <= gap && spans[i].epoch == m.epoch {
			spans[i].to = m.at
			continue
		}
		open[m.node] = len(spans)
		spans = append(spans, span{node: m.node, from: m.at, to: m.at, epoch: m.epoch})
	}
	for i := range spans {
		for j := i + 1; j < len(spans); j++ {
			a, b := spans[i], spans[j]
			if a.node != b.node && !a.from.After(b.to) && !b.from.After(a.to) {
				t.Errorf("two nodes served at once: %s %s..%s (epoch %d) and %s %s..%s (epoch %d)",
					a.node, a.from.Format("15:04:05.000"), a.to.Format("15:04:05.000"), a.epoch,
					b.node, b.from.Format("15:04:05.000"), b.to.Format("15:04:05.000"), b.epoch)
			}
		}
	}
	var desc []string
	for _, s := range spans {
		desc = append(desc, fmt.Sprintf("%s[e%d %s..%s]", s.node, s.epoch, s.from.Format("15:04:05.000"), s.to.Format("15:04:05.000")))
	}
	t.Logf("%d marks in %d spans: %s", len(all), len(spans), strings.Join(desc, " "))
}

// startService creates group web with the service on Nodelist n1,n2,n3
// and brings it online.
func startService(t *testing.T, h *Host, dir string, props ...string) {
	t.Helper()
	args := []string{"rg", "create", "web", "-p", "Nodelist=n1,n2,n3"}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	cli(t, h, args...)
	cli(t, h, "resource", "create", "srv", "-g", "web", "-t", "steady.Process",
		"-p", "Command="+markServerPath+",serve,--port,"+servicePort+",--dir,"+dir, "-p", "Stop_timeout=5")
	cli(t, h, "rg", "online", "web")
}

// Three hosts run a service in a failover group. Kill its host: it
// answers from the next node of its Nodelist; the host returns, and
// without Failback the service stays; with Failback it goes back. The
// owner's link is cut, its agent is SIGKILLed, its agent is restarted
// at once, and the controller's host is killed during a switch: each
// time the service moves (or, for the quick restart, does not), and the
// marks of every instance show that no two nodes served at once and that
// epochs only grew.
func TestFailover(t *testing.T) {
	markServerPath = MarkServer(t)
	n := NewNet(t)
	hs := n.StartHosts(3)
	formCluster(t, hs)
	waitVoters(t, hs[2], 3)
	n1, n2, n3 := hs[0], hs[1], hs[2]
	dir := markDir(t)
	startService(t, n1, dir)
	waitPlaced(t, n3, "web", "n1", 30*time.Second)
	waitServed(t, n3, n1, 10*time.Second)

	// The owner's host dies.
	n1.Kill()
	d := waitServed(t, n3, n2, 20*time.Second)
	t.Logf("host n1 killed: the service answered from n2 after %v", d)
	// A switch to the dead node, or to no node, is refused at once.
	if r := n3.CLI("rg", "switch", "web", "--to", "n1"); r.Code != 5 || !strings.Contains(r.Stderr, "n1 is down") {
		t.Fatalf("rg switch to a down node: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := n3.CLI("rg", "switch", "web", "--to", "n9"); r.Code == 0 || !strings.Contains(r.Stderr, "no node n9") {
		t.Fatalf("rg switch to an unknown node: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if err := n1.Start(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, n2, "n1 up", 30*time.Second, func(cs api.ClusterStatus) bool { s, _ := nodeState(cs, "n1"); return s == "up" })
	time.Sleep(2 * time.Second)
	if g := groupOn(t, n2, "web"); len(g.Primaries) != 1 || g.Primaries[0] != "n2" {
		t.Fatalf("without Failback the group moved back: %+v", g)
	}
	why := cli(t, n1, "rg", "why", "web")
	if !strings.Contains(why, "Failback is off") {
		t.Fatalf("rg why does not say why n1 does not run it:\n%s", why)
	}

	// With Failback, n1 coming back takes it back.
	cli(t, n2, "rg", "set", "web", "-p", "Failback=TRUE")
	n1.Kill()
	time.Sleep(time.Second)
	if err := n1.Start(); err != nil {
		t.Fatal(err)
	}
	waitPlaced(t, n2, "web", "n1", 30*time.Second)
	waitServed(t, n3, n1, 10*time.Second)

	// The owner is cut off: it freezes the service, the others take it
	// over; healed, it finds itself declared down, kills what it froze,
	// rejoins in a new epoch, and Failback brings the service back.
	before := groupOn(t, n2, "web").Epoch
	if err := n1.Cut(); err != nil {
		t.Fatal(err)
	}
	d = waitServed(t, n3, n2, 20*time.Second)
	t.Logf("n1 cut off: the service answered from n2 after %v", d)
	if err := n1.Heal(); err != nil {
		t.Fatal(err)
	}
	g := waitPlaced(t, n2, "web", "n1", 30*time.Second)
	if g.Epoch <= before {
		t.Fatalf("the assignment epoch did not grow: %d after %d", g.Epoch, before)
	}
	waitServed(t, n3, n1, 10*time.Second)

	// Only the owner's agent dies: its watchdog freezes the service
	// before the others take it over.
	if err := n1.KillAgent(); err != nil {
		t.Fatal(err)
	}
	d = waitServed(t, n3, n2, 20*time.Second)
	t.Logf("n1's agent killed: the service answered from n2 after %v", d)
	if err := n1.RestartAgent(); err != nil {
		t.Fatal(err)
	}
	waitPlaced(t, n2, "web", "n1", 30*time.Second)
	waitServed(t, n3, n1, 10*time.Second)

	// An agent restarted at once goes on in its epoch: nothing stops.
	tag := func() int {
		var tg api.PMFTag
		json.Unmarshal([]byte(cli(t, n1, "-o", "json", "pmf", "show", "web,srv,0.svc")), &tg)
		return tg.MainPID
	}
	pid, epoch := tag(), groupOn(t, n1, "web").Epoch
	if err := n1.KillAgent(); err != nil {
		t.Fatal(err)
	}
	if err := n1.RestartAgent(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if got := tag(); got != pid || pid == 0 {
		t.Fatalf("the service was restarted by a quick agent restart: pid %d, then %d\n%s", pid, got, n1.Log())
	}
	if g := groupOn(t, n1, "web"); g.Epoch != epoch || g.Primaries[0] != "n1" {
		t.Fatalf("the group moved on a quick agent restart: %+v", g)
	}

	// The controller's host is killed during a switch.
	cs, _ := clusterStatus(t, n2)
	var ctl, target *Host
	for _, h := range hs {
		if h.Name == cs.Controller {
			ctl = h
		}
	}
	for _, h := range hs {
		if h != ctl && h != n1 {
			target = h
			break
		}
	}
	var asker *Host
	for _, h := range hs {
		if h != ctl {
			asker = h
			break
		}
	}
	cli(t, asker, "rg", "switch", "web", "--to", target.Name, "--no-wait")
	ctl.Kill()
	t.Logf("switching web to %s; killed the controller %s", target.Name, ctl.Name)
	waitPlaced(t, asker, "web", target.Name, 30*time.Second)
	waitServed(t, asker, target, 10*time.Second)
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	checkMarks(t, dir)
}

// fencingConfig is HostConfig with a fence action that leaves a mark.
const fencingConfig = HostConfig + `rgm:
  fence_action: "echo $STEADY_RESOURCE > {{.Dir}}/fenced"
`

// An RTR type whose START and STOP fail on a node when a file says so.
func installFlaky(t *testing.T, h *Host) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "steady-flaky-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	for name, body := range map[string]string{
		"start": "#!/bin/sh\n[ -e " + dir + "/fail-start-$STEADY_NODE ] && { echo \"start refused on $STEADY_NODE\"; exit 1; }\nexit 0\n",
		"stop":  "#!/bin/sh\n[ -e " + dir + "/fail-stop-$STEADY_NODE ] && { echo \"stop refused on $STEADY_NODE\"; exit 1; }\nexit 0\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rtr := filepath.Join(dir, "flaky.rtr")
	os.WriteFile(rtr, []byte(`RESOURCE_TYPE = "flaky";
VENDOR_ID = STDY;
RT_VERSION = "1";
RT_BASEDIR = `+dir+`;
FAILOVER = TRUE;
START = start;
STOP = stop;
{ PROPERTY = Start_timeout; DEFAULT = 10; }
{ PROPERTY = Stop_timeout; DEFAULT = 10; }
`), 0o644)
	cli(t, h, "type", "register", "-f", rtr)
	return dir
}

func flakyGroup(t *testing.T, h *Host, name, mode string) {
	t.Helper()
	cli(t, h, "rg", "create", name, "-p", "Nodelist=n1,n2,n3")
	cli(t, h, "resource", "create", name+"-r", "-g", name, "-t", "STDY.flaky", "-p", "Failover_mode="+mode)
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Failover_mode across nodes: a start failure under SOFT moves the group
// to the next node; under NONE it stays ONLINE_FAULTED; a stop failure
// under NONE leaves the group ERROR_STOP_FAILED (started nowhere else)
// until it is cleared; under HARD the node fences itself, its groups
// move, and the fence action runs.
func TestFailoverPolicies(t *testing.T) {
	n := NewNet(t)
	var hs []*Host
	for i := 1; i <= 3; i++ {
		h := n.AddHost(i, fencingConfig)
		if err := h.Start(); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	formCluster(t, hs)
	waitVoters(t, hs[2], 3)
	n1, n2, n3 := hs[0], hs[1], hs[2]
	dir := installFlaky(t, n1)
	for _, g := range [][2]string{{"soft", "SOFT"}, {"none", "NONE"}, {"stuck", "NONE"}, {"hard", "HARD"}} {
		flakyGroup(t, n1, g[0], g[1])
	}

	touch(t, dir+"/fail-start-n1")
	cli(t, n2, "rg", "online", "soft")
	waitPlaced(t, n3, "soft", "n2", 20*time.Second)
	if why := cli(t, n3, "rg", "why", "soft"); !strings.Contains(why, "a start failed on n1") || !strings.Contains(why, "Pingpong_interval") {
		t.Fatalf("rg why soft:\n%s", why)
	}
	if r := n2.CLI("rg", "online", "none"); r.Code != 1 || !strings.Contains(r.Stderr, "ONLINE_FAULTED") {
		t.Fatalf("online none: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	time.Sleep(time.Second)
	if g := groupOn(t, n3, "none"); len(g.Primaries) != 1 || g.Primaries[0] != "n1" || g.ClusterState != "ONLINE_FAULTED" {
		t.Fatalf("under NONE the group must stay ONLINE_FAULTED on n1: %+v", g)
	}
	os.Remove(dir + "/fail-start-n1")

	// A stop failure under NONE: nobody else starts it until cleared.
	cli(t, n1, "rg", "online", "stuck")
	waitPlaced(t, n3, "stuck", "n1", 20*time.Second)
	touch(t, dir+"/fail-stop-n1")
	cli(t, n3, "rg", "switch", "stuck", "--to", "n2", "--no-wait")
	deadline := time.Now().Add(20 * time.Second)
	for groupOn(t, n3, "stuck").ClusterState != "ERROR_STOP_FAILED" {
		if time.Now().After(deadline) {
			t.Fatalf("stuck: %+v", groupOn(t, n3, "stuck"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if g := groupOn(t, n3, "stuck"); len(g.Primaries) != 0 || g.ClusterState != "ERROR_STOP_FAILED" {
		t.Fatalf("a group that failed to stop was started elsewhere: %+v", g)
	}
	cli(t, n1, "resource", "clear", "stuck-r", "--flag", "STOP_FAILED")
	waitPlaced(t, n3, "stuck", "n2", 20*time.Second)

	// A stop failure under HARD: n1 fences itself and leaves the cluster
	// until its agent restarts; its groups move; the fence action runs.
	cli(t, n1, "rg", "online", "hard")
	waitPlaced(t, n3, "hard", "n1", 20*time.Second)
	cli(t, n3, "rg", "switch", "hard", "--to", "n2", "--no-wait")
	waitPlaced(t, n3, "hard", "n2", 20*time.Second)
	waitPlaced(t, n3, "none", "n2", 20*time.Second) // it was on n1 too
	cs := waitStatus(t, n3, "n1 down", 10*time.Second, func(cs api.ClusterStatus) bool { s, _ := nodeState(cs, "n1"); return s == "down" })
	for _, nd := range cs.Nodes {
		if nd.Name == "n1" && !strings.Contains(nd.DownReason, "declared down by n1") {
			t.Fatalf("n1's down reason: %q", nd.DownReason)
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(n1.Dir, "fenced")); err == nil && strings.TrimSpace(string(b)) == "hard-r" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fence action did not run")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := n1.CLI("status"); r.Code != 1 || !strings.Contains(r.Stdout+r.Stderr, "fenced") {
		t.Fatalf("n1's status does not say it is fenced: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	// Restarted, it rejoins in a new epoch.
	os.Remove(dir + "/fail-stop-n1")
	if err := n1.KillAgent(); err != nil {
		t.Fatal(err)
	}
	if err := n1.RestartAgent(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, n3, "n1 up again", 20*time.Second, func(cs api.ClusterStatus) bool {
		for _, nd := range cs.Nodes {
			if nd.Name == "n1" {
				return nd.State == "up" && nd.Epoch >= 2
			}
		}
		return false
	})
}
