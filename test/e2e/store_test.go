package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/cluster"
)

// pki writes a CA, and certificates signed by it for each name, into dir.
func pki(t *testing.T, dir string, names ...string) *cluster.CA {
	t.Helper()
	ca, err := cluster.NewCA("ext", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		key, csr, err := cluster.NewNodeKey(n)
		if err != nil {
			t.Fatal(err)
		}
		cert, _, err := ca.Sign(csr, n, []net.IP{net.ParseIP("127.0.0.1")}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, n+".crt"), cert, 0o644)
		os.WriteFile(filepath.Join(dir, n+".key"), key, 0o600)
	}
	return ca
}

// externalEtcd starts Debian's etcd on loopback with TLS and client
// certificates, and returns its client URL.
func externalEtcd(t *testing.T, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd (Debian's etcd-server, installed by scripts/deps) is needed: %v", err)
	}
	client := fmt.Sprintf("https://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--name", "ext1", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "ext1="+peer,
		"--cert-file", filepath.Join(dir, "etcd.crt"), "--key-file", filepath.Join(dir, "etcd.key"),
		"--trusted-ca-file", filepath.Join(dir, cluster.CACertFile), "--client-cert-auth")
	log, _ := os.Create(filepath.Join(dir, "etcd.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			t.Logf("etcd log:\n%s", b)
		}
	})
	return client
}

const externalConfig = `version: 1
node:
  name: {{.Name}}
data_dir: {{.DataDir}}
api:
  socket: {{.Socket}}
pmf:
  cgroup: {{.Cgroup}}
store:
  endpoints: [%s]
  tls:
    ca_file: %s
    cert_file: %s
    key_file: %s
`

// Two agents on one external etcd (Debian's etcd-server, on loopback,
// TLS with client certificates): no member is embedded, both nodes are up
// and clients of the store, one is controller; when it is killed, the
// other sees it down within the lease and becomes controller. An agent
// with a certificate from another CA does not start, and says why.
func TestExternalEtcd(t *testing.T) {
	dir := t.TempDir()
	pki(t, dir, "etcd", "steady")
	url := externalEtcd(t, dir)
	cfg := fmt.Sprintf(externalConfig, url, filepath.Join(dir, cluster.CACertFile), filepath.Join(dir, "steady.crt"), filepath.Join(dir, "steady.key"))
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
	if d := time.Since(killed); d > 4*time.Second {
		t.Fatalf("the dead node was seen down after %v (lease 2s)", d)
	}
	r = survivor.CLI("-o", "json", "events", "list", "--class", "EC_cluster")
	if !strings.Contains(r.Stdout, cluster.SubclassNodeDown) {
		t.Fatalf("no node-down event:\n%s", r.Stdout)
	}

	// A certificate from another CA.
	other := t.TempDir()
	pki(t, other, "steady")
	bad := NewAgent(t, AgentOptions{Config: strings.Replace(fmt.Sprintf(externalConfig, url, filepath.Join(dir, cluster.CACertFile),
		filepath.Join(other, "steady.crt"), filepath.Join(other, "steady.key")), "{{.Name}}", "x3", 1) + "  start_timeout: 3s\n"})
	err := bad.Start()
	if err == nil || !strings.Contains(err.Error(), "did not answer") || !strings.Contains(err.Error(), "tls: ") {
		t.Fatalf("an agent with a foreign certificate: %v", err)
	}
}
