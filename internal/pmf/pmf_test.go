package pmf

import (
	"context"
	"errors"
	"fmt"
	"github.com/steady-ha/steady/internal/cgroup"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/event"
	"github.com/steady-ha/steady/internal/reaper"
	"golang.org/x/sys/unix"
)

var testSeq atomic.Int64

// env is a monitor over a journal, with a scratch directory others can
// reach.
type env struct {
	t      *testing.T
	m      *Manager
	bus    *event.Bus
	j      *event.Journal
	dir    string // state dir
	work   string
	cgroup string
	mode   Mode
	r      *reaper.Reaper
}

func newEnv(t *testing.T, mode Mode) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the process monitor tests need root for cgroups and credentials (CI runs as root)")
	}
	work, err := os.MkdirTemp("", "steady-pmf-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(work, 0o777)
	e := &env{t: t, dir: t.TempDir(), work: work, mode: mode,
		cgroup: fmt.Sprintf("steady-test-%d-%d", os.Getpid(), testSeq.Add(1))}
	e.j, err = event.OpenJournal(event.JournalOptions{Dir: filepath.Join(e.dir, "journal")})
	if err != nil {
		t.Fatal(err)
	}
	e.bus, _ = event.NewBus(e.j, "n1", nil)
	e.r, err = reaper.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.open()
	t.Cleanup(func() {
		e.m.Close()
		e.killAll()
		e.r.Close()
		e.j.Close()
		os.RemoveAll(work)
	})
	return e
}

