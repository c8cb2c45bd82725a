package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/dr/drtest"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("DR on the real kernel needs root (CI runs as root)")
	}
}

// drAgent starts an agent whose attachment points come from sysfsRoot
// ("" is /sys) and whose RCM scripts from scriptDir.
func drAgent(t *testing.T, sysfsRoot, scriptDir string) *Agent {
	t.Helper()
	cfg := DefaultConfig
	if sysfsRoot != "" {
		cfg += "dr:\n  sysfs_root: " + sysfsRoot + "\n"
	}
	cfg += "rcm:\n  script_dirs: [" + scriptDir + "]\n"
	return StartAgent(t, AgentOptions{Config: cfg})
}

func cfgadm(a *Agent, args ...string) Result {
	return Run(a.t, CLIOptions{Name: "cfgadm", Env: []string{"STEADY_SOCKET=" + a.Socket}}, args...)
}

func expect(t *testing.T, r Result, code int, what string) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, r.Code, code, r.Stdout, r.Stderr)
	}
}

// steady dr and cfgadm, end to end, on a synthetic machine of 4 CPUs and
// 16 memory blocks: listing with cfgadm's options, unconfigure and
// configure, and the exit statuses of both commands.
func TestDRCommandsOnSyntheticMachine(t *testing.T) {
	root := t.TempDir()
	if err := drtest.Synthetic(root, 4, 16); err != nil {
		t.Fatal(err)
	}
	a := drAgent(t, root, t.TempDir())

	r := a.CLI("dr", "list")
	expect(t, r, 0, "dr list")
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if !strings.HasPrefix(lines[0], "Ap_Id") || !strings.Contains(r.Stdout, "cpu3") || strings.Contains(r.Stdout, "mem") {
		t.Fatalf("dr list (memory blocks only with -a):\n%s", r.Stdout)
	}
	r = a.CLI("-o", "json", "dr", "list", "-a")
	var aps []api.AP
	if err := json.Unmarshal([]byte(r.Stdout), &aps); err != nil || len(aps) != 20 {
		t.Fatalf("dr list -a -o json: %v, %d APs\n%s", err, len(aps), r.Stdout)
	}

	expect(t, a.CLI("dr", "unconfigure", "-y", "cpu2"), 0, "unconfigure cpu2")
	if b, _ := os.ReadFile(filepath.Join(root, "devices/system/cpu/cpu2/online")); strings.TrimSpace(string(b)) != "0" {
		t.Fatalf("cpu2 online = %q", b)
	}
	r = cfgadm(a, "-l", "-s", "select=class(cpu),cols=ap_id:o_state,noheadings,sort=-ap_id")
	expect(t, r, 0, "cfgadm -l -s")
	if want := "cpu3  configured\ncpu2  unconfigured\ncpu1  configured\ncpu0  configured\n"; r.Stdout != want {
		t.Fatalf("cfgadm listing:\n%q\nwant\n%q", r.Stdout, want)
	}
	expect(t, cfgadm(a, "-c", "configure", "cpu2"), 0, "cfgadm -c configure cpu2")
	if b, _ := os.ReadFile(filepath.Join(root, "devices/system/cpu/cpu2/online")); strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("cpu2 online = %q after configure", b)
	}
	r = cfgadm(a, "-l", "-s", "cols=ap_id:status_time_p,delim=;,noheadings", "cpu2")
	if !strings.HasPrefix(r.Stdout, "cpu2;20") {
		t.Fatalf("status_time_p: %q", r.Stdout)
	}

	// Exit statuses.
	expect(t, a.CLI("dr", "unconfigure", "-y", "cpu0"), api.ExitConflict, "the boot CPU")
	expect(t, a.CLI("dr", "unconfigure", "-y", "cpu99"), api.ExitNotFound, "an unknown AP")
	expect(t, a.CLI("dr", "connect", "cpu1"), api.ExitUnsupported, "connect of a CPU")
	expect(t, a.CLI("dr", "list", "nosuch"), api.ExitNotFound, "list of an unknown AP")
	expect(t, a.CLI("dr", "list", "-s", "select=colour(red)"), api.ExitUsage, "a bad listing option")
	r = a.CLI("dr", "unconfigure", "cpu3") // stdin is not a terminal and no -y
	expect(t, r, api.ExitUsage, "unconfigure without -y")
	if !strings.Contains(r.Stderr, "-y") {
		t.Fatalf("the refusal does not say how to confirm: %s", r.Stderr)
	}
	expect(t, cfgadm(a, "-c", "unconfigure", "cpu3"), 1, "cfgadm without a terminal assumes -n")
	expect(t, cfgadm(a, "-c", "connect", "cpu1"), 2, "cfgadm connect of a CPU")
	expect(t, cfgadm(a, "-x", "led", "cpu1"), 2, "cfgadm -x")
	expect(t, cfgadm(a, "-Z"), 3, "cfgadm usage")
	expect(t, cfgadm(a, "-c", "configure", "cpu99"), 1, "cfgadm unknown AP")
	if b, _ := os.ReadFile(filepath.Join(root, "devices/system/cpu/cpu3/online")); strings.TrimSpace(string(b)) != "1" {
		t.Fatal("cpu3 changed although nothing was confirmed")
	}
}

