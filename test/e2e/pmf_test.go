package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
)

// pmfadm links the binary as pmfadm with install-links and returns a
// function that runs it against the agent.
func pmfadmFor(t *testing.T, a *Agent) func(o CLIOptions, args ...string) Result {
	t.Helper()
	bin := filepath.Join(a.Dir, "bin")
	os.Mkdir(bin, 0o755)
	if r := a.CLI("install-links", "--dir", bin); r.Code != 0 || !strings.Contains(r.Stdout, "created") {
		t.Fatalf("install-links: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	if dest, err := os.Readlink(filepath.Join(bin, "pmfadm")); err != nil || dest != Binary(t) {
		t.Fatalf("pmfadm link points to %q (%v)", dest, err)
	}
	return func(o CLIOptions, args ...string) Result {
		o.Name = filepath.Join(bin, "pmfadm")
		o.Env = append(o.Env, "STEADY_SOCKET="+a.Socket)
		return Run(t, o, args...)
	}
}

func tagInfo(t *testing.T, a *Agent, tag string) api.PMFTag {
	t.Helper()
	tg, err := client.New(a.Socket).PMFTag(context.Background(), tag)
	if err != nil {
		t.Fatalf("tag %s: %v", tag, err)
	}
	return tg
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPmfadmPersonality(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	pmfadm := pmfadmFor(t, a)
	none := CLIOptions{}
	ok := func(args ...string) Result {
		t.Helper()
		r := pmfadm(none, args...)
		if r.Code != 0 {
			t.Fatalf("pmfadm %v: exit %d: %s", args, r.Code, r.Stderr)
		}
		return r
	}
	fails := func(want string, args ...string) {
		t.Helper()
		r := pmfadm(none, args...)
		if r.Code != 1 || !strings.Contains(r.Stderr, want) {
			t.Fatalf("pmfadm %v: exit %d, stderr %q; want 1 and %q", args, r.Code, r.Stderr, want)
		}
	}

	ok("-c", "svc", "-n", "1", "-t", "1", "sh", "-c", "exec sleep 300")
	fails("already running", "-c", "svc", "sleep", "1")
	r := ok("-l", "svc")
	for _, want := range []string{"pmfadm -c svc -n 1 -t 1 /usr/bin/sh -c 'exec sleep 300'", "\towner: root", "\tmonitor children: all", "\tpids: "} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("pmfadm -l lacks %q:\n%s", want, r.Stdout)
		}
	}
	if r := ok("-L"); strings.TrimSpace(r.Stdout) != "svc" {
		t.Errorf("pmfadm -L = %q", r.Stdout)
	}
	ok("-q", "svc")
	if r := pmfadm(none, "-q", "nope"); r.Code != 1 || r.Stderr != "" {
		t.Errorf("pmfadm -q of an unknown tag: %d %q", r.Code, r.Stderr)
	}
	ok("-m", "svc", "-n", "3")
	if r := ok("-l", "svc"); !strings.Contains(r.Stdout, "-n 3 -t 1") {
		t.Errorf("after -m: %s", r.Stdout)
	}

	// -k kills and supervision restarts the command.
	first := tagInfo(t, a, "svc")
	ok("-k", "svc", "-w", "5")
	waitFor(t, "a restart after -k", func() bool { return tagInfo(t, a, "svc").Instance == first.Instance+1 })
	fails("not a signal name", "-k", "svc", "BOGUS")
	ok("-s", "svc", "-w", "5", "TERM")
	if r := pmfadm(none, "-q", "svc"); r.Code != 1 {
		t.Fatalf("tag still registered after -s: %d", r.Code)
	}

	// Usage errors.
	fails("usage:", "-c")
	fails("give one of -c", "-n", "3")
	fails("illegal option -- x", "-x", "tag")
	fails("-e and -E cannot be used together", "-c", "x", "-e", "A=1", "-E", "true")
	fails("-w cannot be used with -c", "-c", "x", "-w", "3", "true")
	fails("/nonexistent/prog: not found", "-c", "x", "/nonexistent/prog")
	fails("the period is in minutes", "-c", "x", "-t", "0", "true")
	fails("no such tag", "-s", "ghost")

	// -E passes the caller's environment, -e adds to a minimal one; both
	// land in the command's environment.
	out := filepath.Join(a.Dir, "env")
	script := fmt.Sprintf("echo \"$FOO $BAR ${HOME:-nohome}\" >> %s; exec sleep 300", out)
	r = pmfadm(CLIOptions{Env: []string{"FOO=from-caller"}}, "-c", "envE", "-E", "sh", "-c", script)
	if r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	r = pmfadm(CLIOptions{Env: []string{"FOO=not-passed"}}, "-c", "envE2", "-e", "BAR=added", "sh", "-c", script)
	if r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	waitFor(t, "both commands to record their environment", func() bool {
		b, _ := os.ReadFile(out)
		return strings.Count(string(b), "\n") >= 2
	})
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), "from-caller  ") || !strings.Contains(string(b), " added /root") || strings.Contains(string(b), "not-passed") {
		t.Errorf("environments:\n%s", b)
	}

	// An action program gets "failed TAG" and removes the tag with exit 1.
	actionOut := filepath.Join(a.Dir, "action.out")
	action := filepath.Join(a.Dir, "action")
	os.WriteFile(action, []byte(fmt.Sprintf("#!/bin/sh\necho \"$@\" > %s\nexit 1\n", actionOut)), 0o755)
	ok("-c", "act", "-a", action+" first-arg", "sh", "-c", "exit 2")
	waitFor(t, "the action program", func() bool {
		b, _ := os.ReadFile(actionOut)
		return strings.TrimSpace(string(b)) == "first-arg failed act"
	})
	waitFor(t, "the tag to be removed", func() bool { return pmfadm(none, "-q", "act").Code == 1 })
}

