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

// BenchmarkClusterHosts runs on three test hosts that formed a cluster
// (embedded store members, mutual TLS): 10 times, SIGKILL of a host that
// is neither the controller nor the store leader, until the controller
// reports it down; then 10 times, SIGKILL of the store leader's host,
// until a write through another host succeeds. The killed host is
// restarted between runs.
func BenchmarkClusterHosts(b *testing.B) {
	for i := 0; i < b.N; i++ {
		for _, s := range []struct{ name, cfg string }{
			{"default", ""},
			{"tuned", tuned},
		} {
			benchClusterHosts(b, s.name, s.cfg)
		}
	}
}

func benchClusterHosts(b *testing.B, name, extra string) {
	{
		c3 := startThree(b, extra)
		byName, status, settle := c3.byName, c3.status, c3.settle
		var down, writes []time.Duration
		for k := 0; k < 10; k++ {
			cs := settle()
			var victim, ctl *e2e.Host
			ctl = byName[cs.Controller]
			for _, nd := range cs.Nodes {
				if nd.Name != cs.Controller && nd.StoreRole != "leader" {
					victim = byName[nd.Name]
				}
			}
			if victim == nil {
				b.Fatalf("no host is neither controller nor leader: %+v", cs)
			}
			t0 := time.Now()
			victim.Kill()
			for {
				st := ""
				for _, nd := range status(ctl).Nodes {
					if nd.Name == victim.Name {
						st = nd.State
					}
				}
				if st == "down" {
					break
				}
				if time.Since(t0) > 30*time.Second {
					b.Fatal("never reported down")
				}
				time.Sleep(5 * time.Millisecond)
			}
			down = append(down, time.Since(t0))
			if err := victim.Start(); err != nil {
				b.Fatal(err)
			}
		}
		for k := 0; k < 10; k++ {
			cs := settle()
			var leader, other *e2e.Host
			for _, nd := range cs.Nodes {
				if nd.StoreRole == "leader" {
					leader = byName[nd.Name]
				} else {
					other = byName[nd.Name]
				}
			}
			c := client.New(other.Socket)
			t0 := time.Now()
			leader.Kill()
			for try := 0; ; try++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := c.CreateGroup(ctx, api.RGMGroupRequest{Name: fmt.Sprintf("w%d-%d", k, try)})
				cancel()
				if err == nil {
					break
				}
				if time.Since(t0) > 30*time.Second {
					b.Fatalf("no write succeeded: %v", err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			writes = append(writes, time.Since(t0))
			if err := leader.Start(); err != nil {
				b.Fatal(err)
			}
		}
		d50, d90 := stats(down)
		w50, w90 := stats(writes)
		b.ReportMetric(d50.Seconds(), name+"-down-p50-s")
		b.ReportMetric(d90.Seconds(), name+"-down-p90-s")
		b.ReportMetric(w50.Seconds(), name+"-writes-p50-s")
		b.ReportMetric(w90.Seconds(), name+"-writes-p90-s")
		b.Logf("3 hosts, "+name+" lease settings: host killed -> controller reports it down p50 %v p90 %v; store leader's host killed -> a write succeeds p50 %v p90 %v",
			d50.Round(time.Millisecond), d90.Round(time.Millisecond), w50.Round(time.Millisecond), w90.Round(time.Millisecond))
	}
}
