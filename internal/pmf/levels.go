package pmf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/steady-ha/steady/internal/cgroup"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel's process connector (linux/cn_proc.h): fork and exit events
// of every process, which is the only reliable way to know fork depths.
const (
	cnIdxProc        = 1
	cnValProc        = 1
	procMcastListen  = 1
	procMcastIgnore  = 2
	procEventNone    = 0x00000000
	procEventFork    = 0x00000001
	procEventExit    = 0x80000000
	nlmsgHdrLen      = 16
	cnMsgLen         = 20
	procEventHdrLen  = 16 // what, cpu, timestamp_ns
	netlinkConnector = 11 // NETLINK_CONNECTOR
)

// levelTracker honours child monitoring levels (pmfadm -C): a process
// forked deeper than its tag's level is moved out of the tag's cgroup into
// an "untracked" one, so that only monitored processes keep the tag alive
// and receive its signals.
type levelTracker struct {
	f    *os.File
	log  *slog.Logger
	self int

	mu        sync.Mutex // guards everything below
	levels    map[cgroup.Dir]int
	depth     map[int]depthInfo // tgid -> its tag cgroup and fork depth
	untracked cgroup.Dir
	listening bool
}

type depthInfo struct {
	dir   cgroup.Dir
	depth int
}

// newLevelTracker opens the process connector and checks that the kernel
// accepts our subscription (it needs CAP_NET_ADMIN in the initial
// namespaces).
func newLevelTracker(log *slog.Logger) (*levelTracker, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, netlinkConnector)
	if err != nil {
		return nil, fmt.Errorf("process connector: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("process connector: %w", err)
	}
	lt := &levelTracker{log: log, self: os.Getpid(), levels: map[cgroup.Dir]int{}, depth: map[int]depthInfo{}}
	// Probe: subscribe, wait for the acknowledgement, unsubscribe.
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	if err := sendMcast(fd, procMcastListen); err != nil {
		unix.Close(fd)
		return nil, err
	}
	buf := make([]byte, 4096)
	deadline := time.Now().Add(time.Second)
	acked := false
	for !acked && time.Now().Before(deadline) {
		n, err := unix.Read(fd, buf)
		if err != nil {
			break
		}
		if what, data, ok := parseProcEvent(buf[:n]); ok && what == procEventNone {
			if len(data) >= 4 && binary.NativeEndian.Uint32(data) != 0 {
				unix.Close(fd)
				return nil, fmt.Errorf("process connector refused the subscription (errno %d)", binary.NativeEndian.Uint32(data))
			}
			acked = true
		}
	}
	sendMcast(fd, procMcastIgnore)
	if !acked {
		unix.Close(fd)
		return nil, errors.New("process connector did not answer (not the initial PID namespace?)")
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{})
	unix.SetNonblock(fd, true)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	lt.f = os.NewFile(uintptr(fd), "cn_proc")
	return lt, nil
}

func sendMcast(fd int, op uint32) error {
	msg := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], unix.NLMSG_DONE)
	binary.NativeEndian.PutUint32(msg[12:], uint32(os.Getpid()))
	cn := msg[nlmsgHdrLen:]
	binary.NativeEndian.PutUint32(cn[0:], cnIdxProc)
	binary.NativeEndian.PutUint32(cn[4:], cnValProc)
	binary.NativeEndian.PutUint16(cn[16:], 4)
	binary.NativeEndian.PutUint32(cn[cnMsgLen:], op)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("process connector: %w", err)
	}
	return nil
}

// parseProcEvent returns the event type and its data from one message.
func parseProcEvent(b []byte) (what uint32, data []byte, ok bool) {
	if len(b) < nlmsgHdrLen+cnMsgLen+procEventHdrLen {
		return 0, nil, false
	}
	cn := b[nlmsgHdrLen:]
	if binary.NativeEndian.Uint32(cn[0:]) != cnIdxProc || binary.NativeEndian.Uint32(cn[4:]) != cnValProc {
		return 0, nil, false
	}
	ev := cn[cnMsgLen:]
	return binary.NativeEndian.Uint32(ev[0:]), ev[procEventHdrLen:], true
}

