package ipmp

import (
	"context"
	"encoding/binary"
	"net"
	"sort"
	"sync"
	"testing"
	"time"
)

// BenchmarkLinkDownFailover measures, in the namespaces of newLab, the
// time from a member's link going down (its switch port set down) until
// the data address it carried answers a client again through the other
// member: the client sends a UDP request every millisecond and the first
// answer to a request sent after the cut counts. Twenty cuts; p50 and
// p90 are reported.
func BenchmarkLinkDownFailover(b *testing.B) {
	l := newLab(b)
	d, err := New(Options{Settings: Settings{FDT: DefaultFDT, Failback: true, FlapWindow: 100 * time.Millisecond}, Groups: labGroups(), NS: l.hostNS,
		StateFile: b.TempDir() + "/ipmp.json"})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	waitFor(b, ".100 on e0", 5*time.Second, func() bool { return l.kernelHas("198.51.100.100") == "e0" })
	var srv net.PacketConn
	if err := in(l.hostNS, func() error {
		lc := net.ListenConfig{Control: freebind}
		var err error
		srv, err = lc.ListenPacket(context.Background(), "udp4", "198.51.100.100:9")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(buf[:n], from)
		}
	}()
	var cl net.Conn
	if err := in(l.cNS, func() error {
		var err error
		cl, err = net.Dial("udp4", "198.51.100.100:9")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var mu sync.Mutex
	var cut time.Time
	answered := make(chan time.Time, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := cl.Read(buf)
			if err != nil {
				return
			}
			at := time.Now()
			if n < 8 {
				continue
			}
			sent := time.Unix(0, int64(binary.BigEndian.Uint64(buf)))
			mu.Lock()
			c := cut
			mu.Unlock()
			if !c.IsZero() && sent.After(c) {
				select {
				case answered <- at:
				default:
				}
			}
		}
	}()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		buf := make([]byte, 8)
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				binary.BigEndian.PutUint64(buf, uint64(time.Now().UnixNano()))
				cl.Write(buf)
			}
		}
	}()
	p0, err := l.swH.LinkByName("p0")
	if err != nil {
		b.Fatal(err)
	}
	var runs []time.Duration
	b.ResetTimer()
	for i := 0; i < 20; i++ {
		time.Sleep(300 * time.Millisecond) // the neighbours' caches settle
		mu.Lock()
		cut = time.Now()
		start := cut
		mu.Unlock()
		for len(answered) > 0 {
			<-answered
		}
		if err := l.swH.LinkSetDown(p0); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-answered:
			runs = append(runs, at.Sub(start))
		case <-time.After(5 * time.Second):
			b.Fatalf("cut %d: no answer through e1 within 5s", i)
		}
		mu.Lock()
		cut = time.Time{}
		mu.Unlock()
		if err := l.swH.LinkSetUp(p0); err != nil {
			b.Fatal(err)
		}
		waitFor(b, ".100 back on e0", 5*time.Second, func() bool { return l.kernelHas("198.51.100.100") == "e0" })
	}
	b.StopTimer()
	sorted := append([]time.Duration(nil), runs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	p50, p90 := sorted[len(sorted)/2], sorted[len(sorted)*9/10]
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p90.Microseconds())/1000, "p90-ms")
	b.Logf("link down -> the data address answers through the other member: p50 %v p90 %v (runs: %v)", p50, p90, runs)
}
