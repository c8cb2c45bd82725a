package dr

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/steady-ha/steady/internal/rcm"
)

// CPUs are the APs cpuN: configured means online. A CPU without an
// "online" file (the boot CPU on x86) cannot be taken away: it is listed
// as busy with that reason.
type CPUs struct {
	Root string // the sysfs root ("/sys")
}

// Class is "cpu".
func (c CPUs) Class() string { return "cpu" }

func (c CPUs) dir() string { return join(c.Root, "devices/system/cpu") }

// List reads every CPU.
func (c CPUs) List(ctx context.Context) ([]AP, error) {
	ids, err := numbered(c.dir(), "cpu")
	if err != nil {
		return nil, fmt.Errorf("dr: listing CPUs: %w", err)
	}
	out := make([]AP, 0, len(ids))
	for _, id := range ids {
		out = append(out, c.read(id))
	}
	return out, nil
}

// Get reads one CPU.
func (c CPUs) Get(ctx context.Context, id string) (AP, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "cpu"))
	if err != nil || !strings.HasPrefix(id, "cpu") || "cpu"+strconv.Itoa(n) != id {
		return AP{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	ap := c.read(n)
	if ap.Receptacle == Empty {
		return AP{}, fmt.Errorf("%w: %s (no %s)", ErrNotFound, id, join(c.dir(), id))
	}
	return ap, nil
}

func (c CPUs) read(n int) AP {
	name := "cpu" + strconv.Itoa(n)
	dir := join(c.dir(), name)
	ap := AP{ID: name, Type: "cpu", Class: "cpu", Receptacle: Connected, Occupant: Configured, Condition: CondOK,
		PhysID:    "/sys/devices/system/cpu/" + name,
		Resources: []string{"cpu/" + strconv.Itoa(n), "/sys/devices/system/cpu/" + name}}
	on, err := readTrim(join(dir, "online"))
	switch {
	case err == nil && on == "0":
		ap.Occupant = Unconfigured
		ap.Info = "offline"
	case err == nil:
		ap.Info = "online"
	default:
		if _, serr := os.Stat(dir); serr != nil {
			ap.Receptacle, ap.Occupant = Empty, Unconfigured
			return ap
		}
		ap.Busy = true
		ap.Fixed = "the kernel cannot take this CPU offline"
		ap.Info = "online; " + ap.Fixed
	}
	ap.StatusTime = statusTime(join(dir, "online"))
	return ap
}

func (c CPUs) set(ap AP, v string) error {
	if ap.Fixed != "" {
		return fmt.Errorf("%w: %s: %s", ErrState, ap.ID, ap.Fixed)
	}
	return write(join(c.dir(), ap.ID, "online"), v)
}

// Unconfigure takes the CPU offline.
func (c CPUs) Unconfigure(ctx context.Context, ap AP) error { return c.set(ap, "0") }

// Configure brings the CPU online.
func (c CPUs) Configure(ctx context.Context, ap AP) error { return c.set(ap, "1") }

// Capacity is the change of the online CPU set.
func (c CPUs) Capacity(ctx context.Context, ap AP, add bool) (string, rcm.Capacity, error) {
	online, err := OnlineCPUs(c.Root)
	if err != nil {
		return "", rcm.Capacity{}, err
	}
	n, _ := strconv.Atoi(strings.TrimPrefix(ap.ID, "cpu"))
	ch := rcm.Capacity{OldTotal: len(online), OldCPUs: online}
	for _, id := range online {
		if id != n {
			ch.NewCPUs = append(ch.NewCPUs, id)
		}
	}
	if add {
		ch.NewCPUs = append(ch.NewCPUs, n)
	}
	ch.NewTotal = len(ch.NewCPUs)
	return "cpu", ch, nil
}

// OnlineCPUs reads the online CPU list (devices/system/cpu/online).
func OnlineCPUs(root string) ([]int, error) {
	s, err := readTrim(join(root, "devices/system/cpu/online"))
	if err != nil {
		return nil, fmt.Errorf("dr: %w", err)
	}
	return ParseList(s)
}

// ParseList parses a kernel CPU list such as "0-3,8,10-11".
func ParseList(s string) ([]int, error) {
	var out []int
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("dr: bad CPU list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("dr: bad CPU list %q", s)
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}
