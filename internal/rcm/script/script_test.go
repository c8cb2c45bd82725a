package script

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/steady-ha/steady/internal/rcm"
)

// install copies a testdata script into a fresh directory, owned by uid.
func install(t *testing.T, name string, uid int, mode os.FileMode) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its parent is private, and the owner must reach the file.
	dir, err := os.MkdirTemp("", "steady-rcmscript-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	p := filepath.Join(dir, "SUNW,"+name)
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
	if uid >= 0 {
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running scripts as their owners needs root (CI runs as root)")
	}
}

func TestWellBehavedScript(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	t.Setenv("LANG", "C.UTF-8")
	t.Setenv("SECRET", "must not leak")
	s, err := Load(ctx, install(t, "good.sh", 0, 0o755), Options{Resolve: func(n string) string { return "/sys/devices/virtual/block/loop7" }})
	if err != nil {
		t.Fatal(err)
	}
	if s.Info != "test client for loop7" || s.Timeout != 10*time.Second {
		t.Fatalf("scriptinfo: %q %v", s.Info, s.Timeout)
	}
	ins, err := s.Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []rcm.Interest{{Name: "/sys/devices/virtual/block/loop7", Kind: rcm.KindDR}, {Name: "cpu", Kind: rcm.KindCapacity}, {Name: "ip/192.0.2.7", Kind: rcm.KindDR}}
	if len(ins) != 3 || ins[0] != want[0] || ins[1] != want[1] || ins[2] != want[2] {
		t.Fatalf("register: %+v", ins)
	}
	// The script hears the name it registered, runs as its owner in
	// /var/run, with the allow-listed environment only.
	usage, err := s.Call(ctx, rcm.Call{Op: rcm.OpInfo, Resource: "/sys/devices/virtual/block/loop7"})
	if err != nil {
		t.Fatal(err)
	}
	// /var/run is a link to /run on Debian; pwd shows the target.
	usage = strings.Replace(usage, " in /run ", " in /var/run ", 1)
	for _, w := range []string{"uid 0 in /var/run for /dev/loop7", "LANG=C.UTF-8", "PATH=/usr/sbin:/usr/bin", "RCM_ENV_DEBUG_LEVEL=0"} {
		if !strings.Contains(usage, w) {
			t.Errorf("usage %q lacks %q", usage, w)
		}
	}
	if strings.Contains(usage, "SECRET") || strings.Contains(usage, "HOME=") {
		t.Errorf("the environment leaked: %q", usage)
	}
	// Exit 3 with a reason refuses; force makes it agree.
	_, err = s.Call(ctx, rcm.Call{Op: rcm.OpOffline, Flags: rcm.Query, Resource: "/sys/devices/virtual/block/loop7"})
	if err == nil || err.Error() != "the test database lives on /dev/loop7" {
		t.Fatalf("queryremove: %v", err)
	}
	if _, err := s.Call(ctx, rcm.Call{Op: rcm.OpOffline, Flags: rcm.Query | rcm.Force, Resource: "/sys/devices/virtual/block/loop7"}); err != nil {
		t.Fatalf("forced queryremove: %v", err)
	}
	// Exit 2: not supported, which is success.
	if _, err := s.Call(ctx, rcm.Call{Op: rcm.OpSuspend, Flags: rcm.Query, Resource: "ip/192.0.2.7"}); err != nil {
		t.Fatalf("querysuspend (exit 2): %v", err)
	}
	if _, err := s.Call(ctx, rcm.Call{Op: rcm.OpCapacity, Flags: rcm.Query, Resource: "cpu",
		Capacity: &rcm.Capacity{OldTotal: 2, NewTotal: 1, NewCPUs: []int{0}}}); err != nil {
		t.Fatalf("querycapacity: %v", err)
	}
}

// The engine drives a script through a whole offline.
func TestScriptInTheEngine(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s, err := Load(ctx, install(t, "good.sh", 0, 0o755), Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := rcm.New(rcm.Options{})
	if err := e.AddClient(ctx, s); err != nil {
		t.Fatal(err)
	}
	res, err := e.RequestOffline(ctx, []string{"/dev/loop7"}, 0, "test")
	if !errors.Is(err, rcm.ErrRefused) || len(res.Answers) != 1 || res.Answers[0].Error != "the test database lives on /dev/loop7" {
		t.Fatalf("offline: %v %+v", err, res)
	}
	res, err = e.RequestOffline(ctx, []string{"/dev/loop7"}, rcm.Force, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.NotifyRemove(ctx, res.ID); err != nil {
		t.Fatal(err)
	}
}

func TestMisbehavingScripts(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s, err := Load(ctx, install(t, "garbage.sh", 0, 0o755), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for res, want := range map[string]string{
		"net/noequals": "is not name=value",
		"net/unknown":  "rcm_surprise is not allowed in queryremove",
		"net/empty":    "rcm_failure_reason has an empty value",
		"net/wrongcmd": "rcm_resource_name is not allowed in queryremove",
		"net/noreason": "exited 1 without rcm_failure_reason",
		"net/reasonok": "exited 0 but printed rcm_failure_reason",
	} {
		start := time.Now()
		_, err := s.Call(ctx, rcm.Call{Op: rcm.OpOffline, Flags: rcm.Query, Resource: res})
		if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a protocol error with %q", res, err, want)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: the script was not killed at its protocol error (%v)", res, d)
		}
	}
	// 3 is only for refusals; a notice cannot be refused.
	if _, err := s.Call(ctx, rcm.Call{Op: rcm.OpRemove, Resource: "net/x"}); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "exited 3") {
		t.Errorf("postremove exit 3: %v", err)
	}
	// resourceinfo must describe the usage.
	if _, err := s.Call(ctx, rcm.Call{Op: rcm.OpInfo, Resource: "net/x"}); !errors.Is(err, ErrProtocol) {
		t.Errorf("resourceinfo without usage: %v", err)
	}
	if _, err := Load(ctx, install(t, "noversion.sh", 0, 0o755), Options{}); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "rcm_script_version=1") {
		t.Errorf("scriptinfo without a version: %v", err)
	}
}

