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

// BenchmarkAgent1000Tags supervises 1,000 tags (each a sleeping process in
// its own cgroup) and measures the agent's RSS and CPU while nothing
// happens. Budget: RSS at most 80 MB, idle CPU under 1% of a core.
func BenchmarkAgent1000Tags(b *testing.B) {
	for i := 0; i < b.N; i++ {
		a := e2e.StartAgent(b, e2e.AgentOptions{Plain: true})
		c := client.New(a.Socket)
		start := time.Now()
		for n := 0; n < 1000; n++ {
			req := api.PMFStartRequest{Tag: fmt.Sprintf("t%04d", n), Command: []string{"/bin/sleep", "3600"},
				Dir: "/", Env: []string{"PATH=/bin"}, Retries: 3}
			if _, err := c.PMFStart(context.Background(), req); err != nil {
				b.Fatalf("tag %d: %v", n, err)
			}
		}
		b.ReportMetric(time.Since(start).Seconds(), "start-1000-s")
		pid := a.PID()
		time.Sleep(5 * time.Second)
		cpu0, t0 := cpuTicks(b, pid), time.Now()
		time.Sleep(idleSeconds())
		cpu1, wall := cpuTicks(b, pid), time.Since(t0)
		rss, hwm := memKB(b, pid, "VmRSS:"), memKB(b, pid, "VmHWM:")
		cpuPct := float64(cpu1-cpu0) / 100 / wall.Seconds() * 100
		b.ReportMetric(cpuPct, "idle-cpu-%")
		b.ReportMetric(float64(rss)/1024, "rss-MB")
		b.ReportMetric(float64(hwm)/1024, "peak-rss-MB")
		b.Logf("1000 tags started in %v; idle %v: CPU %.2f%% of one core, RSS %.1f MB (peak %.1f MB)",
			time.Since(start).Round(time.Second), wall.Round(time.Second), cpuPct, float64(rss)/1024, float64(hwm)/1024)
	}
}