// add starts enforcing level for the tag cgroup dir.
func (lt *levelTracker) add(dir cgroup.Dir, level int) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	lt.levels[dir] = level
	if lt.untracked == "" {
		lt.untracked = cgroup.Dir(filepath.Join(filepath.Dir(string(dir)), "untracked"))
		os.Mkdir(string(lt.untracked), 0o755)
	}
	if !lt.listening {
		rc, err := lt.f.SyscallConn()
		if err == nil {
			rc.Control(func(fd uintptr) { err = sendMcast(int(fd), procMcastListen) })
		}
		if err != nil {
			lt.log.Error("cannot subscribe to process events", "err", err)
			return
		}
		lt.listening = true
	}
}

// setMain records the command's own process (depth 0) of a level tag.
func (lt *levelTracker) setMain(pid int) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if dir, ok := lt.cgroupOf(pid); ok {
		lt.depth[pid] = depthInfo{dir: dir, depth: 0}
	}
}

// remove stops enforcing levels for dir.
func (lt *levelTracker) remove(dir cgroup.Dir) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	delete(lt.levels, dir)
	for pid, d := range lt.depth {
		if d.dir == dir {
			delete(lt.depth, pid)
		}
	}
	if len(lt.levels) == 0 && lt.listening {
		if rc, err := lt.f.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { sendMcast(int(fd), procMcastIgnore) })
		}
		lt.listening = false
	}
}

// cgroupOf finds the level tag cgroup a process is in. lt.mu is held.
func (lt *levelTracker) cgroupOf(pid int) (cgroup.Dir, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rel, ok := strings.CutPrefix(line, "0::"); ok {
			for dir := range lt.levels {
				if strings.HasSuffix(string(dir), rel) && rel != "/" {
					return dir, true
				}
			}
		}
	}
	return "", false
}

func (lt *levelTracker) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { lt.f.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		n, err := lt.f.Read(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, unix.ENOBUFS) {
				lt.log.Warn("process events were lost; child monitoring levels may be inexact")
				continue
			}
			lt.log.Error("process connector failed", "err", err)
			return
		}
		for b := buf[:n]; len(b) >= nlmsgHdrLen; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < nlmsgHdrLen || l > len(b) {
				break
			}
			lt.handle(b[:l])
			b = b[(l+3)&^3:]
		}
	}
}

func (lt *levelTracker) handle(msg []byte) {
	what, data, ok := parseProcEvent(msg)
	if !ok {
		return
	}
	switch what {
	case procEventFork:
		if len(data) < 16 {
			return
		}
		parent := int(binary.NativeEndian.Uint32(data[4:]))
		child, childTgid := int(binary.NativeEndian.Uint32(data[8:])), int(binary.NativeEndian.Uint32(data[12:]))
		if child != childTgid {
			return // a thread, not a process
		}
		lt.fork(parent, child)
	case procEventExit:
		if len(data) < 8 {
			return
		}
		pid, tgid := int(binary.NativeEndian.Uint32(data[0:])), int(binary.NativeEndian.Uint32(data[4:]))
		if pid == tgid {
			lt.mu.Lock()
			delete(lt.depth, pid)
			lt.mu.Unlock()
		}
	}
}

func (lt *levelTracker) fork(parent, child int) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if len(lt.levels) == 0 {
		return
	}
	info, ok := lt.depth[parent]
	if !ok {
		// The command may fork before setMain ran: its own process is the
		// agent's direct child in a level tag's cgroup.
		dir, in := lt.cgroupOf(parent)
		if !in || parentOf(parent) != lt.self {
			return
		}
		info = depthInfo{dir: dir, depth: 0}
		lt.depth[parent] = info
	}
	level, ok := lt.levels[info.dir]
	if !ok {
		return
	}
	if info.depth+1 > level {
		// Beyond the level: no longer part of the tag.
		if err := lt.untracked.Write("cgroup.procs", strconv.Itoa(child)); err != nil && !errors.Is(err, unix.ESRCH) {
			lt.log.Warn("cannot release a process beyond the monitoring level", "pid", child, "err", err)
		}
		return
	}
	lt.depth[child] = depthInfo{dir: info.dir, depth: info.depth + 1}
}

func parentOf(pid int) int {
	f := procStat(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func (lt *levelTracker) close() error { return lt.f.Close() }