// TestPMFOwnershipThroughSocket runs tags as different users through the
// socket: a tag runs as the user who started it, and another ordinary user
// may look at it but not stop it.
func TestPMFOwnershipThroughSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run commands as other users (CI runs as root)")
	}
	users := lookupGID(t, "users")
	a := StartAgent(t, AgentOptions{Config: policyConfig})
	pmfadm := pmfadmFor(t, a)
	nobody := CLIOptions{Cred: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{users}}}
	stranger := CLIOptions{Cred: &syscall.Credential{Uid: 12345, Gid: 12345, Groups: []uint32{users}}}

	r := a.CLIAs(nobody, "pmf", "start", "mine", "--retries", "2", "--", "/bin/sleep", "300")
	if r.Code != 0 {
		t.Fatalf("start as nobody: %d %s", r.Code, r.Stderr)
	}
	tg := tagInfo(t, a, "mine")
	if tg.UID != 65534 || tg.Owner != "nobody" {
		t.Fatalf("tag owner %s/%d", tg.Owner, tg.UID)
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", tg.MainPID))
	if !strings.Contains(string(status), "\nUid:\t65534\t65534") {
		t.Fatalf("the process does not run as nobody:\n%s", status)
	}
	// Anyone who may use the agent may look.
	if r := a.CLIAs(stranger, "pmf", "show", "mine"); r.Code != 0 {
		t.Fatalf("show by another user: %d %s", r.Code, r.Stderr)
	}
	// Only the owner (or an administrator) may change it.
	r = a.CLIAs(stranger, "pmf", "stop", "mine")
	if r.Code != api.ExitPermission || !strings.Contains(r.Stderr, "belongs to nobody") {
		t.Fatalf("stop by another user: %d %q", r.Code, r.Stderr)
	}
	if r := pmfadm(stranger, "-k", "mine"); r.Code != 1 || !strings.Contains(r.Stderr, "only its owner") {
		t.Fatalf("pmfadm -k by another user: %d %q", r.Code, r.Stderr)
	}
	if r := pmfadm(nobody, "-m", "mine", "-n", "4"); r.Code != 0 {
		t.Fatalf("pmfadm -m by the owner: %d %s", r.Code, r.Stderr)
	}
	if r := pmfadm(nobody, "-s", "mine", "-w", "5"); r.Code != 0 {
		t.Fatalf("pmfadm -s by the owner: %d %s", r.Code, r.Stderr)
	}
	// Root may stop anyone's tag.
	if r := a.CLIAs(nobody, "pmf", "start", "theirs", "--", "/bin/sleep", "300"); r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	if r := a.CLI("pmf", "stop", "theirs", "--wait", "5s"); r.Code != 0 {
		t.Fatalf("stop by root: %d %s", r.Code, r.Stderr)
	}
}

