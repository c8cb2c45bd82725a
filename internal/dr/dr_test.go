package dr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/steady-ha/steady/internal/dr/drtest"
	"github.com/steady-ha/steady/internal/rcm"
)

// Synthetic builds a synthetic sysfs tree in a temporary directory.
func Synthetic(t testing.TB, cpus, blocks int) string {
	t.Helper()
	root, err := drtest.TempDir()
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(root) })
	must(t, drtest.Synthetic(root, cpus, blocks))
	return root
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestListSynthetic(t *testing.T) {
	root := Synthetic(t, 512, 16384)
	m := NewManager(Options{Engine: rcm.New(rcm.Options{}), Drivers: []Driver{CPUs{Root: root}, Memory{Root: root}}})
	aps, err := m.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(aps) != 512+16384 {
		t.Fatalf("%d APs", len(aps))
	}
	if aps[0].ID != "cpu0" || !aps[0].Busy || aps[1].ID != "cpu1" || aps[1].Occupant != Configured || aps[512].ID != "mem0" {
		t.Fatalf("first APs: %+v %+v %+v", aps[0], aps[1], aps[512])
	}
	if _, _, err := m.Get(context.Background(), "cpu512"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cpu512: %v", err)
	}
	if _, _, err := m.Get(context.Background(), "mem3"); err != nil {
		t.Fatal(err)
	}
}

// recorder is a client that agrees and remembers what it heard.
type recorder struct {
	names []rcm.Interest
	heard []string
	deny  string
}

func (r *recorder) Name() string                                     { return "recorder" }
func (r *recorder) Register(context.Context) ([]rcm.Interest, error) { return r.names, nil }
func (r *recorder) Call(ctx context.Context, c rcm.Call) (string, error) {
	if c.Op == rcm.OpInfo {
		return "recorded use of " + c.Resource, nil
	}
	r.heard = append(r.heard, fmt.Sprintf("%s%s %s", c.Op, map[bool]string{true: "?", false: ""}[c.Flags&rcm.Query != 0], c.Resource))
	if r.deny != "" && c.Resource == r.deny && c.Flags&rcm.Force == 0 {
		return "", errors.New("in use by the test")
	}
	return "", nil
}

// failing wraps a driver whose driver step fails as the kernel's EBUSY.
type failing struct{ CPUs }

func (f failing) Unconfigure(ctx context.Context, ap AP) error {
	return fmt.Errorf("%w: writing \"0\" to %s: %w", ErrDriver, ap.PhysID, syscall.EBUSY)
}

