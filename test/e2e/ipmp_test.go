package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/vishvananda/netns"
)

// ipmpHostConfig is a test host with multipathing groups read from
// Solaris hostname files in its own directory, probing fast.
const ipmpHostConfig = HostConfig + `ipmp:
  failure_detection_time: 700ms
  hostname_dir: {{.Dir}}/etc
  arp_interval: 200ms
`

// hostnameFiles are the Solaris files of the group: on each member a test
// address (deprecated, -failover) and a data address on a logical
// interface.
var hostnameFiles = map[string]string{
	"hostname.e1": "198.51.100.11/24 deprecated -failover group g0 up\naddif 198.51.100.100/24 up\n",
	"hostname.e2": "198.51.100.12/24 deprecated -failover group g0 up\naddif 198.51.100.101/24 up\n",
}

func ipmpStatus(t *testing.T, h *Host) api.IPMPStatus {
	t.Helper()
	r := h.CLI("ipmp", "status", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("ipmp status: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	var st api.IPMPStatus
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("ipmp status: %v\n%s", err, r.Stdout)
	}
	return st
}

// inbound is where the host says a data address is.
func inbound(t *testing.T, h *Host, addr string) string {
	for _, a := range ipmpStatus(t, h).Addresses {
		if strings.HasPrefix(a.Address, addr+"/") {
			return a.Inbound
		}
	}
	return "?"
}

// kernelIface is the interface the host's kernel has the address on.
func kernelIface(h *Host, addr string) string {
	r := h.Exec("ip", "-o", "addr", "show")
	for _, line := range strings.Split(r.Stdout, "\n") {
		if strings.Contains(line, " "+addr+"/") {
			return strings.Fields(line)[1]
		}
	}
	return ""
}

func eventually(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lineConn is a TCP connection that echoes lines.
type lineConn struct {
	c net.Conn
	r *bufio.Reader
}

func (c *lineConn) roundTrip(msg string, limit time.Duration) error {
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

func dialFrom(ns netns.NsHandle, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		return nil, err
	}
	defer netns.Set(orig)
	return net.DialTimeout("tcp4", addr, 5*time.Second)
}

// A host with two NICs in one group, named by Solaris hostname files,
// its probe target the router, and a client: the NICs appear after the
// agent started (missing at boot), a link failure moves the data address
// with the client's connection alive, repair fails it back, DR of the
// last working member is refused with the Resource / Information table,
// DR of a redundant member moves addresses and takes the link down, and
// configure brings it back.
func TestIPMPOnHost(t *testing.T) {
	n := NewNet(t)
	h := n.AddHost(1, ipmpHostConfig)
	os.MkdirAll(filepath.Join(h.Dir, "etc"), 0o755)
	for name, body := range hostnameFiles {
		if err := os.WriteFile(filepath.Join(h.Dir, "etc", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	router, err := n.AddClient("router", "198.51.100.1/24")
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()
	client, err := n.AddClient("client", "198.51.100.50/24")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	st := ipmpStatus(t, h)
	if len(st.Groups) != 1 || st.Groups[0].Name != "g0" || st.Groups[0].State != "failed" {
		t.Fatalf("before the NICs exist: %+v", st.Groups)
	}
	// e1 comes first: both data addresses go on it.
	if err := h.AddNIC("e1", "pe1", "02:00:c6:33:01:01"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both data addresses on e1", 5*time.Second, func() bool {
		return kernelIface(h, "198.51.100.100") == "e1" && kernelIface(h, "198.51.100.101") == "e1"
	})
	eventually(t, "the message of the move of e2's addresses", 3*time.Second, func() bool {
		return strings.Contains(h.Log(), "moving addresses from failed IPv4 interfaces: e2 (moved to e1)")
	})
	if !strings.Contains(h.Log(), "moving addresses from missing IPv4 interfaces: e1 (couldn't move; no alternative interface)") {
		t.Errorf("no boot message for the missing NICs:\n%s", h.Log())
	}
	if err := h.AddNIC("e2", "pe2", "02:00:c6:33:01:02"); err != nil {
		t.Fatal(err)
	}
	eventually(t, ".101 back on e2 when it appeared", 5*time.Second, func() bool { return kernelIface(h, "198.51.100.101") == "e2" })
	// A route through the router makes it the probe target.
	if r := h.Exec("ip", "route", "add", "203.0.113.0/24", "via", "198.51.100.1"); r.Code != 0 {
		t.Fatalf("route: %s", r.Stderr)
	}
	eventually(t, "probes answered on both members", 10*time.Second, func() bool {
		st := ipmpStatus(t, h)
		return len(st.Interfaces) == 2 && st.Interfaces[0].Probe == "ok" && st.Interfaces[1].Probe == "ok"
	})
	r := Run(t, CLIOptions{Name: "ipmpstat", Env: []string{"STEADY_SOCKET=" + h.Socket}}, "-t")
	if r.Code != 0 || !strings.Contains(r.Stdout, "e1         routes  198.51.100.11  198.51.100.1") {
		t.Errorf("ipmpstat -t: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	var ln net.Listener
	if err := h.InNetns(func() error {
		var err error
		ln, err = net.Listen("tcp4", "198.51.100.100:7")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
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
	c, err := dialFrom(client, "198.51.100.100:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := &lineConn{c: c, r: bufio.NewReader(c)}
	if err := conn.roundTrip("hello", 3*time.Second); err != nil {
		t.Fatal(err)
	}

	// Link failure: the peer end goes down.
	if err := n.SwitchIP("link", "set", "pe1", "down"); err != nil {
		t.Fatal(err)
	}
	eventually(t, ".100 on e2", 3*time.Second, func() bool { return kernelIface(h, "198.51.100.100") == "e2" })
	if err := conn.roundTrip("after the failover", 3*time.Second); err != nil {
		t.Fatalf("the client's connection did not survive the failover: %v", err)
	}
	r = Run(t, CLIOptions{Name: "ipmpstat", Env: []string{"STEADY_SOCKET=" + h.Socket}}, "-g")
	if !strings.Contains(r.Stdout, "g0     g0         degraded  0.70s  e2 [e1]") {
		t.Errorf("ipmpstat -g:\n%s%s", r.Stdout, r.Stderr)
	}

	// DR of the last working member is refused, with the table.
	r = h.CLI("dr", "unconfigure", "-y", "net/e2")
	if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "only working interface of IPMP group g0") || !strings.Contains(r.Stdout+r.Stderr, "Resource") {
		t.Fatalf("unconfigure of the last working member: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if kernelIface(h, "198.51.100.100") != "e2" {
		t.Fatal("a refused unconfigure moved an address")
	}
	r = Run(t, CLIOptions{Name: "if_mpadm", Env: []string{"STEADY_SOCKET=" + h.Socket}}, "-d", "e2")
	if r.Code != 1 || !strings.Contains(r.Stderr, "if_mpadm: cannot offline: no other functioning interfaces are in its IPMP group") {
		t.Errorf("if_mpadm -d of the last member: %d %s", r.Code, r.Stderr)
	}

	// Repair fails back.
	if err := n.SwitchIP("link", "set", "pe1", "up"); err != nil {
		t.Fatal(err)
	}
	eventually(t, ".100 back on e1", 10*time.Second, func() bool { return kernelIface(h, "198.51.100.100") == "e1" })
	if err := conn.roundTrip("after the failback", 3*time.Second); err != nil {
		t.Fatalf("the client's connection did not survive the failback: %v", err)
	}

	// DR of a redundant member: its data address moves, its test address
	// goes, its link goes down.
	r = h.CLI("dr", "unconfigure", "-y", "net/e1")
	if r.Code != 0 {
		t.Fatalf("unconfigure net/e1: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := kernelIface(h, "198.51.100.100"); got != "e2" {
		t.Errorf("after unconfigure .100 is on %q", got)
	}
	if got := kernelIface(h, "198.51.100.11"); got != "" {
		t.Errorf("the test address stayed on %q", got)
	}
	if out := h.Exec("ip", "-o", "link", "show", "e1").Stdout; strings.Contains(out, ",UP") || strings.Contains(out, "<UP") {
		t.Errorf("e1 is still up: %s", out)
	}
	if err := conn.roundTrip("while e1 is out", 3*time.Second); err != nil {
		t.Fatalf("the client's connection broke: %v", err)
	}
	if st := ipmpStatus(t, h); st.Interfaces[0].State != "offline" {
		t.Errorf("e1: %+v", st.Interfaces[0])
	}
	// Configure brings it back and the address fails back.
	r = h.CLI("dr", "configure", "net/e1")
	if r.Code != 0 {
		t.Fatalf("configure net/e1: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	eventually(t, ".100 back on e1 after configure", 10*time.Second, func() bool {
		return kernelIface(h, "198.51.100.100") == "e1" && kernelIface(h, "198.51.100.11") == "e1"
	})
	if err := conn.roundTrip("after configure", 3*time.Second); err != nil {
		t.Fatalf("the client's connection broke: %v", err)
	}

	// All members down: nothing moves.
	if err := n.SwitchIP("link", "set", "pe1", "down"); err != nil {
		t.Fatal(err)
	}
	if err := n.SwitchIP("link", "set", "pe2", "down"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the group failed", 3*time.Second, func() bool { return ipmpStatus(t, h).Groups[0].State == "failed" })
	if kernelIface(h, "198.51.100.100") != "e1" || kernelIface(h, "198.51.100.101") != "e2" {
		t.Errorf("a group failure moved addresses: .100 on %s, .101 on %s", kernelIface(h, "198.51.100.100"), kernelIface(h, "198.51.100.101"))
	}
}
