package event

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/steady-ha/steady/api"
	"golang.org/x/sys/unix"
)

// Class and subclasses of kernel device events.
const (
	ClassDev       = "EC_dev"
	SubclassResync = "resync" // uevents may have been missed; rescan sysfs
)

// Uevent is one parsed kernel uevent.
type Uevent struct {
	Action    string
	DevPath   string
	Subsystem string
	Seqnum    uint64
	// Env holds every KEY=VALUE of the message, ACTION, DEVPATH,
	// SUBSYSTEM and SEQNUM included, in the order received.
	Env []KV
}

// KV is one KEY=VALUE of a uevent.
type KV struct{ Key, Value string }

// ParseUevent parses a kernel uevent message: "action@devpath" and then
// NUL-separated KEY=VALUE pairs, which must include ACTION, DEVPATH and
// SEQNUM. Messages from udev (which start with "libudev") are refused.
func ParseUevent(msg []byte) (Uevent, error) {
	var u Uevent
	if bytes.HasPrefix(msg, []byte("libudev")) {
		return u, errors.New("uevent: a udev message, not a kernel one")
	}
	parts := bytes.Split(bytes.TrimRight(msg, "\x00"), []byte{0})
	if len(parts) < 2 {
		return u, errors.New("uevent: no key=value pairs")
	}
	head := string(parts[0])
	at := strings.IndexByte(head, '@')
	if at <= 0 || at == len(head)-1 {
		return u, fmt.Errorf("uevent: header %q is not action@devpath", trim(head))
	}
	hAction, hPath := head[:at], head[at+1:]
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		if len(p) == 0 {
			continue
		}
		eq := bytes.IndexByte(p, '=')
		if eq <= 0 {
			return u, fmt.Errorf("uevent: %q is not KEY=VALUE", trim(string(p)))
		}
		k, v := string(p[:eq]), string(p[eq+1:])
		if !validKey(k) {
			return u, fmt.Errorf("uevent: key %q has characters other than A-Z, a-z, 0-9 and _", trim(k))
		}
		if seen[k] {
			return u, fmt.Errorf("uevent: key %s appears twice", k)
		}
		seen[k] = true
		u.Env = append(u.Env, KV{k, v})
		switch k {
		case "ACTION":
			u.Action = v
		case "DEVPATH":
			u.DevPath = v
		case "SUBSYSTEM":
			u.Subsystem = v
		case "SEQNUM":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return u, fmt.Errorf("uevent: SEQNUM %q is not a number", trim(v))
			}
			u.Seqnum = n
		}
	}
	switch {
	case u.Action == "" || u.DevPath == "" || !seen["SEQNUM"]:
		return u, errors.New("uevent: ACTION, DEVPATH or SEQNUM missing")
	case u.Action != hAction || u.DevPath != hPath:
		return u, fmt.Errorf("uevent: header %q disagrees with ACTION=%s DEVPATH=%s", trim(head), trim(u.Action), trim(u.DevPath))
	case !api.ValidName(u.Action):
		return u, fmt.Errorf("uevent: action %q is not a valid name", trim(u.Action))
	}
	return u, nil
}

func trim(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func validKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9' && i > 0)) {
			return false
		}
	}
	return k != ""
}

// Event converts u to an EC_dev event whose subclass is the action and
// whose attributes are the lower-cased keys (seqnum as an unsigned
// integer, everything else as strings).
func (u Uevent) Event() Event {
	attrs := make(api.Attrs, len(u.Env))
	for _, kv := range u.Env {
		name := strings.ToLower(kv.Key)
		if name == "seqnum" {
			attrs[name] = api.Uint(u.Seqnum)
			continue
		}
		attrs[name] = api.String(kv.Value)
	}
	return Event{Class: ClassDev, Subclass: u.Action, Publisher: "kernel", Attrs: attrs}
}

// UeventListener receives kernel uevents from NETLINK_KOBJECT_UEVENT and
// publishes them. The kernel gives no delivery guarantee: when its SEQNUM
// jumps, or the socket overflowed, the listener publishes an EC_dev/resync
// event so that consumers rescan sysfs. (Uevents of network devices in
// other network namespaces also advance SEQNUM without reaching this
// socket; a resync is then harmless.)
type UeventListener struct {
	f    *os.File
	pub  Publisher
	log  *slog.Logger
	last atomic.Uint64 // SEQNUM of the last uevent seen

	received, resyncs prometheus.Counter
}

// OpenUevents opens the netlink socket with a receive buffer of bufBytes.
func OpenUevents(bus *Bus, bufBytes int, logger *slog.Logger, reg prometheus.Registerer) (*UeventListener, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("event: uevent socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bufBytes); err != nil {
		// Without CAP_NET_ADMIN the kernel caps the buffer at rmem_max.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, bufBytes)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("event: uevent socket bind: %w", err)
	}
	l := &UeventListener{
		f:        os.NewFile(uintptr(fd), "uevent"),
		pub:      bus.Publisher("kernel"),
		log:      logger,
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "steady_uevents_received_total", Help: "Kernel uevents received."}),
		resyncs:  prometheus.NewCounter(prometheus.CounterOpts{Name: "steady_uevents_resyncs_total", Help: "Resync events published after lost uevents."}),
	}
	if b, err := os.ReadFile("/sys/kernel/uevent_seqnum"); err == nil {
		n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		l.last.Store(n)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{l.received, l.resyncs} {
			if err := reg.Register(c); err != nil {
				l.f.Close()
				return nil, fmt.Errorf("event: metrics: %w", err)
			}
		}
	}
	return l, nil
}

// LastSeqnum is the kernel SEQNUM of the last uevent received.
func (l *UeventListener) LastSeqnum() uint64 { return l.last.Load() }

// Run receives and publishes uevents until ctx ends or Close is called.
func (l *UeventListener) Run(ctx context.Context) error {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("event: uevent socket: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { l.f.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("event: uevent socket: %w", err)
		}
		if rerr == unix.ENOBUFS {
			l.resync(ctx, 0, "the socket buffer overflowed")
			continue
		}
		if rerr != nil {
			return fmt.Errorf("event: uevent socket: %w", rerr)
		}
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue // only the kernel sends with port id 0
		}
		u, err := ParseUevent(buf[:n])
		if err != nil {
			l.log.Warn("ignoring a malformed uevent", "err", err)
			continue
		}
		l.received.Inc()
		prev := l.last.Swap(u.Seqnum)
		if prev != 0 && u.Seqnum > prev+1 {
			l.resync(ctx, u.Seqnum-prev-1, fmt.Sprintf("kernel SEQNUM jumped from %d to %d", prev, u.Seqnum))
		}
		if _, err := l.pub.Publish(ctx, ClassDev, u.Action, u.Event().Attrs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.log.Error("cannot publish uevent", "seqnum", u.Seqnum, "err", err)
		}
	}
}

func (l *UeventListener) resync(ctx context.Context, missed uint64, reason string) {
	l.resyncs.Inc()
	l.log.Info("uevents may have been missed; publishing resync", "reason", reason)
	attrs := api.Attrs{"reason": api.String(reason), "missed": api.Uint(missed)}
	if _, err := l.pub.Publish(ctx, ClassDev, SubclassResync, attrs); err != nil && ctx.Err() == nil {
		l.log.Error("cannot publish uevent resync", "err", err)
	}
}

// Close closes the socket; Run returns.
func (l *UeventListener) Close() error { return l.f.Close() }
