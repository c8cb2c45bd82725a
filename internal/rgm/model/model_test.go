package model

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/internal/rgm/ocf"
	"github.com/steady-ha/steady/internal/rgm/rtr"
)

// methods writes executable method files into a directory and returns it.
func methods(t *testing.T, names ...string) string {
	dir := t.TempDir()
	for _, n := range names {
		os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	}
	return dir
}

func compile(t *testing.T, src string) (*ResourceType, error) {
	t.Helper()
	f, err := rtr.Parse("t.rtr", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return FromRTR("t.rtr", f)
}

func TestFromRTR(t *testing.T) {
	dir := methods(t, "start", "stop", "validate", "mon_start", "mon_stop")
	src := `RESOURCE_TYPE = "sample"; VENDOR_ID = SUNW; RT_VERSION = "1.0"; API_VERSION = 2; FAILOVER = TRUE;
RT_BASEDIR = ` + dir + `;
START = start; STOP = stop; VALIDATE = validate; MONITOR_START = mon_start; MONITOR_STOP = mon_stop;
PKGLIST = SUNWsample, SUNWsamplex;
{ PROPERTY = Start_timeout; MIN = 60; DEFAULT = 300; }
{ PROPERTY = Retry_count; MIN = 0; MAX = 10; DEFAULT = 2; TUNABLE = ANYTIME; }
{ PROPERTY = Retry_interval; MIN = 60; MAX = 3600; DEFAULT = 300; }
{ PROPERTY = Confdir; EXTENSION; STRING; TUNABLE = AT_CREATION; DESCRIPTION = "configuration directory"; }
{ PROPERTY = Verbose; EXTENSION; BOOLEAN; DEFAULT = false; }
{ PROPERTY = Level; EXTENSION; ENUM { Low, High }; DEFAULT = high; }
`
	rt, err := compile(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Name != "SUNW.sample" || rt.Version != "1.0" || !rt.Failover || rt.APIVersion != 2 {
		t.Fatalf("type %+v", rt)
	}
	if rt.Methods[MethodStart] != filepath.Join(dir, "start") || len(rt.Methods) != 5 {
		t.Fatalf("methods %v", rt.Methods)
	}
	if got := rt.Extra["PKGLIST"]; len(got) != 2 {
		t.Fatalf("PKGLIST %v", got)
	}
	check := func(name string, want func(PropSpec) bool) {
		t.Helper()
		p, ok := rt.Props.Lookup(name)
		if !ok || !want(p) {
			t.Errorf("%s: %+v (%v)", name, p, ok)
		}
	}
	check("start_timeout", func(p PropSpec) bool { return *p.Min == 60 && p.Default[0] == "300" && p.Tunable == TunableAnytime })
	check("Stop_timeout", func(p PropSpec) bool { return p.Default[0] == "3600" }) // declared method, default timeout
	check("Retry_count", func(p PropSpec) bool { return *p.Max == 10 && p.Tunable == TunableAnytime })
	check("Retry_interval", func(p PropSpec) bool { return p.Tunable == TunableWhenDisabled })
	check("Confdir", func(p PropSpec) bool { return p.Extension && !p.HasDefault && p.Tunable == TunableAtCreation })
	check("Verbose", func(p PropSpec) bool { return p.Default[0] == "FALSE" })
	check("Level", func(p PropSpec) bool { return p.Default[0] == "High" })
	check("Failover_mode", func(p PropSpec) bool { return p.Default[0] == FailoverNone })
	if _, ok := rt.Props.Lookup("Thorough_probe_interval"); ok {
		t.Error("an undeclared conditional property exists")
	}
	if _, ok := rt.Props.Lookup("Update_timeout"); ok {
		t.Error("the timeout of an undeclared method exists")
	}
}

func TestFromRTRErrors(t *testing.T) {
	dir := methods(t, "start", "stop")
	os.WriteFile(filepath.Join(dir, "open"), []byte("#!/bin/sh\n"), 0o777)
	os.Chmod(filepath.Join(dir, "open"), 0o777)
	head := "RESOURCE_TYPE = x; RT_VERSION = 1; RT_BASEDIR = " + dir + "; START = start; STOP = stop;\n"
	tests := []struct {
		name, src, want string
	}{
		{"no version", "RESOURCE_TYPE = x; RT_BASEDIR = " + dir + "; START = start; STOP = stop;\n", "t.rtr:1:1: RT_VERSION is required"},
		{"no start", "RESOURCE_TYPE = x; RT_VERSION = 1; RT_BASEDIR = " + dir + "; STOP = stop;\n", "a START (or PRENET_START) method is required"},
		{"unknown rt prop", head + "COLOUR = blue;\n", "t.rtr:2:1: unknown resource type property COLOUR"},
		{"missing method", head + "VALIDATE = nope;\n", "t.rtr:2:1: VALIDATE method: " + dir + "/nope does not exist"},
		{"writable method", head + "UPDATE = open;\n", "writable by group or others"},
		{"relative without basedir", "RESOURCE_TYPE = x; RT_VERSION = 1; START = start; STOP = /bin/true;\n", "START method \"start\" is relative and there is no RT_BASEDIR"},
		{"bad boolean", head + "FAILOVER = maybe;\n", "FAILOVER must be TRUE or FALSE"},
		{"type keyword on system prop", head + "{ PROPERTY = Start_timeout; INT; }\n", "t.rtr:2:29: INT is only allowed on extension properties"},
		{"undeclarable system prop", head + "{ PROPERTY = Colour; }\n", "Colour is not a system property this type can declare"},
		{"timeout of undeclared method", head + "{ PROPERTY = Update_timeout; DEFAULT = 10; }\n", "Update_timeout is not a system property"},
		{"extension without type", head + "{ PROPERTY = p; EXTENSION; }\n", "extension property p needs a type"},
		{"two types", head + "{ PROPERTY = p; EXTENSION; INT; STRING; }\n", "has several types: INT, STRING"},
		{"per node without default", head + "{ PROPERTY = p; EXTENSION; INT; PER_NODE; }\n", "a PER_NODE property needs a DEFAULT"},
		{"bad default", head + "{ PROPERTY = p; EXTENSION; INT; MIN = 5; DEFAULT = 3; }\n", "the DEFAULT of p is invalid"},
		{"enum default", head + "{ PROPERTY = p; EXTENSION; ENUM { a, b }; DEFAULT = c; }\n", `"c" is not one of a, b`},
		{"timeout min 0", head + "{ PROPERTY = Start_timeout; MIN = 0; }\n", "a method timeout cannot have MIN below 1"},
		{"min above max", head + "{ PROPERTY = Retry_count; MIN = 5; MAX = 1; }\n", "MAX 1 is below MIN 5"},
		{"bad tunable", head + "{ PROPERTY = Retry_count; TUNABLE = SOMETIMES; }\n", "TUNABLE must be NONE"},
		{"unknown attribute", head + "{ PROPERTY = Retry_count; COLOUR = red; }\n", "unknown attribute COLOUR"},
		{"declared twice", head + "{ PROPERTY = Retry_count; }\n{ PROPERTY = retry_count; }\n", "declared twice"},
		{"query only", head + "{ PROPERTY = Status; EXTENSION; STRING; }\n", "is a query-only system property"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compile(t, tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSchemaCheck(t *testing.T) {
	s := Schema{
		{Name: "Port", Type: TypeInt, Min: intp(1), Max: intp(65535), HasDefault: true, Default: []string{"80"}},
		{Name: "Mode", Type: TypeEnum, Enum: []string{"Fast", "Safe"}, HasDefault: true, Default: []string{"Safe"}},
		{Name: "Hosts", Type: TypeStringArray, ArrayMin: intp(1)},
		{Name: "On", Type: TypeBool, HasDefault: true, Default: []string{"TRUE"}},
		{Name: "Opt", Type: TypeString, Optional: true},
	}
	got, err := s.Check(Values{"port": {" 8080"}, "mode": {"fast"}, "HOSTS": {"a", "b"}, "on": {"false"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if got["Port"][0] != "8080" || got["Mode"][0] != "Fast" || got["On"][0] != "FALSE" || len(got["Hosts"]) != 2 {
		t.Fatalf("normalized %v", got)
	}
	_, err = s.Check(Values{"Port": {"0"}, "Mode": {"slow"}, "On": {"yes"}, "Nope": {"1"}}, true)
	for _, want := range []string{"0 is below the minimum 1", `"slow" is not one of Fast, Safe`, `"yes" is not TRUE or FALSE`,
		`unknown property "Nope"`, "Hosts has no default and must be given"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if e := s.Effective(Values{"Hosts": {"h"}}); len(e) != 4 || e["Port"][0] != "80" {
		t.Fatalf("effective %v", e)
	}
}

func TestConfigValidate(t *testing.T) {
	c := NewConfig()
	c.Groups["web"] = &Group{Name: "web", Props: Values{"Maximum_primaries": {"2"}, "Desired_primaries": {"3"}}}
	c.Groups["a"] = &Group{Name: "a", Props: Values{"RG_dependencies": {"b"}, "RG_affinities": {"++c", "%x"}}}
	c.Groups["b"] = &Group{Name: "b", Props: Values{"RG_dependencies": {"a"}}}
	c.Types["failover"] = &ResourceType{Name: "failover", Failover: true, Props: append(Schema(nil), alwaysProps...)}
	proc := Values{"Command": {"/bin/sleep", "10"}}
	c.Resources["r1"] = &Resource{Name: "r1", Group: "web", Type: "failover"}
	c.Resources["r2"] = &Resource{Name: "r2", Group: "a", Type: ProcessType, Props: Values{"Command": {"/bin/true"}, "Resource_dependencies": {"r3"}}}
	c.Resources["r3"] = &Resource{Name: "r3", Group: "a", Type: ProcessType, Props: Values{"Command": {"/bin/true"}, "Resource_dependencies_weak": {"r2"}}}
	c.Resources["r4"] = &Resource{Name: "r4", Group: "nope", Type: ProcessType, Props: proc}
	c.Resources["r5"] = &Resource{Name: "r5", Group: "a", Type: "nope"}
	c.Resources["r6"] = &Resource{Name: "r6", Group: "a", Type: ProcessType}
	err := c.Validate()
	for _, want := range []string{
		"group web: Desired_primaries 3 is more than Maximum_primaries 2",
		`RG_affinities names "c", which is not a group`,
		`RG_affinities entry "%x"`,
		"RG_dependencies form a cycle: a -> b -> a",
		"resource r1: type failover is a failover type and cannot be in group web",
		"resource dependencies form a cycle: r2 -> r3 -> r2",
		`resource r4: group "nope" does not exist`,
		`resource r5: type "nope" is not registered`,
		"resource r6: rgm: invalid: property Command has no default",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not report %q:\n%v", want, err)
		}
	}
}

func TestStartOrder(t *testing.T) {
	c := NewConfig()
	c.Groups["g"] = &Group{Name: "g"}
	add := func(name string, deps ...string) {
		r := &Resource{Name: name, Group: "g", Type: ProcessType, Props: Values{"Command": {"/bin/true"}, "Resource_dependencies": deps}}
		r.Created = r.Created.Add(timeOffset(len(c.Resources)))
		c.Resources[name] = r
	}
	add("app", "db", "ip")
	add("db", "ip")
	add("ip")
	add("other")
	var names []string
	for _, r := range c.StartOrder("g") {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "ip,db,app,other" {
		t.Fatalf("start order %v", names)
	}
}

func TestFromOCF(t *testing.T) {
	meta := `<?xml version="1.0"?>
<resource-agent name="Dummy" version="1.0"><version>1.0</version>
<shortdesc lang="en">d</shortdesc>
<parameters>
<parameter name="state" unique="1"><shortdesc>s</shortdesc><content type="string" default="/run/x-RESOURCE_ID"/></parameter>
<parameter name="count" required="1"><content type="integer"/></parameter>
<parameter name="flag"><content type="boolean" default="yes"/></parameter>
<parameter name="mode"><content type="select" default="a"><option value="a"/><option value="b"/></content></parameter>
<parameter name="stop_timeout"><content type="integer"/></parameter>
</parameters>
<actions><action name="start" timeout="20s"/><action name="stop" timeout="1m"/>
<action name="monitor" timeout="15" interval="10s"/><action name="reload" timeout="20s"/></actions>
</resource-agent>`
	m, err := ocf.ParseMetadata("ocf:heartbeat:Dummy", []byte(meta))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := FromOCF("ocf:heartbeat:Dummy", "/usr/lib/ocf/resource.d/heartbeat/Dummy", m)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := rt.Props.Lookup("Stop_timeout")
	tp, _ := rt.Props.Lookup("Thorough_probe_interval")
	pt, _ := rt.Props.Lookup("Probe_timeout")
	if st.Default[0] != "60" || tp.Default[0] != "10" || pt.Default[0] != "15" || !rt.HasMethod(MethodUpdate) || rt.HasMethod(MethodValidate) {
		t.Fatalf("timeouts %v %v %v", st.Default, tp.Default, pt.Default)
	}
	state, _ := rt.Props.Lookup("state")
	if !state.Optional || state.HasDefault || state.AgentDefault != "/run/x-RESOURCE_ID" {
		t.Fatalf("an agent default must not become ours: %+v", state)
	}
	if _, err := rt.Props.Check(Values{}, true); err == nil || !strings.Contains(err.Error(), "count has no default") {
		t.Fatalf("required parameter: %v", err)
	}
	// A parameter named like a system property gets a prefix, and keeps
	// its own name towards the agent.
	if p, ok := rt.Props.Lookup("ocf_stop_timeout"); !ok || !p.Extension || p.Param != "stop_timeout" {
		t.Fatalf("clashing parameter: %+v", p)
	}
	params := rt.OCFParams(rt.Props.Effective(Values{"count": {"3"}, "flag": {"TRUE"}, "ocf_stop_timeout": {"5"}}))
	if len(params) != 3 || params["flag"] != "true" || params["count"] != "3" || params["stop_timeout"] != "5" {
		t.Fatalf("params %v: unset optional ones must not be passed", params)
	}
	if _, err := ocf.ParseMetadata("ocf:x:Broken", []byte("<resource-agent name=")); err == nil || !strings.Contains(err.Error(), "the meta-data of ocf:x:Broken is not valid XML") {
		t.Fatalf("broken XML: %v", err)
	}
}

func timeOffset(n int) time.Duration { return time.Duration(n) * time.Second }
