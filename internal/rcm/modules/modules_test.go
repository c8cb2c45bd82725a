package modules

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steady-ha/steady/internal/dr"
	"github.com/steady-ha/steady/internal/rcm"
)

func tree(t *testing.T, online string, blocks map[int]string) string {
	t.Helper()
	root := t.TempDir()
	cpu := filepath.Join(root, "devices/system/cpu")
	os.MkdirAll(cpu, 0o755)
	os.WriteFile(filepath.Join(cpu, "online"), []byte(online+"\n"), 0o644)
	mem := filepath.Join(root, "devices/system/memory")
	os.MkdirAll(mem, 0o755)
	os.WriteFile(filepath.Join(mem, "block_size_bytes"), []byte("8000000\n"), 0o644)
	for n, zones := range blocks {
		d := filepath.Join(mem, fmt.Sprintf("memory%d", n))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "state"), []byte("online\n"), 0o644)
		os.WriteFile(filepath.Join(d, "valid_zones"), []byte(zones+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "removable"), []byte("1\n"), 0o644)
	}
	return root
}

func TestCPUModule(t *testing.T) {
	ctx := context.Background()
	root := tree(t, "0-1,3", nil)
	c := &CPU{Root: root,
		Processes: func() []Process { return []Process{{PID: 10, Label: "tag web"}, {PID: 11, Label: "tag db"}} },
		Affinity: func(pid int) ([]int, error) {
			if pid == 10 {
				return []int{3}, nil
			}
			return []int{0, 1, 3}, nil
		}}
	e := rcm.New(rcm.Options{})
	if err := e.AddClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if ins := e.Clients()[0].Interests; strings.Join(ins, " ") != "cpu cpu/0 cpu/1 cpu/3" {
		t.Fatalf("registered %v", ins)
	}
	// Bound alone to cpu3: refused unless forced.
	res, err := e.RequestOffline(ctx, []string{"cpu/3"}, 0, "t")
	if !errors.Is(err, rcm.ErrRefused) || !strings.Contains(res.Answers[0].Error, "process 10 (tag web)") {
		t.Fatalf("cpu/3: %v %+v", err, res)
	}
	if res, err := e.RequestOffline(ctx, []string{"cpu/3"}, rcm.Force, "t"); err != nil {
		t.Fatal(err)
	} else {
		e.NotifyOnline(ctx, res.ID)
	}
	// The last online CPU: refused even with force.
	root1 := tree(t, "2", nil)
	last := &CPU{Root: root1}
	if _, err := last.Call(ctx, rcm.Call{Op: rcm.OpOffline, Resource: "cpu/2", Flags: rcm.Force}); err == nil || !strings.Contains(err.Error(), "last online CPU") {
		t.Fatalf("last CPU: %v", err)
	}
	if _, err := last.Call(ctx, rcm.Call{Op: rcm.OpCapacity, Resource: "cpu", Capacity: &rcm.Capacity{OldTotal: 1, NewTotal: 0}}); err == nil {
		t.Fatal("capacity to zero CPUs accepted")
	}
}

func TestMemoryModule(t *testing.T) {
	ctx := context.Background()
	root := tree(t, "0", map[int]string{0: "none", 1: "Normal Movable", 2: "Movable"})
	avail := int64(512 << 20)
	m := &Memory{Root: root, Margin: 256 << 20, Available: func() (int64, error) { return avail, nil }}
	if _, err := m.Call(ctx, rcm.Call{Op: rcm.OpOffline, Resource: "memory/0", Flags: rcm.Force}); err == nil || !strings.Contains(err.Error(), "valid_zones is none") {
		t.Fatalf("memory/0: %v", err)
	}
	if _, err := m.Call(ctx, rcm.Call{Op: rcm.OpOffline, Resource: "memory/1", Flags: rcm.Query}); err != nil {
		t.Fatalf("memory/1 with room: %v", err)
	}
	avail = 300 << 20
	if _, err := m.Call(ctx, rcm.Call{Op: rcm.OpOffline, Resource: "memory/1", Flags: rcm.Query}); err == nil || !strings.Contains(err.Error(), "less than the margin of 256 MiB") {
		t.Fatalf("memory/1 below the margin: %v", err)
	}
	if _, err := m.Call(ctx, rcm.Call{Op: rcm.OpOffline, Resource: "memory/1", Flags: rcm.Force}); err != nil {
		t.Fatalf("forced below the margin: %v", err)
	}
	ins, err := m.Register(ctx)
	if err != nil || len(ins) != 4 {
		t.Fatalf("register: %v %+v", err, ins)
	}
	// Through the DR manager: the block is refused, its state unchanged.
	e := rcm.New(rcm.Options{})
	e.AddClient(ctx, m)
	mgr := dr.NewManager(dr.Options{Engine: e, Drivers: []dr.Driver{dr.Memory{Root: root}}})
	out, err := mgr.Unconfigure(ctx, "mem1", dr.Request{})
	if !errors.Is(err, rcm.ErrRefused) || len(out.Answers) == 0 {
		t.Fatalf("unconfigure mem1: %v %+v", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "devices/system/memory/memory1/state")); string(b) != "online\n" {
		t.Fatalf("state %q after a refusal", b)
	}
}

// Affinity reads the kernel's view of this process.
func TestAffinity(t *testing.T) {
	cpus, err := Affinity(os.Getpid())
	if err != nil || len(cpus) == 0 {
		t.Fatalf("%v %v", cpus, err)
	}
}
