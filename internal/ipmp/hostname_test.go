package ipmp

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	return writeFilesIn(t, t.TempDir(), files)
}

func writeFilesIn(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestHostnameFiles(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	dir = writeFilesIn(t, dir, map[string]string{
		"hosts":    "192.168.85.19 data-hme0\n192.168.85.21 test-hme0 # the test address\n",
		"netmasks": "192.168.85.0 255.255.255.0\n",
		// Solaris 10: data on the interface, test on a logical one.
		"etc/hostname.hme0": "data-hme0 netmask + broadcast + group test up addif test-hme0 netmask + broadcast + deprecated -failover up\n",
		// A standby: its own address is a test address.
		"etc/hostname.hme1": "192.168.85.22 netmask + broadcast + deprecated group test -failover standby up\n",
		// Test on the interface, data on a logical one, explicit prefix.
		"etc/hostname.eth2":  "10.1.0.11/16 deprecated -failover group g2 up\naddif 10.1.0.100/16 up\naddif 10.1.0.101/16\n",
		"etc/hostname6.eth2": "-failover\n",
		"etc/hostname.eth9":  "10.9.0.1 up\n", // no group: not ours
		"etc/hostname":       "myhost\n",      // the host name, not an interface
	})
	r, err := LoadResolver(filepath.Join(dir, "hosts"), filepath.Join(dir, "netmasks"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadHostnameFiles(filepath.Join(dir, "etc"), r)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Groups) != 2 {
		t.Fatalf("groups: %+v", got.Groups)
	}
	g2, test := got.Groups[0], got.Groups[1]
	if g2.Name != "g2" || test.Name != "test" {
		t.Fatalf("group order: %s %s", g2.Name, test.Name)
	}
	eth2 := g2.Members[0]
	// addif 10.1.0.101 is never brought up: not configured.
	if !reflect.DeepEqual(eth2.Test, []netip.Prefix{pfx("10.1.0.11/16")}) || !reflect.DeepEqual(eth2.Data, []netip.Prefix{pfx("10.1.0.100/16")}) || !eth2.TestLinkLocal {
		t.Errorf("eth2: %+v", eth2)
	}
	hme0, hme1 := test.Members[0], test.Members[1]
	if !reflect.DeepEqual(hme0.Data, []netip.Prefix{pfx("192.168.85.19/24")}) || !reflect.DeepEqual(hme0.Test, []netip.Prefix{pfx("192.168.85.21/24")}) || hme0.Standby {
		t.Errorf("hme0: %+v", hme0)
	}
	if !hme1.Standby || !reflect.DeepEqual(hme1.Test, []netip.Prefix{pfx("192.168.85.22/24")}) || len(hme1.Data) != 0 {
		t.Errorf("hme1: %+v", hme1)
	}
	if !reflect.DeepEqual(got.Ungrouped, []string{"eth9"}) {
		t.Errorf("ungrouped: %v", got.Ungrouped)
	}
}

func TestHostnameFileErrors(t *testing.T) {
	for name, tc := range map[string]struct{ file, body, want string }{
		"unknown token":    {"hostname.e0", "10.0.0.1/24 group g up frobnicate\n", "hostname.e0 line 1: unknown token \"frobnicate\""},
		"unknown name":     {"hostname.e0", "nosuchhost group g up\n", "hostname.e0 line 1: \"nosuchhost\" is neither an address nor a name"},
		"missing argument": {"hostname.e0", "10.0.0.1/24 up\naddif\n", "hostname.e0 line 2: \"addif\" needs an argument"},
		"bad netmask":      {"hostname.e0", "10.0.0.1 netmask 255.0.255.0 group g up\n", "not a contiguous netmask"},
		"wrong family":     {"hostname6.e0", "10.0.0.1 up\n", "is not an IPv6 address"},
		"logical":          {"hostname.e0:1", "10.0.0.1 up\n", "logical interfaces have no file"},
		"standby data":     {"hostname.e0", "10.0.0.1/24 group g standby up\n", "standby interface may carry only test addresses"},
	} {
		dir := writeFiles(t, map[string]string{tc.file: tc.body})
		_, err := ReadHostnameFiles(dir, Resolver{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func TestMerge(t *testing.T) {
	a := []GroupConfig{{Name: "g", Members: []MemberConfig{{Interface: "e0"}}}}
	if _, err := Merge(a, []GroupConfig{{Name: "h", Members: []MemberConfig{{Interface: "e0"}}}}); err == nil || !strings.Contains(err.Error(), "both in group g") {
		t.Errorf("%v", err)
	}
	m, err := Merge(a, []GroupConfig{{Name: "g", Members: []MemberConfig{{Interface: "e1"}}}})
	if err != nil || len(m) != 1 || len(m[0].Members) != 2 {
		t.Errorf("%+v %v", m, err)
	}
}

func TestMaskBits(t *testing.T) {
	for in, want := range map[string]int{"255.255.255.0": 24, "0xffff0000": 16, "ffffff80": 25, "24": 24} {
		if got, err := maskBits(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
}
