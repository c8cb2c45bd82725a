package event

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/steady-ha/steady/api"
)

// Event is the event type of the API; the bus stores and delivers it as is.
type Event = api.Event

// ErrInvalid is wrapped by errors about a malformed event.
var ErrInvalid = errors.New("event: invalid event")

// Bus publishes events to the journal and hands them to subscribers.
// Subscribers read from the journal by sequence number, so a slow one never
// holds up a publisher or another subscriber, and one that falls behind
// catches up from disk instead of losing events.
type Bus struct {
	j    *Journal
	node string
	now  func() time.Time

	published prometheus.Counter
	batches   prometheus.Histogram
}

// NewBus publishes events of node into j. Metrics are registered with reg
// when it is non-nil.
func NewBus(j *Journal, node string, reg prometheus.Registerer) (*Bus, error) {
	b := &Bus{
		j:    j,
		node: node,
		now:  j.opts.Now,
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "steady_events_published_total", Help: "Events written to the local journal.",
		}),
		batches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "steady_events_publish_seconds",
			Help:    "Time from Publish to the event being durable.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .05, .25},
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{b.published, b.batches, journalCollector{j}} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("event: metrics: %w", err)
			}
		}
	}
	return b, nil
}

// Journal returns the journal behind the bus.
func (b *Bus) Journal() *Journal { return b.j }

// Node is the node name stamped on published events.
func (b *Bus) Node() string { return b.node }

// Publisher returns a handle that publishes under the given publisher name
// (for example "steady:pmf" or "kernel").
func (b *Bus) Publisher(name string) Publisher { return Publisher{bus: b, name: name} }

// Publisher publishes events under one publisher name. The zero value
// discards events, which suits tests of components that publish.
type Publisher struct {
	bus  *Bus
	name string
}

// Publish publishes one event of class and subclass with attrs and returns
// its sequence number once it is durable.
func (p Publisher) Publish(ctx context.Context, class, subclass string, attrs api.Attrs) (uint64, error) {
	if p.bus == nil {
		return 0, nil
	}
	evs := []Event{{Class: class, Subclass: subclass, Publisher: p.name, Attrs: attrs}}
	if err := p.bus.PublishBatch(ctx, evs); err != nil {
		return 0, err
	}
	return evs[0].Seq, nil
}

// PublishBatch publishes evs with one disk sync, filling in Time (when
// zero) and Node, and assigning Seq in place. It fails as a whole.
func (b *Bus) PublishBatch(ctx context.Context, evs []Event) error {
	start := b.now()
	for i := range evs {
		ev := &evs[i]
		if ev.Time.IsZero() {
			ev.Time = start
		}
		ev.Node = b.node
		if err := validate(ev); err != nil {
			return err
		}
	}
	if err := b.j.Append(ctx, evs); err != nil {
		return err
	}
	b.published.Add(float64(len(evs)))
	b.batches.Observe(time.Since(start).Seconds())
	return nil
}

func validate(ev *Event) error {
	req := api.PublishRequest{Class: ev.Class, Subclass: ev.Subclass, Attrs: ev.Attrs}
	if err := req.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if ev.Publisher == "" {
		return fmt.Errorf("%w: %s/%s has no publisher", ErrInvalid, ev.Class, ev.Subclass)
	}
	return nil
}

// Filter selects events. Empty fields match everything.
type Filter struct {
	Class    string
	Subclass string
}

// Match reports whether ev passes the filter.
func (f Filter) Match(ev *Event) bool {
	return (f.Class == "" || f.Class == ev.Class) && (f.Subclass == "" || f.Subclass == ev.Subclass)
}

// GapError is returned once by Subscription.Next when events the
// subscriber had not read yet were removed by retention.
type GapError struct {
	After uint64 // the last event the subscriber had
	Next  uint64 // the oldest event still available
}

func (e *GapError) Error() string {
	return fmt.Sprintf("event: events %d..%d were removed by journal retention before they were read", e.After+1, e.Next-1)
}

