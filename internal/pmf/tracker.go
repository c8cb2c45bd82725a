package pmf

import (
	"bytes"
	"fmt"
	"github.com/steady-ha/steady/internal/cgroup"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The environment markers every process of a tag inherits: the tag, and
// the id of the agent (its data directory) that supervises it.
const (
	tagEnv   = "STEADY_PMF_TAG"
	agentEnv = "STEADY_PMF_AGENT"
)

// tracker knows which processes belong to a tag.
type tracker interface {
	// prepare sets up cmd so that its process starts tracked.
	prepare(cmd *exec.Cmd) error
	// alive reports whether a monitored process is left, judged on a view
	// of the processes taken no earlier than since.
	alive(since time.Time) (bool, error)
	// pids lists the monitored processes.
	pids() []int
	// signal sends sig to every monitored process.
	signal(sig syscall.Signal) error
	// changes receives a value when membership may have changed; nil when
	// the tracker has no notifications (the tag then polls).
	changes() <-chan struct{}
	// release gives up the tracking unit once the tag is gone.
	release()
	// describe says how the tag is tracked, for people.
	describe() string
	// record is what is persisted to re-adopt the tag.
	record() trackRecord
}

// trackRecord is the persisted form of a tracker.
type trackRecord struct {
	Cgroup string `json:"cgroup,omitempty"`
	PGID   int    `json:"pgid,omitempty"`
}

// cgroupTracker tracks a tag by its cgroup v2 directory.
type cgroupTracker struct {
	dir cgroup.Dir
	w   *cgroupWatcher
	wd  int32
	ch  <-chan struct{}
	fd  int // O_PATH descriptor of dir for CLONE_INTO_CGROUP
}

func newCgroupTracker(w *cgroupWatcher, dir cgroup.Dir) (*cgroupTracker, error) {
	if err := dir.Create(); err != nil {
		return nil, err
	}
	fd, err := dir.OpenFD()
	if err != nil {
		return nil, err
	}
	wd, ch, err := w.watch(dir)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &cgroupTracker{dir: dir, w: w, wd: wd, ch: ch, fd: fd}, nil
}

func (c *cgroupTracker) prepare(cmd *exec.Cmd) error {
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = c.fd
	return nil
}

func (c *cgroupTracker) alive(time.Time) (bool, error) { return c.dir.Populated() }

func (c *cgroupTracker) pids() []int {
	p, _ := c.dir.Procs()
	return p
}

func (c *cgroupTracker) signal(sig syscall.Signal) error { return c.dir.Signal(sig) }

func (c *cgroupTracker) changes() <-chan struct{} { return c.ch }

func (c *cgroupTracker) release() {
	c.w.unwatch(c.wd)
	unix.Close(c.fd)
	c.dir.Remove()
}

func (c *cgroupTracker) describe() string { return "cgroup " + string(c.dir) }

func (c *cgroupTracker) record() trackRecord { return trackRecord{Cgroup: string(c.dir)} }

// groupTracker is the fallback without cgroup v2: the process group of
// the command, plus every process whose environment carries the tag's
// marker (descendants that left the group with setsid keep it).
type groupTracker struct {
	tag      string
	agent    string
	scan     *procScanner
	mu       sync.Mutex // guards pgid and launched
	pgid     int
	launched time.Time // a view of /proc older than this misses the instance
}

// prepare has nothing to add: the command starts a session of its own,
// which makes it the leader of a new process group.
func (g *groupTracker) prepare(cmd *exec.Cmd) error { return nil }

func (g *groupTracker) started(pid int) {
	g.mu.Lock()
	g.pgid, g.launched = pid, time.Now()
	g.mu.Unlock()
}

func (g *groupTracker) members(since time.Time) []int {
	g.mu.Lock()
	pgid := g.pgid
	if g.launched.After(since) {
		since = g.launched
	}
	g.mu.Unlock()
	return g.scan.members(g.tag, g.agent, pgid, since)
}

// alive confirms "nothing left" on a second, fresh view: one walk of
// /proc can miss a child forked at a lower pid (after the pids wrapped)
// by a process that exits before the walk reaches it.
func (g *groupTracker) alive(since time.Time) (bool, error) {
	if len(g.members(since)) > 0 {
		return true, nil
	}
	return len(g.members(time.Now())) > 0, nil
}

func (g *groupTracker) pids() []int { return g.members(time.Now().Add(-time.Second)) }

// signal sends sig to the process group at once (the kernel refuses a
// fork while a signal is pending for the group, so no member escapes),
// then to marked processes outside the group, in rounds until no new one
// shows up (one may fork while it is being signalled).
func (g *groupTracker) signal(sig syscall.Signal) error {
	g.mu.Lock()
	pgid := g.pgid
	g.mu.Unlock()
	if pgid > 0 {
		if err := unix.Kill(-pgid, sig); err != nil && err != unix.ESRCH {
			return fmt.Errorf("pmf: signalling process group %d: %w", pgid, err)
		}
	}
	done := map[int]bool{}
	for round := 0; round < 10; round++ {
		fresh := 0
		for _, pid := range g.members(time.Now()) {
			if done[pid] {
				continue
			}
			done[pid] = true
			fresh++
			if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
				return fmt.Errorf("pmf: signalling %d: %w", pid, err)
			}
		}
		if fresh == 0 {
			break
		}
	}
	return nil
}

