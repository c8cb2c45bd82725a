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

// Options configures Start.
type Options struct {
	Store Store
	Node  string
	// TTL of the node's lease at the store, the interval of keepalives,
	// and how long after the newest confirmed keepalive was sent the node
	// fences itself. CheckTiming must accept them.
	TTL        time.Duration
	Keepalive  time.Duration
	FenceAfter time.Duration
	// StopBudget is the time the fence hooks are given; CheckTiming
	// checks it fits before the lease can expire.
	StopBudget time.Duration
	Version    string
	Address    string
	Started    time.Time
	// CRLPath, when set, is kept in step with the cluster's revocation
	// list (the store member's listeners read it on every connection).
	CRLPath string
	// Publish sends an EC_cluster event (best effort).
	Publish func(subclass string, attrs api.Attrs)
	Logger  *slog.Logger
}

// Member is this node's membership: its lease and liveness record, its
// self-fencing, its candidacy for controller, and what it sees of the
// other nodes.
type Member struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	lease    store.LeaseID
	fence    *Fence
	hooks    []func(ctx context.Context, epoch uint64)
	elected  bool
	beats    int
	lastBeat time.Time

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
// and the loops that keep the lease, fence the node when it cannot, run
// for controller and report the other nodes.
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
	m := &Member{opts: opts, log: opts.Logger, kick: make(chan struct{}, 1)}
	sent := time.Now()
	lease, err := opts.Store.Grant(ctx, opts.TTL)
	if err != nil {
		return nil, fmt.Errorf("cluster: a lease for %s: %w", opts.Node, err)
	}
	m.lease, m.fence = lease, NewFence(opts.FenceAfter, sent, 1)
	joined := false
	if _, err := opts.Store.Get(ctx, membersPrefix+opts.Node); errors.Is(err, store.ErrNotFound) {
		if _, err := opts.Store.Put(ctx, membersPrefix+opts.Node, memberSchema, MemberRecord{Name: opts.Node, Joined: time.Now().UTC()}); err != nil {
			return nil, fmt.Errorf("cluster: recording %s: %w", opts.Node, err)
		}
		joined = true
	} else if err != nil {
		return nil, err
	}
	if err := m.putLive(ctx, lease, 1, sent); err != nil {
		return nil, err
	}
	if joined {
		opts.Publish(SubclassNodeJoined, api.Attrs{"node": api.String(opts.Node)})
	}
	bg, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.wg.Add(5)
	go m.syncCRL(bg)
	go m.keepalive(bg)
	go m.watchdog(bg)
	go m.campaign(bg)
	go m.watchNodes(bg)
	return m, nil
}

func (m *Member) putLive(ctx context.Context, lease store.LeaseID, epoch uint64, beat time.Time) error {
	rec := LiveRecord{Name: m.opts.Node, Version: m.opts.Version, Address: m.opts.Address, Started: m.opts.Started.UTC(),
		Epoch: epoch, Heartbeat: beat.UTC()}
	if _, err := m.opts.Store.Put(ctx, livePrefix+m.opts.Node, liveSchema, rec, store.WithLease(lease)); err != nil {
		return fmt.Errorf("cluster: the liveness record of %s: %w", m.opts.Node, err)
	}
	return nil
}

// OnFence registers a hook run when the node fences itself: it must stop
// the node's failover work before ctx's deadline (when the lease may
// expire at the store).
func (m *Member) OnFence(h func(ctx context.Context, epoch uint64)) {
	m.mu.Lock()
	m.hooks = append(m.hooks, h)
	m.mu.Unlock()
}

// Epoch is the node's epoch; it grows at every rejoin after a fence.
func (m *Member) Epoch() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fence.Epoch()
}

// Fenced reports whether the node is fenced now.
func (m *Member) Fenced() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fence.Fenced()
}

// IsController reports whether this node is the elected controller.
func (m *Member) IsController() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.elected && !m.fence.Fenced()
}

