package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
	"github.com/steady-ha/steady/test/e2e"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// tuned is the documented tuned setting (docs/failover.md): a takeover
// delay of 250ms×1.002 + 100ms = 350.5ms, and raft timings that let the
// store elect a new leader within about half a second when the owner's
// host held it.
const (
	tunedCluster = "cluster:\n  lease_ttl: 1s\n  keepalive: 50ms\n  fence_after: 250ms\n  stop_budget: 100ms\n"
	tuned        = tunedCluster + "store:\n  heartbeat: 25ms\n  election: 250ms\n"
)

const servicePort = "7070"

// BenchmarkFailover runs a failover group with one steady.Process (a TCP
// service) on three hosts and measures, 10 times for each setting, the
// time from SIGKILL of the owner's host until the service answers from
// another host: a client on a surviving host connects to both surviving
// hosts' addresses every 2 ms. Each setting is run with an owner that is
// neither the store leader nor the controller ("other"), and with the
// owner on the store leader's host ("leader"), where the store must
// elect a new leader first. The killed host is restarted between runs,
// and the group is switched to the next victim before it is killed.
func BenchmarkFailover(b *testing.B) {
	server := e2e.MarkServer(b)
	for i := 0; i < b.N; i++ {
		for _, s := range benchSettings() {
			benchFailover(b, server, s.name, s.cfg)
		}
	}
}