func (g *groupTracker) changes() <-chan struct{} { return nil }

func (g *groupTracker) release() {}

func (g *groupTracker) describe() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return fmt.Sprintf("process group %d and %s=%s", g.pgid, tagEnv, g.tag)
}

func (g *groupTracker) record() trackRecord {
	g.mu.Lock()
	defer g.mu.Unlock()
	return trackRecord{PGID: g.pgid}
}

// procScanner reads /proc to find the processes of tags in fallback mode.
// A view is shared by every tag that accepts it: each asks for a view
// taken no earlier than a time of its own (its launch, or the exit it is
// checking), so no tag ever judges on a view that predates what it knows.
type procScanner struct {
	mu    sync.Mutex // guards the snapshot; held while scanning
	when  time.Time  // when the snapshot's scan started
	procs []procInfo
}

type procInfo struct {
	pid, pgid  int
	tag, agent string // values of the markers, if any
}

func (s *procScanner) snapshot(since time.Time) []procInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.procs != nil && s.when.After(since) {
		return s.procs
	}
	start := time.Now()
	s.procs = scanProcs()
	s.when = start
	return s.procs
}

func (s *procScanner) members(tag, agent string, pgid int, since time.Time) []int {
	var out []int
	for _, p := range s.snapshot(since) {
		if (p.tag == tag && p.agent == agent) || (pgid > 0 && p.pgid == pgid) {
			out = append(out, p.pid)
		}
	}
	return out
}

// scanProcs lists live (not zombie) user processes with their process
// group and tag marker.
func scanProcs() []procInfo {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// Fields of /proc/PID/stat, counted from the state (the third field).
const (
	statFlags    = 6
	statEnvStart = 47
	statEnvEnd   = 48
	pfKthread    = 0x00200000 // PF_KTHREAD in the flags
)

// readProc reads one process. A process in the middle of an exec shows an
// empty environment for a while (the new image's environment is not set
// up yet; measured: hundreds of times in 2,000 "setsid sleep" starts),
// and a daemon that just left its process group with setsid would then
// look unmarked and its tag over. So an empty environment counts only
// when the process's own stat says it is empty; otherwise it is read
// again until the exec is through.
func readProc(pid int) (procInfo, bool) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	for try := 0; ; try++ {
		f := statFields(filepath.Join(dir, "stat"))
		if len(f) <= statEnvEnd || f[0] == "Z" || f[0] == "X" {
			return procInfo{}, false // gone, or a zombie
		}
		if flags, _ := strconv.ParseUint(f[statFlags], 10, 64); flags&pfKthread != 0 {
			return procInfo{}, false
		}
		pgid, _ := strconv.Atoi(f[2])
		p := procInfo{pid: pid, pgid: pgid}
		env, err := os.ReadFile(filepath.Join(dir, "environ"))
		if err != nil {
			return p, true // not readable (gone since): judged by its group
		}
		if len(env) == 0 && (f[statEnvStart] == "0" || f[statEnvStart] != f[statEnvEnd]) && try < execRetries {
			time.Sleep(execRetryPause)
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte(tagEnv+"=")); ok {
				p.tag = string(v)
			} else if v, ok := bytes.CutPrefix(kv, []byte(agentEnv+"=")); ok {
				p.agent = string(v)
			}
		}
		return p, true
	}
}

// An exec takes well under a millisecond unless the machine is loaded; a
// process still mid-exec after 50 ms is judged without its environment.
const (
	execRetries    = 250
	execRetryPause = 200 * time.Microsecond
)
