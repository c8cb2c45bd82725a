package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/store"
)

// Event subclasses of EC_cluster.
const (
	ClassCluster         = "EC_cluster"
	SubclassNodeUp       = "ESC_cluster_node_up"
	SubclassNodeDown     = "ESC_cluster_node_down"
	SubclassNodeJoined   = "ESC_cluster_node_joined"
	SubclassNodeLeft     = "ESC_cluster_node_left"
	SubclassFenced       = "ESC_cluster_fenced"
	SubclassRejoined     = "ESC_cluster_rejoined"
	SubclassController   = "ESC_cluster_controller"
	SubclassResumed      = "ESC_cluster_resumed"
	membersPrefix        = "cluster/members/"
	livePrefix           = "nodes/"
	memberSchema         = 1
	liveSchema           = 1
	defaultHeartbeatEach = 4 // write the heartbeat time every 4th keepalive
)

// Store is what membership needs of the store (*store.Store has it; tests
// wrap one to cut it off).
type Store interface {
	Grant(ctx context.Context, ttl time.Duration) (store.LeaseID, error)
	KeepAliveOnce(ctx context.Context, id store.LeaseID) (time.Duration, error)
	Get(ctx context.Context, key string) (store.Item, error)
	Put(ctx context.Context, key string, schema int, v any, opts ...store.PutOption) (int64, error)
	Delete(ctx context.Context, key string) (bool, error)
	List(ctx context.Context, prefix string) ([]store.Item, int64, error)
	Watch(ctx context.Context, prefix string, fromRev int64) (<-chan store.WatchBatch, error)
	Txn(ctx context.Context, conds []store.Cond, then, otherwise []store.Op) (store.TxnResult, error)
	Members(ctx context.Context) ([]store.Member, error)
	Revoke(ctx context.Context, id store.LeaseID) error
}

// Fencer stops the node's failover work when the node fences itself.
// Freeze must keep that work from running (frozen, not killed: a fence
// may end with the membership intact) before ctx's deadline; Thaw lets it
// run again when the fence ended in time; Kill ends it for good when the
// node was declared down (its work may be running elsewhere now). Kill
// follows a Freeze.
type Fencer interface {
	Freeze(ctx context.Context, epoch uint64)
	Thaw(epoch uint64)
	Kill(ctx context.Context, epoch uint64)
}

// Options configures Start.
type Options struct {
	Store Store
	Node  string
	// TTL of the node's lease at the store, the interval of heartbeats
	// and lease renewals, and how long after the newest confirmed
	// heartbeat was sent the node fences itself. CheckTiming must accept
	// them.
	TTL        time.Duration
	Keepalive  time.Duration
	FenceAfter time.Duration
	// StopBudget is the time the fencer is given to freeze the node's
	// work; the others wait for it (TakeoverDelay).
	StopBudget time.Duration
	Version    string
	Address    string
	Started    time.Time
	// CRLPath, when set, is kept in step with the cluster's revocation
	// list (the store member's listeners read it on every connection).
	CRLPath string
	// SessionPath keeps the node's epoch and lease across agent restarts.
	SessionPath string
	// Fencer is called when the node fences itself (SetFencer may set it
	// later).
	Fencer Fencer
	// OnConfirm is called after each confirmed heartbeat with the new
	// fence deadline (the watchdog process is fed from it).
	OnConfirm func(deadline time.Time, epoch uint64)
	// Publish sends an EC_cluster event (best effort).
	Publish func(subclass string, attrs api.Attrs)
	Logger  *slog.Logger
}

