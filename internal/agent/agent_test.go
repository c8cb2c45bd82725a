package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
	"github.com/steady-ha/steady/internal/cluster"
	"github.com/steady-ha/steady/internal/config"
	"github.com/steady-ha/steady/internal/event"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/pkg/v3/schedule.(*fifo).run"),
	)
}

func testConfig(t *testing.T) config.Config {
	t.Helper()
	c := config.Default().Dev(t.TempDir())
	c.Node.Name = "n1"
	return c
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) { w.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

func TestStartStatusStop(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(t.Context())
	a, err := New(ctx, Options{Config: cfg, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	c := client.New(cfg.API.Socket)
	st, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Node != "n1" || st.Store.Role != "leader" || st.Events.LastSeq < 1 {
		t.Fatalf("status %+v", st)
	}
	names := map[string]api.Health{}
	for _, s := range st.Subsystems {
		names[s.Name] = s.Health
	}
	for _, want := range []string{"store", "events", "subscribers", "uevents", "api"} {
		if names[want] != api.HealthOK {
			t.Errorf("subsystem %s health %q", want, names[want])
		}
	}
	// The node is recorded in the store, under its lease, with a schema
	// version, and is up.
	it, err := a.Store().Get(t.Context(), "nodes/n1")
	var rec cluster.LiveRecord
	if err != nil || it.Decode(&rec, 1) != nil || rec.Name != "n1" || it.Schema != 1 || it.Lease == 0 {
		t.Fatalf("node record %+v %v", it, err)
	}
	if cs, err := a.Cluster().Status(t.Context()); err != nil || len(cs.Nodes) != 1 || cs.Nodes[0].State != "up" {
		t.Fatalf("cluster status %+v %v", cs, err)
	}
	// A second agent on the same data directory is refused.
	cfg2 := cfg
	cfg2.API.Socket = filepath.Join(t.TempDir(), "other.sock")
	if _, err := New(t.Context(), Options{Config: cfg2}); err == nil || !strings.Contains(err.Error(), "in use by another agent (pid") {
		t.Fatalf("second agent: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not stop")
	}
	if _, err := os.Stat(cfg.API.Socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	// The journal kept the start and the stop, and the lock file is empty.
	j, err := event.OpenJournal(event.JournalOptions{Dir: filepath.Join(cfg.DataDir, "events", "journal")})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	evs, _ := j.Read(0, 100)
	evs = agentEvents(evs)
	if len(evs) < 2 || evs[0].Subclass != SubclassStarted || evs[len(evs)-1].Subclass != SubclassStopping {
		t.Fatalf("journal %+v", evs)
	}
	if b, _ := os.ReadFile(filepath.Join(cfg.DataDir, "agent.lock")); len(b) != 0 {
		t.Fatalf("lock file still holds %q after a clean stop", b)
	}
}

func TestFailedStartUndoesEverything(t *testing.T) {
	cfg := testConfig(t)
	// The API socket path is taken by a regular file: the last step fails.
	if err := os.WriteFile(cfg.API.Socket, []byte("not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(t.Context(), Options{Config: cfg, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("New: %v", err)
	}
	// Everything was released: the same data directory starts fine now.
	os.Remove(cfg.API.Socket)
	a, err := New(t.Context(), Options{Config: cfg, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("start after a failed start: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestUncleanStopIsReported(t *testing.T) {
	cfg := testConfig(t)
	os.MkdirAll(cfg.DataDir, 0o750)
	os.WriteFile(filepath.Join(cfg.DataDir, "agent.lock"), []byte("4242\n"), 0o640)
	a, err := New(t.Context(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	evs, _ := a.Bus().Journal().Read(0, 10)
	evs = agentEvents(evs)
	if len(evs) == 0 || evs[0].Subclass != SubclassStarted {
		t.Fatalf("journal %+v", evs)
	}
	if s, _ := evs[0].Attrs["previous_stop"].Str(); s != "unclean" {
		t.Fatalf("previous_stop = %q", s)
	}
	if s, _ := evs[0].Attrs["previous_pid"].Str(); s != "4242" {
		t.Fatalf("previous_pid = %q", s)
	}
}

// agentEvents keeps the agent's own events (EC_steady) of a journal.
func agentEvents(evs []api.Event) []api.Event {
	var out []api.Event
	for _, e := range evs {
		if e.Class == event.ClassSteady {
			out = append(out, e)
		}
	}
	return out
}

func TestMetricsOnTCP(t *testing.T) {
	cfg := testConfig(t)
	cfg.API.MetricsAddress = "127.0.0.1:0"
	a, err := New(t.Context(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	resp, err := http.Get("http://" + a.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// The agent's start and the node's joining the cluster were published.
	if !regexp.MustCompile(`(?m)^steady_events_published_total [1-9]`).MatchString(string(body)) {
		t.Errorf("metrics over TCP lack steady_events_published_total")
	}
	for _, want := range []string{"steady_events_journal_segments 1", "go_goroutines", "etcd_server_has_leader 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics over TCP lack %q", want)
		}
	}
	// The same metrics on the socket, for readers.
	m, err := client.New(cfg.API.Socket).Metrics(t.Context())
	if err != nil || !strings.Contains(m, "steady_events_published_total") {
		t.Fatalf("metrics on the socket: %v", err)
	}
}

func TestInvalidConfigStartsNothing(t *testing.T) {
	cfg := testConfig(t)
	cfg.Store.Election = config.Duration(time.Millisecond)
	if _, err := New(t.Context(), Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "store.election") {
		t.Fatalf("New: %v", err)
	}
	if _, err := os.Stat(cfg.DataDir + "/agent.lock"); !os.IsNotExist(err) {
		t.Fatalf("an invalid configuration still touched the data directory: %v", err)
	}
}
