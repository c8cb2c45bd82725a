package bench

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api/client"
	"github.com/steady-ha/steady/test/e2e"
)

// BenchmarkNodeDown kills a node (SIGKILL of its agent) and measures the
// time until the other node reports it down in "steady cluster status",
// with the default lease settings and a tuned one, over 10 kills each.
// The two agents share an external etcd (Debian's etcd-server on
// loopback): the store stays up while nodes die.
func BenchmarkNodeDown(b *testing.B) {
	settings := []struct{ name, cfg string }{
		{"default", ""},
		{"tuned", tunedCluster},
	}
	for i := 0; i < b.N; i++ {
		ext := e2e.StartExternalEtcd(b)
		for _, s := range settings {
			cfg := ext.Config() + s.cfg
			watcher := e2e.StartAgent(b, e2e.AgentOptions{Plain: true, Config: strings.Replace(cfg, "{{.Name}}", "w-"+s.name, 1)})
			victim := e2e.NewAgent(b, e2e.AgentOptions{Plain: true, Config: strings.Replace(cfg, "{{.Name}}", "v-"+s.name, 1)})
			c := client.New(watcher.Socket)
			state := func() string {
				cs, err := c.ClusterStatus(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				for _, n := range cs.Nodes {
					if n.Name == "v-"+s.name {
						return n.State
					}
				}
				return ""
			}
			var took []time.Duration
			for k := 0; k < 10; k++ {
				if err := victim.Start(); err != nil {
					b.Fatal(err)
				}
				for state() != "up" {
					time.Sleep(10 * time.Millisecond)
				}
				time.Sleep(300 * time.Millisecond) // a few keepalives into its life
				t0 := time.Now()
				victim.Kill()
				for state() != "down" {
					if time.Since(t0) > 20*time.Second {
						b.Fatal("the killed node was never reported down")
					}
					time.Sleep(5 * time.Millisecond)
				}
				took = append(took, time.Since(t0))
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			p50, p90 := took[len(took)/2], took[len(took)*9/10]
			b.ReportMetric(p50.Seconds(), s.name+"-p50-s")
			b.ReportMetric(p90.Seconds(), s.name+"-p90-s")
			b.Logf("%s lease settings: node killed -> reported down, 10 kills: p50 %v, p90 %v, min %v, max %v",
				s.name, p50.Round(time.Millisecond), p90.Round(time.Millisecond), took[0].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
		}
	}
}
