package bench

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/test/e2e"
)

// BenchmarkLogicalHostnameFailover is the failover benchmark with the
// service behind a logical hostname: three hosts, each with IPMP group
// g0 of two NICs, a failover group of a steady.LogicalHostname
// (198.51.100.200 on g0) and the TCP service, and a client in a
// namespace of its own on the same bridge. SIGKILL of the owner's host
// (neither store leader nor controller) until the client reaches the
// service on the logical hostname from another host: the takeover, the
// address coming up on a member of the new owner's group with its
// gratuitous ARP, and the service's start. 10 runs per setting.
func BenchmarkLogicalHostnameFailover(b *testing.B) {
	server := e2e.MarkServer(b)
	for i := 0; i < b.N; i++ {
		for _, s := range benchSettings() {
			benchLogicalHostname(b, server, s.name, s.cfg)
		}
	}
}

func benchLogicalHostname(b *testing.B, server, name, extra string) {
	n := e2e.NewNet(b)
	n.Plain = true
	c3 := &three{b: b, net: n, byName: map[string]*e2e.Host{}}
	for k := 1; k <= 3; k++ {
		h := n.AddHost(k, e2e.HostConfig+extra+e2e.IPMPGroupConfig(k))
		if err := h.Start(); err != nil {
			b.Fatal(err)
		}
		if err := h.AddGroupNICs(); err != nil {
			b.Fatal(err)
		}
		c3.hs = append(c3.hs, h)
		c3.byName[h.Name] = h
	}
	n.FormCluster(c3.hs)
	client, err := n.AddClient("client", "198.51.100.50/24")
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	dir, err := os.MkdirTemp("", "steady-bench-marks-")
	if err != nil {
		b.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	defer os.RemoveAll(dir)
	c3.settle()
	h1 := c3.hs[0]
	for _, args := range [][]string{
		{"rg", "create", "lh", "-p", "Nodelist=n1,n2,n3"},
		{"resource", "create", "addr", "-g", "lh", "-t", "steady.LogicalHostname", "-p", "HostnameList=198.51.100.200/24", "-p", "NetIfList=g0"},
		{"resource", "create", "srv", "-g", "lh", "-t", "steady.Process", "-p", "Resource_dependencies=addr",
			"-p", "Command=" + server + ",serve,--port," + servicePort + ",--dir," + dir, "-p", "Stop_timeout=5"},
		{"rg", "online", "lh", "--timeout", "1m"},
	} {
		if r := h1.CLI(args...); r.Code != 0 {
			b.Fatalf("steady %s: %s%s", strings.Join(args, " "), r.Stdout, r.Stderr)
		}
	}
	service := "198.51.100.200:" + servicePort
	wait := func(not string, within time.Duration) (string, time.Time) {
		for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if who := e2e.Ask(client, service, 50*time.Millisecond); who != "" && who != not {
				return who, time.Now()
			}
		}
		return "", time.Time{}
	}
	var ds []time.Duration
	for k := 0; k < 10; k++ {
		cs := c3.settle()
		leader, ctl := roles(cs)
		var victim, other *e2e.Host
		for _, h := range c3.hs {
			if h.Name != leader && h.Name != ctl && victim == nil {
				victim = h
			} else {
				other = h
			}
		}
		if r := other.CLI("rg", "switch", "lh", "--to", victim.Name, "--timeout", "1m"); r.Code != 0 {
			b.Fatalf("switch to %s: %s%s", victim.Name, r.Stdout, r.Stderr)
		}
		for who := ""; who != victim.Name; {
			if who, _ = wait("", 30*time.Second); who == "" {
				b.Fatalf("the logical hostname does not answer")
			}
		}
		t0 := time.Now()
		victim.Kill()
		who, at := wait(victim.Name, 30*time.Second)
		if who == "" {
			b.Fatalf("%s: the logical hostname answered from no other host within 30s", name)
		}
		ds = append(ds, at.Sub(t0))
		if err := victim.Start(); err != nil {
			b.Fatal(err)
		}
		if err := victim.AddGroupNICs(); err != nil {
			b.Fatal(err)
		}
	}
	p50, p90 := stats(ds)
	b.ReportMetric(p50.Seconds(), name+"-p50-s")
	b.ReportMetric(p90.Seconds(), name+"-p90-s")
	b.Logf("%s settings: SIGKILL of the owner's host -> the service answers on its logical hostname from another host: p50 %v p90 %v (runs: %v)",
		name, p50.Round(time.Millisecond), p90.Round(time.Millisecond), roundAll(ds))
	if m := checkNoOverlap(b, dir); m > 0 {
		b.Logf("%s: %d marks, no two nodes served at once", name, m)
	}
}
