package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
)

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func mustCLI(t *testing.T, a *Agent, args ...string) string {
	t.Helper()
	r := a.CLI(args...)
	if r.Code != 0 {
		t.Fatalf("steady %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

func resourceState(t *testing.T, a *Agent, name string) api.RGMResource {
	t.Helper()
	r, err := client.New(a.Socket).Resource(context.Background(), name)
	if err != nil {
		t.Fatalf("resource %s: %v", name, err)
	}
	return r
}

func waitResource(t *testing.T, a *Agent, name, state string, within time.Duration) api.RGMResource {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := resourceState(t, a, name)
		if r.State == state {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("resource %s is %s (%s), want %s; log:\n%s", name, r.State, r.StatusMsg, state, strings.Join(resourceLog(a, name), "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func resourceLog(a *Agent, name string) []string {
	l, _ := client.New(a.Socket).ResourceLog(context.Background(), name, 60)
	return l.Lines
}

func dig(port int, name, typ string) (string, error) {
	out, err := exec.Command("dig", "@127.0.0.1", "-p", fmt.Sprint(port), "+time=1", "+tries=1", "+short", name, typ).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// installHADNS copies examples/ha-dns into dir as an operator would
// install it: the methods owned by root and not writable by others, the
// RTR file with RT_BASEDIR pointing at them, and a configuration
// directory whose named listens on 127.0.0.1:port.
func installHADNS(t *testing.T, dir string, port int) (rtr, confdir string) {
	t.Helper()
	src := filepath.Join("..", "..", "examples", "ha-dns")
	bin := filepath.Join(dir, "bin")
	confdir = filepath.Join(dir, "conf")
	for _, d := range []string{bin, confdir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(src, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, "bin", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o755)
		if e.Name() == "dns_common" {
			mode = 0o644
		}
		if err := os.WriteFile(filepath.Join(bin, e.Name()), b, mode); err != nil {
			t.Fatal(err)
		}
	}
	rtrText, err := os.ReadFile(filepath.Join(src, "ha-dns.rtr"))
	if err != nil {
		t.Fatal(err)
	}
	rtrText = regexp.MustCompile(`(?m)^RT_BASEDIR = .*$`).ReplaceAll(rtrText, []byte("RT_BASEDIR = "+bin+";"))
	rtr = filepath.Join(dir, "ha-dns.rtr")
	os.WriteFile(rtr, rtrText, 0o644)
	conf, err := os.ReadFile(filepath.Join(src, "etc", "named.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf = []byte(strings.ReplaceAll(string(conf), "/srv/ha-dns", confdir))
	conf = []byte(strings.Replace(string(conf), "listen-on port 53 ", fmt.Sprintf("listen-on port %d ", port), 1))
	os.WriteFile(filepath.Join(confdir, "named.conf"), conf, 0o644)
	zone, err := os.ReadFile(filepath.Join(src, "etc", "db.example.test"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(confdir, "db.example.test"), zone, 0o644)
	return rtr, confdir
}

// solarisNamed makes /usr/sbin/in.named, the name the seed's Start method
// runs, point at Debian's named (as the example's README says to), and
// removes it again if the test made it.
func solarisNamed(t *testing.T) {
	t.Helper()
	const link = "/usr/sbin/in.named"
	named, err := exec.LookPath("named")
	if err != nil {
		named = "/usr/sbin/named"
	}
	if _, err := os.Stat(named); err != nil {
		t.Fatalf("BIND's named is not installed (scripts/deps installs bind9): %v", err)
	}
	if _, err := exec.LookPath("dig"); err != nil {
		t.Fatalf("dig is not installed (scripts/deps installs bind9-dnsutils): %v", err)
	}
	if _, err := os.Lstat(link); err == nil {
		return
	}
	if err := os.Symlink(named, link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
}

// TestHADNSExample runs the seed's sample data service, examples/ha-dns:
// its Start method unmodified (but for the PMF_TAAG typo), with our RTR
// file, Stop method and probe, running BIND under pmfadm.
func TestHADNSExample(t *testing.T) {
	solarisNamed(t)
	a := StartAgent(t, AgentOptions{})
	port := freePort(t)
	rtr, confdir := installHADNS(t, a.Dir, port)

	out := mustCLI(t, a, "type", "register", "-f", rtr)
	if !strings.Contains(out, "registered resource type STDY.dns") {
		t.Fatalf("register: %s", out)
	}
	mustCLI(t, a, "rg", "create", "dns-rg")
	// VALIDATE refuses a directory without named.conf, and nothing is created.
	r := a.CLI("resource", "create", "dns", "-g", "dns-rg", "-t", "dns", "-p", "Confdir="+a.Dir)
	if r.Code != api.CodeRefused.ExitStatus() || !strings.Contains(r.Stderr, "named.conf is missing or empty") {
		t.Fatalf("VALIDATE of a bad Confdir: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := a.CLI("resource", "show", "dns"); r.Code != api.CodeNotFound.ExitStatus() {
		t.Fatalf("a refused resource exists: %d %s", r.Code, r.Stdout)
	}
	mustCLI(t, a, "resource", "create", "dns", "-g", "dns-rg", "-t", "dns", "-p", "Confdir="+confdir,
		"-p", fmt.Sprintf("Port=%d", port), "-p", "Probe_name=example.test",
		"-p", "Thorough_probe_interval=1", "-p", "Probe_timeout=2", "-p", "Stop_timeout=20")
	out = mustCLI(t, a, "rg", "online", "dns-rg")
	if !strings.Contains(out, "group dns-rg: ONLINE") {
		t.Fatalf("online: %s", out)
	}
	if ans, err := dig(port, "www.example.test", "A"); err != nil || ans != "192.0.2.80" {
		t.Fatalf("dig after online: %q %v\n%s", ans, err, strings.Join(resourceLog(a, "dns"), "\n"))
	}
	c := client.New(a.Socket)
	svc, err := c.PMFTag(context.Background(), "dns-rg,dns,0.svc")
	if err != nil || !strings.HasSuffix(svc.Command[0], "in.named") || svc.Retries != 2 {
		t.Fatalf("the seed's pmfadm call: %+v %v", svc, err)
	}

	// named crashes: the process monitor restarts it (Retry_count 2).
	pid := readPID(t, filepath.Join(confdir, "named.pid"))
	kill9(t, pid)
	waitFor(t, "named restarted by the process monitor", func() bool {
		ans, _ := dig(port, "www.example.test", "A")
		tg, err := c.PMFTag(context.Background(), "dns-rg,dns,0.svc")
		return ans == "192.0.2.80" && err == nil && tg.RetriesUsed == 1
	})

	// named hangs: the probe sees no answer, sets FAULTED and asks for a
	// restart in place with scha_control.
	pid = readPID(t, filepath.Join(confdir, "named.pid"))
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the probe's RESOURCE_RESTART", func() bool {
		return resourceState(t, a, "dns").Restarts >= 1
	})
	waitResource(t, a, "dns", "ONLINE", 30*time.Second)
	waitFor(t, "named answering after the restart", func() bool {
		ans, _ := dig(port, "www.example.test", "A")
		return ans == "192.0.2.80"
	})
	evs, err := c.Events(context.Background(), client.EventQuery{Class: "EC_rgm", Subclass: "ESC_rgm_resource_status", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	faulted := false
	for _, ev := range evs.Events {
		if s, _ := ev.Attrs["status"].Str(); s == "FAULTED" {
			faulted = true
		}
	}
	if !faulted {
		t.Fatalf("no FAULTED status from the probe's scha_resource_setstatus: %+v", evs.Events)
	}

	// The method log shows the methods the RGM ran.
	log := strings.Join(resourceLog(a, "dns"), "\n")
	for _, want := range []string{"START " + filepath.Join(a.Dir, "bin", "dns_svc_start") + " -R dns -T STDY.dns -G dns-rg", "STOP ", "MONITOR_START "} {
		if !strings.Contains(log, want) {
			t.Errorf("resource log lacks %q:\n%s", want, log)
		}
	}

	out = mustCLI(t, a, "rg", "offline", "dns-rg")
	if !strings.Contains(out, "group dns-rg: OFFLINE") {
		t.Fatalf("offline: %s", out)
	}
	if ans, err := dig(port, "www.example.test", "A"); err == nil && ans == "192.0.2.80" {
		t.Fatal("named still answers after the group went offline")
	}
	if _, err := c.PMFTag(context.Background(), "dns-rg,dns,0.svc"); err == nil {
		t.Fatal("the named tag is still registered after Stop")
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "a pid in "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		_, err = fmt.Sscan(string(b), &pid)
		return err == nil && pid > 0
	})
	return pid
}

func kill9(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// tcpServer is a small TCP service for ocf:heartbeat:anything: it answers
// each connection with "ok" (perl-base is part of every Debian system).
const tcpServer = `#!/usr/bin/perl
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $ARGV[0], Listen => 5, ReuseAddr => 1) or die "listen: $!";
while (my $c = $s->accept) { print $c "ok\n"; close $c; }
`

// tcpCheck is its monitor hook: exit 0 when the port answers "ok". The
// agent's start runs the hook right after it forks the server, before the
// server may listen, so a refused connection is tried again for 2 s.
const tcpCheck = `#!/usr/bin/perl
use IO::Socket::INET;
use Time::HiRes qw(sleep);
my $c;
for (1..20) { $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ARGV[0], Timeout => 2) and last; sleep 0.1; }
$c or exit 7;
my $l = <$c>; exit($l eq "ok\n" ? 0 : 1);
`

func tcpAnswers(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 3)
	n, _ := c.Read(buf)
	return string(buf[:n]) == "ok\n"
}

// TestOCFConformance runs "steady type test" (the ocf-tester sequence
// through steady's runner) against Debian's agents.
func TestOCFConformance(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	port := freePort(t)
	server := filepath.Join(a.Dir, "tcpserver")
	os.WriteFile(server, []byte(tcpServer), 0o755)
	for _, tc := range []struct {
		agent string
		args  []string
	}{
		{"ocf:heartbeat:Dummy", nil},
		{"ocf:heartbeat:Stateful", nil},
		{"ocf:heartbeat:Delay", []string{"-p", "startdelay=1", "-p", "stopdelay=1", "-p", "mondelay=0"}},
		{"ocf:heartbeat:anything", []string{"-p", "binfile=" + server, "-p", fmt.Sprintf("cmdline_options=%d", port)}},
		{"ocf:heartbeat:symlink", []string{"-p", "link=" + filepath.Join(a.Dir, "lnk"), "-p", "target=/etc/hostname"}},
	} {
		t.Run(tc.agent, func(t *testing.T) {
			args := append([]string{"type", "test", tc.agent, "--instance", "conf-" + strings.ReplaceAll(tc.agent, ":", "-")}, tc.args...)
			r := a.CLI(args...)
			if r.Code != 0 || !strings.Contains(r.Stdout, " 0 failed") || strings.Contains(r.Stdout, "FAIL") {
				t.Fatalf("steady %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
			}
			if !strings.Contains(r.Stdout, "monitor of a stopped resource") || !strings.Contains(r.Stdout, "rc=7 OCF_NOT_RUNNING") {
				t.Fatalf("the sequence did not run:\n%s", r.Stdout)
			}
		})
	}
	// A failing agent is reported step by step and exits 1; the JSON
	// report counts the failures.
	r := a.CLI("-o", "json", "type", "test", "ocf:heartbeat:Delay", "--instance", "conf-slow", "-p", "startdelay=0", "-p", "mondelay=0", "-p", "stopdelay=0", "-p", "startdelay=x")
	if r.Code != api.ExitUsage {
		t.Fatalf("a -p given twice: exit %d %s", r.Code, r.Stderr)
	}
	r = a.CLI("type", "test", "ocf:heartbeat:Nonesuch")
	if r.Code != api.CodeNotFound.ExitStatus() || !strings.Contains(r.Stderr, "Nonesuch") {
		t.Fatalf("unknown agent: exit %d %s", r.Code, r.Stderr)
	}
	r = a.CLI("-o", "json", "type", "test", "ocf:heartbeat:symlink", "--instance", "conf-bad", "-p", "link=/nonexistent/dir/lnk", "-p", "target=/etc/hostname")
	var rep api.OCFTestReport
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || r.Code != api.ExitFailure || (rep.Failed == 0 && rep.Aborted == "") {
		t.Fatalf("a failing agent: exit %d %+v %v\n%s", r.Code, rep, err, r.Stderr)
	}
}

// TestOCFGroupCycles builds a group of Debian agents (Dummy, Stateful,
// Delay, anything with a real TCP server, symlink) and takes it through
// online, a monitor failure, restart and offline.
func TestOCFGroupCycles(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	port := freePort(t)
	server := filepath.Join(a.Dir, "tcpserver")
	check := filepath.Join(a.Dir, "tcpcheck")
	os.WriteFile(server, []byte(tcpServer), 0o755)
	os.WriteFile(check, []byte(tcpCheck), 0o755)
	link := filepath.Join(a.Dir, "current")
	for _, ag := range []string{"ocf:heartbeat:Dummy", "ocf:heartbeat:Stateful", "ocf:heartbeat:Delay", "ocf:heartbeat:anything", "ocf:heartbeat:symlink"} {
		mustCLI(t, a, "type", "register", "--ocf", ag)
	}
	mustCLI(t, a, "rg", "create", "apps")
	fast := []string{"-p", "Thorough_probe_interval=1"}
	mustCLI(t, a, append([]string{"resource", "create", "cfg", "-g", "apps", "-t", "ocf:heartbeat:symlink",
		"-p", "link=" + link, "-p", "target=/etc/hostname"}, fast...)...)
	mustCLI(t, a, append([]string{"resource", "create", "slow", "-g", "apps", "-t", "ocf:heartbeat:Delay",
		"-p", "startdelay=1", "-p", "stopdelay=1", "-p", "mondelay=0", "-p", "Resource_dependencies=cfg"}, fast...)...)
	mustCLI(t, a, append([]string{"resource", "create", "tcp", "-g", "apps", "-t", "ocf:heartbeat:anything",
		"-p", "binfile=" + server, "-p", fmt.Sprintf("cmdline_options=%d", port),
		"-p", fmt.Sprintf("monitor_hook=%s %d", check, port), "-p", "Resource_dependencies=slow"}, fast...)...)
	mustCLI(t, a, append([]string{"resource", "create", "dummy", "-g", "apps", "-t", "ocf:heartbeat:Dummy"}, fast...)...)
	mustCLI(t, a, append([]string{"resource", "create", "state", "-g", "apps", "-t", "ocf:heartbeat:Stateful"}, fast...)...)

	out := mustCLI(t, a, "rg", "online", "apps")
	if !strings.Contains(out, "group apps: ONLINE") {
		t.Fatalf("online:\n%s", out)
	}
	if dest, err := os.Readlink(link); err != nil || dest != "/etc/hostname" || !tcpAnswers(port) {
		t.Fatalf("after online: link %q (%v), tcp %v", dest, err, tcpAnswers(port))
	}
	// The start order follows the dependencies: cfg, slow, tcp.
	order := starts(t, a)
	if i, j, k := indexOf(order, "cfg"), indexOf(order, "slow"), indexOf(order, "tcp"); !(i >= 0 && i < j && j < k) {
		t.Fatalf("start order %v", order)
	}

	// The TCP server dies: the RGM's own monitor (the agent's monitor
	// action with its hook) finds out and restarts it in place.
	killListener(t, port)
	waitFor(t, "the tcp resource restarted by its monitor", func() bool {
		r := resourceState(t, a, "tcp")
		return r.Restarts >= 1 && r.State == "ONLINE" && tcpAnswers(port)
	})

	// Unmonitor, restart the group, monitor again.
	mustCLI(t, a, "resource", "unmonitor", "dummy")
	if r := resourceState(t, a, "dummy"); r.Monitored || r.State != "ONLINE_NOT_MONITORED" {
		t.Fatalf("unmonitored dummy: %+v", r)
	}
	mustCLI(t, a, "resource", "monitor", "dummy")
	waitResource(t, a, "dummy", "ONLINE", 10*time.Second)
	before := len(starts(t, a))
	out = mustCLI(t, a, "rg", "restart", "apps")
	if !strings.Contains(out, "group apps: ONLINE") {
		t.Fatalf("restart:\n%s", out)
	}
	if n := len(starts(t, a)) - before; n != 5 {
		t.Fatalf("%d START methods in the group restart, want 5", n)
	}
	if g, _ := client.New(a.Socket).Group(context.Background(), "apps"); g.Restarts != 1 {
		t.Fatalf("group restarts %d", g.Restarts)
	}

	out = mustCLI(t, a, "rg", "offline", "apps")
	if !strings.Contains(out, "group apps: OFFLINE") {
		t.Fatalf("offline:\n%s", out)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) || tcpAnswers(port) {
		t.Fatalf("after offline: link %v, tcp %v", err, tcpAnswers(port))
	}
}

// starts lists the resources whose START method ran, in order.
func starts(t *testing.T, a *Agent) []string {
	t.Helper()
	evs, err := client.New(a.Socket).Events(context.Background(), client.EventQuery{Class: "EC_rgm", Subclass: "ESC_rgm_method", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, ev := range evs.Events {
		if m, _ := ev.Attrs["method"].Str(); m == "START" {
			r, _ := ev.Attrs["resource"].Str()
			order = append(order, r)
		}
	}
	return order
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// killListener kills the process listening on 127.0.0.1:port.
func killListener(t *testing.T, port int) {
	t.Helper()
	out, err := exec.Command("ss", "-Htlnp", fmt.Sprintf("sport = :%d", port)).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	m := regexp.MustCompile(`pid=(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("nothing listens on port %d: %s", port, out)
	}
	var pid int
	fmt.Sscan(string(m[1]), &pid)
	kill9(t, pid)
}

// TestConfigApplyExport declares a type, a group and two resources in a
// file, checks it with --dry-run, applies it, exports the result and
// applies that again (nothing to change); a misspelt key is reported with
// its line and nothing changes.
func TestConfigApplyExport(t *testing.T) {
	a := StartAgent(t, AgentOptions{})
	file := filepath.Join(a.Dir, "cluster.yaml")
	os.WriteFile(file, []byte(`version: 1
types:
  - ocf: ocf:heartbeat:Dummy
groups:
  web:
    online: true
    properties:
      Pingpong_interval: 600
    resources:
      srv:
        type: steady.Process
        properties:
          Command: [/bin/sleep, "3600"]
      flag:
        type: Dummy
        properties:
          Resource_dependencies: srv
          Thorough_probe_interval: 1
`), 0o644)
	out := mustCLI(t, a, "config", "apply", "-f", file, "--dry-run")
	if !strings.Contains(out, "create resource flag") || !strings.Contains(out, "dry run: 4 change(s) would be made") {
		t.Fatalf("dry run:\n%s", out)
	}
	if r := a.CLI("rg", "show", "web"); r.Code != api.CodeNotFound.ExitStatus() {
		t.Fatalf("the dry run created the group: %d", r.Code)
	}
	out = mustCLI(t, a, "config", "apply", "-f", file)
	if !strings.Contains(out, "applied 4 change(s)") {
		t.Fatalf("apply:\n%s", out)
	}
	waitResource(t, a, "flag", "ONLINE", 20*time.Second)

	exported := filepath.Join(a.Dir, "exported.yaml")
	os.WriteFile(exported, []byte(mustCLI(t, a, "config", "export")), 0o644)
	if out := mustCLI(t, a, "config", "apply", "-f", exported); !strings.Contains(out, "nothing to change") {
		t.Fatalf("the export applied again:\n%s", out)
	}

	bad := filepath.Join(a.Dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\ngroups:\n  web:\n    onlin: false\n"), 0o644)
	r := a.CLI("config", "apply", "-f", bad)
	if r.Code != api.ExitUsage || !strings.Contains(r.Stderr, `bad.yaml:4:5: groups.web.onlin: unknown key "onlin" (did you mean "online"?)`) {
		t.Fatalf("a misspelt key: exit %d\n%s", r.Code, r.Stderr)
	}
	if g := resourceState(t, a, "srv"); g.State != "ONLINE" {
		t.Fatalf("srv after a refused file: %s", g.State)
	}
}
