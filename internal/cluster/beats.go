package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/atomicfile"
	"github.com/steady-ha/steady/internal/store"
)

// Heartbeats and down records: what takeover rests on.
//
// Each node writes its heartbeat (beatsPrefix+NODE) every keepalive, with
// a transaction that succeeds only while no down record of the node
// exists. Every node watches the heartbeats of the others; one that has
// seen no newer heartbeat of a node for TakeoverDelay declares it down by
// creating its down record (downPrefix+NODE), in a transaction that
// succeeds only if the heartbeat it last saw is still the newest. From
// that moment the node can have no heartbeat confirmed, so it fenced
// itself at most FenceAfter (plus drift) after sending the last one it
// had confirmed, and had stopBudget to stop: its failover work may be
// taken over. A node that finds its down record stops its work for good
// and rejoins with a new epoch, which deletes the record.
//
// The lease is kept for the records bound to it (the liveness record,
// the candidacy for controller); nothing is taken over because a lease
// expired, so a store that makes leases longer than asked, or counts them
// in whole seconds, does not slow a takeover down.
const (
	beatsPrefix  = "cluster/beats/"
	downPrefix   = "cluster/down/"
	epochsPrefix = "cluster/epochs/"
	beatSchema   = 1
	downSchema   = 1
	epochSchema  = 1
)

// beatRecord is a node's heartbeat.
type beatRecord struct {
	Epoch   uint64 `json:"epoch"`
	Session string `json:"session"`
	Seq     uint64 `json:"seq"`
}