func benchFailover(b *testing.B, server, name, extra string) {
	c3 := startThree(b, extra)
	dir, err := os.MkdirTemp("", "steady-bench-marks-")
	if err != nil {
		b.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	defer os.RemoveAll(dir)
	c3.settle()
	h1 := c3.hs[0]
	for _, args := range [][]string{
		{"rg", "create", "web", "-p", "Nodelist=n1,n2,n3"},
		{"resource", "create", "srv", "-g", "web", "-t", "steady.Process",
			"-p", "Command=" + server + ",serve,--port," + servicePort + ",--dir," + dir, "-p", "Stop_timeout=5"},
		{"rg", "online", "web", "--timeout", "1m"},
	} {
		if r := h1.CLI(args...); r.Code != 0 {
			b.Fatalf("steady %s: %s%s", strings.Join(args, " "), r.Stdout, r.Stderr)
		}
	}
	if os.Getenv("STEADY_BENCH_DEBUG") != "" {
		defer func() {
			for _, h := range c3.hs {
				r := h.CLI("events", "list", "--subclass", "ESC_rgm_placement", "--last", "60")
				b.Logf("%s placement events:\n%s%s", h.Name, r.Stdout, r.Stderr)
			}
		}()
	}
	for _, variant := range []string{"other", "leader"} {
		var ds []time.Duration
		ctlToo := 0
		for k := 0; k < 10; k++ {
			cs := c3.settle()
			leader, ctl := roles(cs)
			var victim *e2e.Host
			for _, h := range c3.hs {
				switch {
				case variant == "leader" && h.Name == leader:
					victim = h
				case variant == "other" && h.Name != leader && h.Name != ctl:
					victim = h
				}
			}
			if victim == nil {
				b.Fatalf("%s: no host for variant %s: %+v", name, variant, cs)
			}
			if variant == "leader" && victim.Name == ctl {
				ctlToo++
			}
			var prober *e2e.Host
			var others []*e2e.Host
			for _, h := range c3.hs {
				if h != victim {
					others = append(others, h)
					prober = h
				}
			}
			// Put the service on the victim and wait until it answers there.
			if r := prober.CLI("rg", "switch", "web", "--to", victim.Name, "--timeout", "1m"); r.Code != 0 {
				b.Fatalf("switch to %s: %s%s", victim.Name, r.Stdout, r.Stderr)
			}
			if who, _ := waitAnswer(prober, []*e2e.Host{victim}, "", 30*time.Second); who != victim.Name {
				b.Fatalf("the service does not answer on %s", victim.Name)
			}
			t0 := time.Now()
			victim.Kill()
			who, at := waitAnswer(prober, others, victim.Name, 30*time.Second)
			if who == "" {
				b.Fatalf("%s/%s: the service answered from no other host within 30s", name, variant)
			}
			ds = append(ds, at.Sub(t0))
			if err := victim.Start(); err != nil {
				b.Fatal(err)
			}
		}
		p50, p90 := stats(ds)
		b.ReportMetric(p50.Seconds(), name+"-"+variant+"-p50-s")
		b.ReportMetric(p90.Seconds(), name+"-"+variant+"-p90-s")
		note := "neither store leader nor controller"
		if variant == "leader" {
			note = fmt.Sprintf("store leader (and controller in %d of 10)", ctlToo)
		}
		b.Logf("%s settings, owner is %s: SIGKILL of the owner's host -> the service answers from another host: p50 %v p90 %v (runs: %v)",
			name, note, p50.Round(time.Millisecond), p90.Round(time.Millisecond), roundAll(ds))
	}
	if n := checkNoOverlap(b, dir); n > 0 {
		b.Logf("%s: %d marks, no two nodes served at once", name, n)
	}
}

// waitAnswer connects from h to the service on each of hosts every 2 ms
// until one answers with a node other than not; it returns that node and
// when it answered ("" when none did within).
func waitAnswer(h *e2e.Host, hosts []*e2e.Host, not string, within time.Duration) (string, time.Time) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, t := range hosts {
			conn, err := h.Dial(t.Addr+":"+servicePort, 50*time.Millisecond)
			if err != nil {
				continue
			}
			conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
			line, err := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if f := strings.Fields(line); err == nil && len(f) > 0 && f[0] != not {
				return f[0], time.Now()
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return "", time.Time{}
}

// checkNoOverlap reads the marks every instance wrote (node, epoch,
// time, every 20 ms) and fails when two nodes' serving spans overlap.
func checkNoOverlap(b *testing.B, dir string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "marks-*.log"))
	type span struct {
		node     string
		from, to int64
	}
	var spans []span
	total := 0
	const gap = int64(150 * time.Millisecond)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		var cur *span
		for sc.Scan() {
			var node string
			var epoch uint64
			var ns int64
			if n, _ := fmt.Sscanf(sc.Text(), "%s %d %d", &node, &epoch, &ns); n != 3 {
				continue
			}
			total++
			if cur != nil && ns-cur.to <= gap {
				cur.to = ns
				continue
			}
			if cur != nil {
				spans = append(spans, *cur)
			}
			cur = &span{node, ns, ns}
		}
		if cur != nil {
			spans = append(spans, *cur)
		}
		fh.Close()
	}
	var desc []string
	for _, sp := range spans {
		desc = append(desc, fmt.Sprintf("%s[%s..%s]", sp.node, time.Unix(0, sp.from).Format("15:04:05.000"), time.Unix(0, sp.to).Format("15:04:05.000")))
	}
	b.Logf("serving spans: %s", strings.Join(desc, " "))
	for i := range spans {
		for j := i + 1; j < len(spans); j++ {
			a, c := spans[i], spans[j]
			if a.node != c.node && a.from <= c.to && c.from <= a.to {
				b.Errorf("two nodes served at once: %s %v..%v and %s %v..%v", a.node,
					time.Unix(0, a.from).Format("15:04:05.000"), time.Unix(0, a.to).Format("15:04:05.000"), c.node,
					time.Unix(0, c.from).Format("15:04:05.000"), time.Unix(0, c.to).Format("15:04:05.000"))
			}
		}
	}
	return total
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// BenchmarkFailover10000Groups creates 10,000 failover groups of one
// trivial resource each (an RTR type whose START and STOP are
// /bin/true) on three hosts, a third of them preferring each host, then
// kills a host that is neither store leader nor controller and measures
// the time until every group it ran is ONLINE on another host, with the
// controller's CPU time and memory over that interval.
//
// It runs with two layouts of the Nodelists. In "spread", the groups that
// prefer a host have either other host second, half each, as an
// administrator balancing a cluster would set them: a lost host's groups
// are shared by both survivors. In "chain", every group that prefers a
// host has the same host second, so one survivor takes all of them.
//
// STEADY_BENCH_GROUPS=N runs it with N groups instead, and
// STEADY_BENCH_LAYOUT=spread or chain with one layout.
func BenchmarkFailover10000Groups(b *testing.B) {
	layouts := []struct {
		name  string
		lists []string
	}{
		{"spread", []string{"n1,n2,n3", "n2,n3,n1", "n3,n1,n2", "n1,n3,n2", "n2,n1,n3", "n3,n2,n1"}},
		{"chain", []string{"n1,n2,n3", "n2,n3,n1", "n3,n1,n2"}},
	}
	for _, l := range layouts {
		if only := os.Getenv("STEADY_BENCH_LAYOUT"); only != "" && only != l.name {
			continue
		}
		b.Run(l.name, func(b *testing.B) { benchManyGroups(b, l.lists) })
	}
}

