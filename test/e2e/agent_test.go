package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
)

func TestMain(m *testing.M) {
	code := m.Run()
	CleanupBinary()
	os.Exit(code)
}

func TestCleanShutdownOnSIGTERM(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	r := a.CLI("status")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Node:      e2e") || !strings.Contains(r.Stdout, "store        ok") {
		t.Fatalf("status (exit %d):\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	st, err := a.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode() != 0 {
		t.Fatalf("agent exited %v after SIGTERM:\n%s", st, a.Log())
	}
	log := a.Log()
	if i, j := strings.Index(log, `msg="agent stopping"`), strings.Index(log, `msg="agent stopped"`); i < 0 || j < i {
		t.Fatalf("log lacks the orderly stop:\n%s", log)
	}
	if _, err := os.Stat(a.Socket); !os.IsNotExist(err) {
		t.Fatalf("socket left after a clean stop: %v", err)
	}
}

// TestKill9KeepsAcknowledgedEvents publishes from several clients while
// the agent is killed with SIGKILL, restarts it, and checks that every
// event the agent acknowledged is in the journal and that no sequence
// number is given twice.
func TestKill9KeepsAcknowledgedEvents(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	c := client.New(a.Socket)
	type ack struct {
		seq         uint64
		writer, num int
	}
	var (
		mu   sync.Mutex
		acks []ack
		wg   sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				seq, err := c.PublishEvent(ctx, api.PublishRequest{Class: "EC_test", Subclass: "ESC_kill",
					Attrs: api.Attrs{"writer": api.Int(int64(w)), "n": api.Int(int64(n))}})
				if err != nil {
					return // the agent is gone
				}
				mu.Lock()
				acks = append(acks, ack{seq, w, n})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	a.Kill()
	wg.Wait()
	cancel()
	if len(acks) < 100 {
		t.Fatalf("only %d events acknowledged before the kill", len(acks))
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]api.Event{}
	var next uint64
	for {
		l, err := c.Events(context.Background(), client.EventQuery{Since: next, HasSince: true, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Events) == 0 {
			break
		}
		for _, ev := range l.Events {
			if _, dup := got[ev.Seq]; dup {
				t.Fatalf("sequence %d appears twice", ev.Seq)
			}
			got[ev.Seq] = ev
		}
		next = l.Next
	}
	var maxAck uint64
	for _, k := range acks {
		ev, ok := got[k.seq]
		if !ok {
			t.Fatalf("acknowledged event %d (writer %d #%d) is missing after kill -9", k.seq, k.writer, k.num)
		}
		w, _ := ev.Attrs["writer"].Int64()
		n, _ := ev.Attrs["n"].Int64()
		if ev.Subclass != "ESC_kill" || int(w) != k.writer || int(n) != k.num {
			t.Fatalf("sequence %d holds %+v, but was acknowledged for writer %d #%d", k.seq, ev, k.writer, k.num)
		}
		maxAck = max(maxAck, k.seq)
	}
	// The restarted agent continues after everything it had written.
	seq, err := c.PublishEvent(context.Background(), api.PublishRequest{Class: "EC_test", Subclass: "ESC_after"})
	if err != nil {
		t.Fatal(err)
	}
	if seq <= maxAck {
		t.Fatalf("new event got sequence %d, not above the acknowledged %d", seq, maxAck)
	}
	// And it says the previous agent died.
	l, err := c.Events(context.Background(), client.EventQuery{Class: "EC_steady", Subclass: "ESC_agent_started", Last: 1})
	if err != nil || len(l.Events) != 1 {
		t.Fatalf("start event: %v %v", l, err)
	}
	if s, _ := l.Events[0].Attrs["previous_stop"].Str(); s != "unclean" {
		t.Fatalf("previous_stop = %q after kill -9", s)
	}
	t.Logf("%d events acknowledged before SIGKILL, all present; next sequence %d", len(acks), seq)
}

// policyConfig gives the socket to group "users", which may read, and
// makes "staff" the admin group (both exist on Debian).
const policyConfig = `version: 1
node:
  name: e2e
data_dir: {{.DataDir}}
api:
  socket: {{.Socket}}
  socket_group: users
  read_group: users
  admin_group: staff
pmf:
  cgroup: {{.Cgroup}}
`

func lookupGID(t *testing.T, name string) uint32 {
	t.Helper()
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatalf("group %s: %v", name, err)
	}
	n, _ := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(n)
}

// TestSocketPolicyForOtherUsers runs the CLI as nobody with different
// group memberships against an agent whose read group is "users" and whose
// admin group is "staff" (both exist on Debian).
func TestSocketPolicyForOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run commands as nobody (CI runs as root)")
	}
	users, staff := lookupGID(t, "users"), lookupGID(t, "staff")
	a := StartAgent(t, AgentOptions{Config: policyConfig})
	fi, err := os.Stat(a.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || st.Gid != users {
		t.Fatalf("socket mode %v gid %d; want 0660 and group users (%d)", fi.Mode().Perm(), st.Gid, users)
	}
	nobody := func(groups ...uint32) CLIOptions {
		return CLIOptions{Cred: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: groups}}
	}

	// A reader may read and may not change.
	r := a.CLIAs(nobody(users), "status")
	if r.Code != 0 {
		t.Fatalf("reader status: exit %d %s", r.Code, r.Stderr)
	}
	r = a.CLIAs(nobody(users), "events", "post", "EC_test", "ESC_x")
	if r.Code != api.ExitPermission || !strings.Contains(r.Stderr, "may not change anything") {
		t.Fatalf("reader post: exit %d %q", r.Code, r.Stderr)
	}
	// A member of the admin group may change (the socket is reachable
	// through the users group as well here).
	r = a.CLIAs(nobody(users, staff), "events", "post", "EC_test", "ESC_x")
	if r.Code != 0 {
		t.Fatalf("admin post: exit %d %s", r.Code, r.Stderr)
	}
	ev := a.CLI("events", "list", "--class", "EC_test", "-o", "json")
	var l api.EventList
	if err := json.Unmarshal([]byte(ev.Stdout), &l); err != nil || len(l.Events) != 1 || l.Events[0].Publisher != "user:nobody" {
		t.Fatalf("posted event %+v %v", l, err)
	}
	// Without the group, the socket's mode keeps nobody out.
	r = a.CLIAs(nobody(), "status")
	if r.Code != api.ExitPermission || !strings.Contains(r.Stderr, "permission denied on the socket") {
		t.Fatalf("stranger through 0660: exit %d %q", r.Code, r.Stderr)
	}
	// And with the socket opened to everyone, the policy still refuses.
	if err := os.Chmod(a.Socket, 0o666); err != nil {
		t.Fatal(err)
	}
	r = a.CLIAs(nobody(), "status")
	if r.Code != api.ExitPermission || !strings.Contains(r.Stderr, "may not read") {
		t.Fatalf("stranger through 0666: exit %d %q", r.Code, r.Stderr)
	}
}

