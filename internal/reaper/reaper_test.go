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
