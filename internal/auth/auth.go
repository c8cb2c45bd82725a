// Package auth says who is calling and what they may do.
//
// On the local socket the caller is identified by the kernel: SO_PEERCRED
// gives the uid, gid and pid of the process that connected, SO_PEERGROUPS
// its supplementary groups, both as they were at connect time and beyond
// the caller's power to forge. The default policy follows DESIGN.md §6:
// root and members of the admin group may change things; members of the
// read group and the agent's own user may read; everyone else is refused.
//
// A Policy is safe for concurrent use; group names are resolved again
// every few seconds, so a group created after the agent started counts.
package auth

import (
	"errors"
	"fmt"
	"net"
	"os/user"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrDenied is wrapped by every refusal.
var ErrDenied = errors.New("auth: permission denied")

// Principal is an authenticated caller.
type Principal struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups
	PID      int32
}

// Name is the caller's user name, or its uid when the user database has
// no entry.
func (p Principal) Name() string {
	uid := strconv.FormatUint(uint64(p.UID), 10)
	if u, err := user.LookupId(uid); err == nil {
		return u.Username
	}
	return uid
}

// String names the caller for messages and logs.
func (p Principal) String() string {
	return fmt.Sprintf("%s (uid %d)", p.Name(), p.UID)
}

func (p Principal) inGroup(gid uint32) bool {
	if p.GID == gid {
		return true
	}
	for _, g := range p.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// Verb is the kind of access a request needs.
type Verb int

// Verbs.
const (
	Read   Verb = iota // look at state
	Change             // change state
)

func (v Verb) String() string {
	if v == Change {
		return "change"
	}
	return "read"
}

// PolicyOptions configures NewPolicy.
type PolicyOptions struct {
	AdminGroup string // members may change; empty: nobody but root
	ReadGroup  string // members may read
	AgentUID   uint32 // the agent's own user may read
	// LookupGroup resolves a group name; default os/user.
	LookupGroup func(name string) (uint32, bool)
	Now         func() time.Time
}

// Policy decides what a principal may do.
type Policy struct {
	opts PolicyOptions

	mu      sync.Mutex // guards the cache
	cache   map[string]cachedGroup
	refresh time.Duration
}

type cachedGroup struct {
	gid   uint32
	ok    bool
	until time.Time
}

// NewPolicy builds the default policy.
func NewPolicy(opts PolicyOptions) *Policy {
	if opts.LookupGroup == nil {
		opts.LookupGroup = LookupGroup
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Policy{opts: opts, cache: map[string]cachedGroup{}, refresh: 10 * time.Second}
}

// LookupGroup resolves a group name with the system's group database.
func LookupGroup(name string) (uint32, bool) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(n), err == nil
}

func (p *Policy) group(name string) (uint32, bool) {
	if name == "" {
		return 0, false
	}
	now := p.opts.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.cache[name]; ok && now.Before(c.until) {
		return c.gid, c.ok
	}
	gid, ok := p.opts.LookupGroup(name)
	p.cache[name] = cachedGroup{gid: gid, ok: ok, until: now.Add(p.refresh)}
	return gid, ok
}

// Allow returns nil when pr may perform v, and otherwise an error wrapping
// ErrDenied that says what would be needed.
func (p *Policy) Allow(pr Principal, v Verb) error {
	if pr.UID == 0 {
		return nil
	}
	if gid, ok := p.group(p.opts.AdminGroup); ok && pr.inGroup(gid) {
		return nil
	}
	if v == Read {
		if pr.UID == p.opts.AgentUID {
			return nil
		}
		if gid, ok := p.group(p.opts.ReadGroup); ok && pr.inGroup(gid) {
			return nil
		}
		return fmt.Errorf("%w: %s may not read; reading needs membership of group %q or %q", ErrDenied, pr, p.opts.ReadGroup, p.opts.AdminGroup)
	}
	return fmt.Errorf("%w: %s may not change anything; changes need root or membership of group %q", ErrDenied, pr, p.opts.AdminGroup)
}

// PeerCredentials reads the credentials of the process at the other end
// of a Unix socket connection.
func PeerCredentials(c *net.UnixConn) (Principal, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Principal{}, fmt.Errorf("auth: %w", err)
	}
	var pr Principal
	var opErr error
	err = rc.Control(func(fd uintptr) {
		var cred *unix.Ucred
		cred, opErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if opErr != nil {
			return
		}
		pr = Principal{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}
		pr.Groups, opErr = peerGroups(int(fd))
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		return Principal{}, fmt.Errorf("auth: reading peer credentials: %w", err)
	}
	return pr, nil
}

// peerGroups reads SO_PEERGROUPS, growing the buffer when the kernel says
// it needs more room.
func peerGroups(fd int) ([]uint32, error) {
	n := 64
	for {
		buf := make([]uint32, n)
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch errno {
		case 0:
			return buf[:size/4], nil
		case unix.ERANGE:
			n = int(size/4) + 1
		default:
			return nil, errno
		}
	}
}
