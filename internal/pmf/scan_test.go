package pmf

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// TestScanSeesProcessesMidExec starts daemons the way a start script does
// (the command backgrounds a worker that leaves the group with setsid and
// exits) and looks for the worker right after the command exited, when
// it is often in the middle of an exec: its environment then reads empty.
// The scan must still find the worker by its marker every time.
func TestScanSeesProcessesMidExec(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("reading other processes' environments needs root (CI runs as root)")
	}
	const tag = "t-midexec"
	defer func() {
		for _, p := range scanProcs() {
			if p.tag == tag {
				syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
	}()
	missed := 0
	const tries = 300
	for i := 0; i < tries; i++ {
		cmd := exec.Command("/bin/sh", "-c", "setsid sleep 30 & exit 0")
		cmd.Env = []string{"PATH=/usr/bin:/bin", tagEnv + "=" + tag, agentEnv + "=test"}
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range scanProcs() {
			if p.tag == tag && p.agent == "test" && p.pgid != cmd.Process.Pid {
				found = true
				syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
		if !found {
			missed++
		}
	}
	if missed > 0 {
		t.Fatalf("the worker was missed %d times in %d", missed, tries)
	}
}