// Member is this node's membership: its heartbeats and lease, its
// self-fencing, its watch on the other nodes (declaring silent ones
// down), and its candidacy for controller.
type Member struct {
	opts Options
	log  *slog.Logger
	obs  *observer

	mu            sync.Mutex // guards the fields below
	lease         store.LeaseID
	session       string
	fence         *Fence
	fencer        Fencer
	elected       bool
	out           bool // fenced for good (a HARD stop failure): no rejoin before a restart
	takenOver     bool // at start: the previous agent's node had been declared down
	resumed       bool // at start: the previous agent's epoch went on
	seq           uint64
	inflight      int
	lastBeat      time.Time // send time of the newest confirmed heartbeat
	lastConfirmed time.Time // when the newest confirmation arrived
	recovered     time.Time // when heartbeats were confirmed again after a gap
	rejoining     bool

	kick   chan struct{} // wakes the watchdog after a change
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// MemberRecord is the permanent record of a node in the cluster.
type MemberRecord struct {
	Name   string    `json:"name"`
	Joined time.Time `json:"joined"`
	// Leaving is set by a graceful leave before the node's lease goes.
	Leaving bool `json:"leaving,omitempty"`
}

// LiveRecord is the node's liveness record, bound to its lease.
type LiveRecord struct {
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	Address   string    `json:"address,omitempty"`
	Started   time.Time `json:"started"`
	Epoch     uint64    `json:"epoch"`
	Heartbeat time.Time `json:"heartbeat"`
}

// Start joins the node to the store's membership: a lease, the records,
// the node's epoch (the previous agent's when it was not declared down
// meanwhile), and the loops that keep the heartbeats, fence the node
// when they are not confirmed, watch the others, run for controller and
// report.
func Start(ctx context.Context, opts Options) (*Member, error) {
	if err := CheckTiming(opts.TTL, opts.Keepalive, opts.FenceAfter, opts.StopBudget); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if opts.Publish == nil {
		opts.Publish = func(string, api.Attrs) {}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Member{opts: opts, log: opts.Logger, kick: make(chan struct{}, 1), fencer: opts.Fencer}
	m.obs = newObserver(m)
	s := opts.Store
	sess, had := readSession(opts.SessionPath, opts.Node)
	lease := store.LeaseID(0)
	if had && sess.Lease != 0 {
		if _, err := s.KeepAliveOnce(ctx, sess.Lease); err == nil {
			lease = sess.Lease
		}
	}
	if lease == 0 {
		l, err := s.Grant(ctx, opts.TTL)
		if err != nil {
			return nil, fmt.Errorf("cluster: a lease for %s: %w", opts.Node, err)
		}
		lease = l
	}
	joined := false
	if _, err := s.Get(ctx, membersPrefix+opts.Node); errors.Is(err, store.ErrNotFound) {
		if _, err := s.Put(ctx, membersPrefix+opts.Node, memberSchema, MemberRecord{Name: opts.Node, Joined: time.Now().UTC()}); err != nil {
			return nil, fmt.Errorf("cluster: recording %s: %w", opts.Node, err)
		}
		joined = true
	} else if err != nil {
		return nil, err
	}
	epoch, id, sent, err := m.firstEpoch(ctx, sess, had)
	if err != nil {
		return nil, err
	}
	m.lease, m.session, m.fence = lease, id, NewFence(opts.FenceAfter, sent, epoch)
	m.lastBeat, m.lastConfirmed, m.recovered = sent, time.Now(), time.Now()
	if err := writeSession(opts.SessionPath, session{Node: opts.Node, ID: id, Epoch: epoch, Lease: lease}); err != nil {
		return nil, err
	}
	if err := m.putLive(ctx, lease, epoch, sent); err != nil {
		return nil, err
	}
	if joined {
		opts.Publish(SubclassNodeJoined, api.Attrs{"node": api.String(opts.Node)})
	}
	if m.takenOver {
		opts.Publish(SubclassRejoined, api.Attrs{"node": api.String(opts.Node), "epoch": api.Int(int64(epoch))})
	}
	if opts.OnConfirm != nil {
		opts.OnConfirm(m.fence.Deadline(), epoch)
	}
	bg, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.wg.Add(6)
	go func() { defer m.wg.Done(); m.syncCRL(bg) }()
	go func() { defer m.wg.Done(); m.keepalive(bg) }()
	go func() { defer m.wg.Done(); m.watchdog(bg) }()
	go func() { defer m.wg.Done(); m.campaign(bg) }()
	go func() { defer m.wg.Done(); m.obs.run(bg) }()
	go func() { defer m.wg.Done(); m.obs.detect(bg) }()
	return m, nil
}

// firstEpoch decides the node's epoch at start and confirms its first
// heartbeat in it: the previous agent's epoch goes on when its session
// is the one the store has and nobody declared the node down; a node
// that was declared down starts the next epoch (what the previous agent
// ran must be stopped for good: TakenOver); any other node starts the
// epoch after the last it had.
func (m *Member) firstEpoch(ctx context.Context, sess session, had bool) (epoch uint64, id string, sent time.Time, err error) {
	s, node := m.opts.Store, m.opts.Node
	var last beatRecord
	haveBeat := false
	if it, err := s.Get(ctx, beatsPrefix+node); err == nil {
		haveBeat = it.Decode(&last, beatSchema) == nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, "", time.Time{}, err
	}
	var down DownRecord
	downRev := int64(0)
	if it, err := s.Get(ctx, downPrefix+node); err == nil {
		it.Decode(&down, downSchema)
		downRev = it.ModRevision
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, "", time.Time{}, err
	}
	if downRev == 0 && had && haveBeat && last.Session == sess.ID && last.Epoch == sess.Epoch {
		sent = time.Now()
		err := beat(ctx, s, node, beatRecord{Epoch: sess.Epoch, Session: sess.ID})
		if err == nil {
			m.resumed = true
			m.log.Info("membership resumed in the same epoch", "node", node, "epoch", sess.Epoch)
			return sess.Epoch, sess.ID, sent, nil
		}
		if !errors.Is(err, errDeclaredDown) {
			return 0, "", time.Time{}, err
		}
		if it, err := s.Get(ctx, downPrefix+node); err == nil {
			it.Decode(&down, downSchema)
			downRev = it.ModRevision
		}
	}
	epoch = max(sess.Epoch, last.Epoch, down.Epoch) + 1
	if downRev != 0 {
		m.takenOver = true
		m.log.Warn("this node was declared down while its agent was away; what it ran is stopped for good", "node", node,
			"by", down.By, "reason", down.Reason, "epoch", epoch)
	}
	id = newSessionID()
	sent = time.Now()
	if err := startEpoch(ctx, s, node, epoch, id, downRev); err != nil {
		return 0, "", time.Time{}, err
	}
	return epoch, id, sent, nil
}

// TakenOver reports whether the node had been declared down when this
// agent started: what the previous agent ran must be stopped for good.
func (m *Member) TakenOver() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.takenOver
}

// Resumed reports whether this agent went on in the previous agent's
// epoch: nothing the previous agent ran may have run elsewhere.
func (m *Member) Resumed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resumed
}

