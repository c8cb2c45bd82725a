package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/config"
)

func TestParseAttr(t *testing.T) {
	tests := []struct {
		in, name, want string
		typ            api.Type
		err            string
	}{
		{in: "who=me", name: "who", typ: api.TypeString, want: "me"},
		{in: "empty=", name: "empty", typ: api.TypeString, want: ""},
		{in: "eq=a=b", name: "eq", typ: api.TypeString, want: "a=b"},
		{in: "n:int64=-3", name: "n", typ: api.TypeInt, want: "-3"},
		{in: "u:uint64=255", name: "u", typ: api.TypeUint, want: "0xff"},
		{in: "ok:bool=true", name: "ok", typ: api.TypeBool, want: "true"},
		{in: "l:string_array=a,b", name: "l", typ: api.TypeStrings, want: "a b"},
		{in: "noequals", err: "write NAME=VALUE"},
		{in: "1x=y", err: "not valid"},
		{in: "n:int64=x", err: "not a signed 64-bit integer"},
		{in: "n:float=1", err: "unknown attribute type"},
	}
	for _, tt := range tests {
		name, v, err := parseAttr(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseAttr(%q) = %v, want error %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || name != tt.name || v.Type != tt.typ || v.Format() != tt.want {
			t.Errorf("parseAttr(%q) = %s %+v %v", tt.in, name, v, err)
		}
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("boom"), api.ExitFailure},
		{&usageError{err: errors.New("x")}, api.ExitUsage},
		{&config.Error{Problems: []config.Problem{{Msg: "x"}}}, api.ExitUsage},
		{&api.Error{Code: api.CodeNotFound}, api.ExitNotFound},
		{&api.Error{Code: api.CodeBusy}, api.ExitConflict},
		{&silentExit{status: 7}, 7},
	}
	for _, tt := range tests {
		if got := exitStatus(tt.err); got != tt.want {
			t.Errorf("exitStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestMainDispatchesOnName(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"/usr/sbin/nosuchtool"}, nil, &out, &errb); code != api.ExitUsage ||
		!strings.Contains(errb.String(), `started as "nosuchtool"`) {
		t.Fatalf("unknown name: %d %q", code, errb.String())
	}
	for _, name := range []string{"steady", "/opt/bin/steady-0.2", "steady.new"} {
		out.Reset()
		if code := Main([]string{name, "version"}, nil, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "steady ") {
			t.Errorf("%s version: %d %q", name, code, out.String())
		}
	}
	errb.Reset()
	if code := Main([]string{"steady", "frob"}, nil, &out, &errb); code != api.ExitUsage || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errb.String())
	}
	if code := Main([]string{"steady", "-o", "yaml", "version"}, nil, &out, &errb); code != api.ExitUsage {
		t.Fatalf("-o yaml: %d", code)
	}
}

func TestInstallLink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "steady")
	os.WriteFile(target, []byte("bin"), 0o755)
	link := filepath.Join(dir, "tool")
	steps := []struct {
		force, remove bool
		want, err     string
	}{
		{want: "created"},
		{want: "exists"},
		{remove: true, want: "removed"},
		{remove: true, want: "absent"},
	}
	for i, s := range steps {
		got, err := installLink(link, target, s.force, s.remove)
		if err != nil || got != s.want {
			t.Fatalf("step %d: %q %v, want %q", i, got, err, s.want)
		}
	}
	os.WriteFile(link, []byte("someone else's"), 0o755)
	if _, err := installLink(link, target, false, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("existing file: %v", err)
	}
	if got, _ := installLink(link, target, false, true); got != "kept (not a link to this binary)" {
		t.Fatalf("remove of a foreign file: %q", got)
	}
	if got, err := installLink(link, target, true, false); err != nil || got != "created" {
		t.Fatalf("--force: %q %v", got, err)
	}
	if dest, _ := os.Readlink(link); dest != target {
		t.Fatalf("link points to %q", dest)
	}
	// A relative link to the same binary is recognised as ours.
	os.Remove(link)
	os.Symlink("steady", link)
	if got, err := installLink(link, target, false, false); err != nil || got != "exists" {
		t.Fatalf("relative link: %q %v", got, err)
	}
}
