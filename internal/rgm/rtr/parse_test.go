package rtr

import (
	"errors"
	"strings"
	"testing"
)

const sample = `#
# Registration information for the HA-DNS sample data service.
#
RESOURCE_TYPE = "sample";
VENDOR_ID = SUNW;
RT_DESCRIPTION = "Domain Name Service on Sun Cluster";

RT_VERSION ="1.0";
API_VERSION = 2;
FAILOVER = TRUE;

RT_BASEDIR=/opt/SUNWsample/bin;
PKGLIST = SUNWsample;

START           =   dns_svc_start;
STOP            =   dns_svc_stop;
VALIDATE        =   dns_validate;
UPDATE          =   dns_update;
MONITOR_START   =   dns_monitor_start;
MONITOR_STOP    =   dns_monitor_stop;
monitor_check   =   dns_monitor_check;
SINGLE_INSTANCE;

#$upgrade
#$upgrade_from "1.0" anytime

{
	PROPERTY = Start_timeout;
	MIN=60;
	DEFAULT=300;
}
{ PROPERTY = Retry_count; MIN=0; MAX=10; DEFAULT=2; TUNABLE = ANYTIME; }
{
	PROPERTY = Confdir;
	EXTENSION;
	STRING;
	TUNABLE = AT_CREATION;
	DESCRIPTION = "The Configuration Directory Path";
}
{ PROPERTY = LogLevel; EXTENSION; ENUM { Off, Terse, "Very verbose" }; DEFAULT = Terse; }
{ PROPERTY = Hosts; EXTENSION; STRINGARRAY; DEFAULT = a, b,c; }
`

func TestParseSample(t *testing.T) {
	f, err := Parse("sample.rtr", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Props) != 16 || f.Props[0].Key != "RESOURCE_TYPE" || f.Props[0].Values[0].Text != "sample" || !f.Props[0].Values[0].Quoted {
		t.Fatalf("props %+v", f.Props[:1])
	}
	byKey := map[string]Prop{}
	for _, p := range f.Props {
		byKey[p.Key] = p
	}
	if p := byKey["MONITOR_CHECK"]; p.Name != "monitor_check" || p.Values[0].Text != "dns_monitor_check" {
		t.Errorf("case-insensitive names: %+v", p)
	}
	if p := byKey["SINGLE_INSTANCE"]; !p.Bare || p.Pos != (Pos{22, 1}) {
		t.Errorf("bare boolean: %+v", p)
	}
	if p := byKey["RT_BASEDIR"]; p.Values[0].Text != "/opt/SUNWsample/bin" {
		t.Errorf("paths are bare words: %+v", p)
	}
	if len(f.Directives) != 2 || f.Directives[1].Text != `#$upgrade_from "1.0" anytime` {
		t.Errorf("directives %+v", f.Directives)
	}
	if len(f.Decls) != 5 {
		t.Fatalf("%d declarations", len(f.Decls))
	}
	if d := f.Decls[3]; d.Property.Text != "LogLevel" || len(d.Enum) != 3 || d.Enum[2].Text != "Very verbose" {
		t.Errorf("enum %+v", d)
	}
	if d := f.Decls[4]; len(d.Attrs[2].Values) != 3 || d.Attrs[2].Values[2].Text != "c" {
		t.Errorf("array default %+v", d.Attrs)
	}
	if d := f.Decls[2]; d.Attrs[3].Values[0].Text != "The Configuration Directory Path" {
		t.Errorf("description %+v", d.Attrs)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "# nothing\n", "x.rtr:2:1: the file is empty"},
		{"not first", "RT_VERSION = 1;\nRESOURCE_TYPE = x;\n", "x.rtr:1:1: the first statement must be RESOURCE_TYPE"},
		{"missing semicolon", "RESOURCE_TYPE = x\nRT_VERSION = 1;\n", `x.rtr:2:1: expected "," or ";" after a value of RESOURCE_TYPE, found "RT_VERSION"`},
		{"missing value", "RESOURCE_TYPE = ;\n", `x.rtr:1:17: expected a value for RESOURCE_TYPE, found ";"`},
		{"unclosed quote", "RESOURCE_TYPE = \"x;\n", "x.rtr:1:17: a quoted string runs past the end of the line"},
		{"unclosed brace", "RESOURCE_TYPE = x;\n{ PROPERTY = a;\n", `x.rtr:2:1: a property declaration is not closed (missing "}")`},
		{"no PROPERTY", "RESOURCE_TYPE = x;\n{ EXTENSION; }\n", "x.rtr:2:1: a property declaration needs PROPERTY = name;"},
		{"type prop after decl", "RESOURCE_TYPE = x;\n{ PROPERTY = a; }\nSTART = s;\n", "x.rtr:3:1: resource type property START must come before"},
		{"directive first", "#$upgrade\nRESOURCE_TYPE = x;\n", "x.rtr:1:1: a #$upgrade directive may only stand between"},
		{"directive after decl", "RESOURCE_TYPE = x;\n{ PROPERTY = a; }\n#$upgrade\n", "x.rtr:3:1: a #$upgrade directive may only stand between"},
		{"directive without decls", "RESOURCE_TYPE = x;\n#$upgrade\n", "x.rtr:2:1: #$upgrade directives must be followed by property declarations"},
		{"unknown directive", "RESOURCE_TYPE = x;\n#$frobnicate\n{ PROPERTY = a; }\n", `x.rtr:2:1: unknown directive "#$frobnicate"`},
		{"duplicate attribute", "RESOURCE_TYPE = x;\n{ PROPERTY = a; MIN = 1; min = 2; }\n", "x.rtr:2:26: min given twice in one declaration (first at 2:17)"},
		{"bad enum", "RESOURCE_TYPE = x;\n{ PROPERTY = a; EXTENSION; ENUM { a b }; }\n", `x.rtr:2:37: expected "," or "}" in the ENUM list, found "b"`},
		{"enum without semicolon", "RESOURCE_TYPE = x;\n{ PROPERTY = a; ENUM { a } }\n", `x.rtr:2:28: expected ";" after the ENUM list, found "}"`},
		{"stray punctuation", "RESOURCE_TYPE = x;\n= 3;\n", `x.rtr:2:1: expected a property name or "{", found "="`},
		{"control character", "RESOURCE_TYPE = x\x01;\n", "x.rtr:1:18: unexpected character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.rtr", []byte(tt.in))
			var e *Error
			if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Parse error %v, want prefix %q", err, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("RESOURCE_TYPE = x; START = s; STOP = t;\n{ PROPERTY = p; EXTENSION; ENUM { a, b }; DEFAULT = a; }\n"))
	f.Add([]byte("RESOURCE_TYPE=\"q\\\"x\";\n#$upgrade\n{PROPERTY=a;}"))
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Parse("fuzz.rtr", src)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Pos.Line < 1 || e.Pos.Col < 1 {
				t.Fatalf("error %v is not a positioned *rtr.Error", err)
			}
			return
		}
		if len(file.Props) == 0 || file.Props[0].Key != "RESOURCE_TYPE" {
			t.Fatalf("accepted a file that does not start with RESOURCE_TYPE: %q", src)
		}
	})
}
