package store_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/steady-ha/steady/internal/cluster"
	"github.com/steady-ha/steady/internal/store"
)

func port(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// nodePKI writes the CA and a certificate for node, valid on 127.0.0.1.
func nodePKI(t *testing.T, dir string, ca *cluster.CA, node string) store.TLSFiles {
	t.Helper()
	os.MkdirAll(dir, 0o700)
	key, csr, err := cluster.NewNodeKey(node)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.Sign(csr, node, []net.IP{net.ParseIP("127.0.0.1")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f := store.TLSFiles{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, node+".crt"), Key: filepath.Join(dir, node+".key")}
	os.WriteFile(f.CA, ca.CertPEM, 0o644)
	os.WriteFile(f.Cert, cert, 0o644)
	os.WriteFile(f.Key, key, 0o600)
	return f
}

func open(t *testing.T, dir, name string, c *store.Cluster) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), store.Options{Dir: dir, Name: name, Heartbeat: 50 * time.Millisecond, Election: 500 * time.Millisecond,
		QuotaBytes: 64 << 20, StartTimeout: 20 * time.Second, Logger: slog.New(slog.DiscardHandler), Cluster: c})
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	return s
}

// A standalone member becomes the first of a cluster (same data, now on
// the node's address with mutual TLS), a second member joins it as a
// learner, catches up, is promoted, and both serve the same data.
func TestTwoMembers(t *testing.T) {
	ctx := t.Context()
	base, err := os.MkdirTemp("", "steady-st-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	ca, _ := cluster.NewCA("c", time.Now())

	d1 := filepath.Join(base, "n1")
	s1 := open(t, d1, "n1", nil)
	if _, err := s1.Put(ctx, "kept", 1, "from before"); err != nil {
		t.Fatal(err)
	}
	s1.Close()
	c1 := &store.Cluster{Address: "127.0.0.1", PeerPort: port(t), ClientPort: port(t), TLS: nodePKI(t, filepath.Join(base, "pki1"), ca, "n1"), Token: ca.ClusterID()}
	s1 = open(t, d1, "n1", c1)
	defer s1.Close()
	if err := s1.UpdatePeerURL(ctx, "n1", store.PeerURL("127.0.0.1", c1.PeerPort)); err != nil {
		t.Fatal(err)
	}
	var v string
	if it, err := s1.Get(ctx, "kept"); err != nil || it.Decode(&v, 1) != nil || v != "from before" {
		t.Fatalf("data after becoming a cluster: %v %q", err, v)
	}

	c2 := &store.Cluster{Address: "127.0.0.1", PeerPort: port(t), ClientPort: port(t), TLS: nodePKI(t, filepath.Join(base, "pki2"), ca, "n2"), Token: ca.ClusterID(), Join: true}
	initial, err := s1.AddLearner(ctx, "n2", store.PeerURL("127.0.0.1", c2.PeerPort))
	if err != nil {
		t.Fatal(err)
	}
	c2.InitialCluster = initial
	// A learner's Open waits for its promotion, which a voter makes once
	// the learner has caught up.
	promoted := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := s1.Promote(ctx, "n2")
			if err == nil || time.Now().After(deadline) {
				promoted <- err
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	s2 := open(t, filepath.Join(base, "n2"), "n2", c2)
	defer s2.Close()
	if err := <-promoted; err != nil {
		t.Fatalf("promote: %v", err)
	}
	ms, err := s1.Members(ctx)
	if err != nil || len(ms) != 2 || ms[0].Learner || ms[1].Learner {
		t.Fatalf("members %+v %v", ms, err)
	}
	if _, err := s2.Put(ctx, "from/n2", 1, "hello"); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if it, err := s1.Get(rctx, "from/n2"); err != nil || it.Decode(&v, 1) != nil || v != "hello" {
		t.Fatalf("n1 reads what n2 wrote: %v %q", err, v)
	}
	if it, err := s2.Get(rctx, "kept"); err != nil || it.Decode(&v, 1) != nil || v != "from before" {
		t.Fatalf("n2 reads the old data: %v %q", err, v)
	}
}