func TestBadConfigurationDoesNotStart(t *testing.T) {
	a := NewAgent(t, AgentOptions{Config: `version: 1
data_dir: {{.DataDir}}
api:
  socket: {{.Socket}}
store:
  hearbeat: 50ms
  election: 100ms
`})
	err := a.Start()
	if err == nil {
		t.Fatal("agent started with a broken configuration")
	}
	st := a.ExitState()
	if st == nil || st.ExitCode() != api.ExitUsage {
		t.Fatalf("exit state %v, want %d", st, api.ExitUsage)
	}
	log := a.Log()
	for _, want := range []string{a.Config + ":6:3: store.hearbeat: unknown key \"hearbeat\"", "did you mean \"heartbeat\""} {
		if !strings.Contains(log, want) {
			t.Errorf("output lacks %q:\n%s", want, log)
		}
	}
	if _, err := os.Stat(a.DataDir); !os.IsNotExist(err) {
		t.Fatalf("a rejected configuration created the data directory: %v", err)
	}
}

func TestCommandLine(t *testing.T) {
	r := Run(t, CLIOptions{}, "status", "--bogus")
	if r.Code != api.ExitUsage || !strings.Contains(r.Stderr, "unknown flag: --bogus") || !strings.Contains(r.Stderr, "steady status --help") {
		t.Fatalf("unknown flag: %d %q", r.Code, r.Stderr)
	}
	r = Run(t, CLIOptions{}, "--socket", filepath.Join(t.TempDir(), "none.sock"), "status")
	if r.Code != api.ExitUnavailable || !strings.Contains(r.Stderr, "is the agent running?") {
		t.Fatalf("no agent: %d %q", r.Code, r.Stderr)
	}
	r = Run(t, CLIOptions{Name: "frobnicate"})
	if r.Code != api.ExitUsage || !strings.Contains(r.Stderr, `started as "frobnicate", which is not a command steady provides`) {
		t.Fatalf("unknown personality: %d %q", r.Code, r.Stderr)
	}
	r = Run(t, CLIOptions{}, "agent", "--print-default-config")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "# steady agent configuration") {
		t.Fatalf("--print-default-config: %d %q", r.Code, r.Stdout)
	}
	r = Run(t, CLIOptions{}, "completion", "bash")
	if r.Code != 0 || !strings.Contains(r.Stdout, "__start_steady") {
		t.Fatalf("bash completion: %d", r.Code)
	}
	r = Run(t, CLIOptions{}, "version", "-o", "json")
	var v map[string]string
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &v) != nil || v["version"] == "" {
		t.Fatalf("version: %d %q", r.Code, r.Stdout)
	}
}