// SetFencer sets the fencer (the resource group manager, built after the
// membership).
func (m *Member) SetFencer(f Fencer) {
	m.mu.Lock()
	m.fencer = f
	m.mu.Unlock()
}

func (m *Member) putLive(ctx context.Context, lease store.LeaseID, epoch uint64, beat time.Time) error {
	rec := LiveRecord{Name: m.opts.Node, Version: m.opts.Version, Address: m.opts.Address, Started: m.opts.Started.UTC(),
		Epoch: epoch, Heartbeat: beat.UTC()}
	if _, err := m.opts.Store.Put(ctx, livePrefix+m.opts.Node, liveSchema, rec, store.WithLease(lease)); err != nil {
		return fmt.Errorf("cluster: the liveness record of %s: %w", m.opts.Node, err)
	}
	return nil
}

// Epoch is the node's epoch; it grows each time the node rejoins after
// it was declared down.
func (m *Member) Epoch() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fence.Epoch()
}

// Fenced reports whether the node is fenced now (or out for good).
func (m *Member) Fenced() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fence.Fenced() || m.out
}

// Out reports whether the node fenced itself for good (FenceSelf): it
// rejoins only when its agent restarts.
func (m *Member) Out() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out
}

// IsController reports whether this node is the elected controller.
func (m *Member) IsController() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.elected && !m.fence.Fenced() && !m.out
}

