package api

import (
	"encoding/json"
	"testing"
	"time"
)

// TestAttrsJSONMatchesEncodingJSON checks the hand-written encoder against
// encoding/json, field by field, for awkward strings too.
func TestAttrsJSONMatchesEncodingJSON(t *testing.T) {
	awkward := "quote\" back\\ nl\n tab\t ctl\x01 html<>& bad\xff utf8 é 😀 ls\u2028"
	a := Attrs{
		"s": String(awkward), "i": Int(-5), "u": Uint(1 << 63), "b": Bool(true),
		"t":  Time(time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))),
		"ss": Strings("a", awkward), "is": Ints(1, -2), "e": Strings(),
	}
	got, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	// Reference: what encoding/json makes of the same data.
	ref := map[string]any{}
	for name, v := range a {
		var raw any
		switch v.Type {
		case TypeString:
			raw = v.s
		case TypeInt:
			raw = v.i
		case TypeUint:
			raw = v.u
		case TypeBool:
			raw = v.b
		case TypeTime:
			raw = v.t.UTC().Format(time.RFC3339Nano)
		case TypeStrings:
			raw = append([]string{}, v.ss...)
		case TypeInts:
			raw = v.is
		}
		ref[name] = map[string]any{"type": v.Type, "value": raw}
	}
	want, _ := json.Marshal(ref)
	if string(got) != string(want) {
		t.Fatalf("Attrs.MarshalJSON\n got %s\nwant %s", got, want)
	}
	var back Attrs
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	for name, v := range a {
		if name == "s" || name == "ss" { // invalid UTF-8 does not survive, by design
			continue
		}
		if !back[name].Equal(v) {
			t.Errorf("%s: %+v != %+v", name, back[name], v)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"EC_dev", "_x", "ESC_dr_ap_state_change", "a.b:c-d", "x1"} {
		if !ValidName(ok) {
			t.Errorf("ValidName(%q) = false", ok)
		}
	}
	long := make([]byte, 129)
	for i := range long {
		long[i] = 'a'
	}
	for _, bad := range []string{"", "1x", "-x", "a b", "a$", "é", string(long)} {
		if ValidName(bad) {
			t.Errorf("ValidName(%q) = true", bad)
		}
	}
}
