package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
)

func clusterStatus(t *testing.T, h *Host) (api.ClusterStatus, Result) {
	t.Helper()
	r := h.CLI("-o", "json", "cluster", "status")
	var cs api.ClusterStatus
	json.Unmarshal([]byte(r.Stdout), &cs)
	return cs, r
}

// formCluster inits the cluster on the first host and joins the others.
func formCluster(t *testing.T, hs []*Host) { hs[0].net.FormCluster(hs) }

// Three hosts: init, join, join. Every host sees the same three nodes up,
// three voters with one leader, and the same controller.
func TestClusterFormation(t *testing.T) {
	n := NewNet(t)
	hs := n.StartHosts(3)
	formCluster(t, hs)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		var ctl string
		var last api.ClusterStatus
		for _, h := range hs {
			cs, _ := clusterStatus(t, h)
			last = cs
			voters, up := 0, 0
			for _, nd := range cs.Nodes {
				if nd.State == "up" {
					up++
				}
				if nd.StoreRole == "voter" || nd.StoreRole == "leader" {
					voters++
				}
			}
			if len(cs.Nodes) != 3 || up != 3 || voters != 3 || cs.Controller == "" || (ctl != "" && cs.Controller != ctl) {
				ok = false
			}
			ctl = cs.Controller
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status not consistent on every host: %+v", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitStatus polls h's cluster status until ok holds.
func waitStatus(t *testing.T, h *Host, what string, d time.Duration, ok func(api.ClusterStatus) bool) api.ClusterStatus {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		cs, r := clusterStatus(t, h)
		if r.Code == 0 && ok(cs) {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s: %+v\n%s", what, h.Name, cs, r.Stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// voters counts the nodes that are up and hold a voting store member.
func voters(cs api.ClusterStatus) int {
	v := 0
	for _, nd := range cs.Nodes {
		if nd.State == "up" && (nd.StoreRole == "voter" || nd.StoreRole == "leader") {
			v++
		}
	}
	return v
}

// waitVoters waits until h sees count voters up.
func waitVoters(t *testing.T, h *Host, count int) api.ClusterStatus {
	t.Helper()
	return waitStatus(t, h, fmt.Sprintf("%d voters up", count), 30*time.Second, func(cs api.ClusterStatus) bool { return voters(cs) == count })
}

func nodeState(cs api.ClusterStatus, name string) (state, role string) {
	for _, n := range cs.Nodes {
		if n.Name == name {
			return n.State, n.StoreRole
		}
	}
	return "", ""
}

// Kill the host of the store's leader: the two others elect a new
// leader and accept writes again, and report the dead node down. Then
// the bad inputs of forming: a second init, a used token, a wrong one, a
// join to an address where nobody answers.
func TestClusterLeaderHostKilled(t *testing.T) {
	n := NewNet(t)
	hs := n.StartHosts(3)
	formCluster(t, hs)
	cs := waitVoters(t, hs[1], 3)
	var leader *Host
	for _, nd := range cs.Nodes {
		if nd.StoreRole == "leader" {
			for _, h := range hs {
				if h.Name == nd.Name {
					leader = h
				}
			}
		}
	}
	if leader == nil {
		t.Fatalf("no leader in %+v", cs)
	}
	var others []*Host
	for _, h := range hs {
		if h != leader {
			others = append(others, h)
		}
	}
	killed := time.Now()
	leader.Kill()
	waitStatus(t, others[0], "the dead leader's host down and a new leader", 15*time.Second, func(cs api.ClusterStatus) bool {
		st, _ := nodeState(cs, leader.Name)
		leaders := 0
		for _, nd := range cs.Nodes {
			if nd.StoreRole == "leader" {
				leaders++
			}
		}
		return st == "down" && leaders == 1 && cs.Controller != "" && cs.Controller != leader.Name
	})
	t.Logf("leader host killed -> reported down with a new store leader after %v", time.Since(killed).Round(time.Millisecond))
	// Writes work: a resource group is created through the other node.
	if r := others[1].CLI("rg", "create", "after-leader-died"); r.Code != 0 {
		t.Fatalf("a write after the leader died: %s%s", r.Stdout, r.Stderr)
	}

	// Bad input.
	r := others[0].CLI("cluster", "init", "--name", "again", "--address", others[0].Addr)
	if r.Code != api.ExitConflict || !strings.Contains(r.Stderr, "already belongs to a cluster") {
		t.Fatalf("a second init: %d %s", r.Code, r.Stderr)
	}
	extra := n.AddHost(4, "")
	if err := extra.Start(); err != nil {
		t.Fatal(err)
	}
	r = others[0].CLI("cluster", "token", "create")
	tok := strings.TrimSpace(r.Stdout)
	if r.Code != 0 || len(tok) < 90 {
		t.Fatalf("a token from a node that did not create the cluster: %s%s", r.Stdout, r.Stderr)
	}
	wrong := tok[:len(tok)-40-33] + strings.Repeat("0", 40) + tok[len(tok)-33:]
	r = extra.CLI("cluster", "join", others[0].Addr, "--token", wrong)
	if r.Code != api.ExitRefused || !strings.Contains(r.Stderr, "wrong secret") {
		t.Fatalf("a wrong secret: %d %s", r.Code, r.Stderr)
	}
	r = extra.CLI("cluster", "join", "198.18.0.99", "--token", tok)
	if r.Code == 0 || !strings.Contains(r.Stderr, "198.18.0.99") {
		t.Fatalf("a join to nobody: %d %s", r.Code, r.Stderr)
	}
	if st, _ := clusterStatus(t, extra); len(st.Nodes) != 1 {
		t.Fatalf("a refused join changed the node: %+v", st)
	}
	ms, _ := clusterStatus(t, others[0])
	if len(ms.Nodes) != 3 {
		t.Fatalf("a refused join left a member behind: %+v", ms)
	}
	// A good token works once. (etcd admits no new member while one of
	// its voters is down: the dead host comes back first.)
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, others[0], "the restarted host up", 30*time.Second, func(cs api.ClusterStatus) bool {
		st, _ := nodeState(cs, leader.Name)
		return st == "up"
	})
	if r := extra.CLI("cluster", "join", others[0].Addr, "--token", tok); r.Code != 0 {
		t.Fatalf("join with a good token: %s%s", r.Stdout, r.Stderr)
	}
	other := n.AddHost(5, "")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	r = other.CLI("cluster", "join", others[0].Addr, "--token", tok)
	if r.Code != api.ExitRefused || !strings.Contains(r.Stderr, "already used") {
		t.Fatalf("a used token: %d %s", r.Code, r.Stderr)
	}
}

// eventTime is when a host's journal recorded the first event of
// class/subclass whose node attribute is node, or zero.
func eventTime(t *testing.T, h *Host, subclass, node string) time.Time {
	t.Helper()
	r := h.CLI("-o", "json", "events", "list", "--class", "EC_cluster", "--subclass", subclass)
	var out struct {
		Events []api.Event `json:"events"`
	}
	json.Unmarshal([]byte(r.Stdout), &out)
	for _, e := range out.Events {
		if n, _ := e.Attrs["node"].Str(); n == node {
			return e.Time
		}
	}
	return time.Time{}
}

// Cut one host's link: it fences itself before the others see its lease
// expire (the order is read from the two sides' journals), then, healed,
// it rejoins with a new epoch.
func TestClusterCutHostFencesFirst(t *testing.T) {
	n := NewNet(t)
	hs := n.StartHosts(3)
	formCluster(t, hs)
	waitVoters(t, hs[0], 3)
	cut, watcher := hs[2], hs[0]
	if err := cut.Cut(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, watcher, "the cut host down", 15*time.Second, func(cs api.ClusterStatus) bool {
		st, _ := nodeState(cs, cut.Name)
		return st == "down"
	})
	var fenced time.Time
	deadline := time.Now().Add(10 * time.Second)
	for fenced.IsZero() && time.Now().Before(deadline) {
		fenced = eventTime(t, cut, "ESC_cluster_fenced", cut.Name)
		time.Sleep(100 * time.Millisecond)
	}
	down := eventTime(t, watcher, "ESC_cluster_node_down", cut.Name)
	if fenced.IsZero() || down.IsZero() {
		t.Fatalf("fenced at %v (on %s), seen down at %v (on %s)", fenced, cut.Name, down, watcher.Name)
	}
	if !fenced.Before(down) {
		t.Fatalf("%s fenced itself at %v, after %s saw it down at %v", cut.Name, fenced, watcher.Name, down)
	}
	t.Logf("fenced %v before the others saw the lease expire", down.Sub(fenced).Round(time.Millisecond))

	if err := cut.Heal(); err != nil {
		t.Fatal(err)
	}
	cs := waitStatus(t, watcher, "the healed host up again", 30*time.Second, func(cs api.ClusterStatus) bool {
		st, _ := nodeState(cs, cut.Name)
		return st == "up"
	})
	for _, nd := range cs.Nodes {
		if nd.Name == cut.Name && nd.Epoch < 2 {
			t.Fatalf("rejoined with epoch %d", nd.Epoch)
		}
	}
	if eventTime(t, cut, "ESC_cluster_rejoined", cut.Name).IsZero() {
		t.Fatal("no rejoined event")
	}
}

// Six hosts: the first five hold store members (voters), the sixth is a
// client of them only, and is up like the others.
func TestClusterSixHosts(t *testing.T) {
	n := NewNet(t)
	hs := n.StartHosts(6)
	formCluster(t, hs)
	cs := waitStatus(t, hs[5], "five voters and a client, all up", 60*time.Second, func(cs api.ClusterStatus) bool {
		voters, clients, up := 0, 0, 0
		for _, nd := range cs.Nodes {
			switch nd.StoreRole {
			case "voter", "leader":
				voters++
			case "client":
				clients++
			}
			if nd.State == "up" {
				up++
			}
		}
		return voters == 5 && clients == 1 && up == 6
	})
	if _, role := nodeState(cs, hs[5].Name); role != "client" {
		t.Fatalf("the sixth host is %s", role)
	}
	r := hs[5].CLI("-o", "json", "status")
	var st api.Status
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil || st.Store.Role != "client" {
		t.Fatalf("the sixth host's store: %v %+v", err, st.Store)
	}
}

// Remove a dead node: its store member goes, it is no longer listed, and
// its certificate no longer opens a connection to the others. A node that
// is up, and the node itself, are refused.
func TestClusterRemoveDeadNode(t *testing.T) {
	n := NewNet(t)
	hs := n.StartHosts(3)
	formCluster(t, hs)
	waitVoters(t, hs[0], 3)
	pki := filepath.Join(hs[2].DataDir, "cluster", "pki")
	health := func(from *Host, certDir, node string) Result {
		return from.Exec("curl", "-s", "-m", "3", "--cacert", filepath.Join(certDir, "ca.crt"),
			"--cert", filepath.Join(certDir, "node.crt"), "--key", filepath.Join(certDir, "node.key"),
			"https://"+hs[0].Addr+":2379/health")
	}
	if r := health(hs[1], pki, hs[2].Name); r.Code != 0 {
		t.Fatalf("n3's certificate before the removal: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := hs[0].CLI("cluster", "remove", hs[1].Name); r.Code != api.ExitConflict || !strings.Contains(r.Stderr, "is up") {
		t.Fatalf("removing a node that is up: %d %s", r.Code, r.Stderr)
	}
	if r := hs[0].CLI("cluster", "remove", hs[0].Name); r.Code != api.ExitConflict || !strings.Contains(r.Stderr, "this node") {
		t.Fatalf("removing itself: %d %s", r.Code, r.Stderr)
	}
	hs[2].Kill()
	waitStatus(t, hs[0], "n3 down", 15*time.Second, func(cs api.ClusterStatus) bool {
		st, _ := nodeState(cs, hs[2].Name)
		return st == "down"
	})
	if r := hs[0].CLI("cluster", "remove", hs[2].Name); r.Code != 0 {
		t.Fatalf("remove: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	cs := waitStatus(t, hs[1], "two nodes, two voters", 15*time.Second, func(cs api.ClusterStatus) bool {
		v := 0
		for _, nd := range cs.Nodes {
			if nd.StoreRole == "voter" || nd.StoreRole == "leader" {
				v++
			}
		}
		return len(cs.Nodes) == 2 && v == 2
	})
	if st, _ := nodeState(cs, hs[2].Name); st != "" {
		t.Fatalf("n3 still listed: %+v", cs)
	}
	// Every member refreshes its revocation list within a few seconds.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := health(hs[1], pki, hs[2].Name)
		if r.Code != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n3's certificate still works after its removal: %s", r.Stdout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := health(hs[1], filepath.Join(hs[1].DataDir, "cluster", "pki"), hs[1].Name); r.Code != 0 {
		t.Fatalf("n2's own certificate: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// A node leaves gracefully: the others see it "left", its store member
// goes, and it runs on standalone.
func TestClusterLeave(t *testing.T) {
	n := NewNet(t)
	hs := n.StartHosts(3)
	formCluster(t, hs)
	waitVoters(t, hs[0], 3)
	if r := hs[2].CLI("cluster", "leave"); r.Code != 0 {
		t.Fatalf("leave: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	waitStatus(t, hs[0], "two nodes left", 15*time.Second, func(cs api.ClusterStatus) bool {
		return len(cs.Nodes) == 2
	})
	if eventTime(t, hs[0], "ESC_cluster_node_left", hs[2].Name).IsZero() {
		t.Fatal("the others did not see the node leave")
	}
	cs, r := clusterStatus(t, hs[2])
	if r.Code != 0 || len(cs.Nodes) != 1 || cs.Nodes[0].StoreRole != "leader" {
		t.Fatalf("after leaving, the node is not standalone: %+v %s", cs, r.Stderr)
	}
	// The cluster still takes writes.
	if r := hs[1].CLI("rg", "create", "after-leave"); r.Code != 0 {
		t.Fatalf("a write after the leave: %s%s", r.Stdout, r.Stderr)
	}
}

// A token of one cluster shown to a node of another: the joining node
// sees a certificate from a CA the token does not name, sends nothing,
// and stays as it was; the other cluster gains no member.
func TestClusterJoinWrongCluster(t *testing.T) {
	n := NewNet(t)
	hs := n.StartHosts(3)
	for _, h := range hs[:2] {
		if r := h.CLI("cluster", "init", "--name", "c-"+h.Name, "--address", h.Addr); r.Code != 0 {
			t.Fatalf("init on %s: %s%s", h.Name, r.Stdout, r.Stderr)
		}
	}
	tok := strings.TrimSpace(hs[0].CLI("cluster", "token", "create").Stdout)
	r := hs[2].CLI("cluster", "join", hs[1].Addr, "--token", tok)
	if r.Code != api.ExitRefused || !strings.Contains(r.Stderr, "does not present the certificate of the cluster the token is for") {
		t.Fatalf("a join with another cluster's token: %d %s", r.Code, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(hs[2].DataDir, "cluster")); err == nil {
		t.Fatal("the refused node wrote cluster files")
	}
	if cs, _ := clusterStatus(t, hs[1]); len(cs.Nodes) != 1 {
		t.Fatalf("the other cluster changed: %+v", cs)
	}
	// The only node of a cluster holds its last voter: it cannot leave.
	if r := hs[1].CLI("cluster", "leave"); r.Code != api.ExitConflict || !strings.Contains(r.Stderr, "last voting member") {
		t.Fatalf("the last voter leaving: %d %s", r.Code, r.Stderr)
	}
	// The token is not spent: it still works on its own cluster.
	if r := hs[2].CLI("cluster", "join", hs[0].Addr, "--token", tok); r.Code != 0 {
		t.Fatalf("the token on its own cluster: %s%s", r.Stdout, r.Stderr)
	}
}
