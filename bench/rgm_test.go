package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
	"github.com/steady-ha/steady/test/e2e"
)

// BenchmarkRGM1000Groups creates 1,000 groups of one steady.Process each
// (a sleeping process), asks for all of them online at once, and measures
// the time until every group is ONLINE, then the agent's RSS and CPU while
// they run. The groups are brought online in one burst, as after a node
// start, so the figure includes the process monitor starting 1,000 tags.
func BenchmarkRGM1000Groups(b *testing.B) {
	const n = 1000
	for i := 0; i < b.N; i++ {
		a := e2e.StartAgent(b, e2e.AgentOptions{Plain: true})
		c := client.New(a.Socket)
		ctx := context.Background()
		t0 := time.Now()
		for k := 0; k < n; k++ {
			g := fmt.Sprintf("g%04d", k)
			if _, err := c.CreateGroup(ctx, api.RGMGroupRequest{Name: g}); err != nil {
				b.Fatalf("group %s: %v", g, err)
			}
			req := api.RGMResourceRequest{Name: fmt.Sprintf("r%04d", k), Group: g, Type: "steady.Process",
				Props: map[string]string{"Command": "/bin/sleep,3600"}}
			if _, err := c.CreateResource(ctx, req); err != nil {
				b.Fatalf("resource of %s: %v", g, err)
			}
		}
		created := time.Since(t0)

		t1 := time.Now()
		for k := 0; k < n; k++ {
			if _, err := c.GroupAction(ctx, fmt.Sprintf("g%04d", k), "online"); err != nil {
				b.Fatalf("online g%04d: %v", k, err)
			}
		}
		requested := time.Since(t1)
		deadline := time.Now().Add(10 * time.Minute)
		for {
			gs, err := c.Groups(ctx)
			if err != nil {
				b.Fatal(err)
			}
			online := 0
			for _, g := range gs {
				if g.State == "ONLINE" {
					online++
				}
			}
			if online == n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d groups ONLINE after 10 minutes", online, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		allOnline := time.Since(t1)

		pid := a.PID()
		time.Sleep(5 * time.Second)
		cpu0, w0 := cpuTicks(b, pid), time.Now()
		time.Sleep(idleSeconds())
		cpu1, wall := cpuTicks(b, pid), time.Since(w0)
		rss, hwm := memKB(b, pid, "VmRSS:"), memKB(b, pid, "VmHWM:")
		cpuPct := float64(cpu1-cpu0) / 100 / wall.Seconds() * 100

		b.ReportMetric(created.Seconds(), "create-1000-s")
		b.ReportMetric(allOnline.Seconds(), "all-online-s")
		b.ReportMetric(cpuPct, "running-cpu-%")
		b.ReportMetric(float64(rss)/1024, "rss-MB")
		b.ReportMetric(float64(hwm)/1024, "peak-rss-MB")
		b.Logf("1000 groups of one steady.Process: created in %v; online requested in %v, all ONLINE %v after the first request; "+
			"while running (%v): CPU %.2f%% of one core, RSS %.1f MB (peak %.1f MB)",
			created.Round(time.Millisecond), requested.Round(time.Millisecond), allOnline.Round(time.Millisecond),
			wall.Round(time.Second), cpuPct, float64(rss)/1024, float64(hwm)/1024)
	}
}
