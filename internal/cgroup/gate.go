package cgroup

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Forking into a frozen cgroup must never happen. os/exec forks with
// vfork, and with CLONE_INTO_CGROUP the child freezes before it can exec,
// so the parent thread never comes back from clone. That thread cannot be
// preempted (signals are blocked across the fork), so the next garbage
// collection waits for it and stops every goroutine of the process,
// including whichever one would have thawed the cgroup: the whole agent
// hangs until something outside thaws or kills the child.
//
// So a start into a cgroup checks first that neither it nor an ancestor
// is frozen, under the read side of gate, and this package's own freezes
// take the write side: no fork is in flight while a freeze is written,
// and none starts into what it froze. A freeze by another process (the
// watchdog) is not ordered with forks; the window is the microseconds
// between the check and the clone.
var gate sync.RWMutex

// ErrFrozen is returned for a start into a frozen cgroup.
var ErrFrozen = errors.New("cgroup: frozen")

// gateWait bounds how long a freeze waits for forks in flight: a fork
// that is itself stuck must not hold up a fence, which has stop_budget
// (100 ms in the tuned setting) for all of its work. A fork is in flight
// until the child execs, well under a millisecond unless it is stuck.
const gateWait = 20 * time.Millisecond

// ForkGuard is called before a start with CLONE_INTO_CGROUP into the
// directory fd (an O_PATH descriptor, as OpenFD returns): it fails with
// ErrFrozen when the cgroup or one of its ancestors is frozen, and
// otherwise returns a release to call once the start has returned.
func ForkGuard(fd int) (release func(), err error) {
	gate.RLock()
	f := fence.Load()
	if f != nil && !f.enter() {
		gate.RUnlock()
		return nil, fmt.Errorf("%w: not starting a process while the node's failover work is being frozen", ErrFrozen)
	}
	frozen, where := frozenAt(fd)
	if frozen {
		if f != nil {
			f.leave()
		}
		gate.RUnlock()
		return nil, fmt.Errorf("%w: not starting a process into %s, which is frozen (the node's failover work is fenced or being signalled)", ErrFrozen, where)
	}
	if f == nil {
		return gate.RUnlock, nil
	}
	return func() { f.leave(); gate.RUnlock() }, nil
}

// frozenAt reports whether the cgroup fd or an ancestor has cgroup.freeze
// set, and which (relative to fd). The walk ends at the root, which has no
// cgroup.freeze.
func frozenAt(fd int) (bool, string) {
	rel := ""
	for range 64 {
		f, err := unix.Openat(fd, rel+"cgroup.freeze", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false, ""
		}
		var b [8]byte
		n, _ := unix.Read(f, b[:])
		unix.Close(f)
		if n > 0 && b[0] == '1' {
			where := "the cgroup"
			if rel != "" {
				where = fmt.Sprintf("its ancestor %d level(s) up", strings.Count(rel, "/"))
			}
			return true, where
		}
		rel += "../"
	}
	return false, ""
}

// lockGate takes the write side of gate, waiting at most gateWait; past
// that the freeze goes ahead without it (and the lock, once it comes, is
// let go at once).
func lockGate() (unlock func()) {
	var mu sync.Mutex
	state := 0 // 0 waiting, 1 acquired, 2 given up
	acquired := make(chan struct{})
	go func() {
		gate.Lock()
		mu.Lock()
		defer mu.Unlock()
		if state == 2 {
			gate.Unlock()
			return
		}
		state = 1
		close(acquired)
	}()
	t := time.NewTimer(gateWait)
	defer t.Stop()
	select {
	case <-acquired:
		return gate.Unlock
	case <-t.C:
	}
	mu.Lock()
	defer mu.Unlock()
	if state == 1 {
		return gate.Unlock
	}
	state = 2
	return func() {}
}

// HoldForks keeps this process from starting anything into a cgroup
// until release is called (after at most gateWait for the starts in
// flight): freezers write cgroup.freeze under it.
func HoldForks() (release func()) { return lockGate() }

// FenceWait bounds how long a fence's freeze waits, through the fork
// fence, for the forks of the other process.
const FenceWait = 40 * time.Millisecond

// RaiseFence raises the process's fork fence, if it has one, before a
// fence's freeze: forks of every process sharing it stop until
// LowerFence.
func RaiseFence() {
	if f := fence.Load(); f != nil {
		f.Raise(FenceWait)
	}
}

// LowerFence lowers the fork fence after a thaw.
func LowerFence() {
	if f := fence.Load(); f != nil {
		f.Lower()
	}
}
