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

// BenchmarkProbeDetection measures probe-based detection in the
// namespaces of newLab: the path of e0 dies with its link up (its switch
// port leaves the bridge), and the time until the daemon moves e0's data
// address is taken against the configured failure detection time; then
// the port rejoins and the time until the address fails back is taken
// against twice the FDT (ten answered probes). Ten runs at an FDT of 1s.
func BenchmarkProbeDetection(b *testing.B) {
	fdt := time.Second
	l := newLab(b)
	d := l.daemon(Settings{FDT: fdt, Failback: true})
	waitFor(b, "probes answered", 10*time.Second, func() bool { return l.iface(d, "e0").Probe == "ok" && l.iface(d, "e1").Probe == "ok" })
	var detect, repair []time.Duration
	for i := 0; i < 10; i++ {
		start := time.Now()
		l.sh("ip -n " + l.sw + " link set p0 nomaster")
		waitFor(b, ".100 moved", 5*fdt, func() bool { return l.kernelHas("198.51.100.100") == "e1" })
		detect = append(detect, time.Since(start))
		start = time.Now()
		l.sh("ip -n " + l.sw + " link set p0 master br0")
		waitFor(b, ".100 back", 10*fdt, func() bool { return l.kernelHas("198.51.100.100") == "e0" })
		repair = append(repair, time.Since(start))
		time.Sleep(300 * time.Millisecond)
	}
	pct := func(ds []time.Duration) (time.Duration, time.Duration) {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2], s[len(s)*9/10]
	}
	d50, d90 := pct(detect)
	r50, r90 := pct(repair)
	b.ReportMetric(d50.Seconds()/fdt.Seconds(), "detect-p50/FDT")
	b.ReportMetric(d90.Seconds()/fdt.Seconds(), "detect-p90/FDT")
	b.ReportMetric(r50.Seconds()/fdt.Seconds(), "repair-p50/FDT")
	b.Logf("FDT %v: path failure -> address moved p50 %v p90 %v (runs %v); repair -> address back p50 %v p90 %v (runs %v)",
		fdt, d50.Round(time.Millisecond), d90.Round(time.Millisecond), roundMs(detect), r50.Round(time.Millisecond), r90.Round(time.Millisecond), roundMs(repair))
}

func roundMs(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
