package auth

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	groups := map[string]uint32{"steady-admin": 900, "steady": 901}
	lookups := 0
	now := time.Unix(0, 0)
	p := NewPolicy(PolicyOptions{
		AdminGroup: "steady-admin", ReadGroup: "steady", AgentUID: 500,
		LookupGroup: func(name string) (uint32, bool) { lookups++; g, ok := groups[name]; return g, ok },
		Now:         func() time.Time { return now },
	})
	tests := []struct {
		name         string
		pr           Principal
		read, change bool
	}{
		{"root", Principal{UID: 0, GID: 0}, true, true},
		{"admin by supplementary group", Principal{UID: 1000, GID: 1000, Groups: []uint32{5, 900}}, true, true},
		{"admin by primary group", Principal{UID: 1000, GID: 900}, true, true},
		{"reader", Principal{UID: 1001, GID: 1001, Groups: []uint32{901}}, true, false},
		{"agent's own user", Principal{UID: 500, GID: 500}, true, false},
		{"stranger", Principal{UID: 65534, GID: 65534}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := p.Allow(tt.pr, Read); (err == nil) != tt.read {
				t.Errorf("read: %v, want allowed=%v", err, tt.read)
			} else if err != nil && !errors.Is(err, ErrDenied) {
				t.Errorf("refusal %v does not wrap ErrDenied", err)
			}
			if err := p.Allow(tt.pr, Change); (err == nil) != tt.change {
				t.Errorf("change: %v, want allowed=%v", err, tt.change)
			}
		})
	}
	// Group lookups are cached, and refreshed: a group created later counts.
	before := lookups
	p.Allow(Principal{UID: 7, GID: 7, Groups: []uint32{902}}, Read)
	if lookups != before {
		t.Fatalf("lookups not cached: %d -> %d", before, lookups)
	}
	groups["steady"] = 902
	now = now.Add(11 * time.Second)
	if err := p.Allow(Principal{UID: 7, GID: 7, Groups: []uint32{902}}, Read); err != nil {
		t.Fatalf("after the refresh the new group should count: %v", err)
	}
}

func TestPeerCredentialsOfOwnProcess(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := net.Dial("unix", sock)
		if err == nil {
			time.Sleep(100 * time.Millisecond)
			c.Close()
		}
	}()
	c, err := l.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pr, err := PeerCredentials(c)
	if err != nil {
		t.Fatal(err)
	}
	if pr.UID != uint32(os.Getuid()) || pr.GID != uint32(os.Getgid()) || pr.PID != int32(os.Getpid()) {
		t.Fatalf("PeerCredentials = %+v, want our uid %d gid %d pid %d", pr, os.Getuid(), os.Getgid(), os.Getpid())
	}
	own, _ := os.Getgroups()
	if len(pr.Groups) != len(own) {
		t.Fatalf("peer groups %v, ours %v", pr.Groups, own)
	}
}
