package event

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/steady-ha/steady/api"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openTestJournal(t *testing.T, dir string, mod func(*JournalOptions)) *Journal {
	t.Helper()
	opts := JournalOptions{Dir: dir, SegmentBytes: 64 << 10, MaxBytes: 1 << 20, MaxAge: time.Hour, CacheEvents: 16}
	if mod != nil {
		mod(&opts)
	}
	j, err := OpenJournal(opts)
	if err != nil {
		t.Fatalf("OpenJournal: %v", err)
	}
	return j
}

func newTestBus(t *testing.T, j *Journal) *Bus {
	t.Helper()
	b, err := NewBus(j, "n1", nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func publishN(t *testing.T, b *Bus, n int, class string) []uint64 {
	t.Helper()
	p := b.Publisher("test")
	var seqs []uint64
	for i := 0; i < n; i++ {
		seq, err := p.Publish(t.Context(), class, "ESC_test", api.Attrs{"i": api.Int(int64(i)), "pad": api.String(fmt.Sprintf("%0100d", i))})
		if err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

func readAll(t *testing.T, j *Journal, after uint64) []Event {
	t.Helper()
	var out []Event
	for {
		evs, err := j.Read(after, 100)
		if err != nil {
			t.Fatalf("Read(%d): %v", after, err)
		}
		if len(evs) == 0 {
			return out
		}
		out = append(out, evs...)
		after = evs[len(evs)-1].Seq
	}
}

func TestJournalSequenceSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	j := openTestJournal(t, dir, nil)
	b := newTestBus(t, j)
	seqs := publishN(t, b, 500, "EC_a") // several segments at 64 KiB
	if seqs[0] != 1 || seqs[499] != 500 {
		t.Fatalf("sequence numbers %d..%d, want 1..500", seqs[0], seqs[499])
	}
	if st := j.Stats(); st.Segments < 2 {
		t.Fatalf("expected rotation into several segments, have %d", st.Segments)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publisher("x").Publish(context.Background(), "EC_a", "ESC_b", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after close: %v, want ErrClosed", err)
	}

	j2 := openTestJournal(t, dir, nil)
	defer j2.Close()
	if got := j2.LastSeq(); got != 500 {
		t.Fatalf("LastSeq after reopen = %d, want 500", got)
	}
	evs := readAll(t, j2, 0)
	if len(evs) != 500 {
		t.Fatalf("read %d events after reopen, want 500", len(evs))
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) || ev.Node != "n1" || ev.Publisher != "test" {
			t.Fatalf("event %d = %+v", i, ev)
		}
		if n, _ := ev.Attrs["i"].Int64(); n != int64(i) {
			t.Fatalf("event %d has attribute i=%d", i, n)
		}
	}
	b2 := newTestBus(t, j2)
	if seq := publishN(t, b2, 1, "EC_a")[0]; seq != 501 {
		t.Fatalf("next sequence after restart = %d, want 501", seq)
	}
}

func TestJournalCutsTornTail(t *testing.T) {
	for _, garbage := range [][]byte{
		{0x10},                        // a partial record header
		{40, 0, 0, 0, 1, 2, 3, 4, 5},  // a header whose payload never made it
		make([]byte, recordHeader+40), // a zeroed record (bad length)
	} {
		t.Run(fmt.Sprintf("%d bytes", len(garbage)), func(t *testing.T) {
			dir := t.TempDir()
			j := openTestJournal(t, dir, nil)
			publishN(t, newTestBus(t, j), 10, "EC_a")
			j.Close()
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			last := segs[len(segs)-1]
			f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(garbage)
			f.Close()

			j2 := openTestJournal(t, dir, nil)
			defer j2.Close()
			if got := j2.LastSeq(); got != 10 {
				t.Fatalf("LastSeq = %d, want 10", got)
			}
			if seq := publishN(t, newTestBus(t, j2), 1, "EC_a")[0]; seq != 11 {
				t.Fatalf("next seq = %d, want 11", seq)
			}
			if n := len(readAll(t, j2, 0)); n != 11 {
				t.Fatalf("read %d events, want 11", n)
			}
		})
	}
}

func TestJournalRetention(t *testing.T) {
	clock := &testClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	j := openTestJournal(t, dir, func(o *JournalOptions) {
		o.MaxBytes = 256 << 10
		o.Now = clock.Now
	})
	b := newTestBus(t, j)
	publishN(t, b, 3000, "EC_a") // ~600 KiB, over the 256 KiB limit
	st := j.Stats()
	if st.Bytes > 256<<10+64<<10 {
		t.Fatalf("journal holds %d bytes, limit 256 KiB (+ one segment)", st.Bytes)
	}
	if st.FirstSeq <= 1 {
		t.Fatalf("oldest segment was not removed (first seq %d)", st.FirstSeq)
	}
	// A subscriber that had read nothing learns about the gap once, then
	// gets the oldest event still available.
	sub := b.Subscribe(0, Filter{})
	_, err := sub.Next(t.Context())
	var gap *GapError
	if !errors.As(err, &gap) || gap.Next != st.FirstSeq {
		t.Fatalf("Next = %v, want a gap up to %d", err, st.FirstSeq)
	}
	ev, err := sub.Next(t.Context())
	if err != nil || ev.Seq != st.FirstSeq {
		t.Fatalf("after the gap: %v %v, want seq %d", ev.Seq, err, st.FirstSeq)
	}

	// Age alone: reopen with a size limit that retention never reaches,
	// let an hour pass, and publish enough to rotate. Every segment that
	// holds only old events must go; the one that was active (it also gets
	// new events) stays.
	j.Close()
	j2 := openTestJournal(t, dir, func(o *JournalOptions) { o.Now = clock.Now; o.MaxBytes = 64 << 20 })
	defer j2.Close()
	before := j2.Stats()
	j2.mu.RLock()
	activeFirst := j2.segs[len(j2.segs)-1].first
	j2.mu.RUnlock()
	if before.FirstSeq >= activeFirst {
		t.Fatalf("test needs old segments before the active one (first %d, active %d)", before.FirstSeq, activeFirst)
	}
	clock.Advance(2 * time.Hour)
	publishN(t, newTestBus(t, j2), 400, "EC_a")
	if got := j2.Stats().FirstSeq; got != activeFirst {
		t.Fatalf("after max_age, oldest seq = %d, want %d (the segment that was active)", got, activeFirst)
	}
	if j2.LastSeq() != 3400 {
		t.Fatalf("LastSeq = %d, want 3400", j2.LastSeq())
	}
}

func TestJournalReadFromDiskMatchesCache(t *testing.T) {
	j := openTestJournal(t, t.TempDir(), nil)
	defer j.Close()
	publishN(t, newTestBus(t, j), 300, "EC_a")
	cached, err := j.Read(290, 100)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := j.readDisk(290, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(cached) != 10 || len(disk) != 10 {
		t.Fatalf("cache gave %d, disk %d; want 10 each", len(cached), len(disk))
	}
	for i := range cached {
		a, b := cached[i], disk[i]
		if a.Seq != b.Seq || !a.Time.Equal(b.Time) || a.Class != b.Class || !a.Attrs["i"].Equal(b.Attrs["i"]) {
			t.Fatalf("event %d differs: cache %+v disk %+v", i, a, b)
		}
	}
	// Reads that start inside the index (not on an index entry).
	for _, after := range []uint64{0, 1, 255, 256, 257, 299} {
		evs, err := j.Read(after, 1)
		if err != nil || len(evs) != 1 || evs[0].Seq != after+1 {
			t.Fatalf("Read(%d,1) = %v, %v", after, evs, err)
		}
	}
}

func TestConcurrentPublishersGetDistinctOrderedSeqs(t *testing.T) {
	j := openTestJournal(t, t.TempDir(), func(o *JournalOptions) { o.SegmentBytes = 1 << 20; o.MaxBytes = 64 << 20 })
	defer j.Close()
	b := newTestBus(t, j)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	seen := make(chan uint64, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := b.Publisher(fmt.Sprintf("w%d", w))
			last := uint64(0)
			for i := 0; i < each; i++ {
				seq, err := p.Publish(context.Background(), "EC_c", "ESC_c", api.Attrs{"i": api.Int(int64(i))})
				if err != nil {
					t.Error(err)
					return
				}
				if seq <= last {
					t.Errorf("publisher %d got seq %d after %d", w, seq, last)
				}
				last = seq
				seen <- seq
			}
		}()
	}
	wg.Wait()
	close(seen)
	got := map[uint64]bool{}
	for s := range seen {
		if got[s] {
			t.Fatalf("seq %d given twice", s)
		}
		got[s] = true
	}
	if len(got) != writers*each || j.LastSeq() != writers*each {
		t.Fatalf("%d distinct seqs, LastSeq %d; want %d", len(got), j.LastSeq(), writers*each)
	}
}

func TestPublishRejectsInvalidEvents(t *testing.T) {
	j := openTestJournal(t, t.TempDir(), nil)
	defer j.Close()
	b := newTestBus(t, j)
	p := b.Publisher("t")
	for _, tc := range []struct{ class, subclass string }{{"", "x"}, {"EC x", "y"}, {"EC_a", "$bad"}} {
		if _, err := p.Publish(t.Context(), tc.class, tc.subclass, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("Publish(%q,%q) = %v, want ErrInvalid", tc.class, tc.subclass, err)
		}
	}
	if _, err := p.Publish(t.Context(), "EC_a", "b", api.Attrs{"big": api.String(string(make([]byte, 2<<20)))}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("2 MiB attribute: %v, want ErrTooLarge", err)
	}
	// A rejected event leaves no hole in the sequence.
	if seq, err := p.Publish(t.Context(), "EC_a", "b", nil); err != nil || seq != 1 {
		t.Fatalf("next publish = %d, %v; want 1", seq, err)
	}
}

func TestSubscriptionFiltersAndWaits(t *testing.T) {
	j := openTestJournal(t, t.TempDir(), nil)
	defer j.Close()
	b := newTestBus(t, j)
	sub := b.Subscribe(0, Filter{Class: "EC_want", Subclass: "ESC_yes"})
	got := make(chan Event, 1)
	go func() {
		ev, err := sub.Next(t.Context())
		if err == nil {
			got <- ev
		}
		close(got)
	}()
	p := b.Publisher("t")
	p.Publish(t.Context(), "EC_other", "ESC_yes", nil)
	p.Publish(t.Context(), "EC_want", "ESC_no", nil)
	p.Publish(t.Context(), "EC_want", "ESC_yes", api.Attrs{"k": api.String("v")})
	select {
	case ev := <-got:
		if ev.Seq != 3 || ev.Attrs["k"].Format() != "v" {
			t.Fatalf("got %+v, want the third event", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("subscription did not wake up")
	}
}

func nopLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