// keepalive renews the lease every Keepalive. A keepalive's time counts
// from when it was sent. A lease found expired is replaced, and a fenced
// node whose store answers again rejoins with a new epoch.
func (m *Member) keepalive(ctx context.Context) {
	defer m.wg.Done()
	tick := time.NewTicker(m.opts.Keepalive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.mu.Lock()
		lease, fenced := m.lease, m.fence.Fenced()
		m.mu.Unlock()
		sent := time.Now()
		// A keepalive that takes longer than the fence window is useless.
		kctx, cancel := context.WithTimeout(ctx, m.opts.FenceAfter)
		_, err := m.opts.Store.KeepAliveOnce(kctx, lease)
		cancel()
		switch {
		case err == nil && !fenced:
			m.mu.Lock()
			m.fence.Confirmed(sent)
			m.beats++
			write := m.beats%defaultHeartbeatEach == 0
			epoch := m.fence.Epoch()
			m.lastBeat = sent
			m.mu.Unlock()
			if write {
				wctx, cancel := context.WithTimeout(ctx, m.opts.FenceAfter)
				m.putLive(wctx, lease, epoch, sent)
				cancel()
			}
			m.nudge()
		case err == nil && fenced, errors.Is(err, store.ErrLeaseNotFound):
			m.rejoin(ctx, lease, err == nil)
		case ctx.Err() != nil:
			return
		default:
			m.log.Debug("keepalive failed", "err", err)
		}
	}
}

// rejoin takes the node back into the cluster after a fence or an
// expired lease: a new lease when the old one is gone, a new epoch.
func (m *Member) rejoin(ctx context.Context, lease store.LeaseID, leaseAlive bool) {
	sent := time.Now()
	if !leaseAlive {
		rctx, cancel := context.WithTimeout(ctx, m.opts.FenceAfter)
		nl, err := m.opts.Store.Grant(rctx, m.opts.TTL)
		cancel()
		if err != nil {
			m.log.Debug("a new lease", "err", err)
			return
		}
		lease = nl
	}
	m.mu.Lock()
	wasFenced := m.fence.Fenced()
	if !wasFenced {
		// The lease expired without the node noticing in time: that is a
		// fence the watchdog missed; run it now, before rejoining.
		m.mu.Unlock()
		m.runFence(ctx, "the lease expired")
		m.mu.Lock()
	}
	m.lease = lease
	epoch := m.fence.Rejoined(sent)
	m.elected = false
	m.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, m.opts.FenceAfter)
	err := m.putLive(wctx, lease, epoch, sent)
	cancel()
	if err != nil {
		m.log.Warn("rejoining", "err", err)
	}
	m.log.Warn("rejoined the cluster", "node", m.opts.Node, "epoch", epoch)
	m.opts.Publish(SubclassRejoined, api.Attrs{"node": api.String(m.opts.Node), "epoch": api.Int(int64(epoch))})
	m.nudge()
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
	defer m.wg.Done()
	for {
		m.mu.Lock()
		deadline, fenced := m.fence.Deadline(), m.fence.Fenced()
		m.mu.Unlock()
		var wait <-chan time.Time
		var timer *time.Timer
		if !fenced {
			timer = time.NewTimer(time.Until(deadline))
			wait = timer.C
		}
		select {
		case <-ctx.Done():
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
		m.mu.Unlock()
		if now {
			m.runFence(ctx, fmt.Sprintf("no keepalive confirmed for %v", m.opts.FenceAfter))
		}
	}
}

// runFence runs the hooks with a deadline at the earliest moment the
// lease can expire at the store, then tells who can hear it.
func (m *Member) runFence(ctx context.Context, why string) {
	m.mu.Lock()
	hooks := append([]func(context.Context, uint64){}, m.hooks...)
	epoch := m.fence.Epoch()
	expiry := m.fence.Deadline().Add(-m.opts.FenceAfter).Add(m.opts.TTL - time.Duration(float64(m.opts.TTL)*MaxDrift))
	m.elected = false
	m.mu.Unlock()
	m.log.Error("fenced: stopping failover work", "node", m.opts.Node, "epoch", epoch, "why", why)
	hctx, cancel := context.WithDeadline(ctx, expiry)
	var wg sync.WaitGroup
	for _, h := range hooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h(hctx, epoch)
		}()
	}
	wg.Wait()
	late := time.Now().After(expiry)
	cancel()
	if late {
		m.log.Error("fence hooks ran past the earliest lease expiry", "node", m.opts.Node)
	}
	m.opts.Publish(SubclassFenced, api.Attrs{"node": api.String(m.opts.Node), "epoch": api.Int(int64(epoch)),
		"reason": api.String(why), "hooks_late": api.Bool(late)})
}