// Nodes is what this node sees of every node (itself included), from
// the heartbeats it follows.
func (m *Member) Nodes() []NodeView { return m.obs.view() }

// NodesChanged returns a channel closed at the next change of Nodes.
func (m *Member) NodesChanged() <-chan struct{} { return m.obs.Changed() }

// Node is this node's name.
func (m *Member) Node() string { return m.opts.Node }

// keepalive sends a heartbeat every Keepalive (without waiting for the
// previous one: a slow answer must not delay the next) and renews the
// lease every fourth. A heartbeat's time counts from when it was sent.
func (m *Member) keepalive(ctx context.Context) {
	tick := time.NewTicker(m.opts.Keepalive)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.mu.Lock()
		if m.out || m.rejoining || m.inflight >= 4 {
			m.mu.Unlock()
			continue
		}
		m.seq++
		rec := beatRecord{Epoch: m.fence.Epoch(), Session: m.session, Seq: m.seq}
		lease := m.lease
		m.inflight++
		m.mu.Unlock()
		sent := time.Now()
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			bctx, cancel := context.WithTimeout(ctx, m.opts.FenceAfter)
			err := beat(bctx, m.opts.Store, m.opts.Node, rec)
			cancel()
			m.mu.Lock()
			m.inflight--
			m.mu.Unlock()
			m.beatDone(ctx, sent, rec.Epoch, err)
		}()
		if n%4 == 0 {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.renewLease(ctx, lease, rec.Epoch, sent)
			}()
		}
	}
}

// beatDone takes the outcome of a heartbeat.
func (m *Member) beatDone(ctx context.Context, sent time.Time, epoch uint64, err error) {
	switch {
	case err == nil:
		now := time.Now()
		m.mu.Lock()
		if epoch != m.fence.Epoch() || m.out {
			m.mu.Unlock()
			return
		}
		if now.Sub(m.lastConfirmed) > 2*m.opts.Keepalive {
			m.recovered = now
		}
		m.lastConfirmed = now
		if sent.After(m.lastBeat) {
			m.lastBeat = sent
		}
		resumed := m.fence.Confirmed(sent, now)
		deadline, f := m.fence.Deadline(), m.fencer
		m.mu.Unlock()
		if m.opts.OnConfirm != nil {
			m.opts.OnConfirm(deadline, epoch)
		}
		m.nudge()
		if resumed {
			m.log.Warn("heartbeats confirmed again before anyone could declare this node down; its work goes on", "node", m.opts.Node, "epoch", epoch)
			if f != nil {
				f.Thaw(epoch)
			}
			m.opts.Publish(SubclassResumed, api.Attrs{"node": api.String(m.opts.Node), "epoch": api.Int(int64(epoch))})
		}
	case errors.Is(err, errDeclaredDown):
		m.rejoin(ctx, epoch)
	case ctx.Err() != nil:
	default:
		m.log.Debug("heartbeat failed", "err", err)
	}
}

// renewLease renews the lease that keeps the liveness record and the
// candidacy; a lease found expired (the node was frozen, or the store
// was down long) is replaced. Nothing is taken over for a lease, so this
// is no fence.
func (m *Member) renewLease(ctx context.Context, lease store.LeaseID, epoch uint64, sent time.Time) {
	kctx, cancel := context.WithTimeout(ctx, m.opts.FenceAfter)
	_, err := m.opts.Store.KeepAliveOnce(kctx, lease)
	cancel()
	switch {
	case err == nil:
		m.mu.Lock()
		beat := m.lastBeat
		m.mu.Unlock()
		wctx, cancel := context.WithTimeout(ctx, m.opts.FenceAfter)
		m.putLive(wctx, lease, epoch, beat)
		cancel()
	case errors.Is(err, store.ErrLeaseNotFound):
		gctx, cancel := context.WithTimeout(ctx, m.opts.FenceAfter)
		defer cancel()
		nl, err := m.opts.Store.Grant(gctx, m.opts.TTL)
		if err != nil {
			return
		}
		m.mu.Lock()
		if m.lease != lease {
			m.mu.Unlock()
			m.opts.Store.Revoke(gctx, nl)
			return
		}
		m.lease = nl
		id := m.session
		m.mu.Unlock()
		m.log.Info("the lease had expired; a new one keeps the liveness record", "node", m.opts.Node)
		m.putLive(gctx, nl, epoch, sent)
		writeSession(m.opts.SessionPath, session{Node: m.opts.Node, ID: id, Epoch: epoch, Lease: nl})
	}
}

