package compat

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
)

func TestParseListOpts(t *testing.T) {
	o, err := ParseListOpts("select=class(cpu):type(cpu),match=partial,sort=-ap_id,cols=ap_id:info,cols2=busy,delim=|,noheadings")
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Select) != 2 || !o.Partial || o.Sort[0] != "-ap_id" || len(o.Cols) != 2 || o.Cols2[0] != "busy" || o.Delim != "|" || !o.NoHeadings {
		t.Fatalf("%+v", o)
	}
	for in, want := range map[string]string{
		"select=colour(red)": "attribute is ap_id, class or type",
		"select=class":       "write attr(value)",
		"cols=ap_id:size":    `unknown field "size"`,
		"cols=-ap_id":        `unknown field "-ap_id"`,
		"match=fuzzy":        "use exact or partial",
		"sort=":              "needs a value",
		"frobnicate":         "unknown listing option",
	} {
		if _, err := ParseListOpts(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}

func TestSelectAndWrite(t *testing.T) {
	when := time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local)
	aps := []api.AP{
		{ID: "cpu10", Class: "cpu", Type: "cpu", Receptacle: "connected", Occupant: "configured", Condition: "ok", Info: "online", StatusTime: when},
		{ID: "cpu2", Class: "cpu", Type: "cpu", Receptacle: "connected", Occupant: "unconfigured", Condition: "ok", Info: "offline"},
		{ID: "mem0", Class: "memory", Type: "memory", Receptacle: "connected", Occupant: "configured", Condition: "ok"},
		{ID: "net/eth0", Class: "net", Type: "veth", Receptacle: "connected", Occupant: "configured", Condition: "ok", PhysID: "/sys/class/net/eth0"},
	}
	got, err := SelectAPs(aps, nil, ListOpts{Sort: []string{"ap_id"}}, false)
	if err != nil || len(got) != 3 || got[0].ID != "cpu2" || got[1].ID != "cpu10" {
		t.Fatalf("natural sort without memory blocks: %v %+v", err, got)
	}
	if got, _ := SelectAPs(aps, []string{"memory"}, ListOpts{}, false); len(got) != 1 {
		t.Fatalf("a named class shows memory blocks: %+v", got)
	}
	if _, err := SelectAPs(aps, []string{"cpu3"}, ListOpts{}, true); err == nil || !strings.Contains(err.Error(), "cpu3") {
		t.Fatalf("unknown operand: %v", err)
	}
	o, _ := ParseListOpts("select=type(ve),match=partial")
	if got, _ := SelectAPs(aps, nil, o, true); len(got) != 1 || got[0].ID != "net/eth0" {
		t.Fatalf("partial match: %+v", got)
	}

	var b bytes.Buffer
	WriteAPs(&b, aps[:2], ListOpts{}, true)
	want := "Ap_Id  Receptacle  Occupant      Condition  Information\n" +
		"When          Type  Busy  Phys_Id\n" +
		"cpu10  connected   configured    ok         online\n" +
		"Mar  4 05:06  cpu   n\n" +
		"cpu2   connected   unconfigured  ok         offline\n" +
		"unavailable   cpu   n\n"
	if b.String() != want {
		t.Fatalf("verbose listing:\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	o, _ = ParseListOpts("cols=ap_id:status_time_p:class,delim=;,noheadings")
	WriteAPs(&b, aps[:2], o, false)
	if b.String() != "cpu10;20260304050607;cpu\ncpu2;;cpu\n" {
		t.Fatalf("parsable listing: %q", b.String())
	}
	b.Reset()
	WriteAnswers(&b, []api.RCMAnswer{{Resource: "/dev/sdb1", Client: "filesys", Error: "in use", Info: "mounted on /data"}})
	if !strings.Contains(b.String(), "/dev/sdb1  filesys  in use [mounted on /data]") {
		t.Fatalf("answers:\n%s", b.String())
	}
}