// open (re)creates the manager on the same state, as an agent restart.
func (e *env) open() {
	e.t.Helper()
	m, err := New(Options{Dir: filepath.Join(e.dir, "pmf"), Mode: e.mode, Cgroup: e.cgroup, Bus: e.bus,
		Spawner: e.r, ActionTimeout: 5 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	if m.Mode() != e.mode && e.mode != ModeAuto {
		e.t.Fatalf("mode %s, want %s", m.Mode(), e.mode)
	}
	e.m = m
}

// killAll ends every process the test started and removes its cgroups.
func (e *env) killAll() {
	if mount, err := cgroup.FindCgroup2(); err == nil {
		cgroup.RemoveTree(cgroup.Dir(filepath.Join(mount, e.cgroup)))
	}
	for _, p := range scanProcs() {
		if strings.HasPrefix(p.tag, "t-") {
			unix.Kill(p.pid, unix.SIGKILL)
		}
	}
}

func (e *env) script(name, body string) string {
	e.t.Helper()
	p := filepath.Join(e.work, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) spec(tag string, cmd ...string) Spec {
	return Spec{Tag: tag, Command: cmd, Env: []string{"PATH=/usr/bin:/bin"}, Dir: e.work,
		Owner: Owner{Name: "root", Home: "/root"}, Level: -1}
}

func (e *env) start(s Spec) {
	e.t.Helper()
	if _, err := e.m.Start(e.t.Context(), s); err != nil {
		e.t.Fatalf("Start(%s): %v", s.Tag, err)
	}
}

// waitGone waits for the tag to be removed.
func (e *env) waitGone(tag string, within time.Duration) time.Duration {
	e.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(e.t.Context(), within)
	defer cancel()
	if err := e.m.Wait(ctx, tag); err != nil && !errors.Is(err, ErrNotFound) {
		e.t.Fatalf("tag %s still there after %v: %v", tag, within, err)
	}
	return time.Since(start)
}

// events returns the EC_pmf subclasses published for tag so far.
func (e *env) events(tag string) []string {
	var out []string
	evs, _ := e.j.Read(0, 100000)
	for _, ev := range evs {
		if s, _ := ev.Attrs["tag"].Str(); ev.Class == ClassPMF && s == tag {
			out = append(out, strings.TrimPrefix(ev.Subclass, "ESC_pmf_"))
		}
	}
	return out
}

func (e *env) waitEvents(tag string, want string, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := strings.Join(e.events(tag), " ")
		if strings.HasPrefix(got, want) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("events of %s: %q, want %q", tag, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var modes = []Mode{ModeCgroup, ModeGroup}

func TestDaemonIsTrackedUntilItsLastProcessExits(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, mode)
			// The command backgrounds a child and exits at once, like a
			// daemon; the second one also leaves the session (setsid).
			bg := e.script("bg", "sleep 0.6 &\nexit 0\n")
			sid := e.script("sid", "setsid sleep 0.6 &\nexit 0\n")
			for _, cmd := range []string{bg, sid} {
				tag := "t-" + filepath.Base(cmd)
				start := time.Now()
				e.start(e.spec(tag, cmd))
				time.Sleep(250 * time.Millisecond)
				st, err := e.m.Get(tag)
				if err != nil || len(st.PIDs) == 0 || st.State != stateRunning {
					t.Fatalf("%s after its command exited: %+v %v (the background child should keep it)", tag, st, err)
				}
				if !strings.HasPrefix(st.LastExit, "exit status 0") {
					t.Errorf("last exit %q, want the command's own exit status 0", st.LastExit)
				}
				e.waitGone(tag, 5*time.Second)
				if d := time.Since(start); d < 550*time.Millisecond {
					t.Fatalf("%s was declared failed after %v, before its child exited", tag, d)
				}
				e.waitEvents(tag, "started exited exhausted", time.Second)
			}
		})
	}
}

func TestRestartBudget(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, mode)
			count := filepath.Join(e.work, "count")
			cmd := e.script("fail", fmt.Sprintf("echo run >> %s\nexit 3\n", count))
			s := e.spec("t-budget", cmd)
			s.Retries, s.Period = 2, time.Hour
			e.start(s)
			e.waitGone("t-budget", 10*time.Second)
			b, _ := os.ReadFile(count)
			if n := strings.Count(string(b), "run"); n != 3 {
				t.Fatalf("command ran %d times, want 3 (1 start + 2 restarts)", n)
			}
			e.waitEvents("t-budget", "started exited restarted exited restarted exited exhausted", time.Second)
			evs, _ := e.j.Read(0, 1000)
			for _, ev := range evs {
				if ev.Subclass == SubclassExited {
					if c, _ := ev.Attrs["exit_code"].Int64(); c != 3 {
						t.Fatalf("exited event with exit_code %d: %+v", c, ev.Attrs)
					}
				}
			}
		})
	}
}