// rejoin takes the node back into the cluster after it was declared
// down: its frozen work is killed first (it may run elsewhere now), then
// it starts the next epoch.
func (m *Member) rejoin(ctx context.Context, epoch uint64) {
	m.mu.Lock()
	if m.rejoining || epoch != m.fence.Epoch() || m.out {
		m.mu.Unlock()
		return
	}
	m.rejoining = true
	wasFenced := m.fence.Fenced()
	m.fence.fenced = true
	m.elected = false
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.rejoining = false
		m.mu.Unlock()
	}()
	if !wasFenced {
		// Declared down before this node's own deadline: by the rule that
		// cannot be, unless its clock ran far slow or it was frozen. Stop
		// its work now.
		m.freeze(ctx, "declared down by another node")
	}
	m.kill(ctx, epoch)
	for ctx.Err() == nil {
		var downRev int64
		var down DownRecord
		if it, err := m.opts.Store.Get(ctx, downPrefix+m.opts.Node); err == nil {
			downRev = it.ModRevision
			it.Decode(&down, downSchema)
		} else if !errors.Is(err, store.ErrNotFound) {
			time.Sleep(m.opts.Keepalive)
			continue
		}
		m.mu.Lock()
		next := max(m.fence.Epoch(), down.Epoch) + 1
		id := newSessionID()
		lease := m.lease
		m.mu.Unlock()
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, m.opts.FenceAfter)
		err := startEpoch(rctx, m.opts.Store, m.opts.Node, next, id, downRev)
		cancel()
		if err != nil {
			m.log.Debug("rejoining", "err", err)
			time.Sleep(m.opts.Keepalive)
			continue
		}
		m.mu.Lock()
		m.fence.Rejoined(sent)
		m.fence.epoch = next
		m.session = id
		m.lastBeat, m.lastConfirmed, m.recovered = sent, time.Now(), time.Now()
		deadline := m.fence.Deadline()
		m.mu.Unlock()
		writeSession(m.opts.SessionPath, session{Node: m.opts.Node, ID: id, Epoch: next, Lease: lease})
		wctx, cancel := context.WithTimeout(ctx, m.opts.FenceAfter)
		m.putLive(wctx, lease, next, sent)
		cancel()
		if m.opts.OnConfirm != nil {
			m.opts.OnConfirm(deadline, next)
		}
		m.log.Warn("rejoined the cluster", "node", m.opts.Node, "epoch", next)
		m.opts.Publish(SubclassRejoined, api.Attrs{"node": api.String(m.opts.Node), "epoch": api.Int(int64(next))})
		m.nudge()
		return
	}
}

func (m *Member) nudge() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// watchdog fences the node at its deadline. It sleeps until the
// deadline, and is woken when a confirmation moves it.
func (m *Member) watchdog(ctx context.Context) {
	for {
		m.mu.Lock()
		deadline, fenced := m.fence.Deadline(), m.fence.Fenced() || m.out
		m.mu.Unlock()
		var wait <-chan time.Time
		var timer *time.Timer
		if !fenced {
			timer = time.NewTimer(time.Until(deadline))
			wait = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-m.kick:
			if timer != nil {
				timer.Stop()
			}
			continue
		case <-wait:
		}
		m.mu.Lock()
		now := m.fence.Check(time.Now())
		if now {
			m.elected = false
		}
		m.mu.Unlock()
		if now {
			m.freeze(ctx, fmt.Sprintf("no heartbeat confirmed for %v", m.opts.FenceAfter))
		}
	}
}

