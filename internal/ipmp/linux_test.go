package ipmp

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// lab is the topology of reference/ipmp.md §6, made by the test: a host
// namespace with two members (e0, e1) whose peers are ports of a bridge
// in a switch namespace, a router namespace (the probe target and the
// default gateway) and a client namespace on the same bridge. Nothing
// touches the machine's own network.
type lab struct {
	t                 testing.TB
	prefix            string
	host, sw, r, c    string
	hostNS, swNS, cNS netns.NsHandle
	swH               *netlink.Handle
}

var labSeq atomic.Int32

func newLab(t testing.TB) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root; CI runs as root")
	}
	n := labSeq.Add(1)
	l := &lab{t: t, prefix: fmt.Sprintf("ipmp%d-%d", os.Getpid()%100000, n)}
	l.host, l.sw, l.r, l.c = l.prefix+"-h", l.prefix+"-sw", l.prefix+"-r", l.prefix+"-c"
	for _, ns := range []string{l.host, l.sw, l.r, l.c} {
		l.sh("ip netns add " + ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	l.sh("ip -n " + l.sw + " link add br0 type bridge")
	l.sh("ip -n " + l.sw + " link set br0 up")
	// Members with MACs of their own (IPMP needs unique ones).
	for i, name := range []string{"e0", "e1"} {
		l.sh(fmt.Sprintf("ip -n %s link add p%d type veth peer name %s netns %s address 02:00:00:00:01:%02x", l.sw, i, name, l.host, i))
		l.sh(fmt.Sprintf("ip -n %s link set p%d master br0 up", l.sw, i))
	}
	l.sh("ip -n " + l.sw + " link add pr type veth peer name r0 netns " + l.r)
	l.sh("ip -n " + l.sw + " link set pr master br0 up")
	l.sh("ip -n " + l.r + " addr add 198.51.100.1/24 dev r0")
	l.sh("ip -n " + l.r + " link set r0 up")
	l.sh("ip -n " + l.r + " link set lo up")
	l.sh("ip -n " + l.sw + " link add pc type veth peer name c0 netns " + l.c)
	l.sh("ip -n " + l.sw + " link set pc master br0 up")
	l.sh("ip -n " + l.c + " addr add 198.51.100.50/24 dev c0")
	l.sh("ip -n " + l.c + " link set c0 up")
	l.sh("ip -n " + l.c + " link set lo up")
	l.sh("ip -n " + l.host + " link set lo up")
	var err error
	if l.hostNS, err = netns.GetFromName(l.host); err != nil {
		t.Fatal(err)
	}
	if l.swNS, err = netns.GetFromName(l.sw); err != nil {
		t.Fatal(err)
	}
	if l.cNS, err = netns.GetFromName(l.c); err != nil {
		t.Fatal(err)
	}
	if l.swH, err = netlink.NewHandleAt(l.swNS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.hostNS.Close(); l.swNS.Close(); l.cNS.Close(); l.swH.Close() })
	return l
}

func (l *lab) sh(cmd string) string {
	l.t.Helper()
	out, err := exec.Command("/bin/sh", "-c", cmd).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return string(out)
}

func labGroups() []GroupConfig {
	return []GroupConfig{{Name: "g0", Members: []MemberConfig{
		{Interface: "e0", Test: []netip.Prefix{pfx("198.51.100.11/24")}, Data: []netip.Prefix{pfx("198.51.100.100/24")}},
		{Interface: "e1", Test: []netip.Prefix{pfx("198.51.100.12/24")}, Data: []netip.Prefix{pfx("198.51.100.101/24")}},
	}}}
}

func (l *lab) daemon(set Settings) *Daemon {
	l.t.Helper()
	d := l.start(set, labGroups())
	// The default route through the router: a target for the probes,
	// and a gateway route the daemon must keep on a working member.
	l.sh("ip -n " + l.host + " route add default via 198.51.100.1")
	return d
}

func (l *lab) start(set Settings, groups []GroupConfig) *Daemon {
	l.t.Helper()
	d, err := New(Options{Settings: set, Groups: groups, NS: l.hostNS, ARPCount: 3, ARPInterval: 200 * time.Millisecond,
		Resync: 2 * time.Second, StateFile: l.t.TempDir() + "/ipmp.json", Logger: testLogger(l.t)})
	if err != nil {
		l.t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(d.Close)
	return d
}

// in runs fn on a thread in namespace ns.
func in(ns netns.NsHandle, fn func() error) error { return InNamespace(ns, fn) }

// waitFor polls cond until it holds or the time is up.
func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kernelHas says which member the kernel has the address on.
func (l *lab) kernelHas(addr string) string {
	out := l.sh("ip -n " + l.host + " -o addr show")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " "+addr+"/") {
			return strings.Fields(line)[1]
		}
	}
	return ""
}

