package method

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/internal/cgroup"
	"github.com/steady-ha/steady/internal/pmf"
	"github.com/steady-ha/steady/internal/reaper"
	"github.com/steady-ha/steady/internal/rgm/model"
	"github.com/steady-ha/steady/internal/rgm/ocf"
)

func newRunner(t *testing.T, mod func(*Options)) (*Runner, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the method runner tests need root for cgroups and credentials (CI runs as root)")
	}
	work, _ := os.MkdirTemp("", "steady-method-")
	os.Chmod(work, 0o755)
	t.Cleanup(func() { os.RemoveAll(work) })
	cg, err := cgroup.Writable(fmt.Sprintf("steady-methodtest-%d/rgm", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cgroup.RemoveTree(cgroup.Dir(filepath.Dir(string(cg)))) })
	opts := Options{Cgroup: cg, LogDir: filepath.Join(work, "logs"), BinDir: "/opt/steady-bin", Socket: "/run/x.sock",
		Node: "n1", Grace: 300 * time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, work
}

func script(t *testing.T, dir, name, body string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func rtrType(methods map[string]string) *model.ResourceType {
	return &model.ResourceType{Name: "ACME.echo", Source: model.SourceRTR, Methods: methods}
}

func TestRTRMethod(t *testing.T) {
	r, work := newRunner(t, nil)
	start := script(t, work, "start", `echo "args: $*"; echo "env: $STEADY_RESOURCE $STEADY_RESOURCE_GROUP $STEADY_SOCKET $(id -u)"; echo "path: $PATH" >&2; exit 3`+"\n")
	os.Chown(start, 65534, 65534)
	res := r.Run(context.Background(), Call{Resource: "r1", Group: "g1", Type: rtrType(map[string]string{"START": start}),
		Method: "START", Timeout: 10 * time.Second})
	if res.OK || res.Code != 3 || res.TimedOut {
		t.Fatalf("result %+v", res)
	}
	for _, want := range []string{"args: -R r1 -T ACME.echo -G g1", "env: r1 g1 /run/x.sock 65534", "path: /opt/steady-bin:/usr/local/sbin"} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("output lacks %q:\n%s", want, res.Output)
		}
	}
	log, _ := os.ReadFile(r.LogPath("r1"))
	if !strings.Contains(string(log), "START "+start+" -R r1") || !strings.Contains(string(log), "--- exit status 3 after") {
		t.Errorf("log:\n%s", log)
	}
	// VALIDATE gets -c or -u and the values.
	validate := script(t, work, "validate", `echo "$*"`+"\n")
	res = r.Run(context.Background(), Call{Resource: "r1", Group: "g1", Type: rtrType(map[string]string{"VALIDATE": validate}),
		Method: "VALIDATE", Timeout: 10 * time.Second, Creating: true, ValidateArgs: []string{"-x", "Port=8080", "-r", "Retry_count=3"}})
	if !res.OK || !strings.Contains(res.Output, "-R r1 -T ACME.echo -G g1 -c -x Port=8080 -r Retry_count=3") {
		t.Fatalf("validate %+v", res)
	}
	// A writable method file is refused, not run.
	os.Chmod(validate, 0o777)
	if res := r.Run(context.Background(), Call{Resource: "r1", Group: "g1", Type: rtrType(map[string]string{"VALIDATE": validate}),
		Method: "VALIDATE", Timeout: time.Second}); res.Err == "" || !strings.Contains(res.Err, "writable by group or others") {
		t.Fatalf("writable method: %+v", res)
	}
}

