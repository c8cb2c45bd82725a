package method

import (
	"strings"
	"testing"
)

func TestNetIfTargets(t *testing.T) {
	got := netIfTargets([]string{"g1@n2", "g0@n1", "eth3", "g2@n1"}, "n1")
	if strings.Join(got, " ") != "g0 eth3 g2" {
		t.Errorf("targets of n1: %v", got)
	}
}

func TestCheckHostnames(t *testing.T) {
	for _, tc := range []struct {
		hosts, netifs []string
		want          string
	}{
		{[]string{"192.0.2.10/24", "192.0.2.11", "www-lh"}, []string{"g0@n1", "eth1"}, ""},
		{nil, nil, "HostnameList is empty"},
		{[]string{"192.0.2.10/40"}, nil, "not ADDRESS/PREFIXLEN"},
		{[]string{"a b"}, nil, "neither an address nor a host name"},
		{[]string{"192.0.2.10"}, []string{"g0@"}, "not GROUP, INTERFACE"},
		{[]string{"192.0.2.10"}, []string{"@n1"}, "not GROUP, INTERFACE"},
	} {
		err := checkHostnames(tc.hosts, tc.netifs)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v %v: %v", tc.hosts, tc.netifs, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v %v: %v, want %q", tc.hosts, tc.netifs, err, tc.want)
		}
	}
}
