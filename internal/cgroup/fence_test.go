package cgroup

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// Two mappings of the fence file stand for the agent and the watchdog.
func TestForkFence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "forkfence")
	agent, err := OpenForkFence(path)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	wd, err := OpenForkFence(path)
	if err != nil {
		t.Fatal(err)
	}
	defer wd.Close()
	agent.Reset()

	// A fork in flight holds the freeze back until it is done.
	if !agent.enter() {
		t.Fatal("a fork was refused with the fence down")
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		agent.leave()
	}()
	t0 := time.Now()
	wd.Raise(time.Second)
	if waited := time.Since(t0); waited < 25*time.Millisecond || waited > 500*time.Millisecond {
		t.Fatalf("the freeze waited %v for a fork that took 30ms", waited)
	}
	// No fork starts while it is up.
	if agent.enter() {
		t.Fatal("a fork went ahead with the fence up")
	}
	if !agent.Raised() {
		t.Fatal("the agent does not see the fence up")
	}
	wd.Lower()
	if !agent.enter() {
		t.Fatal("a fork was refused after the fence came down")
	}
	// A fork that never finishes holds a freeze back only for the bound.
	t0 = time.Now()
	wd.Raise(50 * time.Millisecond)
	if waited := time.Since(t0); waited < 50*time.Millisecond || waited > time.Second {
		t.Fatalf("the freeze waited %v, want the 50ms bound", waited)
	}
	agent.Reset()
	if agent.Raised() || !agent.enter() {
		t.Fatal("Reset left the fence up")
	}
	agent.leave()
}

// With a fence in use, ForkGuard refuses while it is up.
func TestForkGuardHonoursTheFence(t *testing.T) {
	f, err := OpenForkFence(filepath.Join(t.TempDir(), "forkfence"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Reset()
	UseForkFence(f)
	defer UseForkFence(nil)
	dir := t.TempDir() // no cgroup.freeze in it: never frozen itself
	fd, err := Dir(dir).OpenFD()
	if err != nil {
		t.Fatal(err)
	}
	RaiseFence()
	if _, err := ForkGuard(fd); !errors.Is(err, ErrFrozen) {
		t.Fatalf("ForkGuard with the fence up: %v", err)
	}
	LowerFence()
	release, err := ForkGuard(fd)
	if err != nil {
		t.Fatal(err)
	}
	if n := *f.inFlight(); n != 1 {
		t.Fatalf("%d forks in flight, want 1", n)
	}
	release()
	if n := *f.inFlight(); n != 0 {
		t.Fatalf("%d forks in flight after the release", n)
	}
}
