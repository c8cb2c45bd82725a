package cgroup

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A ForkFence orders the freezes of another process with this one's
// forks, where the in-process gate cannot: the watchdog freezes the
// node's groups from its own process while the agent may be forking
// into them, and with thousands of groups starting on a loaded machine
// that race was seen to happen (the agent then stood still until the
// watchdog's grace ran out and it killed the frozen children).
//
// Both processes map the same small file. A fork announces itself in
// the count of forks in flight and then checks the freeze flag; a freezer
// raises the flag and then waits for the count to drop to zero (for at
// most a bound, so that a fork stuck for another reason cannot hold up a
// fence). With sequentially consistent atomics one of the two always
// sees the other: no fork starts after the flag is up, and no freeze is
// written while a fork that missed the flag is in flight.
type ForkFence struct {
	mem []byte
}

const fenceSize = 4096

// OpenForkFence maps the fence file at path, creating it when missing.
func OpenForkFence(path string) (*ForkFence, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cgroup: fork fence: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(fenceSize); err != nil {
		return nil, fmt.Errorf("cgroup: fork fence %s: %w", path, err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, fenceSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("cgroup: fork fence %s: %w", path, err)
	}
	return &ForkFence{mem: mem}, nil
}

// The flag and the count sit on separate cache lines.
func (f *ForkFence) flag() *uint32    { return (*uint32)(unsafe.Pointer(&f.mem[0])) }
func (f *ForkFence) inFlight() *int32 { return (*int32)(unsafe.Pointer(&f.mem[64])) }

// Reset clears the flag and the count: for the agent when it starts, as
// nothing of its previous life forks any more.
func (f *ForkFence) Reset() {
	atomic.StoreInt32(f.inFlight(), 0)
	atomic.StoreUint32(f.flag(), 0)
}

// Raise keeps new forks out and waits, at most wait, for those in flight.
func (f *ForkFence) Raise(wait time.Duration) {
	atomic.StoreUint32(f.flag(), 1)
	deadline := time.Now().Add(wait)
	for atomic.LoadInt32(f.inFlight()) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Microsecond)
	}
}

// Lower lets forks go on (after a thaw).
func (f *ForkFence) Lower() { atomic.StoreUint32(f.flag(), 0) }

// Raised reports whether the flag is up.
func (f *ForkFence) Raised() bool { return atomic.LoadUint32(f.flag()) != 0 }

// enter announces a fork; it fails when the flag is up.
func (f *ForkFence) enter() bool {
	atomic.AddInt32(f.inFlight(), 1)
	if atomic.LoadUint32(f.flag()) != 0 {
		atomic.AddInt32(f.inFlight(), -1)
		return false
	}
	return true
}

func (f *ForkFence) leave() { atomic.AddInt32(f.inFlight(), -1) }

// Close unmaps the fence.
func (f *ForkFence) Close() error { return unix.Munmap(f.mem) }

var fence atomic.Pointer[ForkFence]

// UseForkFence makes every start into a cgroup of this process (ForkGuard)
// and every freeze (HoldForks) go through f; nil stops that.
func UseForkFence(f *ForkFence) { fence.Store(f) }
