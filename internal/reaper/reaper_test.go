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

// A fork into a frozen cgroup would never return (the child freezes
// before it can exec) and would hang the whole agent at its next garbage
// collection, so a start into a frozen cgroup, or one below a frozen
// cgroup, waits for the thaw and only then forks; one that stays frozen
// is given up. Reaping goes on meanwhile.
func TestStartIntoFrozenCgroupWaitsForTheThaw(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups (CI runs as root)")
	}
	root, err := cgroup.Writable(fmt.Sprintf("steady-reapertest-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cgroup.RemoveTree(root) })
	parent := cgroup.Dir(filepath.Join(string(root), "parent"))
	child := cgroup.Dir(filepath.Join(string(parent), "child"))
	if err := child.Create(); err != nil {
		t.Fatal(err)
	}
	fd, err := child.OpenFD()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer parent.Write("cgroup.freeze", "0") // first: a stuck fork would hold up Close
	into := func(script string) (*Child, error) {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.SysProcAttr = &unix.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		return r.Start(cmd)
	}
	defer func(w time.Duration) { frozenWait = w }(frozenWait)
	frozenWait = 300 * time.Millisecond
	for _, frozen := range []cgroup.Dir{child, parent} {
		if err := frozen.Write("cgroup.freeze", "1"); err != nil {
			t.Fatal(err)
		}
		early, err := r.Start(exec.Command("/bin/sh", "-c", "sleep 0.1; exit 4"))
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if _, err := into("exit 5"); !errors.Is(err, cgroup.ErrFrozen) || !strings.Contains(err.Error(), "frozen") {
			t.Fatalf("start below frozen %s: %v, want ErrFrozen", frozen, err)
		}
		if waited := time.Since(t0); waited < frozenWait {
			t.Fatalf("gave up after %v, before frozenWait", waited)
		}
		if pids, _ := child.Procs(); len(pids) != 0 {
			t.Fatalf("a refused start left processes %v", pids)
		}
		select {
		case <-early.Done():
			if s := early.Status(); s.ExitStatus() != 4 {
				t.Fatalf("the other child: %s, want exit status 4", DescribeStatus(s))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a child exited while a start waited for a thaw, and it was not reaped")
		}

		// Thawed while it waits: it goes ahead.
		frozenWait = 10 * time.Second
		go func() {
			time.Sleep(200 * time.Millisecond)
			frozen.Write("cgroup.freeze", "0")
		}()
		c, err := into("exit 5")
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Done():
			if st := c.Status(); st.ExitStatus() != 5 {
				t.Fatalf("the child: %s, want exit status 5", DescribeStatus(st))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the child was not reaped")
		}
		frozenWait = 300 * time.Millisecond
	}
}
