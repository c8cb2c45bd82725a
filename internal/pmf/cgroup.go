package pmf

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/steady-ha/steady/internal/cgroup"
	"golang.org/x/sys/unix"
)

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
func (w *cgroupWatcher) watch(d cgroup.Dir) (int32, <-chan struct{}, error) {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return 0, nil, err
	}
	var wd int
	var werr error
	rc.Control(func(fd uintptr) {
		wd, werr = unix.InotifyAddWatch(int(fd), d.File("cgroup.events"), unix.IN_MODIFY)
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
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := binary.NativeEndian.Uint32(buf[off+12:])
			w.mu.Lock()
			var chs []chan struct{}
			if mask&unix.IN_Q_OVERFLOW != 0 {
				// Events were lost: every tag looks again.
				for _, ch := range w.byWD {
					chs = append(chs, ch)
				}
			} else if ch := w.byWD[wd]; ch != nil {
				chs = append(chs, ch)
			}
			w.mu.Unlock()
			for _, ch := range chs {
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