func (l *lab) iface(d *Daemon, name string) (st struct{ Link, Probe, State string }) {
	s, _ := d.Status(context.Background())
	for _, i := range s.Interfaces {
		if i.Name == name {
			st.Link, st.Probe, st.State = i.Link, i.Probe, i.State
		}
	}
	return st
}

// echoServer answers lines on a TCP connection to addr:7 in the host.
func (l *lab) echoServer(addr string) {
	l.t.Helper()
	var ln net.Listener
	err := in(l.hostNS, func() error {
		var err error
		lc := net.ListenConfig{Control: freebind}
		ln, err = lc.Listen(context.Background(), "tcp4", addr+":7")
		return err
	})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintln(c, sc.Text())
				}
			}()
		}
	}()
}

// client is a TCP connection from the client namespace.
type client struct {
	c net.Conn
	r *bufio.Reader
}

func (l *lab) dial(addr string) *client {
	l.t.Helper()
	var c net.Conn
	err := in(l.cNS, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr+":7", 5*time.Second)
		return err
	})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close() })
	return &client{c: c, r: bufio.NewReader(c)}
}

// roundTrip sends a line and reads it back within limit.
func (c *client) roundTrip(msg string, limit time.Duration) error {
	c.c.SetDeadline(time.Now().Add(limit))
	if _, err := fmt.Fprintln(c.c, msg); err != nil {
		return err
	}
	got, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

func TestDaemonInNamespaces(t *testing.T) {
	l := newLab(t)
	d := l.daemon(Settings{FDT: 700 * time.Millisecond, Failback: true})
	waitFor(t, "the data addresses on their homes", 5*time.Second, func() bool {
		return l.kernelHas("198.51.100.100") == "e0" && l.kernelHas("198.51.100.101") == "e1"
	})
	for _, k := range []string{"arp_ignore", "arp_announce"} {
		out := l.sh("ip netns exec " + l.host + " cat /proc/sys/net/ipv4/conf/e0/" + k)
		if want := map[string]string{"arp_ignore": "1", "arp_announce": "2"}[k]; strings.TrimSpace(out) != want {
			t.Errorf("%s on e0 is %s, want %s", k, strings.TrimSpace(out), want)
		}
	}
	waitFor(t, "probes to find the router and answer", 5*time.Second, func() bool {
		return l.iface(d, "e0").Probe == "ok" && l.iface(d, "e1").Probe == "ok"
	})
	l.echoServer("198.51.100.100")
	cl := l.dial("198.51.100.100")
	if err := cl.roundTrip("hello", 2*time.Second); err != nil {
		t.Fatal(err)
	}

	t.Run("link failure moves the address and the connection lives", func(t *testing.T) {
		l.sh("ip -n " + l.sw + " link set p0 down")
		waitFor(t, ".100 on e1", 2*time.Second, func() bool { return l.kernelHas("198.51.100.100") == "e1" })
		if err := cl.roundTrip("after the move", 3*time.Second); err != nil {
			t.Fatalf("the client's connection broke: %v", err)
		}
		routes := l.sh("ip -n " + l.host + " route show")
		if !strings.Contains(routes, "default via 198.51.100.1 dev e1") || !strings.Contains(routes, "198.51.100.0/24 dev e1") {
			t.Errorf("routes still through the failed member:\n%s", routes)
		}
		if s := l.iface(d, "e0"); s.Link != "down" || s.State != "failed" {
			t.Errorf("e0: %+v", s)
		}
		if l.kernelHas("198.51.100.11") != "e0" {
			t.Error("the test address left the failed member")
		}
	})
	t.Run("repair fails back", func(t *testing.T) {
		l.sh("ip -n " + l.sw + " link set p0 up")
		waitFor(t, ".100 back on e0", 5*time.Second, func() bool { return l.kernelHas("198.51.100.100") == "e0" })
		if err := cl.roundTrip("home again", 3*time.Second); err != nil {
			t.Fatalf("the client's connection broke on failback: %v", err)
		}
	})
	t.Run("a dead path with the link up is found by probes", func(t *testing.T) {
		start := time.Now()
		l.sh("ip -n " + l.sw + " link set p0 nomaster")
		waitFor(t, ".100 on e1 after lost probes", 3*time.Second, func() bool { return l.kernelHas("198.51.100.100") == "e1" })
		took := time.Since(start)
		if s := l.iface(d, "e0"); s.Link != "up" || s.Probe != "failed" {
			t.Errorf("e0: %+v", s)
		}
		t.Logf("probe-based detection took %v with FDT 700ms", took)
		if err := cl.roundTrip("after the probe failover", 3*time.Second); err != nil {
			t.Fatalf("the client's connection broke: %v", err)
		}
		l.sh("ip -n " + l.sw + " link set p0 master br0")
		waitFor(t, ".100 back on e0 after ten answered probes", 5*time.Second, func() bool { return l.kernelHas("198.51.100.100") == "e0" })
	})
	t.Run("all members down moves nothing", func(t *testing.T) {
		l.sh("ip -n " + l.sw + " link set p0 down && ip -n " + l.sw + " link set p1 down")
		waitFor(t, "both members failed", 3*time.Second, func() bool {
			return l.iface(d, "e0").State == "failed" && l.iface(d, "e1").State == "failed"
		})
		time.Sleep(200 * time.Millisecond)
		if l.kernelHas("198.51.100.100") != "e0" || l.kernelHas("198.51.100.101") != "e1" {
			t.Errorf("a group failure moved addresses: .100 on %s, .101 on %s", l.kernelHas("198.51.100.100"), l.kernelHas("198.51.100.101"))
		}
		l.sh("ip -n " + l.sw + " link set p0 up && ip -n " + l.sw + " link set p1 up")
		waitFor(t, "the group repaired", 5*time.Second, func() bool {
			return l.iface(d, "e0").State == "ok" && l.iface(d, "e1").State == "ok"
		})
	})
	t.Run("offline refuses the last member", func(t *testing.T) {
		ctx := context.Background()
		if err := d.Offline(ctx, "e0", false); err != nil {
			t.Fatal(err)
		}
		if l.kernelHas("198.51.100.100") != "e1" || l.kernelHas("198.51.100.11") != "" {
			t.Errorf("after offline: .100 on %q, test address on %q", l.kernelHas("198.51.100.100"), l.kernelHas("198.51.100.11"))
		}
		if err := d.Offline(ctx, "e1", false); err == nil || !strings.Contains(err.Error(), "no other functioning interfaces") {
			t.Errorf("offline of the last member: %v", err)
		}
		if err := d.UndoOffline(ctx, "e0"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ".100 back after undo", 5*time.Second, func() bool { return l.kernelHas("198.51.100.100") == "e0" })
	})
}

// freebind lets a listener bind an address that is (for an instant) on
// no interface.
func freebind(network, address string, c syscallRawConn) error {
	return c.Control(func(fd uintptr) { setFreebind(int(fd)) })
}

type syscallRawConn = syscall.RawConn

func setFreebind(fd int) { unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_FREEBIND, 1) }