func benchManyGroups(b *testing.B, lists []string) {
	groups := 10000
	if s := os.Getenv("STEADY_BENCH_GROUPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 3 {
			b.Fatalf("STEADY_BENCH_GROUPS=%q: not a number of groups (at least 3)", s)
		}
		groups = n
	}
	for i := 0; i < b.N; i++ {
		c3 := startThree(b, "")
		c3.settle()
		rtr := `RESOURCE_TYPE = "true";
VENDOR_ID = STDY;
RT_VERSION = "1";
RT_BASEDIR = /bin;
FAILOVER = TRUE;
START = true;
STOP = true;
`
		h1 := c3.hs[0]
		c := client.New(h1.Socket)
		ctx := context.Background()
		if _, err := c.RegisterType(ctx, api.RGMTypeRequest{RTR: rtr, RTRFile: "true.rtr"}); err != nil {
			b.Fatalf("registering the type: %v", err)
		}
		on := true
		t0 := time.Now()
		const chunk = 60 // two store operations each; a store transaction holds 128
		for k := 0; k < groups; k += chunk {
			var decl api.RGMDeclaration
			for j := k; j < min(k+chunk, groups); j++ {
				decl.Groups = append(decl.Groups, api.RGMGroupDecl{
					Name: fmt.Sprintf("g%05d", j), Online: &on,
					Props:     map[string][]string{"Nodelist": {lists[j%len(lists)]}},
					Resources: []api.RGMResourceDecl{{Name: fmt.Sprintf("r%05d", j), Type: "STDY.true"}},
				})
			}
			if _, err := c.RGMApply(ctx, api.RGMApplyRequest{Declaration: decl}); err != nil {
				b.Fatalf("applying groups %d..: %v", k, err)
			}
		}
		created := time.Since(t0)
		online := func(from *e2e.Host, not string) (n int, of map[string]bool) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ps, err := client.New(from.Socket).Placement(ctx)
			if err != nil {
				return 0, nil
			}
			of = map[string]bool{}
			for _, p := range ps {
				for _, ns := range p.Nodes {
					if ns.State == "ONLINE" && ns.Node != not {
						n++
						of[p.Group] = true
						break
					}
				}
			}
			return n, of
		}
		for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(time.Second) {
			if n, _ := online(h1, ""); n == groups {
				break
			}
			if time.Now().After(deadline) {
				n, _ := online(h1, "")
				b.Fatalf("only %d of %d groups ONLINE after 10 minutes", n, groups)
			}
		}
		allOnline := time.Since(t0)
		cs := c3.settle()
		leader, ctl := roles(cs)
		var victim, ctlHost, watcher *e2e.Host
		for _, h := range c3.hs {
			switch {
			case h.Name == ctl:
				ctlHost = h
			case h.Name != leader:
				victim = h
			}
		}
		// The placement is watched through a survivor other than the
		// controller where there is one, so that the polling does not
		// count as the controller's work.
		for _, h := range c3.hs {
			if h != victim && (h != ctlHost || watcher == nil) {
				watcher = h
			}
		}
		if victim == nil || ctlHost == nil {
			b.Fatalf("no host is neither store leader nor controller: %+v", cs)
		}
		ps, err := client.New(watcher.Socket).Placement(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var theirs []string
		for _, p := range ps {
			if len(p.Primaries) == 1 && p.Primaries[0] == victim.Name {
				theirs = append(theirs, p.Group)
			}
		}
		pid := ctlHost.AgentPID()
		time.Sleep(2 * time.Second)
		cpu0 := cpuTicks(b, pid)
		moved := timeToOnline(b, watcher, victim, theirs)
		cpu := time.Duration(cpuTicks(b, pid)-cpu0) * 10 * time.Millisecond
		rss, hwm := memKB(b, pid, "VmRSS:"), memKB(b, pid, "VmHWM:")
		b.ReportMetric(moved.Seconds(), "moved-s")
		b.ReportMetric(cpu.Seconds(), "controller-cpu-s")
		b.ReportMetric(float64(rss)/1024, "controller-rss-MB")
		b.ReportMetric(float64(hwm)/1024, "controller-peak-rss-MB")
		b.Logf("%d groups on 3 hosts: created in %v, all ONLINE %v after the first; host %s killed (it ran %d groups): all ONLINE elsewhere after %v; "+
			"controller %s meanwhile: CPU %v, RSS %.1f MB (peak %.1f MB)",
			groups, created.Round(time.Millisecond), allOnline.Round(time.Millisecond), victim.Name, len(theirs), moved.Round(time.Millisecond),
			ctl, cpu.Round(time.Millisecond), float64(rss)/1024, float64(hwm)/1024)
	}
}