func TestTimeoutKillsTheTree(t *testing.T) {
	r, work := newRunner(t, nil)
	pids := filepath.Join(work, "pids")
	// The method ignores SIGABRT, and so does the child it leaves behind:
	// only SIGKILL after the grace period ends them.
	start := script(t, work, "hang", fmt.Sprintf("trap '' ABRT\nsleep 60 &\necho $$ $! > %s\nwait\n", pids))
	begin := time.Now()
	res := r.Run(context.Background(), Call{Resource: "r2", Group: "g", Type: rtrType(map[string]string{"START": start}),
		Method: "START", Timeout: 500 * time.Millisecond})
	if !res.TimedOut || res.OK {
		t.Fatalf("result %+v", res)
	}
	if d := time.Since(begin); d < 700*time.Millisecond || d > 5*time.Second {
		t.Fatalf("took %v; want the timeout plus the grace period", d)
	}
	b, _ := os.ReadFile(pids)
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(stat), ") Z") {
			t.Fatalf("process %d survived the timeout: %s", pid, stat)
		}
	}
	log, _ := os.ReadFile(r.LogPath("r2"))
	if !strings.Contains(string(log), "--- timed out after 500ms; killed") {
		t.Fatalf("log:\n%s", log)
	}
}

func ocfType(t *testing.T, root, name string) *model.ResourceType {
	t.Helper()
	m, path, err := ocf.ReadMetadata(context.Background(), nil, root, name)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := model.FromOCF(name, path, m)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestOCFDummyAndDelay(t *testing.T) {
	r, work := newRunner(t, nil)
	rt := ocfType(t, ocf.DefaultRoot, "ocf:heartbeat:Dummy")
	vals := rt.Props.Effective(model.Values{"state": {filepath.Join(work, "dummy.state")}})
	call := func(m string) Call {
		return Call{Resource: "d1", Group: "g", Type: rt, Values: vals, Method: m, Timeout: 20 * time.Second}
	}
	if p := r.Probe(context.Background(), call("")); p.OK {
		t.Fatal("monitor of a stopped Dummy succeeded")
	}
	if res := r.Run(context.Background(), call("START")); !res.OK {
		t.Fatalf("start %+v", res)
	}
	if p := r.Probe(context.Background(), call("")); !p.OK {
		t.Fatalf("monitor of a started Dummy: %+v", p)
	}
	if res := r.Run(context.Background(), call("STOP")); !res.OK {
		t.Fatalf("stop %+v", res)
	}
	if _, err := os.Stat(filepath.Join(work, "dummy.state")); !os.IsNotExist(err) {
		t.Fatalf("Dummy's state file is still there after stop: %v", err)
	}
	// Delay sleeps 5s in start; with a 1s timeout it is killed. (Delay
	// keeps state in /run/resource-agents by resource name: use a fresh
	// name, and clean up.)
	delay := ocfType(t, ocf.DefaultRoot, "ocf:heartbeat:Delay")
	dv := delay.Props.Effective(model.Values{"startdelay": {"5"}, "stopdelay": {"0"}})
	name := fmt.Sprintf("delay-%d-%d", os.Getpid(), time.Now().UnixNano())
	defer r.Run(context.Background(), Call{Resource: name, Group: "g", Type: delay, Values: dv, Method: "STOP", Timeout: 10 * time.Second})
	res := r.Run(context.Background(), Call{Resource: name, Group: "g", Type: delay, Values: dv, Method: "START", Timeout: time.Second})
	if !res.TimedOut {
		t.Fatalf("Delay start with a 1s timeout: %+v", res)
	}
}

func TestOCFExitReason(t *testing.T) {
	r, work := newRunner(t, nil)
	root := filepath.Join(work, "ocf")
	os.MkdirAll(filepath.Join(root, "resource.d", "test"), 0o755)
	agent := script(t, filepath.Join(root, "resource.d", "test"), "Broken", `case $1 in
meta-data) cat <<'X'
<resource-agent name="Broken" version="1"><version>1.1</version><shortdesc>b</shortdesc>
<parameters><parameter name="conf"><content type="string"/></parameter></parameters>
<actions><action name="start" timeout="5s"/><action name="stop" timeout="5s"/><action name="monitor" timeout="5s" interval="5s"/></actions>
</resource-agent>
X
exit 0;;
start) echo "ocf-exit-reason:configuration file $OCF_RESKEY_conf is missing" >&2; exit 6;;
*) exit 0;;
esac
`)
	_ = agent
	rt := ocfType(t, root, "ocf:test:Broken")
	res := r.Run(context.Background(), Call{Resource: "b1", Group: "g", Type: rt,
		Values: model.Values{"conf": {"/etc/x.conf"}}, Method: "START", Timeout: 5 * time.Second})
	if res.OK || res.Code != 6 || res.Severity != "fatal" ||
		!strings.HasPrefix(res.Output, "start returned OCF_ERR_CONFIGURED: configuration file /etc/x.conf is missing") {
		t.Fatalf("result %+v", res)
	}
}

func TestProcessType(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the method runner tests need root for cgroups and credentials (CI runs as root)")
	}
	// One reaper for the monitor and the runner, as in the agent: a
	// second waiter would take the exit statuses of the first one's
	// children.
	rp, err := reaper.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	r, work := newRunner(t, func(o *Options) { o.Spawner = rp })
	m, err := pmf.New(pmf.Options{Dir: filepath.Join(work, "pmf"), Cgroup: fmt.Sprintf("steady-methodtest-%d", os.Getpid()), Spawner: rp})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r.opts.PMF = m
	rt := model.BuiltinTypes()[0]
	probeFile := filepath.Join(work, "healthy")
	vals := rt.Props.Effective(model.Values{"Command": {"/bin/sleep", "300"}, "Probe_command": {"test -e " + probeFile}})
	call := func(meth string) Call {
		return Call{Resource: "p1", Group: "g1", Type: rt, Values: vals, Method: meth, Timeout: 10 * time.Second}
	}
	if res := r.Run(context.Background(), call("START")); !res.OK {
		t.Fatalf("start %+v", res)
	}
	if !m.Exists("g1,p1,0.svc") {
		t.Fatal("no process monitor tag")
	}
	if res := r.Run(context.Background(), call("START")); !res.OK {
		t.Fatalf("a second start of a running tag must succeed: %+v", res)
	}
	if p := r.Probe(context.Background(), call("")); p.OK || !strings.Contains(p.Msg, "the probe exited 1") {
		t.Fatalf("probe without the file: %+v", p)
	}
	os.WriteFile(probeFile, nil, 0o644)
	if p := r.Probe(context.Background(), call("")); !p.OK {
		t.Fatalf("probe with the file: %+v", p)
	}
	if res := r.Run(context.Background(), call("STOP")); !res.OK || m.Exists("g1,p1,0.svc") {
		t.Fatalf("stop %+v", res)
	}
	if res := r.Run(context.Background(), call("STOP")); !res.OK {
		t.Fatalf("stopping what is stopped must succeed: %+v", res)
	}
	bad := call("VALIDATE")
	bad.Values = rt.Props.Effective(model.Values{"Command": {"sleep", "1"}})
	if res := r.Run(context.Background(), bad); res.OK || !strings.Contains(res.Output, "absolute path") {
		t.Fatalf("validate of a relative command: %+v", res)
	}
}

