package rgm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/cgroup"
	"github.com/steady-ha/steady/internal/event"
	"github.com/steady-ha/steady/internal/pmf"
	"github.com/steady-ha/steady/internal/reaper"
	"github.com/steady-ha/steady/internal/rgm/machine"
	"github.com/steady-ha/steady/internal/rgm/model"
	"github.com/steady-ha/steady/internal/store"
)

// env is a manager over a real embedded store, process monitor and
// methods; open() makes a new manager on the same state (an agent
// restart).
type env struct {
	t      *testing.T
	dir    string
	work   string
	cgroup string
	st     *store.Store
	j      *event.Journal
	bus    *event.Bus
	r      *reaper.Reaper
	pm     *pmf.Manager
	m      *Manager
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the resource group manager tests need root (CI runs as root)")
	}
	work, _ := os.MkdirTemp("", "steady-rgm-")
	os.Chmod(work, 0o755)
	e := &env{t: t, dir: t.TempDir(), work: work, cgroup: fmt.Sprintf("steady-rgmtest-%d-%d", os.Getpid(), time.Now().UnixNano())}
	var err error
	e.st, err = store.Open(t.Context(), store.Options{Dir: filepath.Join(e.dir, "store"), Name: "n1",
		Heartbeat: 50 * time.Millisecond, Election: 500 * time.Millisecond, QuotaBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e.j, _ = event.OpenJournal(event.JournalOptions{Dir: filepath.Join(e.dir, "journal"), SegmentBytes: 4 << 20, MaxBytes: 64 << 20})
	e.bus, _ = event.NewBus(e.j, "n1", nil)
	e.r, err = reaper.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.pm, err = pmf.New(pmf.Options{Dir: filepath.Join(e.dir, "pmf"), Cgroup: e.cgroup, Bus: e.bus, Spawner: e.r})
	if err != nil {
		t.Fatal(err)
	}
	e.open()
	t.Cleanup(func() {
		if e.m != nil {
			e.m.Close()
		}
		for _, tg := range e.pm.List() {
			e.pm.Stop(context.Background(), tg.Tag, 9, 5*time.Second, pmf.Root)
		}
		e.pm.Close()
		if mount, err := cgroup.FindCgroup2(); err == nil {
			cgroup.RemoveTree(cgroup.Dir(filepath.Join(mount, e.cgroup)))
		}
		e.r.Close()
		e.st.Close()
		e.j.Close()
		os.RemoveAll(work)
	})
	return e
}

func (e *env) open() {
	e.t.Helper()
	m, err := New(e.t.Context(), Options{Node: "n1", Dir: filepath.Join(e.dir, "rgm"), Store: e.st, Bus: e.bus, PMF: e.pm,
		Spawner: e.r, Cgroup: e.cgroup, Logger: slog.New(slog.NewTextHandler(tlog{e.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		e.t.Fatal(err)
	}
	e.m = m
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) { w.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

// rtrType registers an RTR type whose methods log "METHOD resource" to a
// file and sleep as asked.
func (e *env) rtrType(name, log string, extra string) {
	e.t.Helper()
	bin := filepath.Join(e.work, name)
	os.MkdirAll(bin, 0o755)
	for _, m := range []string{"start", "stop", "validate"} {
		body := fmt.Sprintf("#!/bin/sh\nwhile getopts R:T:G:cux:r:g: o; do case $o in R) r=$OPTARG;; x) x=\"$x $OPTARG\";; esac; done\necho \"%s $r\" >> %s\n", m, log)
		switch m {
		case "start":
			body += "[ -f " + filepath.Join(e.work, "slow-") + "$r ] && sleep 3\n[ -f " + filepath.Join(e.work, "fail-") + "$r ] && exit 7\n"
		case "validate":
			body += "case \"$x\" in *Port=0*) echo 'port 0 is not allowed' >&2; exit 1;; esac\n"
		}
		body += "exit 0\n"
		os.WriteFile(filepath.Join(bin, m), []byte(body), 0o755)
	}
	src := fmt.Sprintf(`RESOURCE_TYPE = %s; RT_VERSION = 1; RT_BASEDIR = %s; START = start; STOP = stop; VALIDATE = validate;
%s
{ PROPERTY = Port; EXTENSION; INT; DEFAULT = 80; TUNABLE = WHEN_DISABLED; }
{ PROPERTY = Label; EXTENSION; STRING; DEFAULT = ""; TUNABLE = AT_CREATION; }
`, name, bin, extra)
	if _, err := e.m.RegisterRTR(e.t.Context(), name+".rtr", []byte(src)); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) waitGroup(name, state string, within time.Duration) api.RGMGroup {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		g, err := e.m.Group(e.t.Context(), name)
		if err == nil && g.State == state {
			return g
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("group %s is %s, want %s (err %v)", name, g.State, state, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lines(t *testing.T, path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestChainOfHundredInOrder(t *testing.T) {
	e := newEnv(t)
	log := filepath.Join(e.work, "calls")
	e.rtrType("chain", log, "")
	ctx := t.Context()
	if err := e.m.CreateGroup(ctx, "big", nil); err != nil {
		t.Fatal(err)
	}
	const n = 100
	// Created r000..r099, but each depends on the next one: only the
	// dependencies, not the creation order, can give r099 first.
	for i := 0; i < n; i++ {
		if err := e.m.CreateResource(ctx, api.RGMResourceRequest{Name: fmt.Sprintf("r%03d", i), Group: "big", Type: "chain"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n-1; i++ {
		if err := e.m.SetResource(ctx, fmt.Sprintf("r%03d", i), map[string]string{"Resource_dependencies": fmt.Sprintf("r%03d", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(log)
	if err := e.m.GroupAction(ctx, "big", ActOnline); err != nil {
		t.Fatal(err)
	}
	e.waitGroup("big", machine.GroupOnline, 60*time.Second)
	got := lines(t, log)
	if len(got) != n {
		t.Fatalf("%d start calls, want %d", len(got), n)
	}
	for i, l := range got {
		if l != fmt.Sprintf("start r%03d", n-1-i) {
			t.Fatalf("call %d is %q: not in dependency order", i, l)
		}
	}
	os.Remove(log)
	if err := e.m.GroupAction(ctx, "big", ActOffline); err != nil {
		t.Fatal(err)
	}
	e.waitGroup("big", machine.GroupOffline, 60*time.Second)
	got = lines(t, log)
	for i, l := range got {
		if l != fmt.Sprintf("stop r%03d", i) {
			t.Fatalf("stop call %d is %q: not in reverse order", i, l)
		}
	}
}

func TestValidateAndTunability(t *testing.T) {
	e := newEnv(t)
	log := filepath.Join(e.work, "calls")
	e.rtrType("svc", log, "")
	ctx := t.Context()
	e.m.CreateGroup(ctx, "g", nil)
	err := e.m.CreateResource(ctx, api.RGMResourceRequest{Name: "bad", Group: "g", Type: "svc", Props: map[string]string{"Port": "0"}})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "port 0 is not allowed") {
		t.Fatalf("VALIDATE refusal: %v", err)
	}
	if _, err := e.m.Resource(ctx, "bad"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a refused resource was created")
	}
	if err := e.m.CreateResource(ctx, api.RGMResourceRequest{Name: "ok", Group: "g", Type: "svc", Props: map[string]string{"Port": "8080"}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "validate ok") {
		t.Fatalf("VALIDATE did not run: %s", b)
	}
	for _, tt := range []struct {
		props map[string]string
		want  string
	}{
		{map[string]string{"Port": "81"}, "only be changed while ok is disabled"},
		{map[string]string{"Label": "x"}, "can only be set when the resource is created"},
		{map[string]string{"Retry_count": "x"}, "unknown property"},
		{map[string]string{"Failover_mode": "SIDEWAYS"}, `"SIDEWAYS" is not one of NONE, SOFT, HARD`},
		{map[string]string{"Status": "OK"}, "can only be read"},
	} {
		if err := e.m.SetResource(ctx, "ok", tt.props); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("set %v: %v, want %q", tt.props, err, tt.want)
		}
	}
	if err := e.m.SetResource(ctx, "ok", map[string]string{"Failover_mode": "soft"}); err != nil {
		t.Fatal(err)
	}
	if r, _ := e.m.Resource(ctx, "ok"); propValue(r, "Failover_mode") != "SOFT" {
		t.Fatalf("Failover_mode %q", propValue(r, "Failover_mode"))
	}
	if err := e.m.DeleteResource(ctx, "ok"); !errors.Is(err, ErrState) {
		t.Fatalf("deleting an enabled resource: %v", err)
	}
	e.m.ResourceAction(ctx, "ok", ActDisable)
	if err := e.m.SetResource(ctx, "ok", map[string]string{"Port": "81"}); err != nil {
		t.Fatalf("WHEN_DISABLED property of a disabled resource: %v", err)
	}
	if err := e.m.DeleteGroup(ctx, "g"); !errors.Is(err, ErrState) {
		t.Fatalf("deleting a group with resources: %v", err)
	}
	if err := e.m.DeleteResource(ctx, "ok"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.UnregisterType(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
}

func propValue(r api.RGMResource, name string) string {
	for _, p := range r.Props {
		if strings.EqualFold(p.Name, name) {
			return strings.Join(p.Values, ",")
		}
	}
	return ""
}

func TestHungMethodAndStartFailure(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.m.RegisterOCF(ctx, "ocf:heartbeat:Delay"); err != nil {
		t.Fatal(err)
	}
	e.m.CreateGroup(ctx, "slow", nil)
	name := fmt.Sprintf("d%d", time.Now().UnixNano()%1e9) // Delay keeps state by resource name
	if err := e.m.CreateResource(ctx, api.RGMResourceRequest{Name: name, Group: "slow", Type: "ocf:heartbeat:Delay",
		Props: map[string]string{"startdelay": "30", "stopdelay": "0", "Start_timeout": "1"}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.m.GroupAction(ctx, "slow", ActOnline)
	e.waitGroup("slow", machine.GroupOnlineFaulted, 20*time.Second)
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("the hung start took %v to be killed", d)
	}
	r, _ := e.m.Resource(ctx, name)
	if r.State != machine.StartFailed || !strings.Contains(r.Last, "START timed out") || !strings.Contains(r.Decision, "Failover_mode NONE") {
		t.Fatalf("resource %+v", r)
	}
	e.m.GroupAction(ctx, "slow", ActOffline)
	e.waitGroup("slow", machine.GroupOffline, 30*time.Second)
}

func TestMonitorRestartsThenGiveover(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.m.RegisterOCF(ctx, "ocf:heartbeat:Dummy"); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(e.work, "dummy.state")
	e.m.CreateGroup(ctx, "g", nil)
	if err := e.m.CreateResource(ctx, api.RGMResourceRequest{Name: "dm", Group: "g", Type: "ocf:heartbeat:Dummy",
		Props: map[string]string{"state": state, "Thorough_probe_interval": "1", "Retry_count": "2", "Retry_interval": "300"}}); err != nil {
		t.Fatal(err)
	}
	sub := e.bus.Subscribe(e.j.LastSeq(), event.Filter{Class: machine.ClassRGM})
	e.m.GroupAction(ctx, "g", ActOnline)
	e.waitGroup("g", machine.GroupOnline, 20*time.Second)
	// Each time Dummy's state file goes, its monitor answers "not
	// running": restarted in place twice, then a giveover is asked for.
	var restarts int
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	os.Remove(state)
	for {
		ev, err := sub.Next(wctx)
		if err != nil {
			t.Fatalf("after %d restarts: %v", restarts, err)
		}
		switch ev.Subclass {
		case machine.SubRestart:
			restarts++
		case machine.SubResourceState:
			if s, _ := ev.Attrs["state"].Str(); s == machine.Online && restarts > 0 {
				os.Remove(state) // and fail again
			}
		case machine.SubGiveover:
			if restarts != 2 {
				t.Fatalf("giveover after %d restarts, want 2", restarts)
			}
			r, _ := e.m.Resource(ctx, "dm")
			if r.Status != machine.StatusFaulted || !strings.Contains(r.Decision, "there is no other node") {
				t.Fatalf("after the giveover request: %+v", r)
			}
			return
		}
	}
}

func TestAgentRestartMidStart(t *testing.T) {
	e := newEnv(t)
	log := filepath.Join(e.work, "calls")
	e.rtrType("svc", log, "")
	ctx := t.Context()
	e.m.CreateGroup(ctx, "g", nil)
	for i, name := range []string{"a", "b", "c"} {
		req := api.RGMResourceRequest{Name: name, Group: "g", Type: "svc"}
		if i > 0 {
			req.Props = map[string]string{"Resource_dependencies": []string{"a", "b"}[i-1]}
		}
		if err := e.m.CreateResource(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(e.work, "slow-b"), nil, 0o644) // b's START takes 3s
	os.Remove(log)
	e.m.GroupAction(ctx, "g", ActOnline)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r, _ := e.m.Resource(ctx, "b"); r.State == machine.Starting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The agent goes away in the middle of b's START.
	e.m.Close()
	e.m = nil
	os.Remove(filepath.Join(e.work, "slow-b"))
	e.open()
	e.waitGroup("g", machine.GroupOnline, 30*time.Second)
	got := strings.Join(lines(t, log), ",")
	if strings.Count(got, "start a") != 1 {
		t.Fatalf("a (online before the restart) was started again: %s", got)
	}
	if !strings.HasSuffix(got, "stop b,start b,start c") {
		t.Fatalf("calls %s: b should be cleaned up and started again, then c", got)
	}
}

// TestRebootStartsOver: after a boot nothing that ran before runs, so the
// saved state is dropped and an online group is started again; an agent
// restart within one boot starts nothing twice.
func TestRebootStartsOver(t *testing.T) {
	boot := filepath.Join(t.TempDir(), "boot_id")
	os.WriteFile(boot, []byte("boot-1\n"), 0o644)
	old := bootIDFile
	bootIDFile = boot
	t.Cleanup(func() { bootIDFile = old })

	e := newEnv(t)
	log := filepath.Join(e.work, "calls")
	e.rtrType("svc", log, "")
	ctx := t.Context()
	e.m.CreateGroup(ctx, "g", nil)
	if err := e.m.CreateResource(ctx, api.RGMResourceRequest{Name: "a", Group: "g", Type: "svc"}); err != nil {
		t.Fatal(err)
	}
	e.m.GroupAction(ctx, "g", ActOnline)
	e.waitGroup("g", machine.GroupOnline, 10*time.Second)

	restart := func() {
		e.m.Close()
		e.m = nil
		e.open()
		e.waitGroup("g", machine.GroupOnline, 10*time.Second)
	}
	restart()
	if got := strings.Join(lines(t, log), ","); strings.Count(got, "start a") != 1 {
		t.Fatalf("an agent restart started a again: %s", got)
	}
	os.WriteFile(boot, []byte("boot-2\n"), 0o644)
	restart()
	waitFor(t, func() bool { return strings.Count(strings.Join(lines(t, log), ","), "start a") == 2 })
}

func TestProcessTypeAndGiveup(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.m.CreateGroup(ctx, "web", nil)
	if err := e.m.CreateResource(ctx, api.RGMResourceRequest{Name: "srv", Group: "web", Type: model.ProcessType,
		Props: map[string]string{"Command": "/bin/sleep,300", "Retry_count": "1", "Retry_interval": "300"}}); err != nil {
		t.Fatal(err)
	}
	sub := e.bus.Subscribe(e.j.LastSeq(), event.Filter{Class: machine.ClassRGM, Subclass: machine.SubGiveover})
	e.m.GroupAction(ctx, "web", ActOnline)
	e.waitGroup("web", machine.GroupOnline, 20*time.Second)
	tag := "web,srv,0.svc"
	for i := 0; i < 2; i++ { // the process monitor restarts once, then gives up
		tg, err := e.pm.Get(tag)
		if err != nil {
			t.Fatal(err)
		}
		e.pm.Kill(ctx, tag, 9, 5*time.Second, pmf.Root)
		if i == 0 {
			waitFor(t, func() bool { x, _ := e.pm.Get(tag); return x.Instance > tg.Instance })
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ev, err := sub.Next(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if reason, _ := ev.Attrs["reason"].Str(); !strings.Contains(reason, "the process monitor gave up") {
		t.Fatalf("giveover reason %q", reason)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
