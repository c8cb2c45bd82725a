package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
	"github.com/steady-ha/steady/test/e2e"
)

// three is a cluster of three test hosts (plain build) for the
// whole-cluster benchmarks.
type three struct {
	b      *testing.B
	net    *e2e.Net
	hs     []*e2e.Host
	byName map[string]*e2e.Host
}

// startThree starts three hosts with extra configuration appended to the
// harness's and forms a cluster of them.
func startThree(b *testing.B, extra string) *three {
	n := e2e.NewNet(b)
	n.Plain = true
	c := &three{b: b, net: n, byName: map[string]*e2e.Host{}}
	for k := 1; k <= 3; k++ {
		h := n.AddHost(k, e2e.HostConfig+extra)
		if err := h.Start(); err != nil {
			b.Fatal(err)
		}
		c.hs = append(c.hs, h)
		c.byName[h.Name] = h
	}
	n.FormCluster(c.hs)
	return c
}

// status asks h for the cluster's status (empty when it does not answer).
func (c *three) status(h *e2e.Host) api.ClusterStatus {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cs, err := client.New(h.Socket).ClusterStatus(ctx)
	if err != nil {
		return api.ClusterStatus{}
	}
	return *cs
}

// settle waits until a running host sees all three nodes up, three store
// voters with a leader, and a controller.
func (c *three) settle() api.ClusterStatus {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var cs api.ClusterStatus
		for _, h := range c.hs {
			if h.Running() {
				cs = c.status(h)
				break
			}
		}
		up, voters, leader := 0, 0, ""
		for _, nd := range cs.Nodes {
			if nd.State == "up" {
				up++
			}
			if nd.StoreRole == "voter" || nd.StoreRole == "leader" {
				voters++
			}
			if nd.StoreRole == "leader" {
				leader = nd.Name
			}
		}
		if up == 3 && voters == 3 && leader != "" && cs.Controller != "" {
			return cs
		}
	}
	c.b.Fatal("the cluster did not settle")
	return api.ClusterStatus{}
}

// roles names the store leader's host and the controller's in cs.
func roles(cs api.ClusterStatus) (leader, controller string) {
	for _, nd := range cs.Nodes {
		if nd.StoreRole == "leader" {
			leader = nd.Name
		}
	}
	return leader, cs.Controller
}

func stats(d []time.Duration) (p50, p90 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)*9/10]
}
