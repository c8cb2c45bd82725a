// Package runas decides who a script runs as and whether it is safe to
// run: event subscribers, RCM scripts and resource type methods all run as
// a named user or as their file's owner, and are refused when the file is
// group- or world-writable (anyone who can change the file could otherwise
// run code as its owner, often root).
package runas

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// ErrUnsafe is wrapped by errors about a script that must not be run.
var ErrUnsafe = errors.New("runas: unsafe script")

// Identity is a user a process can run as.
type Identity struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups
	Name     string   // user name, or the number when the user database has none
	Home     string
}

// Lookup resolves a user name or numeric uid.
func Lookup(nameOrUID string) (Identity, error) {
	u, err := user.Lookup(nameOrUID)
	if err != nil {
		if _, nerr := strconv.ParseUint(nameOrUID, 10, 32); nerr == nil {
			u, err = user.LookupId(nameOrUID)
		}
	}
	if err != nil {
		return Identity{}, fmt.Errorf("runas: unknown user %q", nameOrUID)
	}
	return fromUser(u)
}

// ByUID resolves a uid; a uid without a user database entry runs with
// gid equal to fallbackGID and no supplementary groups.
func ByUID(uid, fallbackGID uint32) (Identity, error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return Identity{UID: uid, GID: fallbackGID, Name: strconv.FormatUint(uint64(uid), 10), Home: "/"}, nil
	}
	return fromUser(u)
}

func fromUser(u *user.User) (Identity, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return Identity{}, fmt.Errorf("runas: user %s has uid %q", u.Username, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return Identity{}, fmt.Errorf("runas: user %s has gid %q", u.Username, u.Gid)
	}
	id := Identity{UID: uint32(uid), GID: uint32(gid), Name: u.Username, Home: u.HomeDir}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) != id.GID {
				id.Groups = append(id.Groups, uint32(n))
			}
		}
	}
	if id.Home == "" {
		id.Home = "/"
	}
	return id, nil
}

// CheckScript returns the file information of path when it is an absolute
// path to a regular, executable file that is neither group- nor
// world-writable.
func CheckScript(path string) (os.FileInfo, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%w: %q is not an absolute path", ErrUnsafe, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrUnsafe, path)
		}
		return nil, fmt.Errorf("%w: %w", ErrUnsafe, err)
	}
	switch m := fi.Mode(); {
	case !m.IsRegular():
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrUnsafe, path)
	case m.Perm()&0o111 == 0:
		return nil, fmt.Errorf("%w: %s is not executable (mode %04o)", ErrUnsafe, path, m.Perm())
	case m.Perm()&0o022 != 0:
		return nil, fmt.Errorf("%w: %s is writable by group or others (mode %04o); make it writable by its owner only", ErrUnsafe, path, m.Perm())
	}
	return fi, nil
}

// Owner returns the identity of the owner of the file described by fi.
func Owner(fi os.FileInfo) (Identity, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Identity{}, fmt.Errorf("runas: no owner information for %s", fi.Name())
	}
	return ByUID(st.Uid, st.Gid)
}

// Credential returns what exec needs to run as id, or nil when id is the
// current user (no change needed). It fails when a change is needed and
// the current process cannot make it.
func (id Identity) Credential() (*syscall.Credential, error) {
	if uint32(os.Geteuid()) == id.UID && uint32(os.Getegid()) == id.GID {
		return nil, nil
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("runas: the agent runs as uid %d and cannot run a process as %s (uid %d)", os.Geteuid(), id.Name, id.UID)
	}
	return &syscall.Credential{Uid: id.UID, Gid: id.GID, Groups: id.Groups}, nil
}

// Env returns the minimal environment of a process run as id.
func (id Identity) Env() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + id.Home,
		"USER=" + id.Name,
		"LOGNAME=" + id.Name,
		"LANG=C",
	}
}