func TestActionProgram(t *testing.T) {
	e := newEnv(t, ModeCgroup)
	args := filepath.Join(e.work, "args")
	// The action relaunches once (exit 0), then gives up (exit 1).
	action := e.script("action", fmt.Sprintf(`echo "$@ PATH=$PATH HOME=${HOME:-unset} $(pwd)" >> %[1]s
[ $(wc -l < %[1]s) -lt 2 ]
`, args))
	cmd := e.script("short", "exit 1\n")
	s := e.spec("t-action", cmd)
	s.Action = []string{action}
	e.start(s)
	e.waitGone("t-action", 10*time.Second)
	b, _ := os.ReadFile(args)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := fmt.Sprintf("failed t-action PATH=/usr/bin:/bin HOME=unset %s", e.work)
	if len(lines) != 2 || lines[0] != want || lines[1] != want {
		t.Fatalf("action ran with:\n%s\nwant twice: %s", b, want)
	}
	e.waitEvents("t-action", "started exited exhausted action restarted exited exhausted action", time.Second)
	var decisions []string
	evs, _ := e.j.Read(0, 1000)
	for _, ev := range evs {
		if ev.Subclass == SubclassAction {
			d, _ := ev.Attrs["decision"].Str()
			decisions = append(decisions, d)
		}
	}
	if strings.Join(decisions, ",") != "relaunch,remove" {
		t.Fatalf("action decisions %v", decisions)
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, mode)
			stubborn := e.script("stubborn", "trap '' TERM\nwhile :; do sleep 0.05; done\n")
			s := e.spec("t-stubborn", stubborn)
			s.Retries = -1
			e.start(s)
			time.Sleep(100 * time.Millisecond)
			pids := mustGet(t, e.m, "t-stubborn").PIDs
			start := time.Now()
			err := e.m.Stop(t.Context(), "t-stubborn", 0, 500*time.Millisecond, Root)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < 450*time.Millisecond || d > 5*time.Second {
				t.Fatalf("Stop took %v; want the 0.5s wait, then KILL", d)
			}
			if e.m.Exists("t-stubborn") {
				t.Fatal("tag still exists after Stop")
			}
			for _, pid := range pids {
				if unix.Kill(pid, 0) == nil && procStart(pid) != 0 {
					t.Fatalf("process %d survived", pid)
				}
			}
			e.waitEvents("t-stubborn", "started stopped stopped exited", time.Second)

			// A well-behaved command ends on TERM without escalation and is
			// not restarted although its budget is unlimited.
			polite := e.script("polite", "exec sleep 60\n")
			s = e.spec("t-polite", polite)
			s.Retries = -1
			e.start(s)
			start = time.Now()
			if err := e.m.Stop(t.Context(), "t-polite", 0, 5*time.Second, Root); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("stopping a command that exits on TERM took %v", d)
			}
			e.waitEvents("t-polite", "started stopped exited", time.Second)

			// A stopped process (SIGSTOP) gets SIGCONT after the TERM, so
			// that it ends without waiting for the escalation.
			s = e.spec("t-frozen", polite)
			e.start(s)
			for _, pid := range mustGet(t, e.m, "t-frozen").PIDs {
				unix.Kill(pid, unix.SIGSTOP)
			}
			start = time.Now()
			if err := e.m.Stop(t.Context(), "t-frozen", 0, 5*time.Second, Root); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("stopping a stopped process took %v: no SIGCONT?", d)
			}
			e.waitEvents("t-frozen", "started stopped exited", time.Second)
		})
	}
}

func mustGet(t *testing.T, m *Manager, tag string) api.PMFTag {
	t.Helper()
	st, err := m.Get(tag)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestKillKeepsMonitoring(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, mode)
			cmd := e.script("long", "sleep 60 &\nwait\n")
			s := e.spec("t-long", cmd)
			s.Retries = 1
			e.start(s)
			first := mustGet(t, e.m, "t-long")
			if err := e.m.Kill(t.Context(), "t-long", 0, 5*time.Second, Root); err != nil {
				t.Fatal(err)
			}
			e.waitEvents("t-long", "started exited restarted", 5*time.Second)
			second := mustGet(t, e.m, "t-long")
			if second.Instance != first.Instance+1 || second.MainPID == first.MainPID || second.RetriesUsed != 1 {
				t.Fatalf("after -k: %+v (before %+v)", second, first)
			}
			// The budget is spent now: the next kill ends the tag.
			if err := e.m.Kill(t.Context(), "t-long", unix.SIGTERM, 5*time.Second, Root); err != nil {
				t.Fatal(err)
			}
			e.waitGone("t-long", 5*time.Second)
			e.waitEvents("t-long", "started exited restarted exited exhausted", time.Second)
		})
	}
}