// TestPMFSurvivesAgentKill kills the agent with SIGKILL: the service keeps
// running, the restarted agent re-adopts it and still restarts it; a
// service that dies while no agent runs is restarted when it comes back.
func TestPMFSurvivesAgentKill(t *testing.T) {
	for _, mode := range []string{"cgroup", "process-group"} {
		t.Run(mode, func(t *testing.T) {
			a := StartAgent(t, AgentOptions{Config: DefaultConfig + "  mode: " + mode + "\n"})
			if r := a.CLI("pmf", "status", "-o", "json"); !strings.Contains(r.Stdout, `"mode": "`+mode+`"`) {
				t.Fatalf("pmf status: %s", r.Stdout)
			}
			// A daemon: the command backgrounds its worker and exits.
			if r := a.CLI("pmf", "start", "svc", "--retries", "5", "--", "/bin/sh", "-c", "setsid sleep 300 & exit 0"); r.Code != 0 {
				t.Fatal(r.Stderr)
			}
			var worker int
			waitFor(t, "the worker", func() bool {
				tg := tagInfo(t, a, "svc")
				if len(tg.PIDs) == 1 && tg.PIDs[0] != tg.MainPID {
					worker = tg.PIDs[0]
					return true
				}
				return false
			})

			a.Kill()
			if syscall.Kill(worker, 0) != nil {
				t.Fatal("killing the agent killed the supervised worker")
			}
			if err := a.Start(); err != nil {
				t.Fatal(err)
			}
			tg := tagInfo(t, a, "svc")
			if len(tg.PIDs) != 1 || tg.PIDs[0] != worker || tg.Instance != 1 {
				t.Fatalf("after the agent restart: %+v (worker %d)", tg, worker)
			}
			// Still supervised: a crash is restarted (wait for the event: it
			// is published just after the restart, and the agent is killed
			// next). Instance numbers only grow, also across agent restarts.
			syscall.Kill(worker, syscall.SIGKILL)
			waitFor(t, "a restart after the crash", func() bool { return strings.HasSuffix(pmfEvents(a), "restarted") })
			second := tagInfo(t, a, "svc").Instance
			if second <= 1 {
				t.Fatalf("instance %d after a restart", second)
			}

			// Died while no agent ran: restarted when it comes back.
			a.Kill()
			for _, p := range procsWithTag("svc") {
				syscall.Kill(p, syscall.SIGKILL)
			}
			waitFor(t, "the service to die", func() bool { return len(procsWithTag("svc")) == 0 })
			if err := a.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a restart when the agent came back", func() bool {
				tg := tagInfo(t, a, "svc")
				return tg.Instance > second && len(tg.PIDs) > 0
			})
			waitFor(t, "the events of the last restart", func() bool {
				return pmfEvents(a) == "started readopted exited restarted exited restarted"
			})
		})
	}
}

// pmfEvents lists the EC_pmf subclasses in the agent's journal.
func pmfEvents(a *Agent) string {
	r := a.CLI("events", "list", "--class", "EC_pmf", "-o", "json")
	var l api.EventList
	json.Unmarshal([]byte(r.Stdout), &l)
	var subs []string
	for _, ev := range l.Events {
		subs = append(subs, strings.TrimPrefix(ev.Subclass, "ESC_pmf_"))
	}
	return strings.Join(subs, " ")
}

// procsWithTag finds live processes carrying the tag marker.
func procsWithTag(tag string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := strings.LastIndexByte(string(stat), ')'); i < 0 || strings.HasPrefix(string(stat[i+2:]), "Z") {
			continue
		}
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		if strings.Contains("\x00"+string(env), "\x00STEADY_PMF_TAG="+tag+"\x00") {
			out = append(out, pid)
		}
	}
	return out
}