// timeToOnline kills victim and returns the time until every group of
// theirs is reported ONLINE by another node. It follows the store through
// watches on watcher's store member: polling the placement of thousands
// of groups through the API would itself load the host it asks, which is
// one that must take groups over. It logs when the victim was declared
// down, when the controller wrote the first and the last of the new
// assignments, and when some of the groups were online.
func timeToOnline(b *testing.B, watcher, victim *e2e.Host, theirs []string) time.Duration {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"unix://" + filepath.Join(watcher.DataDir, "store", "client.sock")},
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatalf("connecting to the store of %s: %v", watcher.Name, err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const (
		rgm    = "/steady/v1/rgm/"
		status = rgm + "status/"
		assign = rgm + "assign/"
		down   = "/steady/v1/cluster/down/"
	)
	cur, err := cli.Get(ctx, rgm, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		b.Fatalf("reading the store of %s: %v", watcher.Name, err)
	}
	left, unassigned := map[string]bool{}, map[string]bool{}
	for _, g := range theirs {
		left[g], unassigned[g] = true, true
	}
	from := clientv3.WithRev(cur.Header.Revision + 1)
	wch := cli.Watch(ctx, rgm, clientv3.WithPrefix(), from)
	dch := cli.Watch(ctx, down, clientv3.WithPrefix(), from)
	t1 := time.Now()
	victim.Kill()
	var marks []string
	mark := func(what string) { marks = append(marks, what+" "+time.Since(t1).Round(time.Millisecond).String()) }
	next := []int{1, len(theirs) / 10, len(theirs) / 2, len(theirs) * 9 / 10}
	defer func() { b.Logf("after the kill: %s", strings.Join(marks, ", ")) }()
	for len(left) > 0 {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case resp, ok = <-dch:
			if ok && resp.Err() == nil {
				for _, ev := range resp.Events {
					if strings.HasSuffix(string(ev.Kv.Key), "/"+victim.Name) {
						mark("declared down")
					}
				}
				continue
			}
		case resp, ok = <-wch:
		}
		if !ok || resp.Err() != nil {
			b.Fatalf("%d of %d groups of %s not online elsewhere after %v (watch: %v)", len(left), len(theirs), victim.Name, time.Since(t1).Round(time.Millisecond), resp.Err())
		}
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			if ev.Type != clientv3.EventTypePut {
				continue
			}
			if g, ok := strings.CutPrefix(key, assign); ok && unassigned[g] {
				if len(unassigned) == len(theirs) {
					mark("first reassigned")
				}
				delete(unassigned, g)
				if len(unassigned) == 0 {
					mark("all reassigned")
				}
				continue
			}
			node, group, _ := strings.Cut(strings.TrimPrefix(key, status), "/")
			if !strings.HasPrefix(key, status) || node == victim.Name || !left[group] {
				continue
			}
			var rec struct {
				Value struct {
					State string `json:"state"`
				} `json:"value"`
			}
			if json.Unmarshal(ev.Kv.Value, &rec) == nil && rec.Value.State == "ONLINE" {
				delete(left, group)
				if done := len(theirs) - len(left); len(next) > 0 && done >= next[0] {
					mark(fmt.Sprintf("%d online", done))
					next = next[1:]
				}
			}
		}
	}
	return time.Since(t1)
}

// benchSettings are the cluster settings BenchmarkFailover runs with;
// STEADY_BENCH_SETTING=default or tuned runs one.
func benchSettings() []struct{ name, cfg string } {
	all := []struct{ name, cfg string }{{"default", ""}, {"tuned", tuned}}
	if only := os.Getenv("STEADY_BENCH_SETTING"); only != "" {
		for _, s := range all {
			if s.name == only {
				return []struct{ name, cfg string }{s}
			}
		}
	}
	return all
}
