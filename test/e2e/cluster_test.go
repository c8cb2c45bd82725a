package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
)

func clusterStatus(t *testing.T, h *Host) (api.ClusterStatus, Result) {
	t.Helper()
	r := h.CLI("-o", "json", "cluster", "status")
	var cs api.ClusterStatus
	json.Unmarshal([]byte(r.Stdout), &cs)
	return cs, r
}

// formCluster inits the cluster on the first host and joins the others.
func formCluster(t *testing.T, hs []*Host) {
	t.Helper()
	if r := hs[0].CLI("cluster", "init", "--name", "e2e", "--address", hs[0].Addr); r.Code != 0 {
		t.Fatalf("init: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, h := range hs[1:] {
		r := hs[0].CLI("cluster", "token", "create", "--ttl", "10m")
		if r.Code != 0 {
			t.Fatalf("token: %s%s", r.Stdout, r.Stderr)
		}
		tok := strings.TrimSpace(r.Stdout)
		if r := h.CLI("cluster", "join", hs[0].Addr, "--token", tok); r.Code != 0 {
			t.Fatalf("join %s: %d\n%s%s", h.Name, r.Code, r.Stdout, r.Stderr)
		}
	}
}

// Three hosts: init, join, join. Every host sees the same three nodes up,
// three voters with one leader, and the same controller.
func TestClusterFormation(t *testing.T) {
	n := NewNet(t)
	hs := n.StartHosts(3)
	formCluster(t, hs)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		var ctl string
		var last api.ClusterStatus
		for _, h := range hs {
			cs, _ := clusterStatus(t, h)
			last = cs
			voters, up := 0, 0
			for _, nd := range cs.Nodes {
				if nd.State == "up" {
					up++
				}
				if nd.StoreRole == "voter" || nd.StoreRole == "leader" {
					voters++
				}
			}
			if len(cs.Nodes) != 3 || up != 3 || voters != 3 || cs.Controller == "" || (ctl != "" && cs.Controller != ctl) {
				ok = false
			}
			ctl = cs.Controller
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status not consistent on every host: %+v", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