// Subscription reads matching events in order, starting after a sequence
// number. It is used from one goroutine.
type Subscription struct {
	j      *Journal
	filter Filter
	after  uint64
	buf    []Event
}

// Subscribe starts a subscription that yields matching events with a
// sequence number greater than after.
func (b *Bus) Subscribe(after uint64, f Filter) *Subscription {
	return &Subscription{j: b.j, filter: f, after: after}
}

// ErrNoMore is returned by NextAvailable when no matching event is
// available yet.
var ErrNoMore = errors.New("event: no more events for now")

// Next blocks until a matching event is available or ctx ends. It returns
// a *GapError (once, then continues) when retention removed unread events.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	return s.next(ctx, true)
}

// NextAvailable is Next without waiting: ErrNoMore when nothing matching
// is available now.
func (s *Subscription) NextAvailable() (Event, error) {
	return s.next(context.Background(), false)
}

func (s *Subscription) next(ctx context.Context, wait bool) (Event, error) {
	for {
		for len(s.buf) > 0 {
			ev := s.buf[0]
			s.buf = s.buf[1:]
			if s.filter.Match(&ev) {
				return ev, nil
			}
		}
		changed := s.j.Changed()
		evs, err := s.j.Read(s.after, 512)
		if err != nil {
			return Event{}, err
		}
		if len(evs) > 0 {
			gap := evs[0].Seq > s.after+1
			prev := s.after
			s.after = evs[len(evs)-1].Seq
			s.buf = evs
			if gap {
				return Event{}, &GapError{After: prev, Next: evs[0].Seq}
			}
			continue
		}
		if !wait {
			return Event{}, ErrNoMore
		}
		select {
		case <-changed:
		case <-s.j.closed:
			return Event{}, ErrClosed
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Cursor is the sequence number of the last event the subscription has
// read (matching or not).
func (s *Subscription) Cursor() uint64 {
	if len(s.buf) > 0 {
		return s.buf[0].Seq - 1
	}
	return s.after
}

// journalCollector exposes the journal's size as gauges.
type journalCollector struct{ j *Journal }

var (
	descJournalBytes = prometheus.NewDesc("steady_events_journal_bytes", "Size of the local event journal.", nil, nil)
	descJournalSegs  = prometheus.NewDesc("steady_events_journal_segments", "Segment files of the local event journal.", nil, nil)
	descLastSeq      = prometheus.NewDesc("steady_events_last_sequence", "Sequence number of the newest event.", nil, nil)
)

func (c journalCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descJournalBytes
	ch <- descJournalSegs
	ch <- descLastSeq
}

func (c journalCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.j.Stats()
	ch <- prometheus.MustNewConstMetric(descJournalBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descJournalSegs, prometheus.GaugeValue, float64(st.Segments))
	ch <- prometheus.MustNewConstMetric(descLastSeq, prometheus.GaugeValue, float64(st.LastSeq))
}

// Tail returns the newest n events that match f, oldest first. It reads
// backwards in growing windows, so a rare class costs more than a common
// one but neither reads the whole journal unless it must.
func (b *Bus) Tail(f Filter, n int) ([]Event, error) {
	if n <= 0 {
		return nil, nil
	}
	last, first := b.j.LastSeq(), b.j.FirstSeq()
	window := uint64(max(4*n, 256))
	for {
		start := first
		if last >= window && last-window+1 > first {
			start = last - window + 1
		}
		var matched []Event
		after := start - 1
		for after < last {
			evs, err := b.j.Read(after, 1024)
			if err != nil {
				return nil, err
			}
			if len(evs) == 0 {
				break
			}
			for i := range evs {
				if f.Match(&evs[i]) {
					matched = append(matched, evs[i])
				}
			}
			after = evs[len(evs)-1].Seq
		}
		if len(matched) >= n || start <= first {
			if len(matched) > n {
				matched = matched[len(matched)-n:]
			}
			return matched, nil
		}
		window *= 4
	}
}
