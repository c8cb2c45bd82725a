// Package agent is the composition root of "steady agent", the per-node
// daemon. New builds every subsystem in dependency order and, when a step
// fails, closes what the earlier steps opened; Run serves until the
// context ends or a subsystem fails; Close shuts down in the order
// documented on it. The agent wires parts together and reports their
// health; it holds none of their logic.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/auth"
	"github.com/steady-ha/steady/internal/cgroup"
	"github.com/steady-ha/steady/internal/cluster"
	"github.com/steady-ha/steady/internal/config"
	"github.com/steady-ha/steady/internal/dr"
	"github.com/steady-ha/steady/internal/event"
	"github.com/steady-ha/steady/internal/ipmp"
	"github.com/steady-ha/steady/internal/pmf"
	"github.com/steady-ha/steady/internal/rcm"
	"github.com/steady-ha/steady/internal/rcm/script"
	"github.com/steady-ha/steady/internal/reaper"
	"github.com/steady-ha/steady/internal/rgm"
	"github.com/steady-ha/steady/internal/server"
	"github.com/steady-ha/steady/internal/store"
	"github.com/steady-ha/steady/internal/version"
	"github.com/steady-ha/steady/internal/watchdog"
	"golang.org/x/sys/unix"
)

// Classes and subclasses the agent publishes.
const (
	SubclassStarted  = "ESC_agent_started"
	SubclassStopping = "ESC_agent_stopping"
)

// Options configures New.
type Options struct {
	Config config.Config
	Logger *slog.Logger
	// Commands are the compatibility commands of this binary (pmfadm,
	// scha_*); the agent links them into DATA_DIR/bin, first in the PATH
	// of every method, so data services find them without an install.
	Commands []string
}

// Agent is one running steady agent.
type Agent struct {
	cfg     config.Config
	log     *slog.Logger
	node    string
	started time.Time

	lock     *os.File
	registry *prometheus.Registry
	journal  *event.Journal
	bus      *event.Bus
	reaper   *reaper.Reaper
	store    *store.Store
	member   *cluster.Member
	fence    *fence
	watchdog *watchdog.Client
	subs     *event.Subscribers
	pmf      *pmf.Manager
	rgm      *rgm.Manager
	uevents  *event.UeventListener
	rcm      *rcm.Engine
	scripts  *script.Set
	dr       *dr.Manager
	ipmp     *ipmp.Daemon
	server   *server.Server

	leaving  atomic.Bool    // leaving the cluster: its store member is being removed
	bg       sync.WaitGroup // background goroutines owned by the agent
	bgCancel context.CancelFunc
	fatal    chan error

	mu        sync.Mutex // guards ueventErr and closed
	ueventErr error
	closed    bool

	// crashedPID is the pid the lock file still held at start: the previous
	// agent did not stop cleanly (Close empties the file).
	crashedPID string
}

