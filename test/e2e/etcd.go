package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/steady-ha/steady/internal/cluster"
)

// ExternalEtcd is an etcd cluster of one member (Debian's etcd-server) on
// loopback, with TLS and client certificates, for the tests and
// benchmarks of store.endpoints.
type ExternalEtcd struct {
	URL           string
	CA, Cert, Key string // the PEM files a client needs
}

// StartExternalEtcd starts one; it is stopped at the end of the test.
// Its raft timing is the embedded member's (50 ms heartbeat, 500 ms
// election): etcd will not grant a lease shorter than 1.5 election
// timeouts, so its default 1 s election would raise a 1 s lease to 2 s.
func StartExternalEtcd(t testing.TB) ExternalEtcd {
	t.Helper()
	dir := t.TempDir()
	writePKI(t, dir, "etcd", "steady")
	return ExternalEtcd{URL: externalEtcd(t, dir), CA: filepath.Join(dir, cluster.CACertFile),
		Cert: filepath.Join(dir, "steady.crt"), Key: filepath.Join(dir, "steady.key")}
}

// Config is an agent configuration template on e: the node's name is
// left as {{.Name}} for the caller to fill in.
func (e ExternalEtcd) Config() string {
	return fmt.Sprintf(`version: 1
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
`, e.URL, e.CA, e.Cert, e.Key)
}

// loopbackPort finds a free TCP port on loopback.
func loopbackPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pki writes a CA, and certificates signed by it for each name, into dir.
func writePKI(t testing.TB, dir string, names ...string) *cluster.CA {
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
func externalEtcd(t testing.TB, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd (Debian's etcd-server, installed by scripts/deps) is needed: %v", err)
	}
	client := fmt.Sprintf("https://127.0.0.1:%d", loopbackPort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", loopbackPort(t))
	cmd := exec.Command(bin, "--name", "ext1", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "ext1="+peer,
		"--cert-file", filepath.Join(dir, "etcd.crt"), "--key-file", filepath.Join(dir, "etcd.key"),
		"--trusted-ca-file", filepath.Join(dir, cluster.CACertFile), "--client-cert-auth",
		"--heartbeat-interval", "50", "--election-timeout", "500")
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
