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
	defer os.Remove(string(root))
	d := Dir(filepath.Join(string(root), "one"))
	if err := d.Create(); err != nil {
		t.Fatal(err)
	}
	fd, err := d.OpenFD()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd := exec.Command("/bin/sh", "-c", "trap '' TERM; sleep 30 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	pids, err := d.Procs()
	if pop, _ := d.Populated(); err != nil || len(pids) != 2 || !pop {
		t.Fatalf("procs %v %v, populated %v", pids, err, pop)
	}
	// TERM is ignored by the shell but not by sleep; KILL ends both.
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if pids, _ := d.Procs(); len(pids) != 1 {
		t.Fatalf("after TERM: %v", pids)
	}
	if err := d.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if pop, _ := d.Populated(); pop {
		t.Fatal("still populated after KILL")
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
}