// TestSubscriberThroughCLI adds a subscriber with the CLI, triggers it
// with a posted event and checks the macros it was run with.
func TestSubscriberThroughCLI(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	out := filepath.Join(a.Dir, "out")
	script := filepath.Join(a.Dir, "hook")
	os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\necho \"$@\" >> %s\n", out)), 0o755)
	r := a.CLI("events", "subscribe", "add", "--class", "EC_hook", script, "$subclass", "${who}", `\$literal`, "--not-a-flag")
	if r.Code != 0 {
		t.Fatalf("subscribe add: %d %s", r.Code, r.Stderr)
	}
	id := strings.TrimSpace(r.Stdout)
	if r := a.CLI("events", "post", "EC_hook", "ESC_ping", "who=operator"); r.Code != 0 {
		t.Fatalf("post: %d %s", r.Code, r.Stderr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if got := strings.TrimSpace(string(b)); got != "" {
			if got != "ESC_ping operator $literal --not-a-flag" {
				t.Fatalf("script ran with %q", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("subscriber did not run")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r = a.CLI("events", "subscribe", "list")
	if r.Code != 0 || !strings.Contains(r.Stdout, id) || !strings.Contains(r.Stdout, "EC_hook") {
		t.Fatalf("subscribe list: %s", r.Stdout)
	}
	// Refused at add time, with the reason.
	os.Chmod(script, 0o777)
	r = a.CLI("events", "subscribe", "add", "--class", "EC_hook", script)
	if r.Code != api.ExitUsage || !strings.Contains(r.Stderr, "writable by group or others") {
		t.Fatalf("writable script: %d %q", r.Code, r.Stderr)
	}
	if r := a.CLI("events", "subscribe", "remove", id); r.Code != 0 {
		t.Fatalf("remove: %d %s", r.Code, r.Stderr)
	}
	if r := a.CLI("events", "subscribe", "remove", id); r.Code != api.ExitNotFound {
		t.Fatalf("second remove: %d %s", r.Code, r.Stderr)
	}
}
