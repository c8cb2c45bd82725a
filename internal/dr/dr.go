// Package dr is dynamic reconfiguration: attachment points (APs) for the
// parts of a Linux machine that can be taken away and given back, read
// from and changed through sysfs, and every change run through the rcm
// engine. An unconfigure asks the users of the AP's resources first
// (request offline), then does the driver step, the point of no return,
// then tells them the resources are gone (notify remove). A refusal stops
// before the driver step; a driver step that fails is undone with notify
// online and the user is told what was restored.
//
// The sysfs root is configurable so that tests (and benchmarks) can run
// on a synthetic tree with hundreds of CPUs and thousands of memory
// blocks; the same code runs on /sys.
package dr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/steady-ha/steady/internal/rcm"
	"golang.org/x/sys/unix"
)

// Errors of DR operations.
var (
	ErrNotFound = errors.New("no such attachment point")
	ErrInvalid  = errors.New("invalid request")
	ErrState    = errors.New("attachment point state forbids it")
	ErrDriver   = errors.New("hardware specific failure")
	// ErrNotSupported: the AP has no such function (cfgadm exit 2).
	ErrNotSupported = errors.New("operation not supported")
)

// States and conditions, as cfgadm shows them.
const (
	Empty        = "empty"
	Disconnected = "disconnected"
	Connected    = "connected"
	Unconfigured = "unconfigured"
	Configured   = "configured"
	CondOK       = "ok"
	CondUnknown  = "unknown"
	CondFailing  = "failing"
	CondFailed   = "failed"
	CondUnusable = "unusable"
)

// AP is one attachment point.
type AP struct {
	ID         string    `json:"ap_id"`
	Type       string    `json:"type"`
	Class      string    `json:"class"`
	Receptacle string    `json:"r_state"`
	Occupant   string    `json:"o_state"`
	Condition  string    `json:"condition"`
	Busy       bool      `json:"busy"`
	Info       string    `json:"info"`
	StatusTime time.Time `json:"status_time"`
	PhysID     string    `json:"physid"`
	// Resources are the rcm names the AP's users register.
	Resources []string `json:"resources,omitempty"`
	// Fixed says why the AP can never be changed (empty when it can).
	Fixed string `json:"-"`
}

// Driver knows one kind of AP.
type Driver interface {
	// Class is the AP class ("cpu", "memory", "pci", ...), the prefix of
	// the AP ids it owns.
	Class() string
	// List reads every AP of the class.
	List(ctx context.Context) ([]AP, error)
	// Get reads one AP by id.
	Get(ctx context.Context, id string) (AP, error)
	// Unconfigure is the driver step of an unconfigure: it returns
	// whatever Configure needs to give the AP back as it was.
	Unconfigure(ctx context.Context, ap AP) error
	// Configure gives the AP back.
	Configure(ctx context.Context, ap AP) error
}

// Connector is a driver whose APs have a receptacle that can be powered
// on and off (PCI hotplug slots).
type Connector interface {
	Connect(ctx context.Context, ap AP) error
	Disconnect(ctx context.Context, ap AP) error
}

// Tester is a driver that can re-evaluate an AP's condition.
type Tester interface {
	Test(ctx context.Context, ap AP) (string, error)
}

// CapacityDriver is a driver whose APs change the system's capacity
// (CPUs, memory): the engine's capacity clients are asked too.
type CapacityDriver interface {
	Driver
	// Capacity is the capacity name and the change an unconfigure (or
	// configure, when add) of ap makes.
	Capacity(ctx context.Context, ap AP, add bool) (string, rcm.Capacity, error)
}

// readTrim reads a small sysfs file. Listing thousands of memory blocks
// is thousands of these, so it makes three system calls, not os.ReadFile's
// five, and one allocation.
func readTrim(path string) (string, error) {
	return readAt(unix.AT_FDCWD, path)
}

// readAt is readTrim of path relative to the directory dirfd.
func readAt(dirfd int, path string) (string, error) {
	fd, err := unix.Openat(dirfd, path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var buf [512]byte
	n := 0
	for n < len(buf) {
		k, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", &os.PathError{Op: "read", Path: path, Err: err}
		}
		n += k
		if k == 0 || n < len(buf) {
			// A sysfs attribute comes whole from the first read: a short
			// read is the end, and saves the read that would return 0.
			return strings.TrimSpace(string(buf[:n])), nil
		}
	}
	// Longer than any attribute we read: read it all.
	var all []byte
	all = append(all, buf[:n]...)
	for {
		k, err := unix.Read(fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", &os.PathError{Op: "read", Path: path, Err: err}
		}
		if k == 0 {
			return strings.TrimSpace(string(all)), nil
		}
		all = append(all, buf[:k]...)
	}
}

// write writes a value to a sysfs attribute, naming the file in errors
// (the kernel's EBUSY comes back from the write).
func write(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDriver, err)
	}
	defer f.Close()
	if _, err := f.WriteString(value); err != nil {
		return fmt.Errorf("%w: writing %q to %s: %w", ErrDriver, value, path, err)
	}
	return nil
}

// appears waits up to two seconds for path to exist: a rescan returns
// before the drivers of what it found have bound and sysfs is complete.
func appears(path string) bool {
	for i := 0; i < 100; i++ {
		if exists(path) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return exists(path)
}

// statusTime is the time of the last change of path, the AP's status time.
func statusTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// numbered lists the entries of dir named prefix+N, sorted by N.
func numbered(dir, prefix string) ([]int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1) // unsorted: the numbers are sorted below
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(names))
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || rest == "" {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || strconv.Itoa(n) != rest {
			continue
		}
		out = append(out, n)
	}
	sort.Ints(out)
	return out, nil
}

func join(root string, parts ...string) string {
	return filepath.Join(append([]string{root}, parts...)...)
}