// loopGuard is an RCM script that registers a loop device, refuses its
// removal unless forced, and keeps a log of the commands it ran. With
// SLOW, preremove takes a long time (so that the agent can be killed in
// the middle).
const loopGuard = `#!/bin/sh
LOG=%s
echo "$1 $2 force=$RCM_ENV_FORCE" >> $LOG
case "$1" in
scriptinfo) echo rcm_script_version=1; echo "rcm_script_func_info=guards %s"; echo rcm_cmd_timeout=60 ;;
register) echo rcm_resource_name=%s ;;
resourceinfo) echo "rcm_resource_usage_info=scratch space of the test" ;;
queryremove|preremove)
	if [ "$RCM_ENV_FORCE" != TRUE ]; then echo "rcm_failure_reason=the test still uses it"; exit 3; fi
	if [ "$1" = preremove ] && [ -e %s ]; then sleep 30; fi ;;
*) exit 2 ;;
esac
exit 0
`

// loopDevice attaches a fresh file to a loop device and detaches it at
// the end of the test.
func loopDevice(t *testing.T) (dev, file string) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Truncate(file, 8<<20)
	out, err := exec.Command("losetup", "--find", "--show", file).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v %s", err, out)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev, file
}

func installGuard(t *testing.T, dev, slowFlag string) (dir, log string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "steady-e2e-rcm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	log = filepath.Join(dir, "guard.log")
	script := fmt.Sprintf(loopGuard, log, dev, dev, slowFlag)
	if err := os.WriteFile(filepath.Join(dir, "test,loop-guard"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, log
}

// The real kernel, end to end: an RCM script guards a loop device; the
// unconfigure is refused with the Resource / Information table, a dry
// run shows the script's answer, a forced one detaches the device, and
// configure attaches the same file again. Events follow each step.
func TestDRLoopDeviceGuardedByScript(t *testing.T) {
	needRoot(t)
	dev, file := loopDevice(t)
	ap := "blk/" + filepath.Base(dev)
	dir, log := installGuard(t, dev, "/nonexistent")
	a := drAgent(t, "", dir)

	r := a.CLI("rcm", "scripts", "list")
	expect(t, r, 0, "rcm scripts list")
	if !strings.Contains(r.Stdout, "test,loop-guard") || !strings.Contains(r.Stdout, dev) {
		t.Fatalf("scripts list:\n%s", r.Stdout)
	}
	r = a.CLI("rcm", "info", dev)
	if !strings.Contains(r.Stdout, "scratch space of the test") {
		t.Fatalf("rcm info %s:\n%s%s", dev, r.Stdout, r.Stderr)
	}

	r = a.CLI("dr", "unconfigure", "-y", ap)
	expect(t, r, api.ExitRefused, "unconfigure of a guarded loop device")
	if !strings.Contains(r.Stderr, "Resource") || !strings.Contains(r.Stderr, "test,loop-guard") || !strings.Contains(r.Stderr, "the test still uses it") {
		t.Fatalf("the refusal table:\n%s", r.Stderr)
	}
	r = cfgadm(a, "-c", "unconfigure", "-y", ap)
	expect(t, r, 1, "cfgadm unconfigure of a guarded loop device")
	if !strings.Contains(r.Stderr, "Component system is busy") || !strings.Contains(r.Stderr, "the test still uses it") {
		t.Fatalf("cfgadm's refusal:\n%s", r.Stderr)
	}
	r = a.CLI("dr", "unconfigure", "--dry-run", "--force", ap)
	expect(t, r, 0, "dry run")
	if !strings.Contains(r.Stdout, "would be allowed") || !strings.Contains(r.Stdout, "scratch space of the test") {
		t.Fatalf("dry run:\n%s", r.Stdout)
	}
	if _, err := os.Stat("/sys/block/" + filepath.Base(dev) + "/loop/backing_file"); err != nil {
		t.Fatal("the loop device was detached by a refused or dry-run request")
	}

	expect(t, a.CLI("dr", "unconfigure", "-y", "--force", ap), 0, "forced unconfigure")
	if _, err := os.Stat("/sys/block/" + filepath.Base(dev) + "/loop/backing_file"); err == nil {
		t.Fatal("still attached")
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "preremove "+dev+" force=TRUE") || !strings.Contains(string(b), "postremove "+dev) {
		t.Fatalf("the script heard:\n%s", b)
	}
	r = a.CLI("dr", "configure", ap)
	expect(t, r, 0, "configure")
	if got, _ := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/loop/backing_file"); strings.TrimSpace(string(got)) != file {
		t.Fatalf("re-attached to %q, want %s", got, file)
	}
	r = a.CLI("-o", "json", "events", "list", "--class", "EC_dr")
	for _, want := range []string{`"dr_remove"`, `"dr_insert"`, `"dr_request_outgoing_resource"`} {
		if !strings.Contains(r.Stdout, want) {
			t.Fatalf("EC_dr events lack %s:\n%s", want, r.Stdout)
		}
	}
	r = a.CLI("-o", "json", "events", "list", "--class", "EC_rcm")
	if !strings.Contains(r.Stdout, `"refused"`) || !strings.Contains(r.Stdout, `"op_id"`) {
		t.Fatalf("EC_rcm events:\n%s", r.Stdout)
	}
}

// The agent is killed while an unconfigure is in its real phase (the
// script's preremove is still running): the next agent finds the
// operation in flight and undoes it — the script hears undoremove — and
// the device stays attached.
func TestDRAgentKilledMidOperation(t *testing.T) {
	needRoot(t)
	dev, _ := loopDevice(t)
	ap := "blk/" + filepath.Base(dev)
	slow := filepath.Join(t.TempDir(), "slow")
	os.WriteFile(slow, nil, 0o644)
	dir, log := installGuard(t, dev, slow)
	a := drAgent(t, "", dir)

	done := make(chan Result, 1)
	go func() { done <- a.CLI("dr", "unconfigure", "-y", "--force", ap) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(log)
		if strings.Contains(string(b), "preremove") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("preremove never ran:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.Kill()
	<-done
	b, err := os.ReadFile(filepath.Join(a.DataDir, "rcm", "inflight.json"))
	if err != nil || !strings.Contains(string(b), "offlining") {
		t.Fatalf("the in-flight list at the kill: %v\n%s", err, b)
	}
	os.Remove(slow)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(log)
	if !strings.Contains(string(b), "undoremove "+dev) {
		t.Fatalf("after the restart the script heard:\n%s", b)
	}
	if _, err := os.Stat("/sys/block/" + filepath.Base(dev) + "/loop/backing_file"); err != nil {
		t.Fatal("the loop device was detached")
	}
	r := a.CLI("-o", "json", "events", "list", "--class", "EC_rcm", "--subclass", "ESC_rcm_recovered")
	if !strings.Contains(r.Stdout, "offlining") {
		t.Fatalf("no recovery event:\n%s%s", r.Stdout, r.Stderr)
	}
	// And the device can be taken away now.
	expect(t, a.CLI("dr", "unconfigure", "-y", "--force", ap), 0, "unconfigure after recovery")
	expect(t, a.CLI("dr", "configure", ap), 0, "configure after recovery")
}
