package reaper

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/steady-ha/steady/internal/cgroup"
)

func TestReaperDeliversStatusesAndReapsOrphans(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	orphans := make(chan int, 16)
	r.OnOrphan(func(pid int, _ unix.WaitStatus) { orphans <- pid })

	// Exit statuses reach the right Child, also with many at once.
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.Start(exec.Command("/bin/sh", "-c", fmt.Sprintf("exit %d", i)))
			if err != nil {
				t.Error(err)
				return
			}
			err = c.Wait()
			var ee *ExitError
			switch {
			case i == 0 && err != nil:
				t.Errorf("exit 0 gave %v", err)
			case i > 0 && (!errors.As(err, &ee) || ee.Status.ExitStatus() != i):
				t.Errorf("exit %d gave %v", i, err)
			}
		}()
	}
	wg.Wait()

	// A grandchild whose parent exits becomes ours and is reaped promptly.
	pidfile := filepath.Join(t.TempDir(), "pid")
	c, err := r.Start(exec.Command("/bin/sh", "-c", fmt.Sprintf("sleep 0.3 & echo $! > %s; exit 0", pidfile)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(pidfile)
	grandchild, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", grandchild))
	ppid := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))[1]
	if ppid != strconv.Itoa(os.Getpid()) {
		t.Fatalf("orphan's parent is %s, want us (%d): not a subreaper?", ppid, os.Getpid())
	}
	select {
	case pid := <-orphans:
		if pid != grandchild {
			t.Fatalf("orphan %d reaped, want %d", pid, grandchild)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("orphan not reaped")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", grandchild)); !os.IsNotExist(err) {
		t.Fatalf("orphan %d still in the process table (zombie?)", grandchild)
	}
}

func TestSignalledStatus(t *testing.T) {
	c, err := Plain{}.Start(exec.Command("/bin/sh", "-c", "kill -TERM $$"))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Wait()
	if err == nil || err.Error() != "killed by signal TERM" {
		t.Fatalf("Wait = %v", err)
	}
}

// A fork into a frozen cgroup does not return until the cgroup thaws (the
// child is frozen before it can exec). Reaping must go on meanwhile: the
// fenced node's agent depends on it to stop what it runs.
func TestStartIntoFrozenCgroupLeavesReapingRunning(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups (CI runs as root)")
	}
	root, err := cgroup.Writable(fmt.Sprintf("steady-reapertest-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cgroup.RemoveTree(root) })
	frozen := cgroup.Dir(filepath.Join(string(root), "frozen"))
	if err := frozen.Create(); err != nil {
		t.Fatal(err)
	}
	if err := frozen.Write("cgroup.freeze", "1"); err != nil {
		t.Fatal(err)
	}
	fd, err := frozen.OpenFD()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer frozen.Write("cgroup.freeze", "0") // first: a stuck fork would hold up Close
	early, err := r.Start(exec.Command("/bin/sh", "-c", "sleep 0.3; exit 4"))
	if err != nil {
		t.Fatal(err)
	}
	type started struct {
		c   *Child
		err error
	}
	stuck := make(chan started, 1)
	go func() {
		cmd := exec.Command("/bin/sh", "-c", "exit 5")
		cmd.SysProcAttr = &unix.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		c, err := r.Start(cmd)
		stuck <- started{c, err}
	}()
	select {
	case <-early.Done():
		if s := early.Status(); s.ExitStatus() != 4 {
			t.Fatalf("the first child: %s, want exit status 4", DescribeStatus(s))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a child exited while another was being forked into a frozen cgroup, and it was not reaped")
	}
	select {
	case s := <-stuck:
		t.Fatalf("the fork into the frozen cgroup returned before the thaw: %+v", s)
	default:
	}
	if err := frozen.Write("cgroup.freeze", "0"); err != nil {
		t.Fatal(err)
	}
	var s started
	select {
	case s = <-stuck:
	case <-time.After(5 * time.Second):
		t.Fatal("the fork did not return after the thaw")
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	select {
	case <-s.c.Done():
		if st := s.c.Status(); st.ExitStatus() != 5 {
			t.Fatalf("the thawed child: %s, want exit status 5", DescribeStatus(st))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the thawed child was not reaped")
	}
}