func TestOwnership(t *testing.T) {
	e := newEnv(t, ModeCgroup)
	out := filepath.Join(e.work, "id")
	cmd := e.script("whoami", fmt.Sprintf("id -u > %s\nexec sleep 60\n", out))
	s := e.spec("t-nobody", cmd)
	s.Owner = Owner{UID: 65534, GID: 65534, Name: "nobody", Home: "/nonexistent"}
	e.start(s)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if strings.TrimSpace(string(b)) == "65534" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process ran as %q, want uid 65534", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	other := Requester{UID: 1000}
	for name, err := range map[string]error{
		"stop":   e.m.Stop(t.Context(), "t-nobody", 0, 0, other),
		"kill":   e.m.Kill(t.Context(), "t-nobody", 0, 0, other),
		"modify": e.m.Modify(t.Context(), "t-nobody", ptr(5), nil, other),
	} {
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "belongs to nobody") {
			t.Errorf("%s by another user: %v", name, err)
		}
	}
	if err := e.m.Modify(t.Context(), "t-nobody", ptr(5), nil, Requester{UID: 65534}); err != nil {
		t.Fatalf("modify by the owner: %v", err)
	}
	if st := mustGet(t, e.m, "t-nobody"); st.Retries != 5 {
		t.Fatalf("retries after modify: %d", st.Retries)
	}
	if err := e.m.Stop(t.Context(), "t-nobody", 0, 5*time.Second, Requester{UID: 65534}); err != nil {
		t.Fatalf("stop by the owner: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestReadoptAfterRestart(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, mode)
			cmd := e.script("svc", "exec sleep 60\n")
			s := e.spec("t-svc", cmd)
			s.Retries = 3
			e.start(s)
			before := mustGet(t, e.m, "t-svc")

			// The agent goes away; the service does not.
			e.m.Close()
			if unix.Kill(before.MainPID, 0) != nil {
				t.Fatal("closing the monitor stopped the service")
			}
			e.open()
			after := mustGet(t, e.m, "t-svc")
			if after.MainPID != before.MainPID || after.Instance != before.Instance || after.State != stateRunning {
				t.Fatalf("re-adopted %+v, was %+v", after, before)
			}
			e.waitEvents("t-svc", "started readopted", time.Second)
			// A crash after re-adoption is still handled.
			unix.Kill(before.MainPID, unix.SIGKILL)
			e.waitEvents("t-svc", "started readopted exited restarted", 5*time.Second)
			// Numbering goes on above what the earlier agent reserved, so
			// no instance number is ever used twice.
			crashed := mustGet(t, e.m, "t-svc")
			if crashed.Instance <= before.Instance+instanceBlock || !strings.Contains(crashed.LastExit, "unknown") {
				t.Fatalf("after the crash: %+v (was instance %d)", crashed, before.Instance)
			}

			// Processes that die while no agent runs are restarted when it
			// comes back.
			e.m.Close()
			for _, pid := range mustGetPIDs(t, mode, e, "t-svc") {
				unix.Kill(pid, unix.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
			e.open()
			e.waitEvents("t-svc", "started readopted exited restarted exited restarted", 5*time.Second)
			if st := mustGet(t, e.m, "t-svc"); st.RetriesUsed != 2 || len(st.PIDs) == 0 || st.Instance <= crashed.Instance {
				t.Fatalf("after a restart of the agent: %+v", st)
			}
		})
	}
}

