package declare

import (
	"reflect"
	"strings"
	"testing"

	"github.com/steady-ha/steady/api"
)

const sample = `version: 1
types:
  - rtr: /opt/ha-dns/ha-dns.rtr
  - ocf: ocf:heartbeat:Dummy
groups:
  web:
    online: true
    properties:
      Pingpong_interval: 600
      Nodelist: [n1, n2]
    resources:
      srv:
        type: steady.Process
        properties:
          Command: [/bin/sleep, "3600"]
      d1:
        type: Dummy
        enabled: false
`

func TestParseReadsEverything(t *testing.T) {
	d, err := Parse("c.yaml", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	want := api.RGMDeclaration{
		Types: []api.RGMTypeDecl{{RTR: "/opt/ha-dns/ha-dns.rtr"}, {OCF: "ocf:heartbeat:Dummy"}},
		Groups: []api.RGMGroupDecl{{Name: "web", Online: &yes,
			Props: map[string][]string{"Pingpong_interval": {"600"}, "Nodelist": {"n1", "n2"}},
			Resources: []api.RGMResourceDecl{
				{Name: "srv", Type: "steady.Process", Props: map[string][]string{"Command": {"/bin/sleep", "3600"}}},
				{Name: "d1", Type: "Dummy", Enabled: &no},
			}}},
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("got %+v\nwant %+v", d, want)
	}
}

func TestFormatRoundTrips(t *testing.T) {
	d, err := Parse("c.yaml", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("formatted", Format(d))
	if err != nil {
		t.Fatalf("%v\n%s", err, Format(d))
	}
	if !reflect.DeepEqual(d, again) {
		t.Fatalf("round trip changed the declaration:\n%s", Format(d))
	}
	// Resources keep their order (start order in an export).
	out := string(Format(d))
	if strings.Index(out, "srv:") > strings.Index(out, "d1:") {
		t.Fatalf("resources reordered:\n%s", out)
	}
}

func TestParseErrorsNamePlaceAndProblem(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"", "the file is empty"},
		{"groups: {}\n", `must say "version: 1"`},
		{"version: 2\n", "c.yaml:1:10: version: this steady reads version 1, not 2"},
		{"version: 1\ngroup: {}\n", `c.yaml:2:1: group: unknown key "group" (did you mean "groups"?)`},
		{"version: 1\ntypes: {a: b}\n", "c.yaml:2:8: types: must be a list"},
		{"version: 1\ntypes:\n  - {}\n", "types[0]: give rtr (an RTR file), ocf (an agent) or name"},
		{"version: 1\ngroups:\n  g:\n    online: maybe\n", "c.yaml:4:13: groups.g.online: must be true or false"},
		{"version: 1\ngroups:\n  g:\n    resources:\n      r:\n        typ: x\n", `c.yaml:6:9: groups.g.resources.r.typ: unknown key "typ" (did you mean "type"?)`},
		{"version: 1\ngroups:\n  g:\n    properties:\n      A: {b: c}\n", "groups.g.properties.A: must be a value or a list of values"},
		{"version: 1\ngroups:\n  g: {}\n  g: {}\n", `c.yaml:4:3: groups.g: "g" is already given at line 3`},
		{"version: 1\n---\nversion: 1\n", "more than one YAML document"},
		{"version: 1\ngroups: [\n", "c.yaml"},
	} {
		_, err := Parse("c.yaml", []byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to contain %q", c.doc, err, c.want)
		}
	}
}