// freeze runs the fencer's Freeze with a deadline at the earliest moment
// another node may declare this one down, then tells who can hear it.
func (m *Member) freeze(ctx context.Context, why string) {
	m.mu.Lock()
	f := m.fencer
	epoch := m.fence.Epoch()
	until := m.fence.Deadline().Add(m.opts.StopBudget)
	m.mu.Unlock()
	m.log.Error("fenced: freezing failover work", "node", m.opts.Node, "epoch", epoch, "why", why)
	hctx, cancel := context.WithDeadline(ctx, until)
	if f != nil {
		f.Freeze(hctx, epoch)
	}
	late := time.Now().After(until)
	cancel()
	if late {
		m.log.Error("freezing failover work ran past the stop budget", "node", m.opts.Node)
	}
	m.opts.Publish(SubclassFenced, api.Attrs{"node": api.String(m.opts.Node), "epoch": api.Int(int64(epoch)),
		"reason": api.String(why), "hooks_late": api.Bool(late)})
}

// kill ends the frozen work for good.
func (m *Member) kill(ctx context.Context, epoch uint64) {
	m.mu.Lock()
	f := m.fencer
	m.mu.Unlock()
	if f != nil {
		kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		f.Kill(kctx, epoch)
		cancel()
	}
}

// FenceSelf takes the node out of the cluster until its agent restarts
// (a stop method failed under Failover_mode HARD): its work is frozen
// and killed, and it declares itself down, so that the others take its
// groups over at once.
func (m *Member) FenceSelf(ctx context.Context, reason string) error {
	m.mu.Lock()
	if m.out {
		m.mu.Unlock()
		return nil
	}
	m.out, m.elected = true, false
	wasFenced := m.fence.Fenced()
	m.fence.fenced = true
	epoch := m.fence.Epoch()
	m.mu.Unlock()
	m.nudge()
	if !wasFenced {
		m.freeze(ctx, reason)
	}
	m.kill(ctx, epoch)
	rec := DownRecord{Node: m.opts.Node, Epoch: epoch, By: m.opts.Node, Reason: reason, Time: time.Now().UTC()}
	var err error
	for i := 0; i < 20; i++ {
		if _, err = m.opts.Store.Put(ctx, downPrefix+m.opts.Node, downSchema, rec); err == nil {
			break
		}
		time.Sleep(m.opts.Keepalive)
	}
	m.log.Error("this node fenced itself and left the cluster until its agent restarts", "node", m.opts.Node, "reason", reason)
	if err != nil {
		return fmt.Errorf("cluster: declaring this node down: %w", err)
	}
	return nil
}

// campaign runs for controller while the node is in the cluster: its
// candidate key is bound to its lease, and the oldest candidate whose
// node is up leads. It looks every keepalive and whenever the view of
// the nodes changes.
func (m *Member) campaign(ctx context.Context) {
	admin, _ := m.opts.Store.(StoreAdmin)
	var tended time.Time
	for ctx.Err() == nil {
		changed := m.obs.Changed()
		m.mu.Lock()
		lease, epoch, fenced := m.lease, m.fence.Epoch(), m.fence.Fenced() || m.out
		m.mu.Unlock()
		elected := false
		if !fenced {
			if err := candidacy(ctx, m.opts.Store, m.opts.Node, epoch, lease); err == nil {
				if leader, _, err := controller(ctx, m.opts.Store); err == nil && leader == m.opts.Node {
					elected = true
				}
			}
		}
		m.mu.Lock()
		still := m.lease == lease && !m.fence.Fenced() && !m.out
		was := m.elected
		m.elected = elected && still
		m.mu.Unlock()
		if elected && still && !was {
			m.log.Info("elected controller", "node", m.opts.Node, "epoch", epoch)
			m.opts.Publish(SubclassController, api.Attrs{"node": api.String(m.opts.Node), "epoch": api.Int(int64(epoch))})
		}
		if elected && still && admin != nil && time.Since(tended) >= time.Second {
			m.tendStore(ctx, admin)
			tended = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-time.After(m.opts.Keepalive):
		}
	}
}

