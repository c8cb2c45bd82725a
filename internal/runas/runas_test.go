package runas

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckScript(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("#!/bin/sh\n"), mode)
		os.Chmod(p, mode)
		return p
	}
	good := mk("good", 0o755)
	tests := []struct {
		path, want string
	}{
		{good, ""},
		{mk("owner-only", 0o700), ""},
		{mk("group-w", 0o775), "writable by group or others"},
		{mk("world-w", 0o757), "writable by group or others"},
		{mk("noexec", 0o644), "not executable"},
		{dir, "not a regular file"},
		{filepath.Join(dir, "none"), "does not exist"},
		{"relative", "not an absolute path"},
	}
	for _, tt := range tests {
		_, err := CheckScript(tt.path)
		if tt.want == "" {
			if err != nil {
				t.Errorf("CheckScript(%s) = %v", tt.path, err)
			}
			continue
		}
		if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckScript(%s) = %v, want %q", tt.path, err, tt.want)
		}
	}
}

func TestLookupAndOwner(t *testing.T) {
	root, err := Lookup("root")
	if err != nil || root.UID != 0 || root.GID != 0 || root.Home != "/root" {
		t.Fatalf("Lookup(root) = %+v %v", root, err)
	}
	if byNum, err := Lookup("0"); err != nil || byNum.Name != "root" {
		t.Fatalf("Lookup(0) = %+v %v", byNum, err)
	}
	if _, err := Lookup("no-such-user-xyz"); err == nil {
		t.Fatal("Lookup of an unknown user succeeded")
	}
	// A uid without a passwd entry still runs, with the file's group.
	if id, err := ByUID(54321, 777); err != nil || id.UID != 54321 || id.GID != 777 || id.Name != "54321" {
		t.Fatalf("ByUID = %+v %v", id, err)
	}
	p := filepath.Join(t.TempDir(), "s")
	os.WriteFile(p, nil, 0o755)
	fi, _ := os.Stat(p)
	owner, err := Owner(fi)
	if err != nil || owner.UID != uint32(os.Getuid()) {
		t.Fatalf("Owner = %+v %v", owner, err)
	}
	if cred, err := owner.Credential(); err != nil || cred != nil {
		t.Fatalf("running as ourselves needs no credential change: %+v %v", cred, err)
	}
	if os.Geteuid() == 0 {
		nobody, _ := Lookup("nobody")
		if cred, err := nobody.Credential(); err != nil || cred == nil || cred.Uid != 65534 {
			t.Fatalf("Credential(nobody) = %+v %v", cred, err)
		}
	}
}
