package cgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A freeze waits for the starts in flight, and starts wait for the freeze;
// a start stuck in flight holds a freeze up for gateWait at most.
func TestGateOrdersFreezesAndStarts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups (CI runs as root)")
	}
	root, err := Writable(fmt.Sprintf("steady-gatetest-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveTree(root) })
	d := Dir(filepath.Join(string(root), "a"))
	if err := d.Create(); err != nil {
		t.Fatal(err)
	}
	fd, err := d.OpenFD()
	if err != nil {
		t.Fatal(err)
	}

	release, err := ForkGuard(fd)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	unlock := HoldForks() // the start never releases in time
	if waited := time.Since(start); waited < gateWait {
		t.Fatalf("the freeze went ahead after %v, with a start in flight", waited)
	}
	unlock()
	release()

	unlock = HoldForks()
	if err := d.Write("cgroup.freeze", "1"); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		release, err := ForkGuard(fd)
		if err == nil {
			release()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a start went on while a freeze held forks: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	if err := <-got; err == nil {
		t.Fatal("a start into the frozen cgroup was let through")
	}
	if err := d.Write("cgroup.freeze", "0"); err != nil {
		t.Fatal(err)
	}
	release, err = ForkGuard(fd)
	if err != nil {
		t.Fatalf("after the thaw: %v", err)
	}
	release()
}
