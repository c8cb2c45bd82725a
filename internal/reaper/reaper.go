// Package reaper makes the agent the child subreaper of everything it
// starts and reaps its children promptly.
//
// Once the agent is a subreaper (PR_SET_CHILD_SUBREAPER), orphans of the
// services it supervises become its children instead of PID 1's, which
// reaps late on some hosts. Someone must then reap them, and that someone
// must not steal the exit status a caller of exec.Cmd.Wait is waiting for.
// So the Reaper is the only caller of wait4(-1) in the agent, and every part
// of the agent that starts processes does so through a Spawner: the Reaper,
// or Plain (ordinary os/exec) where no reaper runs, as in unit tests.
//
//	r, _ := reaper.New(logger)
//	child, err := r.Start(cmd)   // instead of cmd.Start
//	status, err := child.Wait()  // instead of cmd.Wait
//
// Reaped processes that nobody started through the Reaper (orphans) are
// reported to the functions given to OnOrphan.
package reaper

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/steady-ha/steady/internal/cgroup"
	"golang.org/x/sys/unix"
)

// Spawner starts commands whose exit status is collected by the Child.
type Spawner interface {
	Start(cmd *exec.Cmd) (*Child, error)
}

// Child is a started process.
type Child struct {
	Pid int
	// release finishes the command's I/O once the process is reaped.
	release func()
	done    chan struct{}
	// set before done is closed
	status unix.WaitStatus
	exited time.Time
}

// Done is closed when the process has exited and been reaped.
func (c *Child) Done() <-chan struct{} { return c.done }

// Exited is when the process was reaped (valid after Done).
func (c *Child) Exited() time.Time { return c.exited }

// Status is the wait status (valid after Done).
func (c *Child) Status() unix.WaitStatus { return c.status }

// Wait waits for the process to exit, then releases the command's I/O
// (pipes, copying goroutines), and returns an *ExitError for anything but
// a zero exit.
func (c *Child) Wait() error {
	<-c.done
	if c.release != nil {
		c.release()
	}
	if c.status.Exited() && c.status.ExitStatus() == 0 {
		return nil
	}
	return &ExitError{Status: c.status}
}

// ExitError describes a process that did not exit 0.
type ExitError struct{ Status unix.WaitStatus }

func (e *ExitError) Error() string { return DescribeStatus(e.Status) }

// DescribeStatus renders a wait status as "exit status 3" or "killed by
// signal TERM".
func DescribeStatus(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		s := "killed by signal " + SignalName(ws.Signal())
		if ws.CoreDump() {
			s += " (core dumped)"
		}
		return s
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// SignalName is the name of a signal without "SIG" (TERM, KILL, ...).
func SignalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n[3:]
	}
	return fmt.Sprint(int(s))
}

// Reaper is the agent's subreaper. It is safe for concurrent use.
type Reaper struct {
	log  *slog.Logger
	sigc chan os.Signal
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex // guards children, starting and orphanFn
	children map[int]*Child
	starting int // Starts between fork and registration
	orphanFn []func(pid int, ws unix.WaitStatus)
}

// New makes the calling process a child subreaper and starts reaping.
func New(log *slog.Logger) (*Reaper, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("reaper: becoming a child subreaper: %w", err)
	}
	r := &Reaper{
		log:      log,
		sigc:     make(chan os.Signal, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		children: map[int]*Child{},
	}
	signal.Notify(r.sigc, syscall.SIGCHLD)
	go r.loop()
	return r, nil
}

// OnOrphan registers f to be called (from the reaping goroutine, so it
// must not block) for every reaped process that was not started through
// the Reaper.
func (r *Reaper) OnOrphan(f func(pid int, ws unix.WaitStatus)) {
	r.mu.Lock()
	r.orphanFn = append(r.orphanFn, f)
	r.mu.Unlock()
}