// DownRecord says that a node was declared down, by whom and why.
type DownRecord struct {
	Node   string    `json:"node"`
	Epoch  uint64    `json:"epoch"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// epochRecord is written when a node starts an epoch; its revision is
// when the node came up in it (failback compares it with a group's
// placement).
type epochRecord struct {
	Epoch   uint64 `json:"epoch"`
	Session string `json:"session"`
}

// session is what a node keeps on disk of its membership, so that an
// agent restarted quickly goes on in the same epoch and nothing it runs
// is stopped.
type session struct {
	Schema int           `json:"schema"`
	Node   string        `json:"node"`
	ID     string        `json:"id"`
	Epoch  uint64        `json:"epoch"`
	Lease  store.LeaseID `json:"lease"`
}

const sessionSchema = 1

func readSession(path, node string) (session, bool) {
	var s session
	if path == "" {
		return s, false
	}
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &s) != nil || s.Schema != sessionSchema || s.Node != node || s.ID == "" {
		return session{}, false
	}
	return s, true
}

func writeSession(path string, s session) error {
	if path == "" {
		return nil
	}
	s.Schema = sessionSchema
	b, _ := json.Marshal(s)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := atomicfile.Replace(path, b, 0o600); err != nil {
		return fmt.Errorf("cluster: saving the session: %w", err)
	}
	return nil
}

func newSessionID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// errDeclaredDown: a heartbeat was refused because the node's down record
// exists.
var errDeclaredDown = errors.New("cluster: this node was declared down")

// beat writes the node's heartbeat unless it was declared down.
func beat(ctx context.Context, s Store, node string, rec beatRecord) error {
	op, err := store.OpPut(beatsPrefix+node, beatSchema, rec)
	if err != nil {
		return err
	}
	res, err := s.Txn(ctx, []store.Cond{store.Missing(downPrefix + node)}, []store.Op{op}, nil)
	if err != nil {
		return err
	}
	if !res.Succeeded {
		return errDeclaredDown
	}
	return nil
}

// startEpoch begins epoch for node: its down record (seen at downRev, 0
// when there was none) goes, and its heartbeat and epoch record are
// written, in one transaction.
func startEpoch(ctx context.Context, s Store, node string, epoch uint64, id string, downRev int64) error {
	ops := []store.Op{}
	for _, kv := range []struct {
		key    string
		schema int
		v      any
	}{
		{beatsPrefix + node, beatSchema, beatRecord{Epoch: epoch, Session: id}},
		{epochsPrefix + node, epochSchema, epochRecord{Epoch: epoch, Session: id}},
	} {
		op, err := store.OpPut(kv.key, kv.schema, kv.v)
		if err != nil {
			return err
		}
		ops = append(ops, op)
	}
	if downRev != 0 {
		op, _ := store.OpDelete(downPrefix + node)
		ops = append(ops, op)
	}
	res, err := s.Txn(ctx, []store.Cond{store.Unchanged(downPrefix+node, downRev)}, ops, nil)
	if err != nil {
		return fmt.Errorf("cluster: starting epoch %d of %s: %w", epoch, node, err)
	}
	if !res.Succeeded {
		return fmt.Errorf("cluster: starting epoch %d of %s: its down record changed meanwhile", epoch, node)
	}
	return nil
}

// declareDown creates node's down record if its heartbeat is still the
// one seen at rev. It reports whether it did.
func declareDown(ctx context.Context, s Store, rec DownRecord, rev int64) (bool, error) {
	op, err := store.OpPut(downPrefix+rec.Node, downSchema, rec)
	if err != nil {
		return false, err
	}
	res, err := s.Txn(ctx, []store.Cond{store.Unchanged(beatsPrefix+rec.Node, rev), store.Missing(downPrefix + rec.Node)}, []store.Op{op}, nil)
	if err != nil {
		return false, err
	}
	return res.Succeeded, nil
}

// NodeView is what a node knows of another from the heartbeats: whether
// it is up (it has a heartbeat and no down record), its epoch, and the
// store revision at which it started that epoch.
type NodeView struct {
	Name  string
	Up    bool
	Epoch uint64
	// UpRev is the revision of the node's epoch record: when it came up.
	UpRev int64
	// Down is its down record, when it has one.
	Down *DownRecord
}

// observer follows the heartbeats, down records and epochs of every
// node: it declares silent nodes down, publishes what happens to the
// others, and answers Nodes.
type observer struct {
	m *Member

	mu     sync.Mutex
	beats  map[string]seenBeat
	down   map[string]DownRecord
	epochs map[string]seenEpoch
	ready  bool
	// changed is closed and replaced whenever the view changes.
	changed chan struct{}
}

type seenBeat struct {
	rev   int64
	epoch uint64
	seen  time.Time // by this node's clock, when it saw the revision
}

type seenEpoch struct {
	rev   int64
	epoch uint64
}

func newObserver(m *Member) *observer {
	return &observer{m: m, beats: map[string]seenBeat{}, down: map[string]DownRecord{}, epochs: map[string]seenEpoch{},
		changed: make(chan struct{})}
}

// notifyLocked wakes those waiting for a change of the view.
func (o *observer) notifyLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change of the view.
func (o *observer) Changed() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.changed
}

func (o *observer) view() []NodeView {
	o.mu.Lock()
	defer o.mu.Unlock()
	names := map[string]bool{}
	for n := range o.beats {
		names[n] = true
	}
	for n := range o.down {
		names[n] = true
	}
	var out []NodeView
	for n := range names {
		v := NodeView{Name: n}
		if b, ok := o.beats[n]; ok {
			v.Epoch = b.epoch
			v.Up = true
		}
		if e, ok := o.epochs[n]; ok {
			v.UpRev = e.rev
			if e.epoch > v.Epoch {
				v.Epoch = e.epoch
			}
		}
		if d, ok := o.down[n]; ok {
			d := d
			v.Down, v.Up = &d, false
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// run lists and watches the cluster's records until ctx ends.
func (o *observer) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := o.follow(ctx); err != nil && ctx.Err() == nil {
			o.m.log.Debug("following the heartbeats", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(o.m.opts.Keepalive):
			}
		}
	}
}

func (o *observer) follow(ctx context.Context) error {
	items, rev, err := o.m.opts.Store.List(ctx, "cluster/")
	if err != nil {
		return err
	}
	now := time.Now()
	o.mu.Lock()
	prevUp := o.upSetLocked()
	first := !o.ready
	old := o.beats
	o.beats, o.down, o.epochs = map[string]seenBeat{}, map[string]DownRecord{}, map[string]seenEpoch{}
	for _, it := range items {
		o.applyLocked(store.WatchEvent{Type: store.Put, Item: it}, now)
	}
	// A heartbeat seen before keeps the time it was first seen at.
	for n, b := range o.beats {
		if ob, ok := old[n]; ok && ob.rev == b.rev {
			o.beats[n] = ob
		}
	}
	o.ready = true
	o.notifyLocked()
	o.mu.Unlock()
	if !first {
		o.publishChanges(prevUp)
	}
	ch, err := o.m.opts.Store.Watch(ctx, "cluster/", rev+1)
	if err != nil {
		return err
	}
	for b := range ch {
		if b.Err != nil {
			return b.Err
		}
		now := time.Now()
		o.mu.Lock()
		prev := o.upSetLocked()
		relevant := false
		for _, ev := range b.Events {
			if o.applyLocked(ev, now) {
				relevant = true
			}
		}
		if relevant {
			o.notifyLocked()
		}
		o.mu.Unlock()
		if relevant {
			o.publishChanges(prev)
		}
	}
	return ctx.Err()
}

// applyLocked takes one record into the view; it reports whether more
// than a heartbeat's revision changed.
func (o *observer) applyLocked(ev store.WatchEvent, now time.Time) bool {
	key := ev.Item.Key
	switch {
	case strings.HasPrefix(key, beatsPrefix):
		n := key[len(beatsPrefix):]
		if ev.Type == store.Deleted {
			delete(o.beats, n)
			return true
		}
		var r beatRecord
		if ev.Item.Decode(&r, beatSchema) != nil {
			return false
		}
		prev, had := o.beats[n]
		o.beats[n] = seenBeat{rev: ev.Item.ModRevision, epoch: r.Epoch, seen: now}
		return !had || prev.epoch != r.Epoch
	case strings.HasPrefix(key, downPrefix):
		n := key[len(downPrefix):]
		if ev.Type == store.Deleted {
			delete(o.down, n)
			return true
		}
		var r DownRecord
		if ev.Item.Decode(&r, downSchema) == nil {
			o.down[n] = r
		}
		return true
	case strings.HasPrefix(key, epochsPrefix):
		n := key[len(epochsPrefix):]
		if ev.Type == store.Deleted {
			delete(o.epochs, n)
			return true
		}
		var r epochRecord
		if ev.Item.Decode(&r, epochSchema) == nil {
			o.epochs[n] = seenEpoch{rev: ev.Item.ModRevision, epoch: r.Epoch}
		}
		return true
	case strings.HasPrefix(key, membersPrefix), strings.HasPrefix(key, electionPrefix):
		return true
	}
	return false
}

// upSetLocked is the nodes that are up now.
func (o *observer) upSetLocked() map[string]bool {
	up := map[string]bool{}
	for n := range o.beats {
		if _, down := o.down[n]; !down {
			up[n] = true
		}
	}
	return up
}

// publishChanges publishes node_up, node_down and node_left for the
// other nodes whose state changed since prev.
func (o *observer) publishChanges(prev map[string]bool) {
	o.mu.Lock()
	now := o.upSetLocked()
	downs := map[string]DownRecord{}
	for n, d := range o.down {
		downs[n] = d
	}
	o.mu.Unlock()
	self := o.m.opts.Node
	for n := range now {
		if !prev[n] && n != self {
			o.m.opts.Publish(SubclassNodeUp, api.Attrs{"node": api.String(n)})
		}
	}
	for n := range prev {
		if now[n] || n == self {
			continue
		}
		if d, ok := downs[n]; ok {
			o.m.opts.Publish(SubclassNodeDown, api.Attrs{"node": api.String(n), "epoch": api.Int(int64(d.Epoch)),
				"by": api.String(d.By), "reason": api.String(d.Reason)})
		} else {
			o.m.opts.Publish(SubclassNodeLeft, api.Attrs{"node": api.String(n)})
		}
	}
}

// detect declares down the nodes whose heartbeats stopped: every
// keepalive it looks for a node whose newest heartbeat this node saw
// TakeoverDelay ago or more. It holds back while this node's own
// heartbeats are not confirmed (a store without a leader confirms
// nobody's, and no node may be judged by a silence the store caused),
// and for a grace after they are confirmed again, so that the others'
// heartbeats get through first.
func (o *observer) detect(ctx context.Context) {
	m := o.m
	delay := TakeoverDelay(m.opts.FenceAfter, m.opts.StopBudget)
	grace := 3 * m.opts.Keepalive
	tick := time.NewTicker(m.opts.Keepalive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.mu.Lock()
		healthy := !m.fence.Fenced() && !m.out && time.Since(m.lastConfirmed) < m.opts.FenceAfter && time.Since(m.recovered) >= grace
		epochOf := m.fence.Epoch()
		m.mu.Unlock()
		if !healthy {
			continue
		}
		type silent struct {
			node  string
			rev   int64
			epoch uint64
			for_  time.Duration
		}
		var found []silent
		o.mu.Lock()
		for n, b := range o.beats {
			if n == m.opts.Node {
				continue
			}
			if _, down := o.down[n]; down {
				continue
			}
			if d := time.Since(b.seen); d >= delay {
				found = append(found, silent{n, b.rev, b.epoch, d})
			}
		}
		o.mu.Unlock()
		for _, s := range found {
			rec := DownRecord{Node: s.node, Epoch: s.epoch, By: m.opts.Node, Time: time.Now().UTC(),
				Reason: fmt.Sprintf("no heartbeat for %v (seen by %s in its epoch %d)", s.for_.Round(time.Millisecond), m.opts.Node, epochOf)}
			dctx, cancel := context.WithTimeout(ctx, m.opts.FenceAfter)
			ok, err := declareDown(dctx, m.opts.Store, rec, s.rev)
			cancel()
			if err != nil {
				m.log.Debug("declaring a node down", "node", s.node, "err", err)
				continue
			}
			if ok {
				m.log.Warn("declared a node down", "node", s.node, "silent", s.for_.Round(time.Millisecond))
			}
		}
	}
}