// Status describes the cluster as this node sees it.
func (m *Member) Status(ctx context.Context) (api.ClusterStatus, error) {
	m.mu.Lock()
	st := api.ClusterStatus{Node: m.opts.Node, Epoch: m.fence.Epoch(), Fenced: m.fence.Fenced(),
		Timing: api.ClusterTiming{LeaseTTL: api.Duration(m.opts.TTL), Keepalive: api.Duration(m.opts.Keepalive), FenceAfter: api.Duration(m.opts.FenceAfter)}}
	lastBeat := m.lastBeat
	m.mu.Unlock()
	if c, _, err := controller(ctx, m.opts.Store); err == nil {
		st.Controller = c
	}
	members, _, err := m.opts.Store.List(ctx, membersPrefix)
	if err != nil {
		return st, err
	}
	live, _, err := m.opts.Store.List(ctx, livePrefix)
	if err != nil {
		return st, err
	}
	lives := map[string]LiveRecord{}
	for _, it := range live {
		var r LiveRecord
		if it.Decode(&r, liveSchema) == nil {
			lives[r.Name] = r
		}
	}
	beats, err := listBeats(ctx, m.opts.Store)
	if err != nil {
		return st, err
	}
	downs, err := listDown(ctx, m.opts.Store)
	if err != nil {
		return st, err
	}
	roles := map[string]string{}
	if ms, err := m.opts.Store.Members(ctx); err == nil {
		for _, sm := range ms {
			switch {
			case sm.Leader:
				roles[sm.Name] = "leader"
			case sm.Learner:
				roles[sm.Name] = "learner"
			default:
				roles[sm.Name] = "voter"
			}
		}
	}
	for _, it := range members {
		var mr MemberRecord
		if it.Decode(&mr, memberSchema) != nil {
			continue
		}
		n := api.ClusterNode{Name: mr.Name, State: "down", StoreRole: roles[mr.Name], Joined: mr.Joined}
		if n.StoreRole == "" {
			n.StoreRole = "client"
		}
		if lr, ok := lives[mr.Name]; ok {
			n.Version, n.Address, n.Started, n.Epoch, n.Heartbeat = lr.Version, lr.Address, lr.Started, lr.Epoch, lr.Heartbeat
		}
		if b, ok := beats[mr.Name]; ok {
			n.Epoch = b.Epoch
			if _, down := downs[mr.Name]; !down {
				n.State = "up"
			}
		}
		if d, ok := downs[mr.Name]; ok {
			n.DownReason = fmt.Sprintf("declared down by %s at %s: %s", d.By, d.Time.Local().Format("15:04:05.000"), d.Reason)
		}
		if mr.Leaving {
			n.State = "leaving"
		}
		if mr.Name == m.opts.Node && !lastBeat.IsZero() {
			n.Heartbeat = lastBeat.UTC()
		}
		st.Nodes = append(st.Nodes, n)
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Name < st.Nodes[j].Name })
	return st, nil
}

// Close stops the loops and resigns. The lease stays until it expires
// (a restarting agent is still the same node); Leave ends it now.
func (m *Member) Close() error {
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	m.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := resign(ctx, m.opts.Store, m.opts.Node); err != nil && !errors.Is(err, store.ErrUnavailable) {
		return err
	}
	return nil
}

// tendStore is the controller's care of the store's membership: learners
// that have started and caught up are promoted (up to MaxVoters voters).
func (m *Member) tendStore(ctx context.Context, s StoreAdmin) {
	ms, err := s.Members(ctx)
	if err != nil {
		return
	}
	voters := 0
	for _, sm := range ms {
		if !sm.Learner {
			voters++
		}
	}
	m.sweepJoining(ctx, s, ms)
	for _, sm := range ms {
		if !sm.Learner || sm.Name == "" || voters >= MaxVoters {
			continue
		}
		if err := s.Promote(ctx, sm.Name); err != nil {
			m.log.Debug("promoting a learner", "member", sm.Name, "err", err)
			continue
		}
		voters++
		m.log.Info("promoted a store learner to voter", "member", sm.Name)
	}
}