// Start starts cmd and registers it, so that its exit is delivered to the
// returned Child.
//
// The lock is not held across the fork: a fork into a frozen cgroup (a
// fenced node's) does not return until the cgroup thaws or the child is
// killed, and reaping must go on meanwhile. While a Start is between fork
// and registration, the reaper reaps only registered children, by pid,
// and leaves the others (the new child among them) for when no Start is.
func (r *Reaper) Start(cmd *exec.Cmd) (*Child, error) {
	r.mu.Lock()
	r.starting++
	r.mu.Unlock()
	err := start(cmd)
	r.mu.Lock()
	r.starting--
	idle := r.starting == 0
	var c *Child
	if err == nil {
		c = &Child{Pid: cmd.Process.Pid, done: make(chan struct{}), release: func() {
			// The process is reaped already: cmd.Wait only finishes the
			// I/O, and its "no child processes" complaint is expected.
			_ = cmd.Wait()
		}}
		r.children[c.Pid] = c
	}
	r.mu.Unlock()
	if idle {
		// What was left while Starts ran, and a child that is gone already.
		select {
		case r.sigc <- syscall.SIGCHLD:
		default:
		}
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (r *Reaper) loop() {
	defer close(r.done)
	// SIGCHLD can coalesce; a slow tick catches anything a lost signal hid.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.sigc:
		case <-tick.C:
		case <-r.stop:
			r.reapAll()
			return
		}
		r.reapAll()
	}
}

func (r *Reaper) reapAll() {
	for {
		r.mu.Lock()
		busy := r.starting > 0
		r.mu.Unlock()
		if busy {
			r.reapKnown()
			return
		}
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		r.reaped(pid, ws)
	}
}

// reapKnown reaps the registered children that exited, one by one, while
// a Start may have forked a child that is not registered yet.
func (r *Reaper) reapKnown() {
	r.mu.Lock()
	pids := make([]int, 0, len(r.children))
	for pid := range r.children {
		pids = append(pids, pid)
	}
	r.mu.Unlock()
	for _, pid := range pids {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			got, err = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
		if got == pid && err == nil {
			r.reaped(pid, ws)
		}
	}
}

// reaped delivers one reaped process's status.
func (r *Reaper) reaped(pid int, ws unix.WaitStatus) {
	now := time.Now()
	r.mu.Lock()
	c, ok := r.children[pid]
	delete(r.children, pid)
	fns := r.orphanFn
	r.mu.Unlock()
	if ok {
		c.status, c.exited = ws, now
		close(c.done)
		return
	}
	r.log.Debug("reaped an orphan", "pid", pid, "status", DescribeStatus(ws))
	for _, f := range fns {
		f(pid, ws)
	}
}

// Close stops reaping and the subreaper role. Children still running are
// left alone (they are reparented when the agent exits).
func (r *Reaper) Close() error {
	select {
	case <-r.stop:
		return nil
	default:
	}
	signal.Stop(r.sigc)
	close(r.stop)
	<-r.done
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("reaper: %w", err)
	}
	return nil
}

// Run starts cmd through sp and waits for it, as cmd.Run does: for short
// commands whose output the caller collects in cmd.Stdout and cmd.Stderr.
// A nil sp is Plain.
func Run(sp Spawner, cmd *exec.Cmd) error {
	if sp == nil {
		sp = Plain{}
	}
	child, err := sp.Start(cmd)
	if err != nil {
		return err
	}
	return child.Wait()
}

// Plain starts commands with os/exec and waits for them itself; for
// programs (and tests) that run no Reaper.
type Plain struct{}

// Start starts cmd; a goroutine waits for it.
func (Plain) Start(cmd *exec.Cmd) (*Child, error) {
	if err := start(cmd); err != nil {
		return nil, err
	}
	c := &Child{Pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		if cmd.ProcessState != nil {
			c.status = unix.WaitStatus(cmd.ProcessState.Sys().(syscall.WaitStatus))
		}
		c.exited = time.Now()
		close(c.done)
	}()
	return c, nil
}

// frozenWait is how long a start into a frozen cgroup waits for the
// thaw. A node whose failover work is frozen by a fence is thawed within
// about a lease when its membership held; past that it was declared down
// and what it ran is killed, so the start is given up.
var frozenWait = 10 * time.Second

// start is cmd.Start, except that a start into a frozen cgroup waits for
// the thaw (at most frozenWait) before it forks: forking into it would
// never return and would hang the whole process (cgroup.ForkGuard).
func start(cmd *exec.Cmd) error {
	sa := cmd.SysProcAttr
	if sa == nil || !sa.UseCgroupFD {
		return cmd.Start()
	}
	deadline := time.Now().Add(frozenWait)
	for {
		release, err := cgroup.ForkGuard(sa.CgroupFD)
		if err == nil {
			defer release()
			return cmd.Start()
		}
		if !errors.Is(err, cgroup.ErrFrozen) || time.Now().After(deadline) {
			return fmt.Errorf("reaper: starting %s (waited %v for a thaw): %w", cmd.Path, frozenWait, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
