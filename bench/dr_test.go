package bench

import (
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/internal/dr/drtest"
	"github.com/steady-ha/steady/test/e2e"
)

// BenchmarkDRList is "steady dr list -a" end to end — the CLI process, the
// API, every driver — on a machine of 512 CPUs and 16,384 memory blocks
// (a synthetic sysfs tree). Budget: 200 ms. It reports the median and the
// 90th percentile of 30 runs.
func BenchmarkDRList(b *testing.B) {
	for i := 0; i < b.N; i++ {
		root, err := drtest.TempDir()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(root) })
		if err := drtest.Synthetic(root, 512, 16384); err != nil {
			b.Fatal(err)
		}
		cfg := e2e.DefaultConfig + "dr:\n  sysfs_root: " + root + "\n"
		a := e2e.StartAgent(b, e2e.AgentOptions{Plain: true, Config: cfg})
		bin := e2e.PlainBinary(b)
		var took []time.Duration
		for k := 0; k < 31; k++ {
			t0 := time.Now()
			out, err := exec.Command(bin, "--socket", a.Socket, "dr", "list", "-a").Output()
			d := time.Since(t0)
			if err != nil {
				b.Fatalf("dr list: %v", err)
			}
			if n := strings.Count(string(out), "\n"); n != 1+512+16384 {
				b.Fatalf("dr list printed %d lines", n)
			}
			if k > 0 { // the first run warms the page cache
				took = append(took, d)
			}
		}
		sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
		p50, p90 := took[len(took)/2], took[len(took)*9/10]
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p90.Microseconds())/1000, "p90-ms")
		b.Logf("steady dr list -a, 512 CPUs and 16,384 memory blocks, 30 runs: p50 %v, p90 %v (budget 200ms)", p50, p90)
	}
}
