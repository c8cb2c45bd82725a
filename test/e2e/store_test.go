package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/cluster"
)

// Two agents on one external etcd (Debian's etcd-server, on loopback,
// TLS with client certificates): no member is embedded, both nodes are up
// and clients of the store, one is controller; when it is killed, the
// other sees it down within the lease and becomes controller. An agent
// with a certificate from another CA does not start, and says why.
func TestExternalEtcd(t *testing.T) {
	ext := StartExternalEtcd(t)
	cfg := ext.Config()
	a1 := StartAgent(t, AgentOptions{Config: strings.Replace(cfg, "{{.Name}}", "x1", 1)})
	a2 := StartAgent(t, AgentOptions{Config: strings.Replace(cfg, "{{.Name}}", "x2", 1)})

	r := a1.CLI("-o", "json", "status")
	var st api.Status
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil || st.Store.Mode != "external" || st.Store.Role != "client" {
		t.Fatalf("status: %v %+v\n%s", err, st.Store, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(a1.DataDir, "store")); err == nil {
		t.Fatal("an embedded member was made")
	}
	status := func(a *Agent) api.ClusterStatus {
		t.Helper()
		r := a.CLI("-o", "json", "cluster", "status")
		var cs api.ClusterStatus
		if err := json.Unmarshal([]byte(r.Stdout), &cs); err != nil {
			t.Fatalf("cluster status: %v\n%s%s", err, r.Stdout, r.Stderr)
		}
		return cs
	}
	waitFor := func(what string, ok func(api.ClusterStatus) bool, a *Agent) api.ClusterStatus {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			cs := status(a)
			if ok(cs) {
				return cs
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v", what, cs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	cs := waitFor("both up with a controller", func(cs api.ClusterStatus) bool {
		return len(cs.Nodes) == 2 && cs.Nodes[0].State == "up" && cs.Nodes[1].State == "up" && cs.Controller != ""
	}, a2)
	if cs.Nodes[0].StoreRole != "client" {
		t.Fatalf("store role %q", cs.Nodes[0].StoreRole)
	}
	victim, survivor := a1, a2
	if cs.Controller == "x2" {
		victim, survivor = a2, a1
	}
	killed := time.Now()
	victim.Kill()
	cs = waitFor("the killed controller down, the other controller", func(cs api.ClusterStatus) bool {
		down := 0
		for _, n := range cs.Nodes {
			if n.State == "down" {
				down++
			}
		}
		return down == 1 && cs.Controller != "" && cs.Controller == cs.Node
	}, survivor)
	if d := time.Since(killed); d > 8*time.Second { // the lease is 2 s; figures are in BenchmarkNodeDown
		t.Fatalf("the dead node was seen down after %v (lease 2s)", d)
	}
	r = survivor.CLI("-o", "json", "events", "list", "--class", "EC_cluster")
	if !strings.Contains(r.Stdout, cluster.SubclassNodeDown) {
		t.Fatalf("no node-down event:\n%s", r.Stdout)
	}

	// A certificate from another CA.
	other := t.TempDir()
	writePKI(t, other, "steady")
	foreign := ext
	foreign.Cert, foreign.Key = filepath.Join(other, "steady.crt"), filepath.Join(other, "steady.key")
	bad := NewAgent(t, AgentOptions{Config: strings.Replace(foreign.Config(), "{{.Name}}", "x3", 1) + "  start_timeout: 3s\n"})
	err := bad.Start()
	if err == nil || !strings.Contains(err.Error(), "did not answer") || !strings.Contains(err.Error(), "tls: ") {
		t.Fatalf("an agent with a foreign certificate: %v", err)
	}
}