// mustGetPIDs finds a tag's processes without a running monitor.
func mustGetPIDs(t *testing.T, mode Mode, e *env, tag string) []int {
	var pids []int
	for _, p := range scanProcs() {
		if p.tag == tag {
			pids = append(pids, p.pid)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("no process of %s found", tag)
	}
	return pids
}

func TestChildMonitoringLevel(t *testing.T) {
	e := newEnv(t, ModeCgroup)
	if e.m.levels == nil {
		t.Fatal("the process connector is not available; child monitoring levels cannot be tested")
	}
	pidfile := filepath.Join(e.work, "bgpid")
	// The command's own process (level 0) lives 0.3s; its background child
	// (level 1) 30s.
	cmd := e.script("levels", fmt.Sprintf("sleep 30 &\necho $! > %s\nexec sleep 0.3\n", pidfile))
	s := e.spec("t-level0", cmd)
	s.Level = 0
	e.start(s)
	d := e.waitGone("t-level0", 5*time.Second)
	if d > 2*time.Second {
		t.Fatalf("with -C 0 the tag lived %v; the unmonitored child should not keep it", d)
	}
	b, _ := os.ReadFile(pidfile)
	bg, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if bg == 0 || unix.Kill(bg, 0) != nil {
		t.Fatalf("the unmonitored child %d should still run", bg)
	}
	unix.Kill(bg, unix.SIGKILL)

	// With all descendants monitored, the same command keeps the tag.
	s = e.spec("t-levelall", cmd)
	e.start(s)
	time.Sleep(time.Second)
	if !e.m.Exists("t-levelall") {
		t.Fatal("with -C unset the background child should keep the tag")
	}
}

func TestBadInputLeavesNothing(t *testing.T) {
	e := newEnv(t, ModeCgroup)
	good := e.script("good", "exec sleep 60\n")
	noexec := filepath.Join(e.work, "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	writable := e.script("writable", "exit 0\n")
	os.Chmod(writable, 0o777)
	tests := []struct {
		name string
		mod  func(*Spec)
		want string
	}{
		{"bad tag", func(s *Spec) { s.Tag = "a/b" }, "tag \"a/b\""},
		{"missing command", func(s *Spec) { s.Command = []string{filepath.Join(e.work, "nope")} }, "does not exist"},
		{"not executable", func(s *Spec) { s.Command = []string{noexec} }, "not an executable file"},
		{"relative command", func(s *Spec) { s.Command = []string{"sleep"} }, "absolute path"},
		{"negative period", func(s *Spec) { s.Period = -time.Second }, "period"},
		{"absurd period", func(s *Spec) { s.Period = 400 * 24 * time.Hour }, "period"},
		{"retries", func(s *Spec) { s.Retries = -2 }, "retries -2"},
		{"writable action", func(s *Spec) { s.Action = []string{writable} }, "writable by group or others"},
		{"bad env", func(s *Spec) { s.Env = []string{"NOEQUALS"} }, "not NAME=VALUE"},
		{"no dir", func(s *Spec) { s.Dir = "/nonexistent/dir" }, "working directory"},
	}
	for _, tt := range tests {
		s := e.spec("t-bad", good)
		tt.mod(&s)
		_, err := e.m.Start(t.Context(), s)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrInvalid with %q", tt.name, err, tt.want)
		}
	}
	e.start(e.spec("t-dup", good))
	if _, err := e.m.Start(t.Context(), e.spec("t-dup", good)); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "already running") {
		t.Errorf("duplicate: %v", err)
	}
	if err := e.m.Stop(t.Context(), "t-none", 0, 0, Root); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown tag: %v", err)
	}
	for _, s := range []string{"BOGUS", "99", "0"} {
		if _, err := ParseSignal(s); err == nil {
			t.Errorf("ParseSignal(%q) accepted", s)
		}
	}
	if sig, err := ParseSignal("hup"); err != nil || sig != unix.SIGHUP {
		t.Errorf("ParseSignal(hup) = %v %v", sig, err)
	}
	// Nothing of the refused starts is left: no state, no cgroup.
	files, _ := filepath.Glob(filepath.Join(e.dir, "pmf", "tags", "*.json"))
	if len(files) != 1 || filepath.Base(files[0]) != "t-dup.json" {
		t.Fatalf("state files: %v", files)
	}
	if _, err := os.Stat(filepath.Join(string(e.m.cgRoot), "t-t-bad")); !os.IsNotExist(err) {
		t.Fatalf("a refused start left a cgroup: %v", err)
	}
}

func TestModeFallbackReason(t *testing.T) {
	e := newEnv(t, ModeGroup)
	st := e.m.Status()
	if st.Mode != "process-group" || st.Reason == "" || st.Levels {
		t.Fatalf("status %+v", st)
	}
	s := e.spec("t-lv", e.script("x", "exit 0\n"))
	s.Level = 1
	if _, err := e.m.Start(t.Context(), s); err == nil || !strings.Contains(err.Error(), "child monitoring levels") {
		t.Fatalf("-C in process-group mode: %v", err)
	}
}
