// Package watchdog stops a node's failover work when its agent cannot:
// a small process ("steady watchdog"), started by the agent and outliving
// it, that the agent feeds with its fence deadline after every confirmed
// heartbeat. When a deadline passes unfed — the agent died, hung, or was
// stopped and did not come back in time — the watchdog freezes the
// processes of the node's resource groups, exactly as the agent's own
// fence would, before any other node may take those groups over. The
// agent that comes back tells it what became of the node: its membership
// held (thaw, nothing was stopped) or it was declared down (kill).
//
// Targets, Freeze, Thaw and Kill are also what the agent's own fence
// uses, so both paths stop the same processes the same way. Freezing is
// cgroup v2's cgroup.freeze (hierarchical, and a frozen process still
// dies of SIGKILL); in process-group mode it is SIGSTOP and SIGCONT.
//
// The agent talks to the watchdog over a Unix socket in the data
// directory (Client); the watchdog serves one agent at a time (Serve).
package watchdog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/steady-ha/steady/internal/cgroup"
	"golang.org/x/sys/unix"
)

// Targets are the processes of the node's resource groups.
type Targets struct {
	// Trees are cgroups frozen as a whole (the resource group manager's
	// method cgroups live below one).
	Trees []string `json:"trees,omitempty"`
	// TagDir holds the process monitor's tag cgroups ("t-TAG"); those
	// whose tag is GROUP,... for a group in Groups are targets.
	TagDir string   `json:"tag_dir,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// PGIDs are process groups (process-group mode).
	PGIDs []int `json:"pgids,omitempty"`
}

// Empty reports whether there is nothing to stop.
func (t Targets) Empty() bool {
	return len(t.Trees) == 0 && len(t.Groups) == 0 && len(t.PGIDs) == 0
}

// Equal reports whether two target lists are the same.
func (t Targets) Equal(o Targets) bool {
	eq := func(a, b []string) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	if !eq(t.Trees, o.Trees) || t.TagDir != o.TagDir || !eq(t.Groups, o.Groups) || len(t.PGIDs) != len(o.PGIDs) {
		return false
	}
	for i := range t.PGIDs {
		if t.PGIDs[i] != o.PGIDs[i] {
			return false
		}
	}
	return true
}

// tagDirs lists the tag cgroups of the groups.
func (t Targets) tagDirs() []cgroup.Dir {
	if t.TagDir == "" || len(t.Groups) == 0 {
		return nil
	}
	groups := make(map[string]bool, len(t.Groups))
	for _, g := range t.Groups {
		groups[g] = true
	}
	es, err := os.ReadDir(t.TagDir)
	if err != nil {
		return nil
	}
	var out []cgroup.Dir
	for _, e := range es {
		name, ok := strings.CutPrefix(e.Name(), "t-")
		if !ok || !e.IsDir() {
			continue
		}
		if g, _, ok := strings.Cut(name, ","); ok && groups[g] {
			out = append(out, cgroup.Dir(filepath.Join(t.TagDir, e.Name())))
		}
	}
	return out
}

func (t Targets) dirs() []cgroup.Dir {
	out := t.tagDirs()
	for _, tr := range t.Trees {
		out = append(out, cgroup.Dir(tr))
	}
	return out
}

// Freeze stops every target from running. It does not wait for the
// kernel to report the cgroups frozen (that takes a moment for a process
// in the middle of a system call), only for the writes.
func Freeze(t Targets) error {
	// No fork of this process may be in flight into what is frozen
	// (cgroup.ForkGuard says why).
	cgroup.RaiseFence()
	release := cgroup.HoldForks()
	defer release()
	var errs []error
	for _, d := range t.dirs() {
		if err := d.Write("cgroup.freeze", "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("watchdog: freezing %s: %w", d, err))
		}
	}
	for _, pg := range t.PGIDs {
		if err := unix.Kill(-pg, unix.SIGSTOP); err != nil && err != unix.ESRCH {
			errs = append(errs, fmt.Errorf("watchdog: stopping process group %d: %w", pg, err))
		}
	}
	return errors.Join(errs...)
}

// Thaw lets every target run again.
func Thaw(t Targets) error {
	var errs []error
	for _, d := range t.dirs() {
		if err := d.Write("cgroup.freeze", "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("watchdog: thawing %s: %w", d, err))
		}
	}
	for _, pg := range t.PGIDs {
		if err := unix.Kill(-pg, unix.SIGCONT); err != nil && err != unix.ESRCH {
			errs = append(errs, fmt.Errorf("watchdog: continuing process group %d: %w", pg, err))
		}
	}
	cgroup.LowerFence()
	return errors.Join(errs...)
}

// Kill ends every target with SIGKILL (frozen processes die of it too),
// then thaws the cgroups so that the dead can be reaped.
func Kill(t Targets) error {
	var errs []error
	for _, d := range t.dirs() {
		var sub []cgroup.Dir
		filepath.WalkDir(string(d), func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, cgroup.Dir(p))
			}
			return nil
		})
		for _, s := range sub {
			if err := s.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	for _, pg := range t.PGIDs {
		if err := unix.Kill(-pg, unix.SIGKILL); err != nil && err != unix.ESRCH {
			errs = append(errs, fmt.Errorf("watchdog: killing process group %d: %w", pg, err))
		}
		unix.Kill(-pg, unix.SIGCONT)
	}
	if err := Thaw(Targets{Trees: t.Trees, TagDir: t.TagDir, Groups: t.Groups}); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
