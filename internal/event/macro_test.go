package event

import (
	"errors"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
)

func TestExpand(t *testing.T) {
	ev := &Event{
		Seq: 42, Time: time.Date(2026, 11, 22, 10, 0, 0, 5, time.UTC),
		Class: "EC_dr", Subclass: "ESC_dr_ap_state_change", Publisher: "steady:dr", Node: "n1",
		Attrs: api.Attrs{
			"dr_ap_id": api.String("pci/0000:00:1f.0"),
			"dr_hint":  api.String("dr_remove"),
			"pid":      api.Int(-7),
			"mask":     api.Uint(255),
			"ok":       api.Bool(true),
			"names":    api.Strings("a", "b", "c"),
			"cpus":     api.Ints(1, 2),
			"empty":    api.String(""),
			"class":    api.String("shadowed"),
			"when":     api.Time(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		},
	}
	tests := []struct {
		in, want string
		err      error // nil: success; errMacroSyntax: any syntax error
	}{
		{in: "plain", want: "plain"},
		{in: "$class", want: "EC_dr"},
		{in: "$subclass", want: "ESC_dr_ap_state_change"},
		{in: "$publisher/$vendor/$node", want: "steady:dr/steady/n1"},
		{in: "$sequence", want: "42"},
		{in: "$timestamp", want: "2026-11-22T10:00:00.000000005Z"},
		{in: "$dr_ap_id", want: "pci/0000:00:1f.0"},
		{in: "ap=${dr_ap_id}:hint=${dr_hint}", want: "ap=pci/0000:00:1f.0:hint=dr_remove"},
		{in: "$dr_hint-suffix", want: "dr_remove-suffix"},
		{in: "${dr_hint}suffix", want: "dr_removesuffix"},
		{in: "$pid", want: "-7"},
		{in: "$mask", want: "0xff"},
		{in: "$ok", want: "true"},
		{in: "$names", want: "a b c"},
		{in: "$cpus", want: "1 2"},
		{in: "[$empty]", want: "[]"},
		{in: "$when", want: "2026-01-02T03:04:05Z"},
		{in: "$class", want: "EC_dr"}, // built-ins win over attributes
		{in: `cost \$5`, want: "cost $5"},
		{in: `\\$class`, want: `\$class`}, // the second backslash escapes the dollar
		{in: `back\slash`, want: `back\slash`},
		{in: "$missing", err: ErrMissingAttr},
		{in: "x${missing}y", err: ErrMissingAttr},
		{in: "$", err: errMacroSyntax},
		{in: "5$", err: errMacroSyntax},
		{in: "$ x", err: errMacroSyntax},
		{in: "$1", err: errMacroSyntax},
		{in: "${dr_hint", err: errMacroSyntax},
		{in: "${}", err: errMacroSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Expand(tt.in, ev)
			switch {
			case tt.err == nil && err != nil:
				t.Fatalf("Expand(%q) error %v", tt.in, err)
			case tt.err == nil && got != tt.want:
				t.Fatalf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
			case tt.err == ErrMissingAttr && !errors.Is(err, ErrMissingAttr):
				t.Fatalf("Expand(%q) error %v, want ErrMissingAttr", tt.in, err)
			case tt.err == errMacroSyntax:
				if err == nil || errors.Is(err, ErrMissingAttr) {
					t.Fatalf("Expand(%q) = %q, %v; want a syntax error", tt.in, got, err)
				}
				if CheckMacros(tt.in) == nil {
					t.Fatalf("CheckMacros(%q) accepted it", tt.in)
				}
			}
			if tt.err != errMacroSyntax {
				if err := CheckMacros(tt.in); err != nil {
					t.Fatalf("CheckMacros(%q) = %v", tt.in, err)
				}
			}
		})
	}
}

var errMacroSyntax = errors.New("syntax")

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"$class", "${a}b", `\$x`, "$", "${", "a$b$c"} {
		f.Add(s)
	}
	ev := &Event{Class: "c", Attrs: api.Attrs{"a": api.String("A"), "b": api.Int(1)}}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Expand(s, ev)
		if cerr := CheckMacros(s); (cerr != nil) && err == nil {
			t.Fatalf("CheckMacros rejects %q but Expand accepts it as %q", s, out)
		}
	})
}
