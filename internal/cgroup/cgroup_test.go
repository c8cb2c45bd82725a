package cgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestDirLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups (CI runs as root)")
	}
	root, err := Writable(fmt.Sprintf("steady-cgtest-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	d := Dir(filepath.Join(string(root), "one"))
	t.Cleanup(func() { RemoveTree(root) })
	if err := d.Create(); err != nil {
		t.Fatal(err)
	}
	fd, err := d.OpenFD()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// The shell handles USR1 (noting it in a file) and stays; its sleep,
	// for which USR1 is fatal, dies of it.
	mark := filepath.Join(t.TempDir(), "usr1")
	cmd := exec.Command("/bin/sh", "-c", "trap 'echo got > "+mark+"' USR1; sleep 30 & wait; exec sleep 30")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	pids, err := d.Procs()
	if pop, _ := d.Populated(); err != nil || len(pids) != 2 || !pop {
		t.Fatalf("procs %v %v, populated %v", pids, err, pop)
	}
	if err := d.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if b, _ := os.ReadFile(mark); string(b) != "got\n" {
		t.Fatalf("the shell did not get USR1: %q", b)
	}
	if pids, _ := d.Procs(); len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Fatalf("after USR1 the sleep should be gone and the shell left: %v", pids)
	}
	if d.WaitEmpty(50 * time.Millisecond) {
		t.Fatal("WaitEmpty reported an empty cgroup while the shell runs")
	}
	if err := d.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Empty once the shell has exited, before anyone reaps it.
	if !d.WaitEmpty(2 * time.Second) {
		t.Fatal("WaitEmpty: still populated 2s after KILL")
	}
	cmd.Wait()
	if pop, _ := d.Populated(); pop {
		t.Fatal("still populated after KILL")
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
}
