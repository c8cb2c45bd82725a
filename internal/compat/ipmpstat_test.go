package compat

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
)

func sampleIPMP() *api.IPMPStatus {
	return &api.IPMPStatus{
		Groups: []api.IPMPGroup{{Name: "g0", State: "degraded", FDT: api.Duration(10 * time.Second), Active: []string{"net1"}, Inactive: []string{"net2"}, Unusable: []string{"net0"}}},
		Interfaces: []api.IPMPInterface{
			{Name: "net0", Group: "g0", Link: "down", Probe: "failed", State: "failed", Present: true},
			{Name: "net2", Group: "g0", Standby: true, Inactive: true, Link: "up", Probe: "ok", State: "ok", Present: true},
		},
		Addresses: []api.IPMPAddress{{Address: "192.0.2.100/24", Group: "g0", State: "up", Inbound: "net1", Outbound: []string{"net1"}},
			{Address: "192.0.2.101/24", Group: "g0", State: "down"}},
		Targets: []api.IPMPTargets{{Interface: "net0", Mode: "routes", TestAddr: "192.0.2.21", Targets: []string{"192.0.2.1", "192.0.2.2"}}},
	}
}

func TestIPMPStatTables(t *testing.T) {
	st := sampleIPMP()
	var b bytes.Buffer
	PrintIPMP(&b, IPMPFields['g'], IPMPRows(st, 'g'), false)
	want := "GROUP  GROUPNAME  STATE     FDT     INTERFACES\ng0     g0         degraded  10.00s  net1 (net2) [net0]\n"
	if b.String() != want {
		t.Errorf("-g:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	PrintIPMP(&b, IPMPFields['i'], IPMPRows(st, 'i'), false)
	if !strings.Contains(b.String(), "net0       no      g0     -----d-  down  failed  failed") ||
		!strings.Contains(b.String(), "net2       no      g0     is-----  up    ok      ok") {
		t.Errorf("-i:\n%s", b.String())
	}
	b.Reset()
	PrintIPMP(&b, IPMPFields['a'], IPMPRows(st, 'a'), false)
	if !strings.Contains(b.String(), "192.0.2.101/24  down   g0     --       --") {
		t.Errorf("-a: empty cells are --:\n%s", b.String())
	}
	// Parsable: no heading, ':' separated, ':' escaped.
	b.Reset()
	fields, err := SelectFields('t', "interface,targets,testaddr")
	if err != nil {
		t.Fatal(err)
	}
	st.Targets[0].Targets = []string{"2001:db8::1"}
	PrintIPMP(&b, fields, IPMPRows(st, 't'), true)
	if b.String() != `net0:2001\:db8\:\:1:192.0.2.21`+"\n" {
		t.Errorf("-P: %q", b.String())
	}
	if _, err := SelectFields('g', "GROUP,BOGUS"); err == nil || !strings.Contains(err.Error(), `unknown output field "BOGUS"`) {
		t.Errorf("bad field: %v", err)
	}
	if f, _ := SelectFields('p', "all"); len(f) != 7 {
		t.Errorf("-p all: %v", f)
	}
}

func TestIpmpstatUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"-g", "-i"}, {"-P", "-g"}, {"-g", "extra"}, {"-x"}} {
		var out, errb bytes.Buffer
		if code := ipmpstatMain(t.Context(), args, Stdio{Out: &out, Err: &errb}); code != 2 || !strings.Contains(errb.String(), "usage: ipmpstat") {
			t.Errorf("%v: exit %d %s", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := ifMpadmMain(t.Context(), []string{"-x"}, Stdio{Out: &out, Err: &errb}); code != 2 || !strings.Contains(errb.String(), "usage: if_mpadm") {
		t.Errorf("if_mpadm -x: %d %s", code, errb.String())
	}
}
