package pmf

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/steady-ha/steady/internal/cgroup"
	"github.com/steady-ha/steady/internal/event"
	"github.com/steady-ha/steady/internal/reaper"
	"golang.org/x/sys/unix"
)

const (
	procEventExec = 0x00000002
	restartsToRun = 1000
)

// kernelClock records, from the process connector, when each process
// exited and when each exec happened, in the kernel's own clock.
type kernelClock struct {
	mu    sync.Mutex
	exits map[int]uint64
	execs map[int]uint64
}

func startKernelClock(b *testing.B) (*kernelClock, func()) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, netlinkConnector)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		b.Fatal(err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	if err := sendMcast(fd, procMcastListen); err != nil {
		b.Fatal(err)
	}
	// Closing a socket does not wake a blocking read; a timeout lets the
	// reader see that it should stop.
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	kc := &kernelClock{exits: map[int]uint64{}, execs: map[int]uint64{}}
	done := make(chan struct{})
	var stop atomic.Bool
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for !stop.Load() {
			n, err := unix.Read(fd, buf)
			if err != nil {
				if err == unix.ENOBUFS || err == unix.EAGAIN || err == unix.EINTR {
					continue
				}
				return
			}
			for m := buf[:n]; len(m) >= nlmsgHdrLen; {
				l := int(binary.NativeEndian.Uint32(m))
				if l < nlmsgHdrLen || l > len(m) {
					break
				}
				msg := m[:l]
				m = m[(l+3)&^3:]
				what, data, ok := parseProcEvent(msg)
				if !ok || len(data) < 8 {
					continue
				}
				ev := msg[nlmsgHdrLen+cnMsgLen:]
				ts := binary.NativeEndian.Uint64(ev[8:])
				pid, tgid := int(binary.NativeEndian.Uint32(data[0:])), int(binary.NativeEndian.Uint32(data[4:]))
				if pid != tgid {
					continue
				}
				kc.mu.Lock()
				switch what {
				case procEventExit:
					kc.exits[pid] = ts
				case procEventExec:
					kc.execs[pid] = ts
				}
				kc.mu.Unlock()
			}
		}
	}()
	return kc, func() {
		sendMcast(fd, procMcastIgnore)
		stop.Store(true)
		<-done
		unix.Close(fd)
	}
}

// BenchmarkRestartLatency supervises /bin/true with unlimited restarts
// until it has been restarted 1,000 times, and reports the time from the
// kernel's exit of one instance to the exec of the next (the kernel's
// clock, from the process connector), and the monitor's own measure (from
// noticing the exit to the exec). Budget: p50 <= 2ms, p99 <= 10ms.
func BenchmarkRestartLatency(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for cgroups and the process connector")
	}
	for i := 0; i < b.N; i++ {
		runRestartBench(b)
	}
}

func runRestartBench(b *testing.B) {
	dir := b.TempDir()
	j, err := event.OpenJournal(event.JournalOptions{Dir: dir + "/j", SegmentBytes: 16 << 20, MaxBytes: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	bus, _ := event.NewBus(j, "n1", nil)
	r, err := reaper.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	m, err := New(Options{Dir: dir + "/pmf", Mode: ModeCgroup, Cgroup: "steady-bench", Bus: bus, Spawner: r})
	if err != nil {
		b.Fatal(err)
	}
	defer cgroup.RemoveTree(cgroup.Dir(filepath.Dir(string(m.cgRoot))))
	defer m.Close()
	kc, stopClock := startKernelClock(b)
	sub := bus.Subscribe(j.LastSeq(), event.Filter{Class: ClassPMF})
	spec := Spec{Tag: "bench", Command: []string{"/bin/true"}, Env: []string{"PATH=/bin"}, Dir: "/",
		Owner: Owner{Name: "root", Home: "/root"}, Retries: -1, Level: -1}
	if _, err := m.Start(context.Background(), spec); err != nil {
		b.Fatal(err)
	}
	pids := []int{}
	var internal []time.Duration
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for len(internal) < restartsToRun {
		ev, err := sub.Next(ctx)
		if err != nil {
			b.Fatalf("after %d restarts: %v", len(internal), err)
		}
		switch ev.Subclass {
		case SubclassStarted, SubclassRestarted:
			pid, _ := ev.Attrs["pid"].Int64()
			pids = append(pids, int(pid))
			if us, ok := ev.Attrs["latency_us"].Int64(); ok {
				internal = append(internal, time.Duration(us)*time.Microsecond)
			}
		}
	}
	m.Stop(context.Background(), "bench", unix.SIGKILL, 5*time.Second, Root)
	time.Sleep(100 * time.Millisecond)
	stopClock()
	var kernel []time.Duration
	kc.mu.Lock()
	for i := 0; i+1 < len(pids); i++ {
		exit, ok1 := kc.exits[pids[i]]
		exec, ok2 := kc.execs[pids[i+1]]
		if ok1 && ok2 && exec > exit {
			kernel = append(kernel, time.Duration(exec-exit))
		}
	}
	kc.mu.Unlock()
	if len(kernel) < restartsToRun*9/10 {
		b.Fatalf("the process connector saw only %d of %d restarts", len(kernel), len(pids)-1)
	}
	p := func(d []time.Duration, q float64) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[int(q*float64(len(d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(kernel)), "restarts")
	b.ReportMetric(p(kernel, 0.50), "p50-ms")
	b.ReportMetric(p(kernel, 0.99), "p99-ms")
	b.ReportMetric(p(internal, 0.50), "monitor-p50-ms")
	b.ReportMetric(p(internal, 0.99), "monitor-p99-ms")
}
