package bench

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/test/e2e"
)

func TestMain(m *testing.M) {
	code := m.Run()
	e2e.CleanupBinary()
	os.Exit(code)
}

// idleSeconds is how long the idle agent is measured (the budget speaks of
// 60 s); STEADY_BENCH_IDLE overrides it for quick runs.
func idleSeconds() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("STEADY_BENCH_IDLE")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 60 * time.Second
}

// BenchmarkAgentIdle starts a dev-mode agent (plain build), lets it settle,
// then measures its CPU time and memory over the idle period. Budget: under
// 1% of one core and RSS under 80 MB.
func BenchmarkAgentIdle(b *testing.B) {
	for i := 0; i < b.N; i++ {
		a := e2e.StartAgent(b, e2e.AgentOptions{Plain: true})
		pid := a.PID()
		time.Sleep(5 * time.Second) // let start-up work (etcd's first snapshot checks, GC) pass
		cpu0, t0 := cpuTicks(b, pid), time.Now()
		time.Sleep(idleSeconds())
		cpu1, wall := cpuTicks(b, pid), time.Since(t0)
		rss, hwm := memKB(b, pid, "VmRSS:"), memKB(b, pid, "VmHWM:")
		a.Stop()
		// /proc/PID/stat counts in clock ticks of 1/100 s (USER_HZ).
		cpuPct := float64(cpu1-cpu0) / 100 / wall.Seconds() * 100
		b.ReportMetric(cpuPct, "cpu-%")
		b.ReportMetric(float64(rss)/1024, "rss-MB")
		b.ReportMetric(float64(hwm)/1024, "peak-rss-MB")
		b.Logf("idle %v: CPU %.2f%% of one core, RSS %.1f MB (peak %.1f MB)", wall.Round(time.Second), cpuPct, float64(rss)/1024, float64(hwm)/1024)
	}
}

func cpuTicks(b *testing.B, pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

func memKB(b *testing.B, pid int, key string) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, key) {
			n, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return n
		}
	}
	b.Fatalf("%s not in /proc/%d/status", key, pid)
	return 0
}