// New builds and starts the agent: data directory lock, metrics, event
// journal and bus, reaper, store, script subscribers, process monitor,
// resource group manager, uevent listener, API server. On error everything already opened is
// closed again.
func New(ctx context.Context, opts Options) (_ *Agent, err error) {
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	node, err := cfg.NodeName()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: log, node: node, started: time.Now(), fatal: make(chan error, 4)}
	defer func() {
		// Undo whatever the failed step left open; a is this function's
		// own reference, untouched by "return nil, err".
		if err != nil {
			a.Close()
		}
	}()

	// 1. The data directory, locked against a second agent.
	if err := a.lockDataDir(); err != nil {
		return nil, err
	}
	// 2. Metrics. etcd registers its own on the default registry, which
	// also carries the Go and process collectors; /metrics serves both.
	a.registry = prometheus.NewRegistry()
	gatherer := prometheus.Gatherers{a.registry, prometheus.DefaultGatherer}

	// 3. The event journal and bus: everything after may publish.
	a.journal, err = event.OpenJournal(event.JournalOptions{
		Dir:          filepath.Join(cfg.DataDir, "events", "journal"),
		SegmentBytes: int64(cfg.Events.SegmentBytes),
		MaxBytes:     int64(cfg.Events.MaxBytes),
		MaxAge:       cfg.Events.MaxAge.D(),
		Logger:       log.With("component", "journal"),
	})
	if err != nil {
		return nil, err
	}
	if a.bus, err = event.NewBus(a.journal, node, a.registry); err != nil {
		return nil, err
	}

	// 4. The reaper: from here on the agent is the subreaper of what it
	// starts, and everything that starts processes goes through it.
	if a.reaper, err = reaper.New(log.With("component", "reaper")); err != nil {
		return nil, err
	}

	// 5. The store: an embedded member (of a cluster, when the node
	// belongs to one), or a client of an external etcd.
	if cluster.HasLeft(cfg.DataDir) {
		if err := cluster.PrepareStandalone(cfg.DataDir); err != nil {
			return nil, err
		}
		log.Warn("this node left its cluster: its cluster files and store are kept aside; it starts standalone")
	}
	clusterState, err := cluster.LoadState(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	storeCluster, err := a.clusterStore(clusterState)
	if err != nil {
		return nil, err
	}
	endpoints := cfg.Store.Endpoints
	storeTLS := store.TLSFiles{CA: cfg.Store.TLS.CAFile, Cert: cfg.Store.TLS.CertFile, Key: cfg.Store.TLS.KeyFile}
	if clusterState != nil && clusterState.Client {
		// A node beyond the fifth voter is a client of the voters.
		endpoints, storeTLS = clusterState.Endpoints, cluster.TLSFiles(cfg.DataDir)
	}
	a.store, err = store.Open(ctx, store.Options{
		Cluster:      storeCluster,
		Dir:          filepath.Join(cfg.DataDir, "store"),
		Name:         node,
		Heartbeat:    cfg.Store.Heartbeat.D(),
		Election:     cfg.Store.Election.D(),
		QuotaBytes:   int64(cfg.Store.QuotaBytes),
		StartTimeout: cfg.Store.StartTimeout.D(),
		Logger:       log.With("component", "store"),
		Endpoints:    endpoints,
		TLS:          storeTLS,
	})
	if err != nil {
		return nil, err
	}
	if err := a.afterStoreOpen(ctx, clusterState); err != nil {
		return nil, err
	}
	address, crlPath := "", ""
	if clusterState != nil {
		address, crlPath = clusterState.Address, cluster.CRLPath(cfg.DataDir)
	}
	// Membership: the node's heartbeats, its lease, self-fencing, and
	// the watchdog that stops the node's groups when this agent cannot.
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("agent: finding this binary: %w", err)
	}
	// The fork fence: the watchdog's freezes wait for this agent's forks.
	if ff, err := cgroup.OpenForkFence(filepath.Join(cfg.DataDir, watchdog.ForkFenceName)); err == nil {
		ff.Reset()
		cgroup.UseForkFence(ff)
	} else {
		log.Warn("no fork fence: a freeze by the watchdog may catch this agent forking", "err", err)
	}
	a.watchdog = watchdog.NewClient(cfg.DataDir, self, a.reaper, log.With("component", "watchdog"))
	a.fence = &fence{log: log.With("component", "fence"), wd: a.watchdog}
	clusterPub := a.bus.Publisher("steady:cluster")
	a.member, err = cluster.Start(ctx, cluster.Options{
		Store: a.store, Node: node,
		TTL: cfg.Cluster.LeaseTTL.D(), Keepalive: cfg.Cluster.Keepalive.D(),
		FenceAfter: cfg.Cluster.FenceAfter.D(), StopBudget: cfg.Cluster.StopBudget.D(),
		Version: version.Version, Started: a.started, Address: address, CRLPath: crlPath,
		SessionPath: filepath.Join(cfg.DataDir, "session.json"),
		Fencer:      a.fence, OnConfirm: a.fence.confirmed,
		Publish: func(sub string, attrs api.Attrs) {
			pctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			clusterPub.Publish(pctx, cluster.ClassCluster, sub, attrs)
		},
		Logger: log.With("component", "cluster"),
	})
	if err != nil {
		return nil, err
	}
	a.fence.setMember(a.member)
	// A watchdog that fired while no agent ran: the processes it froze
	// may run on, or must die (the node was declared down meanwhile).
	takenOver := a.member.TakenOver()
	if st, err := a.watchdog.Status(); err == nil && st.Fired {
		kill := takenOver || !a.member.Resumed()
		log.Warn("the watchdog froze the node's groups while no agent ran", "fired_at", st.FiredAt, "kill", kill)
		a.watchdog.Resolve(kill)
	}

	bgCtx, cancel := context.WithCancel(context.Background())
	a.bgCancel = cancel

	// 6. Script subscribers.
	a.subs, err = event.NewSubscribers(event.SubscribersOptions{
		Dir:        filepath.Join(cfg.DataDir, "events", "subscribers"),
		Bus:        a.bus,
		Timeout:    cfg.Events.SubscriberTimeout.D(),
		Retries:    cfg.Events.SubscriberRetries,
		Logger:     log.With("component", "subscribers"),
		Registerer: a.registry,
		Spawner:    a.reaper,
	})
	if err != nil {
		return nil, err
	}
	a.subs.Start()

	// 7. The process monitor, which re-adopts the tags of an earlier agent.
	a.pmf, err = pmf.New(pmf.Options{
		Dir:           filepath.Join(cfg.DataDir, "pmf"),
		Mode:          pmf.Mode(cfg.PMF.Mode),
		Cgroup:        cfg.PMF.Cgroup,
		Bus:           a.bus,
		Spawner:       a.reaper,
		ActionTimeout: cfg.PMF.ActionTimeout.D(),
		Discard: func(tag string) bool {
			// Tags of resource groups (GROUP,RESOURCE,N.svc) of a node that
			// was declared down may run elsewhere now.
			return takenOver && strings.Contains(tag, ",")
		},
		Logger:     log.With("component", "pmf"),
		Registerer: a.registry,
	})
	if err != nil {
		return nil, err
	}

	// 7b. IP multipathing: before the RGM, whose logical hostnames live
	// on its groups, and the rcm modules, which ask it.
	if err := a.startIPMP(ctx, bgCtx, cfg); err != nil {
		return nil, err
	}

	// 8. The resource group manager: methods run in cgroups next to the
	// process monitor's, or in process groups when it has none.
	binDir, err := linkCommands(filepath.Join(cfg.DataDir, "bin"), opts.Commands)
	if err != nil {
		return nil, err
	}
	rgmCgroup := ""
	if a.pmf.Status().Mode == string(pmf.ModeCgroup) {
		rgmCgroup = cfg.PMF.Cgroup
	}
	a.rgm, err = rgm.New(ctx, rgm.Options{
		Node:        node,
		Dir:         filepath.Join(cfg.DataDir, "rgm"),
		Store:       a.store,
		Bus:         a.bus,
		PMF:         a.pmf,
		Spawner:     a.reaper,
		Cgroup:      rgmCgroup,
		BinDir:      binDir,
		Socket:      cfg.API.Socket,
		OCFRoot:     cfg.RGM.OCFRoot,
		KillGrace:   cfg.RGM.KillGrace.D(),
		Member:      a.member,
		Reset:       takenOver,
		FenceAction: cfg.RGM.FenceAction,
		Addresses:   &ipmp.Hosts{Daemon: a.ipmp, ARPCount: cfg.IPMP.ARPCount, ARPInterval: cfg.IPMP.ARPInterval.D()},
		Logger:      log.With("component", "rgm"),
		Registerer:  a.registry,
	})
	if err != nil {
		return nil, err
	}
	a.fence.setRGM(a.rgm)

	// 9. Dynamic reconfiguration: the rcm engine, its modules and
	// scripts, the attachment point drivers; operations a previous agent
	// left in flight are settled here.
	if err := a.startDR(ctx); err != nil {
		return nil, err
	}

	// 10. Kernel uevents.
	if cfg.Uevents.Enabled {
		a.uevents, err = event.OpenUevents(a.bus, int(cfg.Uevents.ReceiveBuffer), log.With("component", "uevents"), a.registry)
		if err != nil {
			return nil, err
		}
		a.bg.Add(1)
		go func() {
			defer a.bg.Done()
			if err := a.uevents.Run(bgCtx); err != nil {
				a.mu.Lock()
				a.ueventErr = err
				a.mu.Unlock()
				log.Error("uevent listener stopped", "err", err)
			}
		}()
	}

	// 11. The API, last: once it answers, everything behind it works. A
	// cluster member also answers other nodes on its address.
	var remote *server.Remote
	if clusterState != nil {
		tc, err := remoteTLS(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		remote = &server.Remote{Address: net.JoinHostPort(clusterState.Address, strconv.Itoa(clusterState.APIPort)), TLS: tc}
	}
	a.server, err = server.New(server.Options{
		IPMP:           a.ipmp,
		Socket:         cfg.API.Socket,
		SocketGroup:    cfg.API.SocketGroup,
		MetricsAddress: cfg.API.MetricsAddress,
		Policy: auth.NewPolicy(auth.PolicyOptions{
			AdminGroup: cfg.API.AdminGroup, ReadGroup: cfg.API.ReadGroup, AgentUID: uint32(os.Getuid()),
		}),
		Logger:       log.With("component", "api"),
		Gatherer:     gatherer,
		Registerer:   a.registry,
		Status:       a.Status,
		Bus:          a.bus,
		Subscribers:  a.subs,
		PMF:          a.pmf,
		RGM:          a.rgm,
		DR:           a.dr,
		RCM:          a.rcm,
		Scripts:      a.scripts,
		Cluster:      a.member,
		ClusterAdmin: clusterAdmin{a},
		Remote:       remote,
	})
	if err != nil {
		return nil, err
	}
	if err := a.server.Start(); err != nil {
		return nil, err
	}

	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		select {
		case err := <-a.store.Err():
			if err != nil && !a.leaving.Load() {
				a.fatal <- fmt.Errorf("agent: the store failed: %w", err)
			}
		case <-bgCtx.Done():
		}
	}()

	started := api.Attrs{
		"version": api.String(version.Version), "pid": api.Int(int64(os.Getpid())), "data_dir": api.String(cfg.DataDir),
		"previous_stop": api.String("clean"),
	}
	if a.crashedPID != "" {
		started["previous_stop"] = api.String("unclean")
		started["previous_pid"] = api.String(a.crashedPID)
		log.Warn("the previous agent did not stop cleanly", "previous_pid", a.crashedPID)
	}
	if _, err := a.bus.Publisher("steady:agent").Publish(ctx, event.ClassSteady, SubclassStarted, started); err != nil {
		return nil, err
	}
	log.Info("agent started", "node", node, "version", version.Version, "socket", cfg.API.Socket, "data_dir", cfg.DataDir)
	return a, nil
}

