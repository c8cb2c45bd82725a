// Package cgroup is the small part of cgroup v2 steady needs to track
// and stop process trees: finding the unified hierarchy, and reading,
// signalling and writing one cgroup directory. Callers (the process
// monitor, the method runner) create the directories they own.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// FindCgroup2 returns the mount point of the cgroup v2 (unified)
// hierarchy: /sys/fs/cgroup on pure v2 hosts, /sys/fs/cgroup/unified on
// hybrid ones.
func FindCgroup2() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("cgroup: %w", err)
	}
	defer f.Close()
	var found []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		if fs := strings.Fields(right); len(fs) > 0 && fs[0] == "cgroup2" {
			if f := strings.Fields(left); len(f) >= 5 {
				found = append(found, unescapeMount(f[4]))
			}
		}
	}
	if len(found) == 0 {
		return "", errors.New("cgroup: no cgroup v2 hierarchy is mounted")
	}
	for _, p := range found {
		if p == "/sys/fs/cgroup" {
			return p, nil
		}
	}
	return found[0], nil
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Dir is one cgroup v2 directory (its absolute path).
type Dir string

func (d Dir) File(name string) string { return filepath.Join(string(d), name) }

// Populated reads "populated" from cgroup.events.
func (d Dir) Populated() (bool, error) { return d.event("populated") }

// event reads one boolean field of cgroup.events.
func (d Dir) event(name string) (bool, error) {
	b, err := os.ReadFile(d.File("cgroup.events"))
	if err != nil {
		return false, err
	}
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
			return string(v) == "1", nil
		}
	}
	return false, fmt.Errorf("cgroup: %s has no %s field", d.File("cgroup.events"), name)
}

// procs lists the processes in the cgroup.
func (d Dir) Procs() ([]int, error) {
	b, err := os.ReadFile(d.File("cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids, nil
}

func (d Dir) Write(name, value string) error {
	return os.WriteFile(d.File(name), []byte(value), 0)
}

// signal sends sig to every process in the cgroup. The cgroup is frozen
// meanwhile, so that no process forks past the list (a frozen process
// still dies of SIGKILL).
//
// SIGKILL does not use cgroup.kill: on Linux 6.18 (at least) a process
// later cloned into a cgroup that was once killed that way is killed at
// birth (CLONE_INTO_CGROUP compares the kill counts of the parent's and the
// target cgroup), which would kill every restart of the tag.
func (d Dir) Signal(sig syscall.Signal) error {
	// The gate is held until the thaw: a fork into d meanwhile would hang
	// the whole process (gate.go), thawing included.
	unlock := lockGate()
	defer unlock()
	frozen := d.Write("cgroup.freeze", "1") == nil
	if frozen {
		defer d.Write("cgroup.freeze", "0")
		// Freezing is not immediate: a process in the middle of a fork
		// finishes it first. Only once the cgroup reports frozen is the
		// list complete (CI once saw a child forked past the list live on).
		for i := 0; i < 50; i++ {
			if f, err := d.event("frozen"); err != nil || f {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	pids, err := d.Procs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
			return fmt.Errorf("cgroup: signalling %d: %w", pid, err)
		}
	}
	return nil
}

// WaitEmpty waits until no process is left in the cgroup (a killed
// process takes a moment to exit, longer when it was frozen), at most
// timeout; it reports whether the cgroup emptied.
func (d Dir) WaitEmpty(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if pop, err := d.Populated(); err != nil || !pop {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Create makes the cgroup directory (and its parents) when missing.
func (d Dir) Create() error {
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return fmt.Errorf("cgroup: creating %s: %w", d, err)
	}
	return nil
}

// Remove removes the (empty) directory; a process still exiting keeps it a
// moment, so it tries for up to half a second.
func (d Dir) Remove() error {
	var err error
	for i := 0; i < 50; i++ {
		if err = os.Remove(string(d)); err == nil || os.IsNotExist(err) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("cgroup: removing %s: %w", d, err)
}

// OpenFD opens the directory for CLONE_INTO_CGROUP (SysProcAttr.CgroupFD).
func (d Dir) OpenFD() (int, error) {
	fd, err := unix.Open(string(d), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("cgroup: opening %s: %w", d, err)
	}
	return fd, nil
}

// Writable finds the cgroup v2 hierarchy and makes sure the directory sub
// (relative to it) exists and can hold cgroups with cgroup.kill and
// cgroup.freeze; it returns that directory.
func Writable(sub string) (Dir, error) {
	mount, err := FindCgroup2()
	if err != nil {
		return "", err
	}
	d := Dir(filepath.Join(mount, sub))
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return "", fmt.Errorf("cgroup: cgroup v2 at %s is not writable: %w", mount, err)
	}
	if _, err := os.Stat(d.File("cgroup.freeze")); err != nil {
		return "", fmt.Errorf("cgroup: the kernel lacks cgroup.freeze (Linux 5.2 or later is needed): %w", err)
	}
	return d, nil
}

// RemoveTree kills every process below d (freezing, then SIGKILL) and
// removes d and its descendants; for tests and cleanup of what steady
// created.
func RemoveTree(d Dir) {
	var dirs []Dir
	filepath.WalkDir(string(d), func(p string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			dirs = append(dirs, Dir(p))
		}
		return nil
	})
	for _, x := range dirs {
		x.Signal(syscall.SIGKILL)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		dirs[i].Remove()
	}
}
