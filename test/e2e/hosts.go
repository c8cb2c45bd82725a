package e2e

// This file is the multi-host part of the harness: test hosts, each a
// network namespace, a PID namespace and a mount namespace of its own,
// running the real steady binary, wired to one bridge.
//
// The bridge lives in a "switch" namespace the harness creates, so a test
// adds nothing to the machine's own network: each host's eth0 is one end
// of a veth pair whose other end is a port of that bridge. Cutting a
// host's link sets its port down; healing sets it up.
//
// PID 1 of a host is a small shell that runs the agent as its child and,
// when the agent dies, waits for the test to start it again: killing the
// host (SIGKILL to PID 1) ends every process of the host at once, as a
// power cut would, while killing only the agent leaves the host, its
// services and the agent's watchdog running.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/steady-ha/steady/internal/ipmp"
	"github.com/vishvananda/netns"
)

// Subnet is the test hosts' network (RFC 2544 benchmarking space): host
// n has 198.18.0.(10+n).
const Subnet = "198.18.0.0/24"

// HostConfig is the configuration template of a test host. Templates see
// the Host: {{.Name}}, {{.Addr}}, {{.DataDir}}, {{.Socket}}, {{.Cgroup}}.
const HostConfig = `version: 1
node:
  name: {{.Name}}
data_dir: {{.DataDir}}
api:
  socket: {{.Socket}}
  metrics_address: {{.Addr}}:9464
pmf:
  cgroup: {{.Cgroup}}
uevents:
  enabled: false
`

// Net is a set of test hosts on one bridge.
type Net struct {
	t      testing.TB
	Switch string // the network namespace that holds the bridge
	// Plain runs the binary built without the race detector (benchmarks).
	Plain bool
	mu    sync.Mutex
	hosts []*Host
}