// linkCommands makes dir hold a symlink to this binary for each
// compatibility command, replacing stale ones (the binary may have moved
// since the last agent), and returns dir; with no commands it returns "".
func linkCommands(dir string, names []string) (string, error) {
	if len(names) == 0 {
		return "", nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("agent: finding this binary for %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	for _, name := range names {
		link := filepath.Join(dir, name)
		if cur, err := os.Readlink(link); err == nil && cur == self {
			continue
		}
		tmp := link + ".new"
		os.Remove(tmp)
		if err := os.Symlink(self, tmp); err != nil {
			return "", fmt.Errorf("agent: linking %s: %w", name, err)
		}
		if err := os.Rename(tmp, link); err != nil {
			return "", fmt.Errorf("agent: linking %s: %w", name, err)
		}
	}
	return dir, nil
}

// lockDataDir creates the data directory and takes an exclusive lock on
// its lock file, which holds the agent's pid while it runs.
func (a *Agent) lockDataDir() error {
	dir := a.cfg.DataDir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("agent: data directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "agent.lock"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(f.Name())
		f.Close()
		if pid := strings.TrimSpace(string(b)); pid != "" {
			return fmt.Errorf("agent: data directory %s is in use by another agent (pid %s)", dir, pid)
		}
		return fmt.Errorf("agent: data directory %s is in use by another agent", dir)
	}
	if b, err := os.ReadFile(f.Name()); err == nil {
		a.crashedPID = strings.TrimSpace(string(b))
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	a.lock = f
	return nil
}

// Run serves until ctx ends (normally on SIGTERM or SIGINT) or a subsystem
// fails, then closes the agent. It returns the failure, if any.
func (a *Agent) Run(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
		a.log.Info("agent stopping", "reason", context.Cause(ctx))
	case err = <-a.fatal:
		if errors.Is(err, ErrRestart) {
			a.log.Info("agent restarting", "reason", err)
		} else {
			a.log.Error("agent stopping after a failure", "err", err)
		}
	}
	if cerr := a.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// Close shuts the agent down, in this order:
//
//  1. publish EC_steady/ESC_agent_stopping, while everything still runs;
//  2. stop the API server: no new requests, event streams end, requests in
//     flight get up to five seconds;
//  3. stop the uevent listener and the agent's background goroutines;
//  4. stop the script subscribers, killing runs in progress (their events
//     are delivered again after the next start);
//  5. stop the resource group manager: monitors stop, methods in flight
//     are abandoned (their runtime state is saved, so the next agent
//     finds out what they did rather than running them twice), resources
//     stay as they are;
//  6. stop the process monitor: supervised processes keep running and are
//     re-adopted by the next agent;
//  7. stop the membership loops (the node's lease runs out by itself: a
//     restarting agent is the same node), then close the store, stopping
//     the embedded etcd member;
//  8. stop reaping (children still running are inherited by init);
//  9. close the event journal, after which nothing can publish;
//  10. release the data directory lock.
//
// Dynamic reconfiguration needs no step: it holds nothing open, and an
// rcm operation in flight is recorded in the data dir and settled by the
// next agent. Close is idempotent and also undoes a partly built agent.
func (a *Agent) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	var errs []error
	if a.bus != nil && a.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if _, err := a.bus.Publisher("steady:agent").Publish(ctx, event.ClassSteady, SubclassStopping, api.Attrs{"pid": api.Int(int64(os.Getpid()))}); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	if a.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := a.server.Close(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	if a.ipmp != nil {
		// Addresses stay where they are; the next agent adopts them.
		a.ipmp.Close()
	}
	if a.bgCancel != nil {
		a.bgCancel()
	}
	if a.uevents != nil {
		a.uevents.Close()
	}
	a.bg.Wait()
	if a.subs != nil {
		errs = append(errs, a.subs.Close())
	}
	if a.rgm != nil {
		errs = append(errs, a.rgm.Close())
	}
	if a.pmf != nil {
		errs = append(errs, a.pmf.Close())
	}
	if a.member != nil {
		errs = append(errs, a.member.Close())
	}
	if a.watchdog != nil {
		// It stays armed: if no agent comes back before the deadline it
		// was last given, it freezes the node's groups.
		a.watchdog.Close()
	}
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	if a.reaper != nil {
		errs = append(errs, a.reaper.Close())
	}
	if a.journal != nil {
		errs = append(errs, a.journal.Close())
	}
	if a.lock != nil {
		a.lock.Truncate(0)
		errs = append(errs, a.lock.Close())
	}
	err := errors.Join(errs...)
	if err == nil && a.server != nil {
		a.log.Info("agent stopped")
	}
	return err
}

// Node is the node's name.
func (a *Agent) Node() string { return a.node }

// Bus is the agent's event bus.
func (a *Agent) Bus() *event.Bus { return a.bus }

// Cluster is the node's membership.
func (a *Agent) Cluster() *cluster.Member { return a.member }

// Store is the agent's store.
func (a *Agent) Store() *store.Store { return a.store }

// PMF is the agent's process monitor.
func (a *Agent) PMF() *pmf.Manager { return a.pmf }

// RGM is the agent's resource group manager.
func (a *Agent) RGM() *rgm.Manager { return a.rgm }

// MetricsAddr is the bound TCP metrics address, or "".
func (a *Agent) MetricsAddr() string { return a.server.MetricsAddr() }

// Status reports the node, the store and the health of each subsystem.
func (a *Agent) Status(ctx context.Context) api.Status {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	js := a.journal.Stats()
	st := api.Status{
		Node: a.node, Version: version.Version, PID: os.Getpid(),
		Started: a.started.UTC(), Uptime: api.Duration(time.Since(a.started).Round(time.Second)),
		DataDir: a.cfg.DataDir,
		Store:   a.store.Status(ctx),
		Events: api.EventsStatus{FirstSeq: js.FirstSeq, LastSeq: js.LastSeq, Segments: js.Segments, Bytes: js.Bytes,
			Subscribers: len(a.subs.List())},
	}
	add := func(name string, h api.Health, detail string) {
		st.Subsystems = append(st.Subsystems, api.SubsystemStatus{Name: name, Health: h, Detail: detail})
	}
	h, detail := a.store.Health(ctx)
	add("store", h, detail)
	if err := a.journal.Err(); err != nil {
		add("events", api.HealthFailed, err.Error())
	} else {
		add("events", api.HealthOK, fmt.Sprintf("journal of %d segment(s), last sequence %d", js.Segments, js.LastSeq))
	}
	if n := a.subs.Failing(); n > 0 {
		add("subscribers", api.HealthDegraded, fmt.Sprintf("%d of %d subscriber(s) failed on their last event", n, st.Events.Subscribers))
	} else {
		add("subscribers", api.HealthOK, fmt.Sprintf("%d subscriber(s)", st.Events.Subscribers))
	}
	a.mu.Lock()
	uerr := a.ueventErr
	a.mu.Unlock()
	switch {
	case a.uevents == nil:
		add("uevents", api.HealthOK, "disabled in the configuration")
	case uerr != nil:
		add("uevents", api.HealthFailed, uerr.Error())
	default:
		add("uevents", api.HealthOK, fmt.Sprintf("listening, last kernel SEQNUM %d", a.uevents.LastSeqnum()))
	}
	ps := a.pmf.Status()
	if ps.Mode == string(pmf.ModeCgroup) {
		add("pmf", api.HealthOK, fmt.Sprintf("%d tag(s), one cgroup each under %s", ps.Tags, ps.Cgroup))
	} else {
		add("pmf", api.HealthOK, fmt.Sprintf("%d tag(s), tracked by process group (%s)", ps.Tags, ps.Reason))
	}
	st.Groups = []api.GroupStatus{}
	bad := map[string][]string{}
	for _, g := range a.rgm.Groups(ctx) {
		gs := api.GroupStatus{Name: g.Name, State: g.State, Resources: len(g.Resources)}
		for _, r := range a.rgm.Resources(ctx, g.Name) {
			if r.State == "ONLINE" || r.State == "ONLINE_NOT_MONITORED" {
				gs.Online++
			}
		}
		st.Groups = append(st.Groups, gs)
		if g.State == "ERROR_STOP_FAILED" || g.State == "ONLINE_FAULTED" {
			bad[g.State] = append(bad[g.State], g.Name)
		}
	}
	switch {
	case len(bad) > 0:
		var parts []string
		for _, state := range []string{"ERROR_STOP_FAILED", "ONLINE_FAULTED"} {
			if len(bad[state]) > 0 {
				parts = append(parts, state+": "+strings.Join(bad[state], ", "))
			}
		}
		add("rgm", api.HealthDegraded, strings.Join(parts, "; ")+` (see "steady rg why GROUP")`)
	default:
		add("rgm", api.HealthOK, fmt.Sprintf("%d group(s)", len(st.Groups)))
	}
	a.ipmpHealth(ctx, add)
	if a.member.Fenced() {
		add("cluster", api.HealthFailed, fmt.Sprintf("fenced (epoch %d): no lease renewal confirmed; failover work stopped until the store answers", a.member.Epoch()))
	} else {
		role := "member"
		if a.member.IsController() {
			role = "controller"
		}
		add("cluster", api.HealthOK, fmt.Sprintf("%s, epoch %d", role, a.member.Epoch()))
	}
	var failing []string
	for _, c := range a.rcm.Clients() {
		if c.Error != "" {
			failing = append(failing, c.Name)
		}
	}
	inflight := len(a.rcm.InFlight())
	if len(failing) > 0 {
		add("rcm", api.HealthDegraded, fmt.Sprintf("cannot register: %s (see \"steady rcm clients\"); %d operation(s) in flight", strings.Join(failing, ", "), inflight))
	} else {
		add("rcm", api.HealthOK, fmt.Sprintf("%d client(s), %d operation(s) in flight", len(a.rcm.Clients()), inflight))
	}
	add("api", api.HealthOK, "serving on "+a.cfg.API.Socket)
	return st
}
