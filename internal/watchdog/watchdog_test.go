package watchdog

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/steady-ha/steady/internal/cgroup"
	"golang.org/x/sys/unix"
)

// procState is the state letter of a process (R, S, T, Z...).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "gone"
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndex(s, ")")+1:])[0]
}

func frozen(t *testing.T, d cgroup.Dir) bool {
	t.Helper()
	b, err := os.ReadFile(d.File("cgroup.events"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), "frozen 1")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sleeper starts a sleep in its own process group, in cg when given.
func sleeper(t *testing.T, cg cgroup.Dir) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cg != "" {
		fd, err := cg.OpenFD()
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	return cmd
}

func serve(t *testing.T, grace time.Duration) *Client {
	t.Helper()
	dir := t.TempDir()
	go Serve(t.Context(), ServeOptions{Dir: dir, Grace: grace, Logger: slog.New(slog.DiscardHandler)})
	c := NewClient(dir, "", nil, nil)
	waitFor(t, "the watchdog answers", func() bool { _, err := c.Status(); return err == nil })
	t.Cleanup(func() { c.Close() })
	return c
}

// A deadline that passes unfed freezes the targets (a process group
// here); thaw lets them run, and a second fire followed by kill ends
// them.
func TestWatchdogProcessGroup(t *testing.T) {
	c := serve(t, time.Minute)
	p := sleeper(t, "")
	tg := Targets{PGIDs: []int{p.Process.Pid}}
	if _, err := c.Arm(time.Now().Add(150*time.Millisecond), 3, &tg); err != nil {
		t.Fatal(err)
	}
	if st := procState(p.Process.Pid); st == "T" {
		t.Fatalf("stopped before the deadline")
	}
	waitFor(t, "stopped at the deadline", func() bool { return procState(p.Process.Pid) == "T" })
	st, err := c.Status()
	if err != nil || !st.Fired || st.Epoch != 3 {
		t.Fatalf("status %+v %v", st, err)
	}
	if err := c.Resolve(false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "running again", func() bool { return procState(p.Process.Pid) == "S" })
	// Fed in time, it does not fire.
	for i := 0; i < 5; i++ {
		if _, err := c.Arm(time.Now().Add(150*time.Millisecond), 3, &tg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, _ := c.Status(); st.Fired || procState(p.Process.Pid) != "S" {
		t.Fatalf("fired although fed: %+v", st)
	}
	waitFor(t, "stopped again", func() bool { return procState(p.Process.Pid) == "T" })
	if err := c.Resolve(true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "killed", func() bool { s := procState(p.Process.Pid); return s == "Z" || s == "gone" })
}

// In cgroup mode: the method tree and the tags of the node's groups are
// frozen, a tag of another group is not; after the grace with no agent,
// the frozen ones are killed.
func TestWatchdogCgroups(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for cgroups; CI runs as root")
	}
	root, err := cgroup.Writable(fmt.Sprintf("steady-test-watchdog-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cgroup.RemoveTree(root) })
	mk := func(rel string) cgroup.Dir {
		d := cgroup.Dir(filepath.Join(string(root), rel))
		if err := d.Create(); err != nil {
			t.Fatal(err)
		}
		return d
	}
	tree, mine, other := mk("rgm/m-1"), mk("pmf/t-web,srv,0.svc"), mk("pmf/t-naps")
	pm, pt, po := sleeper(t, tree), sleeper(t, mine), sleeper(t, other)
	c := serve(t, 300*time.Millisecond)
	tg := Targets{Trees: []string{filepath.Join(string(root), "rgm")}, TagDir: filepath.Join(string(root), "pmf"), Groups: []string{"web"}}
	if _, err := c.Arm(time.Now().Add(100*time.Millisecond), 1, &tg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "frozen", func() bool { return frozen(t, tree) && frozen(t, mine) })
	if frozen(t, other) {
		t.Fatal("a tag of no group was frozen")
	}
	waitFor(t, "killed after the grace", func() bool {
		gone := func(p *exec.Cmd) bool { s := procState(p.Process.Pid); return s == "Z" || s == "gone" }
		return gone(pm) && gone(pt)
	})
	if s := procState(po.Process.Pid); s != "S" {
		t.Fatalf("the other tag's process is %s", s)
	}
	if frozen(t, tree) || frozen(t, mine) {
		t.Fatal("left frozen after the kill")
	}
}