// StoreAdmin is the store's membership administration (*store.Store).
type StoreAdmin interface {
	Members(ctx context.Context) ([]store.Member, error)
	Promote(ctx context.Context, name string) error
	RemoveMemberID(ctx context.Context, id uint64) error
}

// sweepJoining forgets joins that are done and removes the store members
// of joins that never started within JoinGrace.
func (m *Member) sweepJoining(ctx context.Context, s StoreAdmin, ms []store.Member) {
	items, _, err := m.opts.Store.List(ctx, joiningKeys)
	if err != nil {
		return
	}
	for _, it := range items {
		var j joining
		if it.Decode(&j, 1) != nil {
			continue
		}
		node := it.Key[len(joiningKeys):]
		var pending *store.Member
		started := false
		for i := range ms {
			for _, u := range ms[i].PeerURLs {
				if u == j.PeerURL {
					if ms[i].Name == "" {
						pending = &ms[i]
					} else {
						started = true
					}
				}
			}
		}
		switch {
		case started || (pending == nil && time.Since(j.Added) > JoinGrace):
			m.opts.Store.Delete(ctx, it.Key)
		case pending != nil && time.Since(j.Added) > JoinGrace:
			if err := s.RemoveMemberID(ctx, pending.ID); err == nil {
				m.log.Warn("removed the store member of a join that never started", "node", node, "added", j.Added)
				if st, ok := m.opts.Store.(*store.Store); ok {
					forget(ctx, st, node) // and its certificate is revoked
				}
				m.opts.Store.Delete(ctx, it.Key)
			}
		}
	}
}

// syncCRL keeps the node's copy of the revocation list current.
func (m *Member) syncCRL(ctx context.Context) {
	if m.opts.CRLPath == "" {
		return
	}
	have := int64(0)
	for {
		n, err := SyncCRL(ctx, m.opts.Store, m.opts.CRLPath, have)
		if err == nil && n != have {
			if have != 0 {
				m.log.Info("revocation list updated", "number", n)
			}
			have = n
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// Leave ends the node's membership for good: its loops stop, it resigns,
// and its lease is revoked, so that the others see it go at once (as
// "left", since its member record says it is leaving).
func (m *Member) Leave(ctx context.Context) error {
	m.mu.Lock()
	lease := m.lease
	m.out = true
	m.mu.Unlock()
	if err := m.Close(); err != nil {
		return err
	}
	m.cancel = nil
	// Without a heartbeat the others see the node go (as "left"), and
	// nobody declares it down.
	for _, k := range []string{beatsPrefix + m.opts.Node, epochsPrefix + m.opts.Node, downPrefix + m.opts.Node} {
		if _, err := m.opts.Store.Delete(ctx, k); err != nil {
			return err
		}
	}
	return m.opts.Store.Revoke(ctx, lease)
}

// listBeats reads every node's heartbeat.
func listBeats(ctx context.Context, s Store) (map[string]beatRecord, error) {
	items, _, err := s.List(ctx, beatsPrefix)
	if err != nil {
		return nil, err
	}
	out := map[string]beatRecord{}
	for _, it := range items {
		var b beatRecord
		if it.Decode(&b, beatSchema) == nil {
			out[it.Key[len(beatsPrefix):]] = b
		}
	}
	return out, nil
}

// listDown reads the down records.
func listDown(ctx context.Context, s Store) (map[string]DownRecord, error) {
	items, _, err := s.List(ctx, downPrefix)
	if err != nil {
		return nil, err
	}
	out := map[string]DownRecord{}
	for _, it := range items {
		var d DownRecord
		if it.Decode(&d, downSchema) == nil {
			out[it.Key[len(downPrefix):]] = d
		}
	}
	return out, nil
}

// NodeUp reports whether node is up: it has a heartbeat and nobody
// declared it down.
func NodeUp(ctx context.Context, s Store, node string) (bool, error) {
	if _, err := s.Get(ctx, beatsPrefix+node); errors.Is(err, store.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if _, err := s.Get(ctx, downPrefix+node); errors.Is(err, store.ErrNotFound) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	return false, nil
}
