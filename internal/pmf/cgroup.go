package pmf

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
		return "", fmt.Errorf("pmf: %w", err)
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
		return "", errors.New("pmf: no cgroup v2 hierarchy is mounted")
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

// cgroupDir is one cgroup v2 directory.
type cgroupDir string

func (d cgroupDir) file(name string) string { return filepath.Join(string(d), name) }

// populated reads "populated" from cgroup.events.
func (d cgroupDir) populated() (bool, error) {
	b, err := os.ReadFile(d.file("cgroup.events"))
	if err != nil {
		return false, err
	}
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(line, []byte("populated ")); ok {
			return string(v) == "1", nil
		}
	}
	return false, fmt.Errorf("pmf: %s has no populated field", d.file("cgroup.events"))
}

// procs lists the processes in the cgroup.
func (d cgroupDir) procs() ([]int, error) {
	b, err := os.ReadFile(d.file("cgroup.procs"))
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

func (d cgroupDir) write(name, value string) error {
	return os.WriteFile(d.file(name), []byte(value), 0)
}

// signal sends sig to every process in the cgroup. The cgroup is frozen
// meanwhile, so that no process forks past the list (a frozen process
// still dies of SIGKILL).
//
// SIGKILL does not use cgroup.kill: on Linux 6.18 (at least) a process
// later cloned into a cgroup that was once killed that way is killed at
// birth (CLONE_INTO_CGROUP compares the kill counts of the parent's and the
// target cgroup), which would kill every restart of the tag.
func (d cgroupDir) signal(sig syscall.Signal) error {
	frozen := d.write("cgroup.freeze", "1") == nil
	if frozen {
		defer d.write("cgroup.freeze", "0")
	}
	pids, err := d.procs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
			return fmt.Errorf("pmf: signalling %d: %w", pid, err)
		}
	}
	return nil
}

// cgroupWatcher reports changes of cgroup.events files through one
// inotify instance for all tags.
type cgroupWatcher struct {
	f *os.File

	mu   sync.Mutex // guards byWD
	byWD map[int32]chan struct{}
}

func newCgroupWatcher() (*cgroupWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pmf: inotify: %w", err)
	}
	return &cgroupWatcher{f: os.NewFile(uintptr(fd), "inotify"), byWD: map[int32]chan struct{}{}}, nil
}

// watch starts watching d; the channel receives (coalesced) a value after
// each change of its cgroup.events.
func (w *cgroupWatcher) watch(d cgroupDir) (int32, <-chan struct{}, error) {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return 0, nil, err
	}
	var wd int
	var werr error
	rc.Control(func(fd uintptr) {
		wd, werr = unix.InotifyAddWatch(int(fd), d.file("cgroup.events"), unix.IN_MODIFY)
	})
	if werr != nil {
		return 0, nil, fmt.Errorf("pmf: watching %s: %w", d, werr)
	}
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.byWD[int32(wd)] = ch
	w.mu.Unlock()
	return int32(wd), ch, nil
}

func (w *cgroupWatcher) unwatch(wd int32) {
	w.mu.Lock()
	delete(w.byWD, wd)
	w.mu.Unlock()
	if rc, err := w.f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.InotifyRmWatch(int(fd), uint32(wd)) })
	}
}

// run delivers notifications until ctx ends.
func (w *cgroupWatcher) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { w.f.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			// struct inotify_event: int32 wd, uint32 mask, cookie, len, name.
			wd := int32(binary.NativeEndian.Uint32(buf[off:]))
			nameLen := binary.NativeEndian.Uint32(buf[off+12:])
			w.mu.Lock()
			ch := w.byWD[wd]
			w.mu.Unlock()
			if ch != nil {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
			off += unix.SizeofInotifyEvent + int(nameLen)
		}
	}
}

func (w *cgroupWatcher) close() error { return w.f.Close() }
