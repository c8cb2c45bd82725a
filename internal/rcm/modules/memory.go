package modules

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/steady-ha/steady/internal/dr"
	"github.com/steady-ha/steady/internal/rcm"
)

// Memory refuses to offline a memory block the kernel cannot offline
// (valid_zones none, not removable), or one whose removal would leave
// less available memory than Margin, and reports memory capacity.
type Memory struct {
	Root string // sysfs root
	// Margin is the available memory that must remain, in bytes.
	Margin int64
	// Available reads the available memory; nil reads /proc/meminfo.
	Available func() (int64, error)
}

// Name is "memory".
func (m *Memory) Name() string { return "memory" }

func (m *Memory) mem() dr.Memory { return dr.Memory{Root: m.Root} }

// Register names every online block and the capacity name "memory".
func (m *Memory) Register(ctx context.Context) ([]rcm.Interest, error) {
	aps, err := m.mem().List(ctx)
	if err != nil {
		return nil, err
	}
	ins := []rcm.Interest{{Name: "memory", Kind: rcm.KindCapacity}}
	for _, ap := range aps {
		if ap.Occupant == dr.Configured {
			ins = append(ins, rcm.Interest{Name: "memory/" + strings.TrimPrefix(ap.ID, "mem"), Kind: rcm.KindDR})
		}
	}
	return ins, nil
}

// Call answers for one block or for the capacity.
func (m *Memory) Call(ctx context.Context, call rcm.Call) (string, error) {
	bs, err := m.mem().BlockSize()
	if err != nil {
		return "", err
	}
	avail, err := m.available()
	if err != nil {
		return "", err
	}
	if call.Resource == "memory" {
		if call.Op == rcm.OpCapacity && call.Capacity != nil && call.Capacity.OldTotal > call.Capacity.NewTotal {
			drop := int64(call.Capacity.OldTotal-call.Capacity.NewTotal) * int64(call.Capacity.PageSize)
			if avail-drop < m.Margin && call.Flags&rcm.Force == 0 {
				return "", fmt.Errorf("removing %s would leave %s available, less than the margin of %s", size(drop), size(avail-drop), size(m.Margin))
			}
		}
		return fmt.Sprintf("%s available", size(avail)), nil
	}
	n, ok := strings.CutPrefix(call.Resource, "memory/")
	if !ok {
		return "", nil
	}
	switch call.Op {
	case rcm.OpInfo:
		return fmt.Sprintf("memory block %s (%s)", n, size(bs)), nil
	case rcm.OpOffline:
		if ok, why := m.mem().Removable("mem" + n); !ok {
			return "", fmt.Errorf("memory block %s cannot be offlined: %s", n, why)
		}
		if avail-bs < m.Margin && call.Flags&rcm.Force == 0 {
			return "", fmt.Errorf("offlining memory block %s would leave %s available, less than the margin of %s", n, size(avail-bs), size(m.Margin))
		}
	}
	return "", nil
}

func (m *Memory) available() (int64, error) {
	if m.Available != nil {
		return m.Available()
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("memory: /proc/meminfo: %w", err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("memory: no MemAvailable in /proc/meminfo")
}

func size(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%d MiB", b>>20)
	}
	return fmt.Sprintf("%d bytes", b)
}
