package dr

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/steady-ha/steady/internal/rcm"
)

// Memory are the APs memN, one per memory block: configured means online.
type Memory struct {
	Root string
}

// Class is "memory".
func (m Memory) Class() string { return "memory" }

func (m Memory) dir() string { return join(m.Root, "devices/system/memory") }

// BlockSize is the size of a memory block in bytes.
func (m Memory) BlockSize() (int64, error) {
	s, err := readTrim(join(m.dir(), "block_size_bytes"))
	if err != nil {
		return 0, fmt.Errorf("dr: %w", err)
	}
	n, err := strconv.ParseInt(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("dr: block_size_bytes %q is not hexadecimal", s)
	}
	return n, nil
}

// List reads every memory block: its state only, which keeps a listing of
// thousands of blocks fast (Get reads the zones too).
func (m Memory) List(ctx context.Context) ([]AP, error) {
	ids, err := numbered(m.dir(), "memory")
	if err != nil {
		return nil, fmt.Errorf("dr: listing memory blocks: %w", err)
	}
	// Thousands of small sysfs reads: relative to the directory (the
	// kernel resolves "memoryN/state", not the whole path) and spread over
	// a few goroutines.
	dirfd, err := unix.Open(m.dir(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dr: listing memory blocks: %w", err)
	}
	defer unix.Close(dirfd)
	out := make([]AP, len(ids))
	var wg sync.WaitGroup
	const workers = 4
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(ids); i += workers {
				out[i] = m.read(ids[i], false, dirfd)
			}
		}()
	}
	wg.Wait()
	return out, nil
}

// Get reads one block.
func (m Memory) Get(ctx context.Context, id string) (AP, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "mem"))
	if err != nil || "mem"+strconv.Itoa(n) != id {
		return AP{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	ap := m.read(n, true, -1)
	if ap.Receptacle == Empty {
		return AP{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return ap, nil
}

// read describes block n; dirfd, when not -1, is the open memory
// directory to read its state relative to.
func (m Memory) read(n int, detail bool, dirfd int) AP {
	name := "memory" + strconv.Itoa(n)
	ap := AP{ID: "mem" + strconv.Itoa(n), Type: "memory", Class: "memory", Receptacle: Connected, Condition: CondOK,
		PhysID:    "/sys/devices/system/memory/" + name,
		Resources: []string{"memory/" + strconv.Itoa(n), "/sys/devices/system/memory/" + name}}
	var state string
	var err error
	if dirfd >= 0 {
		state, err = readAt(dirfd, name+"/state")
	} else {
		state, err = readTrim(join(m.dir(), name, "state"))
	}
	switch state {
	case "online":
		ap.Occupant = Configured
	case "offline":
		ap.Occupant = Unconfigured
	case "going-offline":
		ap.Occupant, ap.Busy = Configured, true
	default:
		if err != nil {
			ap.Receptacle, ap.Condition = Empty, CondUnknown
		}
		ap.Occupant = Unconfigured
	}
	ap.Info = state
	if detail {
		dir := join(m.dir(), name)
		zones, _ := readTrim(join(dir, "valid_zones"))
		removable, _ := readTrim(join(dir, "removable"))
		if zones != "" {
			ap.Info += " zones " + zones
		}
		if zones == "none" || removable == "0" {
			ap.Info += "; not removable"
		}
	}
	if detail {
		ap.StatusTime = statusTime(join(m.dir(), name, "state"))
	}
	return ap
}

// Removable says whether the kernel can offline the block, and why not.
func (m Memory) Removable(id string) (bool, string) {
	n := strings.TrimPrefix(id, "mem")
	dir := join(m.dir(), "memory"+n)
	if z, _ := readTrim(join(dir, "valid_zones")); z == "none" {
		return false, "its valid_zones is none (it spans a hole or holds unmovable pages)"
	}
	if r, _ := readTrim(join(dir, "removable")); r == "0" {
		return false, "the kernel reports it not removable"
	}
	return true, ""
}

// Unconfigure takes the block offline.
func (m Memory) Unconfigure(ctx context.Context, ap AP) error {
	return write(join(m.dir(), "memory"+strings.TrimPrefix(ap.ID, "mem"), "state"), "offline")
}

// Configure brings the block online.
func (m Memory) Configure(ctx context.Context, ap AP) error {
	return write(join(m.dir(), "memory"+strings.TrimPrefix(ap.ID, "mem"), "state"), "online")
}

// Capacity is the change in pages of online memory.
func (m Memory) Capacity(ctx context.Context, ap AP, add bool) (string, rcm.Capacity, error) {
	bs, err := m.BlockSize()
	if err != nil {
		return "", rcm.Capacity{}, err
	}
	ids, err := numbered(m.dir(), "memory")
	if err != nil {
		return "", rcm.Capacity{}, fmt.Errorf("dr: %w", err)
	}
	online := 0
	for _, id := range ids {
		if s, _ := readTrim(join(m.dir(), "memory"+strconv.Itoa(id), "state")); s == "online" {
			online++
		}
	}
	const page = 4096
	per := int(bs / page)
	ch := rcm.Capacity{OldTotal: online * per, PageSize: page}
	if add {
		ch.NewTotal = ch.OldTotal + per
	} else {
		ch.NewTotal = ch.OldTotal - per
	}
	return "memory", ch, nil
}