func TestUnconfigureRunsThroughRCM(t *testing.T) {
	ctx := context.Background()
	root := Synthetic(t, 4, 0)
	e := rcm.New(rcm.Options{})
	rec := &recorder{names: []rcm.Interest{{Name: "cpu/2", Kind: rcm.KindDR}, {Name: "cpu", Kind: rcm.KindCapacity}}, deny: "cpu/2"}
	if err := e.AddClient(ctx, rec); err != nil {
		t.Fatal(err)
	}
	var changes []string
	m := NewManager(Options{Engine: e, Drivers: []Driver{CPUs{Root: root}}, Changed: func(ap AP, hint string) {
		changes = append(changes, ap.ID+" "+hint)
	}})
	online := filepath.Join(root, "devices/system/cpu/cpu2/online")

	// Refused: nothing changes.
	out, err := m.Unconfigure(ctx, "cpu2", Request{})
	if !errors.Is(err, rcm.ErrRefused) || len(out.Answers) != 1 || out.Answers[0].Error != "in use by the test" || out.Answers[0].Info != "recorded use of cpu/2" {
		t.Fatalf("refused: %v %+v", err, out)
	}
	if b, _ := os.ReadFile(online); string(b) != "1\n" {
		t.Fatalf("the CPU changed after a refusal: %q", b)
	}
	// Dry run with force: every client's word, nothing changes.
	rec.heard = nil
	out, err = m.Unconfigure(ctx, "cpu2", Request{Force: true, DryRun: true})
	if err != nil || out.Done || len(out.Answers) == 0 {
		t.Fatalf("dry run: %v %+v", err, out)
	}
	if strings.Join(rec.heard, ",") != "capacity? cpu,offline? cpu/2" {
		t.Fatalf("dry run asked: %v", rec.heard)
	}
	// Forced: capacity, offline, the driver step, remove, capacity notice.
	rec.heard = nil
	out, err = m.Unconfigure(ctx, "cpu2", Request{Force: true})
	if err != nil || !out.Done || out.AP.Occupant != Unconfigured {
		t.Fatalf("forced: %v %+v", err, out)
	}
	if b, _ := os.ReadFile(online); strings.TrimSpace(string(b)) != "0" {
		t.Fatalf("online file %q after unconfigure", b)
	}
	if got := strings.Join(rec.heard, ","); got != "capacity? cpu,capacity cpu,offline? cpu/2,offline cpu/2,remove cpu/2,capacity-done cpu" {
		t.Fatalf("heard %s", got)
	}
	if _, err := m.Unconfigure(ctx, "cpu2", Request{}); !errors.Is(err, ErrState) {
		t.Fatalf("second unconfigure: %v", err)
	}
	if _, err := m.Configure(ctx, "cpu2", Request{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(online); strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("online file %q after configure", b)
	}
	if strings.Join(changes, ",") != "cpu2 dr_remove,cpu2 dr_insert" {
		t.Fatalf("changes: %v", changes)
	}
	// The boot CPU cannot go.
	if _, err := m.Unconfigure(ctx, "cpu0", Request{Force: true}); !errors.Is(err, ErrState) {
		t.Fatalf("cpu0: %v", err)
	}
}

func TestFailingDriverStepIsUndone(t *testing.T) {
	ctx := context.Background()
	root := Synthetic(t, 4, 0)
	e := rcm.New(rcm.Options{})
	rec := &recorder{names: []rcm.Interest{{Name: "cpu/3", Kind: rcm.KindDR}}}
	e.AddClient(ctx, rec)
	m := NewManager(Options{Engine: e, Drivers: []Driver{failing{CPUs{Root: root}}}})
	out, err := m.Unconfigure(ctx, "cpu3", Request{})
	if !errors.Is(err, syscall.EBUSY) || out.Done || !strings.Contains(out.Restored, "told the resources are back") {
		t.Fatalf("%v %+v", err, out)
	}
	if got := strings.Join(rec.heard, ","); got != "offline? cpu/3,offline cpu/3,online cpu/3" {
		t.Fatalf("heard %s", got)
	}
	if len(e.InFlight()) != 0 {
		t.Fatalf("left in flight: %+v", e.InFlight())
	}
}

// The real kernel: cpu1 offline and back online, through RCM.
func TestRealCPU(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing CPUs needs root (CI runs as root)")
	}
	const online = "/sys/devices/system/cpu/cpu1/online"
	if _, err := os.Stat(online); err != nil {
		t.Fatalf("this machine has no %s: the real-kernel test needs a second CPU that can go offline", online)
	}
	ctx := context.Background()
	e := rcm.New(rcm.Options{})
	rec := &recorder{names: []rcm.Interest{{Name: "cpu/1", Kind: rcm.KindDR}}}
	e.AddClient(ctx, rec)
	m := NewManager(Options{Engine: e, Drivers: []Driver{CPUs{Root: "/sys"}}})
	t.Cleanup(func() { os.WriteFile(online, []byte("1"), 0o644) })
	out, err := m.Unconfigure(ctx, "cpu1", Request{})
	if err != nil || !out.Done {
		t.Fatalf("unconfigure cpu1: %v %+v", err, out)
	}
	if b, _ := os.ReadFile(online); strings.TrimSpace(string(b)) != "0" {
		t.Fatalf("cpu1 online = %q after unconfigure", b)
	}
	if cpus, _ := OnlineCPUs("/sys"); len(cpus) == 0 || contains(cpus, 1) {
		t.Fatalf("online CPUs %v", cpus)
	}
	if _, err := m.Configure(ctx, "cpu1", Request{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(online); strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("cpu1 online = %q after configure", b)
	}
	if got := strings.Join(rec.heard, ","); got != "offline? cpu/1,offline cpu/1,remove cpu/1" {
		t.Fatalf("heard %s", got)
	}
}

func contains(l []int, n int) bool {
	for _, x := range l {
		if x == n {
			return true
		}
	}
	return false
}

func BenchmarkList512CPUs16kBlocks(b *testing.B) {
	root := Synthetic(b, 512, 16384)
	m := NewManager(Options{Engine: rcm.New(rcm.Options{}), Drivers: []Driver{CPUs{Root: root}, Memory{Root: root}}})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.List(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/list")
}
