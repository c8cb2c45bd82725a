package modules

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/steady-ha/steady/internal/dr"
	"github.com/steady-ha/steady/internal/rcm"
	"golang.org/x/sys/unix"
)

// Process is a supervised process whose CPU affinity matters.
type Process struct {
	PID   int
	Label string // "tag web" — how the user knows it
}

// CPU refuses to take away the last online CPU, or a CPU that a
// supervised process is bound to alone (the kernel would silently break
// its affinity), and reports CPU capacity.
type CPU struct {
	Root string // sysfs root
	// Processes lists the supervised processes (the process monitor's).
	Processes func() []Process
	// Affinity reads a process's CPUs; nil reads the kernel's.
	Affinity func(pid int) ([]int, error)
}

// Name is "cpu".
func (c *CPU) Name() string { return "cpu" }

// Register names every online CPU and the capacity name "cpu".
func (c *CPU) Register(ctx context.Context) ([]rcm.Interest, error) {
	online, err := dr.OnlineCPUs(c.Root)
	if err != nil {
		return nil, err
	}
	ins := []rcm.Interest{{Name: "cpu", Kind: rcm.KindCapacity}}
	for _, n := range online {
		ins = append(ins, rcm.Interest{Name: "cpu/" + strconv.Itoa(n), Kind: rcm.KindDR})
	}
	return ins, nil
}

// Call answers for one CPU or for the capacity.
func (c *CPU) Call(ctx context.Context, call rcm.Call) (string, error) {
	online, err := dr.OnlineCPUs(c.Root)
	if err != nil {
		return "", err
	}
	if call.Resource == "cpu" {
		if call.Op == rcm.OpCapacity && call.Capacity != nil && call.Capacity.NewTotal < 1 {
			return "", fmt.Errorf("no CPU would be left online")
		}
		return fmt.Sprintf("%d CPUs online", len(online)), nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(call.Resource, "cpu/"))
	if err != nil {
		return "", nil // not a name of ours
	}
	bound := c.boundTo(n)
	switch call.Op {
	case rcm.OpInfo:
		u := fmt.Sprintf("CPU %d online (%d CPUs online)", n, len(online))
		if len(bound) > 0 {
			u += "; bound to it alone: " + strings.Join(bound, ", ")
		}
		return u, nil
	case rcm.OpOffline, rcm.OpSuspend:
		if len(online) == 1 && online[0] == n {
			return "", fmt.Errorf("cpu%d is the last online CPU", n)
		}
		if len(bound) > 0 && call.Flags&rcm.Force == 0 {
			return "", fmt.Errorf("cpu%d is the only CPU of %s; its affinity would be broken (force to allow)", n, strings.Join(bound, ", "))
		}
	}
	return "", nil
}

// boundTo lists the supervised processes whose affinity is exactly cpu n.
func (c *CPU) boundTo(n int) []string {
	if c.Processes == nil {
		return nil
	}
	aff := c.Affinity
	if aff == nil {
		aff = Affinity
	}
	var out []string
	for _, p := range c.Processes() {
		cpus, err := aff(p.PID)
		if err == nil && len(cpus) == 1 && cpus[0] == n {
			out = append(out, fmt.Sprintf("process %d (%s)", p.PID, p.Label))
		}
	}
	return out
}

// Affinity reads the CPUs a process may run on.
func Affinity(pid int) ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &set); err != nil {
		return nil, err
	}
	var out []int
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			out = append(out, i)
		}
	}
	return out, nil
}
