package e2e

import (
	"strings"
	"testing"
	"time"
)

// The harness itself: three hosts reach each other over the bridge; a cut
// link stops that and a heal restores it; killing a host ends every
// process in it, also those its process monitor started; a killed host
// restarts with its data.
func TestHosts(t *testing.T) {
	n := NewNet(t)
	hs := n.StartHosts(3)
	for _, h := range hs {
		if r := h.CLI("status"); r.Code != 0 {
			t.Fatalf("%s: steady status: %d\n%s%s", h.Name, r.Code, r.Stdout, r.Stderr)
		}
	}
	reach := func(from, to *Host) bool {
		r := from.Exec("curl", "-s", "-o", "/dev/null", "-m", "1", "http://"+to.Addr+":9464/metrics")
		return r.Code == 0
	}
	if !reach(hs[0], hs[1]) || !reach(hs[2], hs[0]) {
		t.Fatal("the hosts do not reach each other over the bridge")
	}
	if r := hs[0].Exec("ip", "-o", "addr", "show", "eth0"); !strings.Contains(r.Stdout, "198.18.0.11/24") {
		t.Fatalf("n1's eth0: %s", r.Stdout)
	}

	if err := hs[1].Cut(); err != nil {
		t.Fatal(err)
	}
	if reach(hs[0], hs[1]) || reach(hs[1], hs[2]) {
		t.Fatal("a cut host is still reachable")
	}
	if !reach(hs[0], hs[2]) {
		t.Fatal("cutting n2 cut n1 from n3")
	}
	if err := hs[1].Heal(); err != nil {
		t.Fatal(err)
	}
	if !reach(hs[0], hs[1]) {
		t.Fatal("a healed host is not reachable")
	}

	if r := hs[2].CLI("pmf", "start", "naps", "--", "sleep", "300"); r.Code != 0 {
		t.Fatalf("pmf start on n3: %s%s", r.Stdout, r.Stderr)
	}
	if got := len(hs[2].Processes()); got < 2 {
		t.Fatalf("n3 runs %d processes, want the agent and the sleep", got)
	}
	hs[2].Kill()
	if ps := hs[2].Processes(); len(ps) != 0 {
		t.Fatalf("processes of a killed host survive: %v", ps)
	}
	if reach(hs[0], hs[2]) {
		t.Fatal("a killed host answers")
	}
	if err := hs[2].Start(); err != nil {
		t.Fatal(err)
	}
	if !reach(hs[0], hs[2]) {
		t.Fatal("a restarted host is not reachable")
	}
	if err := hs[0].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if hs[0].Running() {
		t.Fatal("n1 still runs after a stop")
	}
}
