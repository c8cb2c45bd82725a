package store

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// etcd's gRPC and client libraries leave a few process-wide goroutines
	// behind by design; everything steady starts must be gone.
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/pkg/v3/schedule.(*fifo).run"),
		goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
	)
}

type node struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Options{
		Dir: dir, Name: "n1", Heartbeat: 50 * time.Millisecond, Election: 500 * time.Millisecond,
		QuotaBytes: 64 << 20, StartTimeout: 20 * time.Second,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestKVAndSchema(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := t.Context()
	rev, err := s.Put(ctx, "nodes/n1", 1, node{Name: "n1", Version: "1.0"})
	if err != nil || rev == 0 {
		t.Fatalf("Put: %d %v", rev, err)
	}
	s.Put(ctx, "nodes/n2", 1, node{Name: "n2"})
	s.Put(ctx, "other/x", 1, "x")

	it, err := s.Get(ctx, "nodes/n1")
	if err != nil {
		t.Fatal(err)
	}
	var n node
	if err := it.Decode(&n, 1); err != nil || n.Version != "1.0" || it.Schema != 1 || it.ModRevision != rev {
		t.Fatalf("Get = %+v (%v), decoded %+v", it, err, n)
	}
	if err := it.Decode(&n, 0); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Decode with older reader: %v, want ErrNewerSchema", err)
	}
	items, listRev, err := s.List(ctx, "nodes/")
	if err != nil || len(items) != 2 || items[0].Key != "nodes/n1" || items[1].Key != "nodes/n2" || listRev < rev {
		t.Fatalf("List = %+v rev %d, %v", items, listRev, err)
	}
	if _, err := s.Get(ctx, "nodes/n3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	for _, bad := range []string{"", "/abs", "a//b", "a/../b"} {
		if _, err := s.Put(ctx, bad, 1, 1); !errors.Is(err, ErrBadKey) {
			t.Errorf("Put(%q) = %v, want ErrBadKey", bad, err)
		}
	}
	if _, err := s.Put(ctx, "x", 0, 1); err == nil {
		t.Error("Put with schema 0 succeeded")
	}
	if ok, err := s.Delete(ctx, "nodes/n2"); !ok || err != nil {
		t.Fatalf("Delete: %v %v", ok, err)
	}
	if ok, _ := s.Delete(ctx, "nodes/n2"); ok {
		t.Fatal("second Delete reported a deletion")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Everything survives a restart of the member.
	s2 := openTest(t, dir)
	defer s2.Close()
	it, err = s2.Get(t.Context(), "nodes/n1")
	if err != nil || it.ModRevision != rev {
		t.Fatalf("after reopen: %+v %v", it, err)
	}
	if _, err := s2.Get(t.Context(), "nodes/n2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key came back: %v", err)
	}
}

func TestTxn(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := t.Context()
	put, _ := OpPut("locks/a", 1, "owner1")
	res, err := s.Txn(ctx, []Cond{Missing("locks/a")}, []Op{put}, nil)
	if err != nil || !res.Succeeded {
		t.Fatalf("first create: %+v %v", res, err)
	}
	put2, _ := OpPut("locks/a", 1, "owner2")
	res2, err := s.Txn(ctx, []Cond{Missing("locks/a")}, []Op{put2}, nil)
	if err != nil || res2.Succeeded {
		t.Fatalf("second create succeeded: %+v %v", res2, err)
	}
	// Compare-and-swap on the revision.
	del, _ := OpDelete("locks/a")
	if r, _ := s.Txn(ctx, []Cond{Unchanged("locks/a", res.Revision-1)}, []Op{del}, nil); r.Succeeded {
		t.Fatal("CAS with a stale revision succeeded")
	}
	if r, _ := s.Txn(ctx, []Cond{Unchanged("locks/a", res.Revision)}, []Op{del}, nil); !r.Succeeded {
		t.Fatal("CAS with the current revision failed")
	}
	if _, err := s.Get(ctx, "locks/a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("key survived the transaction: %v", err)
	}
}

func TestWatchAndLease(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	w, err := s.Watch(ctx, "nodes/", 0)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := s.Grant(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "nodes/n1", 1, node{Name: "n1"}, WithLease(lease)); err != nil {
		t.Fatal(err)
	}
	s.Put(ctx, "elsewhere", 1, 1) // not under the watched prefix
	b := <-w
	if b.Err != nil || len(b.Events) != 1 || b.Events[0].Type != Put || b.Events[0].Item.Key != "nodes/n1" || b.Events[0].Item.Lease != lease {
		t.Fatalf("first batch %+v", b)
	}
	if ttl, err := s.KeepAliveOnce(ctx, lease); err != nil || ttl <= 0 {
		t.Fatalf("KeepAliveOnce: %v %v", ttl, err)
	}
	// Without keepalives the lease expires and takes the key with it.
	start := time.Now()
	b = <-w
	if b.Err != nil || len(b.Events) != 1 || b.Events[0].Type != Deleted || b.Events[0].Item.Key != "nodes/n1" {
		t.Fatalf("expiry batch %+v", b)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("lease took %v to expire", d)
	}
	if err := s.Revoke(ctx, lease); err == nil {
		t.Fatal("revoking an expired lease succeeded")
	}
}

func TestStatusAndSocket(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	defer s.Close()
	st := s.Status(t.Context())
	if st.Role != "leader" || st.Leader != "n1" || st.Members != 1 || st.Revision < 1 || st.DBSize == 0 {
		t.Fatalf("Status = %+v", st)
	}
	if h, detail := s.Health(t.Context()); h != "ok" || !strings.Contains(detail, "leader") {
		t.Fatalf("Health = %s %s", h, detail)
	}
	if fi, err := os.Stat(filepath.Join(dir, "client.sock")); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("client socket: %v", err)
	}
	if s.ClientSocket() != filepath.Join(dir, "client.sock") {
		t.Fatalf("ClientSocket = %s", s.ClientSocket())
	}
}

func TestOpenRefusesLongSocketPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	_, err := Open(t.Context(), Options{Dir: dir, Name: "n1", Heartbeat: 50 * time.Millisecond, Election: 500 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "longer than 107 bytes") {
		t.Fatalf("Open = %v", err)
	}
}