// testLogger writes the daemon's log to the test's.
func testLogger(t testing.TB) *slog.Logger {
	if _, bench := t.(*testing.B); bench {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// An IPv6 data address moves like an IPv4 one, and the client's
// neighbour entry learns the new member's MAC from the unsolicited
// neighbour advertisement.
func TestDaemonIPv6DataAddress(t *testing.T) {
	l := newLab(t)
	groups := labGroups()
	groups[0].Members[0].Data = append(groups[0].Members[0].Data, pfx("2001:db8::100/64"))
	d := l.start(Settings{FDT: 700 * time.Millisecond, Failback: true}, groups)
	l.sh("ip -n " + l.c + " addr add 2001:db8::50/64 dev c0 nodad")
	waitFor(t, "the IPv6 data address on e0", 5*time.Second, func() bool { return l.kernelHas("2001:db8::100") == "e0" })
	// The client talks to it, so that it has a neighbour entry.
	var c net.Conn
	if err := in(l.cNS, func() error {
		var err error
		c, err = net.Dial("udp6", "[2001:db8::100]:9")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	neigh := func() string { return l.sh("ip -n " + l.c + " -6 neigh show 2001:db8::100") }
	waitFor(t, "the client's neighbour entry", 5*time.Second, func() bool {
		c.Write([]byte("x"))
		return strings.Contains(neigh(), "02:00:00:00:01:00")
	})
	l.sh("ip -n " + l.sw + " link set p0 down")
	waitFor(t, "the IPv6 address on e1", 3*time.Second, func() bool { return l.kernelHas("2001:db8::100") == "e1" })
	waitFor(t, "the client's entry to carry e1's MAC", 3*time.Second, func() bool { return strings.Contains(neigh(), "02:00:00:00:01:01") })
	if routes := l.sh("ip -n " + l.host + " -6 route show 2001:db8::/64"); !strings.Contains(routes, "dev e1") {
		t.Errorf("the IPv6 prefix is not routed through e1: %s", routes)
	}
	st, _ := d.Status(context.Background())
	if st.Groups[0].State != "degraded" {
		t.Errorf("group: %+v", st.Groups[0])
	}
}

// Without routes, the targets are the hosts that answer an echo to all
// hosts (the router here, told to answer such echoes).
func TestTargetsByMulticastDiscovery(t *testing.T) {
	l := newLab(t)
	l.sh("ip netns exec " + l.r + " sysctl -qw net.ipv4.icmp_echo_ignore_broadcasts=0")
	d := l.start(Settings{FDT: 700 * time.Millisecond, Failback: true}, labGroups())
	waitFor(t, "the router found by multicast and probed", 10*time.Second, func() bool {
		st, _ := d.Status(context.Background())
		return len(st.Targets) == 2 && st.Targets[0].Mode == "multicast" && strings.Join(st.Targets[0].Targets, " ") == "198.51.100.1" &&
			st.Interfaces[0].Probe == "ok"
	})
}

// A member given another member's MAC is offlined (flag h) and its data
// address moves; with a MAC of its own again it comes back.
func TestDaemonDuplicateMAC(t *testing.T) {
	l := newLab(t)
	d := l.start(Settings{FDT: 700 * time.Millisecond, Failback: true}, labGroups())
	waitFor(t, ".101 on e1", 5*time.Second, func() bool { return l.kernelHas("198.51.100.101") == "e1" })
	l.sh("ip -n " + l.host + " link set e1 address 02:00:00:00:01:00")
	waitFor(t, ".101 off the duplicate", 5*time.Second, func() bool { return l.kernelHas("198.51.100.101") == "e0" })
	if s := l.iface(d, "e1"); s.State != "offline" {
		t.Errorf("e1: %+v", s)
	}
	if err := d.UndoOffline(context.Background(), "e1"); err == nil || !strings.Contains(err.Error(), "not unique") {
		t.Errorf("undo of a duplicate: %v", err)
	}
	l.sh("ip -n " + l.host + " link set e1 address 02:00:00:00:01:01")
	waitFor(t, ".101 back on e1", 5*time.Second, func() bool { return l.kernelHas("198.51.100.101") == "e1" })
}

// Probes over IPv6 from the members' link-local addresses (hostname6
// "-failover"), with targets found by an echo to ff02::1, which Linux
// hosts answer: a dead path with the link up is found, and repaired.
func TestDaemonIPv6Probes(t *testing.T) {
	l := newLab(t)
	groups := []GroupConfig{{Name: "g0", Members: []MemberConfig{
		{Interface: "e0", TestLinkLocal: true, Data: []netip.Prefix{pfx("198.51.100.100/24")}},
		{Interface: "e1", TestLinkLocal: true, Data: []netip.Prefix{pfx("198.51.100.101/24")}},
	}}}
	d := l.start(Settings{FDT: 700 * time.Millisecond, Failback: true}, groups)
	waitFor(t, "IPv6 probes answered on both members", 15*time.Second, func() bool {
		st, _ := d.Status(context.Background())
		ok := len(st.Targets) == 2
		for _, tg := range st.Targets {
			ok = ok && tg.Mode == "multicast" && strings.HasPrefix(tg.TestAddr, "fe80::") && len(tg.Targets) >= 2
		}
		return ok && l.iface(d, "e0").Probe == "ok" && l.iface(d, "e1").Probe == "ok"
	})
	st, _ := d.Status(context.Background())
	for _, tg := range st.Targets[0].Targets {
		if tg == st.Targets[1].TestAddr {
			t.Errorf("a member's own link-local address is a target: %v", st.Targets)
		}
	}
	l.sh("ip -n " + l.sw + " link set p0 nomaster")
	waitFor(t, ".100 on e1 after lost IPv6 probes", 3*time.Second, func() bool { return l.kernelHas("198.51.100.100") == "e1" })
	if s := l.iface(d, "e0"); s.Probe != "failed" || s.Link != "up" {
		t.Errorf("e0: %+v", s)
	}
	l.sh("ip -n " + l.sw + " link set p0 master br0")
	waitFor(t, ".100 back on e0", 5*time.Second, func() bool { return l.kernelHas("198.51.100.100") == "e0" })
}
