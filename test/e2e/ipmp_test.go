package e2e

import (
	"bufio"
	"bytes"
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
)

// ipmpHostConfig is a test host with multipathing groups read from
// Solaris hostname files in its own directory, probing fast.
const ipmpHostConfig = HostConfig + `ipmp:
  failure_detection_time: 700ms
  hostname_dir: {{.Dir}}/etc
  arp_interval: 200ms
rcm:
  script_dirs: [{{.Dir}}/rcm]
`

// nicGuard is an RCM script that uses net/e1 and, while the file FAIL
// exists, agrees to its removal in the query but fails the real request:
// the DR of something else on the same component failing.
const nicGuard = `#!/bin/sh
case "$1" in
scriptinfo) echo rcm_script_version=1; echo "rcm_script_func_info=uses e1 for the test"; echo rcm_cmd_timeout=30 ;;
register) echo rcm_resource_name=net/e1 ;;
resourceinfo) echo "rcm_resource_usage_info=test traffic" ;;
queryremove) ;;
preremove) if [ -e %s ]; then echo "rcm_failure_reason=the other half of the card failed"; exit 1; fi ;;
*) ;;
esac
exit 0
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
	os.MkdirAll(filepath.Join(h.Dir, "rcm"), 0o755)
	failFlag := filepath.Join(h.Dir, "FAIL")
	if err := os.WriteFile(filepath.Join(h.Dir, "rcm", "nic-guard"), []byte(fmt.Sprintf(nicGuard, failFlag)), 0o755); err != nil {
		t.Fatal(err)
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
	// ipmpstat -p follows the probes until interrupted.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pcmd := exec.CommandContext(ctx, Binary(t), "-p")
	pcmd.Args[0] = "ipmpstat"
	pcmd.Env = append(environ(), "STEADY_SOCKET="+h.Socket)
	var pout bytes.Buffer
	pcmd.Stdout, pcmd.Stderr = &pout, &pout
	if err := pcmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	pcmd.Process.Signal(syscall.SIGINT)
	if err := pcmd.Wait(); err != nil {
		t.Errorf("ipmpstat -p after SIGINT: %v\n%s", err, pout.String())
	}
	if out := pout.String(); !strings.HasPrefix(out, "TIME") || !regexp.MustCompile(`(?m)^\S+s\s+e[12]\s+\d+\s+[0-9.]+ms\s+[0-9.]+ms\s+198\.51\.100\.1$`).MatchString(out) {
		t.Errorf("ipmpstat -p:\n%s", out)
	}
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
	c, err := DialFrom(client, "198.51.100.100:7", 5*time.Second)
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
	ifMpadm := func(args ...string) Result {
		return Run(t, CLIOptions{Name: "if_mpadm", Env: []string{"STEADY_SOCKET=" + h.Socket}}, args...)
	}
	r = ifMpadm("-d", "e2")
	if r.Code != 1 || !strings.Contains(r.Stderr, "if_mpadm: cannot offline: no other functioning interfaces are in its IPMP group") {
		t.Errorf("if_mpadm -d of the last member: %d %s", r.Code, r.Stderr)
	}
	if r = ifMpadm("-r", "e2"); r.Code != 1 || !strings.Contains(r.Stderr, "if_mpadm: cannot undo-offline: the interface is not offline") {
		t.Errorf("if_mpadm -r of a member that is not offline: %d %s", r.Code, r.Stderr)
	}

	// Repair fails back.
	if err := n.SwitchIP("link", "set", "pe1", "up"); err != nil {
		t.Fatal(err)
	}
	eventually(t, ".100 back on e1", 10*time.Second, func() bool { return kernelIface(h, "198.51.100.100") == "e1" })
	if err := conn.roundTrip("after the failback", 3*time.Second); err != nil {
		t.Fatalf("the client's connection did not survive the failback: %v", err)
	}
	// if_mpadm -d and -r of a redundant member.
	if r = ifMpadm("-d", "e1"); r.Code != 0 {
		t.Fatalf("if_mpadm -d e1: %d %s", r.Code, r.Stderr)
	}
	if kernelIface(h, "198.51.100.100") != "e2" || kernelIface(h, "198.51.100.11") != "" {
		t.Errorf("after if_mpadm -d e1: .100 on %q, test address on %q", kernelIface(h, "198.51.100.100"), kernelIface(h, "198.51.100.11"))
	}
	if r = ifMpadm("-r", "e1"); r.Code != 0 {
		t.Fatalf("if_mpadm -r e1: %d %s", r.Code, r.Stderr)
	}
	eventually(t, ".100 back on e1 after if_mpadm -r", 10*time.Second, func() bool { return kernelIface(h, "198.51.100.100") == "e1" })

	// A DR that fails after e1 went offline in its group (the script
	// fails the real request): e1 is put back and its address fails back.
	if r := h.CLI("rcm", "scripts", "reload"); r.Code != 0 {
		t.Fatalf("reload: %s%s", r.Stdout, r.Stderr)
	}
	os.WriteFile(failFlag, nil, 0o644)
	r = h.CLI("dr", "unconfigure", "-y", "net/e1")
	if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "the other half of the card failed") {
		t.Fatalf("unconfigure with a failing user: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	eventually(t, "e1 back in its group with its addresses", 10*time.Second, func() bool {
		return kernelIface(h, "198.51.100.100") == "e1" && kernelIface(h, "198.51.100.11") == "e1"
	})
	if st := ipmpStatus(t, h); st.Interfaces[0].State != "ok" {
		t.Errorf("e1 after the undo: %+v", st.Interfaces[0])
	}
	// The ip module is asked before the script ("ip" sorts first): e1 had
	// gone offline, and the undo put it back.
	if log := h.Log(); !strings.Contains(log, "IP interface e1 of group g0 is offline") || !strings.Contains(log, "IP interface e1 of group g0 is no longer offline") {
		t.Errorf("no offline and undo of e1 in the log:\n%s", log)
	}
	os.Remove(failFlag)

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
	// The agent restarts: e1 stays offline, nothing moves, the client's
	// connection carries on.
	if err := h.KillAgent(); err != nil {
		t.Fatal(err)
	}
	if err := h.RestartAgent(); err != nil {
		t.Fatal(err)
	}
	if st := ipmpStatus(t, h); st.Interfaces[0].State != "offline" || kernelIface(h, "198.51.100.100") != "e2" {
		t.Errorf("after an agent restart: e1 %+v, .100 on %s", st.Interfaces[0], kernelIface(h, "198.51.100.100"))
	}
	if err := conn.roundTrip("after the agent restart", 3*time.Second); err != nil {
		t.Fatalf("the client's connection broke: %v", err)
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

// A logical hostname on group g0 of two hosts (of three), with a service
// in the same resource group: the address sits on a member of the owner's
// group, moves within the group when that member's link fails, goes with
// the resource group to the other host when no member of the owner's
// group works, and follows it back when that host is killed; a client
// outside both reaches it each time.
func TestLogicalHostnameFollowsItsGroup(t *testing.T) {
	markServerPath = MarkServer(t)
	n := NewNet(t)
	var hs []*Host
	for i := 1; i <= 2; i++ {
		h := n.AddHost(i, HostConfig+IPMPGroupConfig(i))
		if err := h.Start(); err != nil {
			t.Fatal(err)
		}
		if err := h.AddGroupNICs(); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	// A third host keeps the store's quorum when n1 dies.
	n3 := n.AddHost(3, "")
	if err := n3.Start(); err != nil {
		t.Fatal(err)
	}
	hs = append(hs, n3)
	client, err := n.AddClient("client", "198.51.100.50/24")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	formCluster(t, hs)
	waitVoters(t, hs[2], 3)
	n1, n2 := hs[0], hs[1]
	dir := markDir(t)
	cli(t, n1, "rg", "create", "lh", "-p", "Nodelist=n1,n2", "-p", "Pingpong_interval=0")
	cli(t, n1, "resource", "create", "addr", "-g", "lh", "-t", "steady.LogicalHostname",
		"-p", "HostnameList=198.51.100.200/24", "-p", "NetIfList=g0@n1,g0@n2", "-p", "Thorough_probe_interval=1")
	cli(t, n1, "resource", "create", "srv", "-g", "lh", "-t", "steady.Process",
		"-p", "Command="+markServerPath+",serve,--port,"+servicePort+",--dir,"+dir, "-p", "Stop_timeout=5",
		"-p", "Resource_dependencies=addr")
	// A bad list is refused before anything is created.
	if r := n1.CLI("resource", "create", "bad", "-g", "lh", "-t", "steady.LogicalHostname", "-p", "HostnameList=198.51.100.201/99"); r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "not ADDRESS/PREFIXLEN") {
		t.Errorf("a bad HostnameList: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	cli(t, n1, "rg", "online", "lh")
	waitPlaced(t, n2, "lh", "n1", 30*time.Second)
	service := "198.51.100.200:" + servicePort
	eventually(t, "the service answering from n1 on the logical hostname", 10*time.Second, func() bool { return Ask(client, service, time.Second) == "n1" })
	first := kernelIface(n1, "198.51.100.200")
	if first != "e1" && first != "e2" {
		t.Fatalf("the logical hostname is on %q of n1", first)
	}
	st := ipmpStatus(t, n1)
	if len(st.Addresses) != 1 || !st.Addresses[0].Floating {
		t.Errorf("n1's addresses: %+v", st.Addresses)
	}

	// Its member's link fails: it moves within n1's group.
	if err := n.SwitchIP("link", "set", "p1"+first, "down"); err != nil {
		t.Fatal(err)
	}
	other := map[string]string{"e1": "e2", "e2": "e1"}[first]
	eventually(t, "the logical hostname on n1's other member", 5*time.Second, func() bool { return kernelIface(n1, "198.51.100.200") == other })
	eventually(t, "the service answering from n1 again", 5*time.Second, func() bool { return Ask(client, service, time.Second) == "n1" })
	if g := groupOn(t, n2, "lh"); len(g.Primaries) != 1 || g.Primaries[0] != "n1" {
		t.Errorf("a failure within the group moved the resource group: %+v", g)
	}

	// No member of n1's group works: the probe fails and the resource
	// group is given over to n2, where the address comes up.
	start := time.Now()
	if err := n.SwitchIP("link", "set", "p1"+other, "down"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the service answering from n2 after n1's group failed", 20*time.Second, func() bool { return Ask(client, service, time.Second) == "n2" })
	t.Logf("every NIC of n1's group down: the logical hostname answered from n2 after %v", time.Since(start))
	if w := kernelIface(n2, "198.51.100.200"); w != "e1" && w != "e2" {
		t.Errorf("on n2 the address is on %q", w)
	}
	eventually(t, "the address gone from n1", 10*time.Second, func() bool { return kernelIface(n1, "198.51.100.200") == "" })
	n.SwitchIP("link", "set", "p1"+first, "up")
	n.SwitchIP("link", "set", "p1"+other, "up")
	// n2's agent restarts: the address stays, still floating in its group.
	if err := n2.KillAgent(); err != nil {
		t.Fatal(err)
	}
	if err := n2.RestartAgent(); err != nil {
		t.Fatal(err)
	}
	if st := ipmpStatus(t, n2); len(st.Addresses) != 1 || !st.Addresses[0].Floating || st.Addresses[0].State != "up" {
		t.Errorf("n2's addresses after an agent restart: %+v", st.Addresses)
	}
	if who := Ask(client, service, time.Second); who != "n2" {
		t.Errorf("after n2's agent restarted the service answers from %q", who)
	}
	eventually(t, "n1's group working again", 10*time.Second, func() bool { return ipmpStatus(t, n1).Groups[0].State == "ok" })

	// The owner host dies: the address comes up on n1 again.
	start = time.Now()
	n2.Kill()
	eventually(t, "the service answering from n1 on the logical hostname", 20*time.Second, func() bool { return Ask(client, service, time.Second) == "n1" })
	t.Logf("host n2 killed: the logical hostname answered from n1 after %v", time.Since(start))
	// Taken offline, the group takes its address away.
	cli(t, n1, "rg", "offline", "lh")
	eventually(t, "the address gone from n1", 10*time.Second, func() bool { return kernelIface(n1, "198.51.100.200") == "" })
	if st := ipmpStatus(t, n1); len(st.Addresses) != 0 {
		t.Errorf("n1 still has a floating address: %+v", st.Addresses)
	}
}
