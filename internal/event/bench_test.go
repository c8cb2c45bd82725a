package event

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
)

func benchBus(b *testing.B) (*Bus, func()) {
	b.Helper()
	j, err := OpenJournal(JournalOptions{Dir: b.TempDir(), SegmentBytes: 16 << 20, MaxBytes: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	bus, err := NewBus(j, "n1", nil)
	if err != nil {
		b.Fatal(err)
	}
	return bus, func() { j.Close() }
}

func benchAttrs(i int) api.Attrs {
	return api.Attrs{
		"dr_ap_id": api.String(fmt.Sprintf("pci/0000:00:%02x.0", i%256)),
		"dr_hint":  api.String("dr_insert"),
		"pid":      api.Int(int64(i)),
	}
}

// BenchmarkPublishBatch publishes batches of 100 events, each batch
// durable (one write and one fdatasync) before the next. Budget: 50,000
// events/s.
func BenchmarkPublishBatch(b *testing.B) {
	bus, done := benchBus(b)
	defer done()
	const size = 100
	batch := make([]Event, size)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for k := range batch {
			batch[k] = Event{Class: "EC_dr", Subclass: "ESC_dr_ap_state_change", Publisher: "bench", Attrs: benchAttrs(k)}
		}
		if err := bus.PublishBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkPublishSingle publishes one event at a time, each acknowledged
// only once durable, and reports latency percentiles. Budget: p99 <= 1ms.
func BenchmarkPublishSingle(b *testing.B) {
	bus, done := benchBus(b)
	defer done()
	p := bus.Publisher("bench")
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := p.Publish(ctx, "EC_dr", "ESC_dr_ap_state_change", benchAttrs(i)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkPublishConcurrent has 8 publishers publishing one event at a
// time; group commit shares disk syncs between them.
func BenchmarkPublishConcurrent(b *testing.B) {
	bus, done := benchBus(b)
	defer done()
	p := bus.Publisher("bench")
	ctx := context.Background()
	const workers = 8
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, b.N/workers+1)
			for i := w; i < b.N; i += workers {
				t0 := time.Now()
				if _, err := p.Publish(ctx, "EC_dr", "ESC_dr_ap_state_change", benchAttrs(i)); err != nil {
					b.Error(err)
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