// NewNet creates the switch namespace and its bridge; everything is
// removed at the end of the test, also when it fails. Namespaces that an
// earlier, killed test process left behind are removed first.
func NewNet(t testing.TB) *Net {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("test hosts need root (network and PID namespaces); CI runs as root")
	}
	sweepSwitches()
	n := &Net{t: t, Switch: fmt.Sprintf("stsw-%d-%d", os.Getpid(), agentSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", n.Switch).CombinedOutput(); err != nil {
		t.Fatalf("creating the switch namespace: %v %s", err, out)
	}
	t.Cleanup(n.close)
	for _, args := range [][]string{
		{"link", "add", "br0", "type", "bridge"},
		{"link", "set", "br0", "up"},
		{"link", "set", "lo", "up"},
	} {
		if out, err := n.ip(args...); err != nil {
			t.Fatalf("switch: ip %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
	return n
}

// ip runs ip(8) in the switch namespace.
func (n *Net) ip(args ...string) ([]byte, error) {
	return exec.Command("ip", append([]string{"-n", n.Switch}, args...)...).CombinedOutput()
}

func (n *Net) close() {
	n.mu.Lock()
	hosts := append([]*Host(nil), n.hosts...)
	n.mu.Unlock()
	for _, h := range hosts {
		h.Kill()
		h.removeCgroup()
		if n.t.Failed() {
			n.t.Logf("host %s log:\n%s", h.Name, h.Log())
		}
		os.RemoveAll(h.Dir)
	}
	exec.Command("ip", "netns", "del", n.Switch).Run()
}

// sweepSwitches removes switch namespaces whose test process is gone.
func sweepSwitches() {
	es, _ := os.ReadDir("/run/netns")
	for _, e := range es {
		rest, ok := strings.CutPrefix(e.Name(), "stsw-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(strings.Split(rest, "-")[0])
		if err != nil || syscall.Kill(pid, 0) == nil {
			continue
		}
		exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

// Host is one test host.
type Host struct {
	net     *Net
	Name    string
	Index   int
	Addr    string // its address on the bridge
	Dir     string
	DataDir string
	Socket  string
	Config  string
	Cgroup  string
	port    string // its bridge port in the switch namespace

	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *bytes.Buffer
	exited chan struct{}
	pidNS  string // the host's PID namespace, as /proc/PID/ns/pid reads
}

// AddHost prepares host n (1..240) with a configuration template (""
// is HostConfig) without starting it.
func (n *Net) AddHost(index int, config string) *Host {
	n.t.Helper()
	if index < 1 || index > 240 {
		n.t.Fatalf("host index %d: use 1..240", index)
	}
	dir, err := os.MkdirTemp("", "steady-host-")
	if err != nil {
		n.t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	h := &Host{net: n, Name: fmt.Sprintf("n%d", index), Index: index, Addr: fmt.Sprintf("198.18.0.%d", 10+index),
		Dir: dir, DataDir: filepath.Join(dir, "data"), Socket: filepath.Join(dir, "steady.sock"),
		Config: filepath.Join(dir, "steady.yaml"), port: fmt.Sprintf("h%d", index),
		Cgroup: fmt.Sprintf("steady-e2e-%d-%d", os.Getpid(), agentSeq.Add(1)), log: &bytes.Buffer{}}
	if config == "" {
		config = HostConfig
	}
	var cfg bytes.Buffer
	if err := template.Must(template.New("config").Parse(config)).Execute(&cfg, h); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(h.Config, cfg.Bytes(), 0o644); err != nil {
		n.t.Fatal(err)
	}
	n.mu.Lock()
	n.hosts = append(n.hosts, h)
	n.mu.Unlock()
	return h
}

// StartHosts adds and starts hosts 1..count with the default configuration.
func (n *Net) StartHosts(count int) []*Host {
	n.t.Helper()
	var hs []*Host
	for i := 1; i <= count; i++ {
		h := n.AddHost(i, "")
		if err := h.Start(); err != nil {
			n.t.Fatal(err)
		}
		hs = append(hs, h)
	}
	return hs
}

// hostInit is PID 1's script until the agent takes its place: a /proc of
// the host's own, the loopback up, then eth0 (moved in by the harness)
// addressed and up.
const hostInit = `set -e
mount --make-rprivate /
mount -t proc proc /proc
ip link set lo up
i=0
while ! ip link show eth0 >/dev/null 2>&1; do
	i=$((i+1)); [ $i -lt 500 ] || { echo "eth0 never came" >&2; exit 1; }
	sleep 0.01
done
ip addr add "$ADDR/24" dev eth0
ip link set eth0 up
set +e
pid=0
trap 'touch "$HOSTDIR/stop"; [ "$pid" -gt 0 ] && kill -TERM "$pid"' TERM INT
while :; do
	rm -f "$HOSTDIR/restart"
	"$@" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
	pid=0
	[ -e "$HOSTDIR/stop" ] && exit 0
	until [ -e "$HOSTDIR/restart" ] || [ -e "$HOSTDIR/stop" ]; do sleep 0.02; done
	[ -e "$HOSTDIR/stop" ] && exit 0
done
`

// Start creates the host's namespaces, wires it to the bridge, runs the
// agent as its PID 1 and waits until the agent answers.
func (h *Host) Start() error {
	n := h.net
	bin := n.binary()
	h.mu.Lock()
	if h.cmd != nil && h.exited != nil {
		select {
		case <-h.exited:
		default:
			h.mu.Unlock()
			return fmt.Errorf("host %s is running", h.Name)
		}
	}
	cmd := exec.Command("/bin/sh", "-c", hostInit, "init", bin, "agent", "--config", h.Config)
	os.Remove(filepath.Join(h.Dir, "stop"))
	os.Remove(filepath.Join(h.Dir, "restart"))
	cmd.Env = append(environ(), "ADDR="+h.Addr, "HOSTDIR="+h.Dir)
	cmd.Stdout = &lockedWriter{mu: &h.mu, w: h.log}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		h.mu.Unlock()
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	exited := make(chan struct{})
	h.cmd, h.exited = cmd, exited
	h.pidNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", cmd.Process.Pid))
	h.mu.Unlock()
	go func() {
		cmd.Wait()
		close(exited)
	}()
	n.ip("link", "del", h.port) // a port left by a killed instance
	pid := strconv.Itoa(cmd.Process.Pid)
	for _, args := range [][]string{
		// A MAC of its own per host, kept across restarts as a real NIC's
		// is, so that the others' ARP caches stay right.
		{"link", "add", h.port, "type", "veth", "peer", "name", "eth0", "address", fmt.Sprintf("02:00:c6:12:00:%02x", h.Index), "netns", "/proc/" + pid + "/ns/net"},
		{"link", "set", h.port, "master", "br0"},
		{"link", "set", h.port, "up"},
	} {
		if out, err := n.ip(args...); err != nil {
			h.Kill()
			return fmt.Errorf("host %s: ip %s: %v %s", h.Name, strings.Join(args, " "), err, out)
		}
	}
	return waitAnswer(h.Socket, exited, func() string { return fmt.Sprintf("host %s exited while starting:\n%s", h.Name, h.Log()) }, h.Log)
}

// PID is the host's PID 1 as the test sees it (0 when not running).
func (h *Host) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil || h.cmd.Process == nil {
		return 0
	}
	select {
	case <-h.exited:
		return 0
	default:
	}
	return h.cmd.Process.Pid
}

// AgentPID is the agent's pid (as the test sees it), 0 when it is not
// running.
func (h *Host) AgentPID() int {
	init := h.PID()
	if init == 0 {
		return 0
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", init, init))
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmdline, []byte("agent\x00--config")) {
			return pid
		}
	}
	return 0
}

// KillAgent kills only the agent (SIGKILL); the host and what the agent
// started stay.
func (h *Host) KillAgent() error {
	pid := h.AgentPID()
	if pid == 0 {
		return fmt.Errorf("host %s runs no agent", h.Name)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 500; i++ {
		if h.AgentPID() == 0 {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("the agent of %s survived SIGKILL", h.Name)
}

// RestartAgent starts the agent again after KillAgent and waits until it
// answers.
func (h *Host) RestartAgent() error {
	if err := os.WriteFile(filepath.Join(h.Dir, "restart"), nil, 0o644); err != nil {
		return err
	}
	h.mu.Lock()
	exited := h.exited
	h.mu.Unlock()
	return waitAnswer(h.Socket, exited, func() string { return fmt.Sprintf("host %s ended while its agent restarted:\n%s", h.Name, h.Log()) }, h.Log)
}

// Running reports whether the host's PID 1 is alive.
func (h *Host) Running() bool { return h.PID() != 0 }

// Kill ends the host at once: SIGKILL to its PID 1 takes every process
// of the host with it.
func (h *Host) Kill() {
	h.mu.Lock()
	cmd, exited := h.cmd, h.exited
	h.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	h.waitEmpty()
}

// Stop asks the agent to stop (SIGTERM) and waits up to d; what it leaves
// running ends with the host.
func (h *Host) Stop(d time.Duration) error {
	h.mu.Lock()
	cmd, exited := h.cmd, h.exited
	h.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		h.waitEmpty()
		return nil
	case <-time.After(d):
		h.Kill()
		return fmt.Errorf("host %s did not stop within %v", h.Name, d)
	}
}

// waitEmpty waits until no process of the host's PID namespace is left
// (the kernel kills them when PID 1 dies, but not in the same instant).
func (h *Host) waitEmpty() {
	for i := 0; i < 500 && len(h.Processes()) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// Processes lists the pids (as the test sees them) of the processes in
// the host's PID namespace, alive or zombie.
func (h *Host) Processes() []int {
	h.mu.Lock()
	ns := h.pidNS
	h.mu.Unlock()
	if ns == "" {
		return nil
	}
	es, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range es {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && l == ns {
			out = append(out, pid)
		}
	}
	return out
}

// Cut takes the host off the network (its bridge port goes down): the
// host keeps running and sees its link lose carrier.
func (h *Host) Cut() error {
	if out, err := h.net.ip("link", "set", h.port, "down"); err != nil {
		return fmt.Errorf("cutting %s: %v %s", h.Name, err, out)
	}
	return nil
}

// Heal puts the host back on the network.
func (h *Host) Heal() error {
	if out, err := h.net.ip("link", "set", h.port, "up"); err != nil {
		return fmt.Errorf("healing %s: %v %s", h.Name, err, out)
	}
	return nil
}

// Log is what the host's agent printed.
func (h *Host) Log() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log.String()
}

// CLI runs "steady ARGS..." against the host's agent, in the host's
// network namespace.
func (h *Host) CLI(args ...string) Result {
	return h.Exec(append([]string{h.net.binary(), "--socket", h.Socket}, args...)...)
}

func (n *Net) binary() string {
	if n.Plain {
		return PlainBinary(n.t)
	}
	return Binary(n.t)
}

// FormCluster makes the first host init a cluster and the others join
// it, each with a token of its own.
func (n *Net) FormCluster(hs []*Host) {
	n.t.Helper()
	if r := hs[0].CLI("cluster", "init", "--name", "e2e", "--address", hs[0].Addr); r.Code != 0 {
		n.t.Fatalf("init: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, h := range hs[1:] {
		r := hs[0].CLI("cluster", "token", "create", "--ttl", "10m")
		if r.Code != 0 {
			n.t.Fatalf("token: %s%s", r.Stdout, r.Stderr)
		}
		tok := strings.TrimSpace(r.Stdout)
		if r := h.CLI("cluster", "join", hs[0].Addr, "--token", tok); r.Code != 0 {
			n.t.Fatalf("join %s: %d\n%s%s", h.Name, r.Code, r.Stdout, r.Stderr)
		}
	}
}

// Exec runs a command in the host's network namespace (its processes
// stay in the test's PID namespace, so they outlive a killed host).
func (h *Host) Exec(args ...string) Result {
	pid := h.PID()
	if pid == 0 {
		return Result{Stderr: "host " + h.Name + " is not running", Code: -1}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--target", strconv.Itoa(pid), "--net", "--"}, args...)...)
	cmd.Env = environ()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		errb.WriteString(err.Error())
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// Dial connects to addr over TCP from inside the host's network
// namespace, without starting a process: benchmarks probe a service
// every few milliseconds with it.
func (h *Host) Dial(addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := h.InNetns(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

// removeCgroup removes what the host's process monitor left under the
// cgroup v2 mount (the cgroup hierarchy is shared with the test).
func (h *Host) removeCgroup() {
	a := &Agent{Cgroup: h.Cgroup}
	a.removeCgroup()
}

// InNetns runs fn on a thread switched into the host's network
// namespace; sockets fn creates stay in it.
func (h *Host) InNetns(fn func() error) error {
	pid := h.PID()
	if pid == 0 {
		return fmt.Errorf("host %s is not running", h.Name)
	}
	target, err := netns.GetFromPid(pid)
	if err != nil {
		return fmt.Errorf("host %s: its network namespace: %w", h.Name, err)
	}
	defer target.Close()
	return ipmp.InNamespace(target, fn)
}

// DialFrom connects to addr over TCP from network namespace ns (a
// client made by AddClient).
func DialFrom(ns netns.NsHandle, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ipmp.InNamespace(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, timeout)
		return err
	})
	return c, err
}

// Ask connects from ns to a markserver at addr and returns the node it
// answers with, "" when nothing answers within the timeout.
func Ask(ns netns.NsHandle, addr string, timeout time.Duration) string {
	c, err := DialFrom(ns, addr, timeout)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * timeout))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if f := strings.Fields(line); len(f) > 0 {
		return f[0]
	}
	return ""
}

// IPMPGroupConfig is the ipmp section of test host index: group g0 of
// e1 and e2 (see AddGroupNICs), each with a test address of the host's
// own in 198.51.100.0/24, and no hostname files.
func IPMPGroupConfig(index int) string {
	return fmt.Sprintf(`ipmp:
  hostname_dir: ""
  groups:
    - name: g0
      interfaces:
        - name: e1
          test_addresses: [198.51.100.%d/24]
        - name: e2
          test_addresses: [198.51.100.%d/24]
`, 10*index+1, 10*index+2)
}

// AddGroupNICs plugs e1 and e2 into the host, as ports pNe1 and pNe2 (N
// its index), with MACs of their own.
func (h *Host) AddGroupNICs() error {
	for j, nic := range []string{"e1", "e2"} {
		if err := h.AddNIC(nic, fmt.Sprintf("p%d%s", h.Index, nic), fmt.Sprintf("02:00:c6:34:%02x:%02x", h.Index, j+1)); err != nil {
			return err
		}
	}
	return nil
}

// AddNIC gives the host another interface, NAME, on the bridge (its port
// in the switch namespace is PORT), with a MAC of its own: a NIC plugged
// in while the host runs.
func (h *Host) AddNIC(name, port, mac string) error {
	pid := h.PID()
	if pid == 0 {
		return fmt.Errorf("host %s is not running", h.Name)
	}
	for _, args := range [][]string{
		{"link", "add", port, "type", "veth", "peer", "name", name, "address", mac, "netns", "/proc/" + strconv.Itoa(pid) + "/ns/net"},
		{"link", "set", port, "master", "br0"},
		{"link", "set", port, "up"},
	} {
		if out, err := h.net.ip(args...); err != nil {
			return fmt.Errorf("host %s: ip %s: %v %s", h.Name, strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// SwitchIP runs ip(8) in the switch namespace (ports are named by AddNIC).
func (n *Net) SwitchIP(args ...string) error {
	if out, err := n.ip(args...); err != nil {
		return fmt.Errorf("switch: ip %s: %v %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// AddClient makes a network namespace of its own on the bridge, with one
// interface addressed cidr: a client (or a router) outside every host.
// It is removed at the end of the test.
func (n *Net) AddClient(name, cidr string) (netns.NsHandle, error) {
	nsName := n.Switch + "-" + name
	port := "c-" + name
	if out, err := exec.Command("ip", "netns", "add", nsName).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("client %s: %v %s", name, err, out)
	}
	n.t.Cleanup(func() { exec.Command("ip", "netns", "del", nsName).Run() })
	for _, args := range [][]string{
		{"link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", nsName},
		{"link", "set", port, "master", "br0"},
		{"link", "set", port, "up"},
	} {
		if out, err := n.ip(args...); err != nil {
			return 0, fmt.Errorf("client %s: ip %s: %v %s", name, strings.Join(args, " "), err, out)
		}
	}
	for _, args := range [][]string{{"addr", "add", cidr, "dev", "eth0"}, {"link", "set", "eth0", "up"}, {"link", "set", "lo", "up"}} {
		if out, err := exec.Command("ip", append([]string{"-n", nsName}, args...)...).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("client %s: ip %s: %v %s", name, strings.Join(args, " "), err, out)
		}
	}
	return netns.GetFromName(nsName)
}