// A Start method that leaves a daemon behind leaves its cgroup populated;
// once the daemon is gone, a sweep removes the empty cgroup, and never one
// that still has a process.
func TestSweepRemovesOnlyEmptyMethodCgroups(t *testing.T) {
	r, work := newRunner(t, nil)
	if r.opts.Cgroup == "" {
		t.Fatal("no cgroup for methods")
	}
	gone := filepath.Join(work, "gone")
	start := script(t, work, "start", "setsid sh -c 'while [ ! -e "+gone+" ]; do sleep 0.05; done' >/dev/null 2>&1 &\nexit 0\n")
	if res := r.Run(context.Background(), Call{Resource: "d1", Group: "g1", Type: rtrType(map[string]string{"START": start}),
		Method: "START", Timeout: 10 * time.Second}); !res.OK {
		t.Fatalf("start %+v", res)
	}
	count := func() int {
		n := 0
		entries, _ := os.ReadDir(string(r.opts.Cgroup))
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), "m-") {
				n++
			}
		}
		return n
	}
	r.sweep()
	if n := count(); n != 1 {
		t.Fatalf("%d method cgroups while the daemon runs, want 1", n)
	}
	os.WriteFile(gone, nil, 0o644)
	deadline := time.Now().Add(5 * time.Second)
	for count() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the empty method cgroup was not swept")
		}
		time.Sleep(50 * time.Millisecond)
		r.sweep()
	}
}