// campaign runs for controller while the node is in the cluster.
func (m *Member) campaign(ctx context.Context) {
	defer m.wg.Done()
	for ctx.Err() == nil {
		m.mu.Lock()
		lease, epoch, fenced := m.lease, m.fence.Epoch(), m.fence.Fenced()
		m.mu.Unlock()
		if fenced {
			select {
			case <-ctx.Done():
				return
			case <-time.After(m.opts.Keepalive):
				continue
			}
		}
		err := campaign(ctx, m.opts.Store, m.opts.Node, epoch, lease)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(m.opts.Keepalive):
			}
			continue
		}
		m.mu.Lock()
		m.elected = m.lease == lease && !m.fence.Fenced()
		m.mu.Unlock()
		m.log.Info("elected controller", "node", m.opts.Node, "epoch", epoch)
		m.opts.Publish(SubclassController, api.Attrs{"node": api.String(m.opts.Node), "epoch": api.Int(int64(epoch))})
		admin, _ := m.opts.Store.(StoreAdmin)
		var tended time.Time
		// Hold the office until the node's lease changes (a fence) or the
		// key goes; look after the store's members once a second.
		for ctx.Err() == nil {
			time.Sleep(m.opts.Keepalive)
			if admin != nil && time.Since(tended) >= time.Second {
				m.tendStore(ctx, admin)
				tended = time.Now()
			}
			m.mu.Lock()
			still := m.lease == lease && !m.fence.Fenced()
			m.mu.Unlock()
			if !still {
				break
			}
			if leader, _, err := controller(ctx, m.opts.Store); err == nil && leader != m.opts.Node {
				break
			}
		}
		m.mu.Lock()
		m.elected = false
		m.mu.Unlock()
	}
}

// watchNodes publishes what happens to the other nodes: up when a
// liveness record appears, down when it goes with its lease, left when
// it goes after a graceful leave.
func (m *Member) watchNodes(ctx context.Context) {
	defer m.wg.Done()
	for ctx.Err() == nil {
		items, rev, err := m.opts.Store.List(ctx, livePrefix)
		if err != nil {
			time.Sleep(m.opts.Keepalive)
			continue
		}
		up := map[string]bool{}
		for _, it := range items {
			up[it.Key[len(livePrefix):]] = true
		}
		ch, err := m.opts.Store.Watch(ctx, livePrefix, rev+1)
		if err != nil {
			time.Sleep(m.opts.Keepalive)
			continue
		}
		for b := range ch {
			if b.Err != nil {
				break
			}
			for _, ev := range b.Events {
				name := ev.Item.Key[len(livePrefix):]
				switch {
				case ev.Type == store.Put && !up[name]:
					up[name] = true
					m.opts.Publish(SubclassNodeUp, api.Attrs{"node": api.String(name)})
				case ev.Type == store.Deleted:
					delete(up, name)
					sub := SubclassNodeDown
					var mr MemberRecord
					if it, err := m.opts.Store.Get(ctx, membersPrefix+name); errors.Is(err, store.ErrNotFound) {
						sub = SubclassNodeLeft
					} else if err == nil && it.Decode(&mr, memberSchema) == nil && mr.Leaving {
						sub = SubclassNodeLeft
					}
					if name != m.opts.Node {
						m.opts.Publish(sub, api.Attrs{"node": api.String(name)})
					}
				}
			}
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
			n.State = "up"
			n.Version, n.Address, n.Started, n.Epoch, n.Heartbeat = lr.Version, lr.Address, lr.Started, lr.Epoch, lr.Heartbeat
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
	defer m.wg.Done()
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
	m.mu.Unlock()
	if err := m.Close(); err != nil {
		return err
	}
	m.cancel = nil
	return m.opts.Store.Revoke(ctx, lease)
}