func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s, err := Load(ctx, install(t, "hang.sh", 0, 0o755), Options{KillGrace: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if s.Timeout != time.Second {
		t.Fatalf("timeout %v", s.Timeout)
	}
	start := time.Now()
	_, err = s.Call(ctx, rcm.Call{Op: rcm.OpOffline, Flags: rcm.Query, Resource: "net/eth9"})
	if err == nil || !strings.Contains(err.Error(), "timeout error") {
		t.Fatalf("got %v, want a timeout error", err)
	}
	if d := time.Since(start); d < time.Second+250*time.Millisecond || d > 5*time.Second {
		t.Fatalf("ended after %v; want the timeout, the SIGABRT grace, then SIGKILL", d)
	}
	// Nothing of the script is left: its background sleep was in its group.
	time.Sleep(100 * time.Millisecond)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.Contains(string(cmdline), "SUNW,hang.sh") {
			stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
			if !strings.Contains(string(stat), ") Z") {
				t.Errorf("process %s of the script is still running", e.Name())
				syscall.Kill(-1*atoi(e.Name()), syscall.SIGKILL)
			}
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestScriptRunsAsItsOwner(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s, err := Load(ctx, install(t, "good.sh", 65534, 0o755), Options{})
	if err != nil {
		t.Fatal(err)
	}
	usage, err := s.Call(ctx, rcm.Call{Op: rcm.OpInfo, Resource: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(usage, "uid 65534 in /tmp") {
		t.Fatalf("usage %q: want uid 65534 in /tmp", usage)
	}
	// A script others may write is refused.
	if _, err := Load(ctx, install(t, "good.sh", 0, 0o775), Options{}); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("group-writable script: %v", err)
	}
}

func TestSetLoadsListsAndReloads(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	dir := filepath.Dir(install(t, "good.sh", 0, 0o755))
	b, _ := os.ReadFile("testdata/noversion.sh")
	os.WriteFile(filepath.Join(dir, "SUNW,broken"), b, 0o755)
	e := rcm.New(rcm.Options{})
	set := NewSet(e, []string{dir, "/nonexistent"}, Options{})
	if err := set.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	l := set.List()
	if len(l) != 2 || l[0].Name != "SUNW,broken" || !strings.Contains(l[0].Error, "rcm_script_version") ||
		l[1].Name != "SUNW,good.sh" || l[1].Error != "" || len(l[1].Resources) != 3 {
		t.Fatalf("list: %+v", l)
	}
	os.Remove(filepath.Join(dir, "SUNW,good.sh"))
	if err := set.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if l := set.List(); len(l) != 1 || len(e.Clients()) != 0 {
		t.Fatalf("after removing the script: %+v, clients %+v", l, e.Clients())
	}
}

// The example of docs/rcm.md speaks the protocol.
func TestExampleScript(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	b, err := os.ReadFile("../../../examples/rcm/data-guard")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "steady-rcmexample-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	p := filepath.Join(dir, "data-guard")
	src := strings.Replace(string(b), "SERVICE=${SERVICE:-app.service}", "SERVICE=steady-no-such.service", 1)
	if err := os.WriteFile(p, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Load(ctx, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Timeout != 30*time.Second || !strings.Contains(s.Info, "/srv/data") {
		t.Fatalf("scriptinfo: %q %v", s.Info, s.Timeout)
	}
	if _, err := s.Register(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []rcm.Call{
		{Op: rcm.OpOffline, Flags: rcm.Query, Resource: "/dev/sdz1"},
		{Op: rcm.OpOffline, Resource: "/dev/sdz1"},
		{Op: rcm.OpOnline, Resource: "/dev/sdz1"},
		{Op: rcm.OpSuspend, Flags: rcm.Query, Resource: "/dev/sdz1", Interval: time.Second},
	} {
		if _, err := s.Call(ctx, c); err != nil {
			t.Fatalf("%v: %v", c.Op, err)
		}
	}
	if u, err := s.Call(ctx, rcm.Call{Op: rcm.OpInfo, Resource: "/dev/sdz1"}); err != nil || u != "/srv/data of steady-no-such.service (stopped)" {
		t.Fatalf("resourceinfo: %q %v", u, err)
	}
}
