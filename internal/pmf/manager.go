package pmf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/steady-ha/steady/internal/cgroup"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/atomicfile"
	"github.com/steady-ha/steady/internal/event"
	"github.com/steady-ha/steady/internal/reaper"
	"golang.org/x/sys/unix"
)

// Mode is how tags are tracked.
type Mode string

// Modes.
const (
	ModeAuto   Mode = "auto"          // cgroup when a writable cgroup v2 exists
	ModeCgroup Mode = "cgroup"        // each tag in its own cgroup v2
	ModeGroup  Mode = "process-group" // subreaper, process group and marker
)

// Class and subclasses of the events the monitor publishes.
const (
	ClassPMF          = "EC_pmf"
	SubclassStarted   = "ESC_pmf_started"
	SubclassExited    = "ESC_pmf_exited"
	SubclassRestarted = "ESC_pmf_restarted"
	SubclassExhausted = "ESC_pmf_exhausted"
	SubclassAction    = "ESC_pmf_action"
	SubclassStopped   = "ESC_pmf_stopped"
	SubclassReadopted = "ESC_pmf_readopted"
)

// Options configures New.
type Options struct {
	Dir    string // state directory (tags, logs)
	Mode   Mode
	Cgroup string // parent cgroup of steady under the cgroup v2 mount, default "steady"
	Bus    *event.Bus
	// Spawner starts the processes; the agent passes its reaper, whose
	// orphan notifications also drive the fallback mode.
	Spawner       reaper.Spawner
	ActionTimeout time.Duration
	// Discard, when set, names tags an earlier agent left that must not
	// be re-adopted: their processes are killed and their records
	// removed (the node was declared down while its agent was away, so
	// what its resource groups ran may run elsewhere now).
	Discard    func(tag string) bool
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Requester is who asks for a change: only the tag's owner or an
// administrator may change or stop it.
type Requester struct {
	UID   uint32
	Admin bool
}

// Root is the requester used by steady's own components.
var Root = Requester{UID: 0, Admin: true}

func (r Requester) may(o Owner) bool { return r.Admin || r.UID == o.UID }

// Manager supervises tags. Build it with New; it is safe for concurrent use.
type Manager struct {
	opts    Options
	id      string // this agent's marker, kept in the state directory
	log     *slog.Logger
	pub     event.Publisher
	mode    Mode
	reason  string     // why the fallback mode is used
	cgRoot  cgroup.Dir // parent of the tags' cgroups (cgroup mode)
	watcher *cgroupWatcher
	scan    *procScanner
	levels  *levelTracker

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex // guards tags and closed
	tags map[string]*tag

	restarts, exhausted prometheus.Counter
	latency             prometheus.Histogram
}

// New prepares the monitor: picks the mode, creates its directories and
// cgroup, and re-adopts the tags persisted by an earlier agent (restarting
// those whose processes died meanwhile, as their policy says).
func New(opts Options) (*Manager, error) {
	if opts.Mode == "" {
		opts.Mode = ModeAuto
	}
	if opts.Cgroup == "" {
		opts.Cgroup = "steady"
	}
	if opts.Spawner == nil {
		opts.Spawner = reaper.Plain{}
	}
	if opts.ActionTimeout <= 0 {
		opts.ActionTimeout = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{"tags", "logs"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("pmf: %w", err)
		}
	}
	m := &Manager{
		opts: opts,
		log:  opts.Logger,
		scan: &procScanner{},
		tags: map[string]*tag{},
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "steady_pmf_restarts_total", Help: "Restarts of supervised commands.",
		}),
		exhausted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "steady_pmf_exhausted_total", Help: "Tags whose restarts were exhausted.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "steady_pmf_restart_latency_seconds",
			Help:    "From the kernel reporting that a tag's last process exited to the replacement's exec.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .5},
		}),
	}
	if opts.Bus != nil {
		m.pub = opts.Bus.Publisher("steady:pmf")
	}
	id, err := loadID(filepath.Join(opts.Dir, "id"))
	if err != nil {
		return nil, err
	}
	m.id = id
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if err := m.pickMode(); err != nil {
		return nil, err
	}
	if r, ok := opts.Spawner.(*reaper.Reaper); ok {
		r.OnOrphan(func(int, unix.WaitStatus) { m.nudgeGroupTags() })
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{m.restarts, m.exhausted, m.latency, tagsCollector{m}} {
			if err := opts.Registerer.Register(c); err != nil {
				m.Close()
				return nil, fmt.Errorf("pmf: metrics: %w", err)
			}
		}
	}
	if err := m.recoverAll(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// pickMode chooses cgroup or process-group tracking and prepares it.
func (m *Manager) pickMode() error {
	if m.opts.Mode != ModeGroup {
		err := m.setupCgroup()
		if err == nil {
			m.mode = ModeCgroup
			if lv, err := newLevelTracker(m.log); err == nil {
				m.levels = lv
				m.wg.Add(1)
				go func() { defer m.wg.Done(); lv.run(m.ctx) }()
			} else {
				m.log.Info("child monitoring levels (-C) are not available", "reason", err)
			}
			return nil
		}
		if m.opts.Mode == ModeCgroup {
			return err
		}
		m.reason = err.Error()
		m.log.Warn("no writable cgroup v2; tracking tags by process group", "reason", err)
	} else {
		m.reason = "process-group mode was chosen in the configuration"
	}
	m.mode = ModeGroup
	m.wg.Add(1)
	go func() {
		// A slow tick catches what no exit notification reported.
		defer m.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				m.nudgeGroupTags()
			case <-m.ctx.Done():
				return
			}
		}
	}()
	return nil
}

func (m *Manager) setupCgroup() error {
	root, err := cgroup.Writable(filepath.Join(m.opts.Cgroup, "pmf"))
	if err != nil {
		return err
	}
	w, err := newCgroupWatcher()
	if err != nil {
		return err
	}
	m.cgRoot, m.watcher = root, w
	m.wg.Add(1)
	go func() { defer m.wg.Done(); w.run(m.ctx) }()
	return nil
}

// nudgeGroupTags makes fallback-mode tags look at their processes again.
func (m *Manager) nudgeGroupTags() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.tags {
		t.nudge()
	}
}

// Mode is the tracking mode in use.
func (m *Manager) Mode() Mode { return m.mode }

// Status describes the monitor.
func (m *Manager) Status() api.PMFStatus {
	m.mu.Lock()
	n := len(m.tags)
	m.mu.Unlock()
	st := api.PMFStatus{Mode: string(m.mode), Reason: m.reason, Levels: m.levels != nil, Tags: n}
	if m.mode == ModeCgroup {
		st.Cgroup, st.Reason = string(m.cgRoot), ""
	}
	return st
}

// Handle identifies a started tag; Recover takes it back.
type Handle struct {
	Tag      string `json:"tag"`
	Instance uint64 `json:"instance"`
	Spec     Spec   `json:"spec"`
}

// Start registers spec.Tag and starts its command. It returns once the
// command has been executed; a command that cannot be started leaves
// nothing registered.
func (m *Manager) Start(ctx context.Context, spec Spec) (Handle, error) {
	if err := spec.Validate(); err != nil {
		return Handle{}, err
	}
	if spec.Level >= 0 && m.levels == nil {
		return Handle{}, fmt.Errorf("%w: child monitoring levels (-C) need cgroup mode and the kernel's process connector, which this agent does not have (mode %s)", ErrInvalid, m.mode)
	}
	if _, err := spec.Owner.identity().Credential(); err != nil {
		return Handle{}, fmt.Errorf("%w: %w", ErrPermission, err)
	}
	m.mu.Lock()
	if m.ctx.Err() != nil {
		m.mu.Unlock()
		return Handle{}, ErrClosed
	}
	if _, dup := m.tags[spec.Tag]; dup {
		m.mu.Unlock()
		return Handle{}, fmt.Errorf("%w: %s (stop it first, or pick another tag)", ErrExists, spec.Tag)
	}
	t := m.newTag(spec)
	m.tags[spec.Tag] = t // reserve the name while starting
	m.mu.Unlock()

	if err := t.setup(nil); err != nil {
		t.discard(false)
		m.forget(t)
		return Handle{}, err
	}
	if err := t.launchFirst(); err != nil {
		t.discard(true)
		m.forget(t)
		return Handle{}, err
	}
	m.startLoop(t)
	return t.handle(), nil
}

func (m *Manager) startLoop(t *tag) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t.run(m.ctx)
	}()
}

func (m *Manager) get(name string) (*tag, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tags[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return t, nil
}

// forget removes a tag from the registry (from its own goroutine).
func (m *Manager) forget(t *tag) {
	m.mu.Lock()
	if m.tags[t.name] == t {
		delete(m.tags, t.name)
	}
	m.mu.Unlock()
}

// Get describes one tag.
func (m *Manager) Get(name string) (api.PMFTag, error) {
	t, err := m.get(name)
	if err != nil {
		return api.PMFTag{}, err
	}
	return t.describe(), nil
}

// Exists reports whether a tag is registered (pmfadm -q).
func (m *Manager) Exists(name string) bool {
	_, err := m.get(name)
	return err == nil
}

// List describes every tag, by name.
func (m *Manager) List() []api.PMFTag {
	m.mu.Lock()
	ts := make([]*tag, 0, len(m.tags))
	for _, t := range m.tags {
		ts = append(ts, t)
	}
	m.mu.Unlock()
	out := make([]api.PMFTag, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.describe())
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Tag < out[b].Tag })
	return out
}

// Stop ends monitoring of a tag and sends sig (TERM when zero) to its
// processes. With wait > 0 it waits that long for them to exit, then kills
// them with SIGKILL and waits for that too; it returns ErrTimeout if even
// that did not end them. The tag is removed once its processes are gone.
func (m *Manager) Stop(ctx context.Context, name string, sig unix.Signal, wait time.Duration, who Requester) error {
	t, err := m.get(name)
	if err != nil {
		return err
	}
	if sig == 0 {
		sig = unix.SIGTERM
	}
	if err := t.do(ctx, func() error { return t.stop(who, sig) }); err != nil {
		return err
	}
	if wait <= 0 {
		return nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-t.gone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
	}
	m.log.Info("processes did not exit in time; killing them", "tag", name, "wait", wait)
	if err := t.do(ctx, func() error { return t.escalate() }); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	select {
	case <-t.gone:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%w: %s survived SIGKILL for 10s", ErrTimeout, name)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill sends sig (KILL when zero) to every process of a tag; monitoring
// goes on, so the command is restarted if its budget allows. With wait > 0
// it waits that long for the processes to exit and returns ErrTimeout
// otherwise.
func (m *Manager) Kill(ctx context.Context, name string, sig unix.Signal, wait time.Duration, who Requester) error {
	t, err := m.get(name)
	if err != nil {
		return err
	}
	if sig == 0 {
		sig = unix.SIGKILL
	}
	var ended <-chan struct{}
	if err := t.do(ctx, func() error {
		if !who.may(t.spec.Owner) {
			return t.denied(who)
		}
		ended = t.instanceEnded
		return t.tr.signal(sig)
	}); err != nil {
		return err
	}
	if wait <= 0 {
		return nil
	}
	select {
	case <-ended:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("%w: %s still runs after %v", ErrTimeout, name, wait)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Modify changes the retry limit and period of a live tag (pmfadm -m).
func (m *Manager) Modify(ctx context.Context, name string, retries *int, period *time.Duration, who Requester) error {
	t, err := m.get(name)
	if err != nil {
		return err
	}
	return t.do(ctx, func() error {
		if !who.may(t.spec.Owner) {
			return t.denied(who)
		}
		spec := t.spec
		if retries != nil {
			spec.Retries = *retries
		}
		if period != nil {
			spec.Period = *period
		}
		if spec.Retries < -1 || spec.Retries > MaxRetries {
			return fmt.Errorf("%w: retries %d: give -1 (no limit) or 0 to %d", ErrInvalid, spec.Retries, MaxRetries)
		}
		if spec.Period < 0 || (spec.Period > 0 && spec.Period < time.Second) || spec.Period > MaxPeriod {
			return fmt.Errorf("%w: period %v: give 0 (the whole life of the tag) or 1s to %v", ErrInvalid, spec.Period, MaxPeriod)
		}
		t.mu.Lock()
		t.spec = spec
		t.window.Set(spec.Retries, spec.Period)
		t.mu.Unlock()
		return t.save(nil)
	})
}

// Wait returns when the tag is gone (its processes have exited and it will
// not be restarted), or when ctx ends.
func (m *Manager) Wait(ctx context.Context, name string) error {
	t, err := m.get(name)
	if err != nil {
		return err
	}
	select {
	case <-t.gone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Recover re-attaches to a tag a caller started earlier (for example
// before an agent restart): the tag's current handle when it is supervised
// (the manager re-adopts persisted tags by itself), ErrNotFound when it is
// not.
func (m *Manager) Recover(ctx context.Context, h Handle) (Handle, error) {
	t, err := m.get(h.Tag)
	if err != nil {
		return Handle{}, err
	}
	return t.handle(), nil
}

// TagEvents reads the EC_pmf events of one tag from the event journal, so
// that a caller that falls behind misses nothing.
type TagEvents struct {
	tag string
	sub *event.Subscription
}

// Events subscribes to the events of tag published after sequence number
// after (the bus's LastSeq for "from now on").
func (m *Manager) Events(tag string, after uint64) *TagEvents {
	return &TagEvents{tag: tag, sub: m.opts.Bus.Subscribe(after, event.Filter{Class: ClassPMF})}
}

// Next returns the next event of the tag.
func (e *TagEvents) Next(ctx context.Context) (api.Event, error) {
	for {
		ev, err := e.sub.Next(ctx)
		var gap *event.GapError
		if errors.As(err, &gap) {
			continue
		}
		if err != nil {
			return api.Event{}, err
		}
		if s, _ := ev.Attrs["tag"].Str(); s == e.tag {
			return ev, nil
		}
	}
}

// Close stops supervising. The processes of every tag keep running and
// their state is saved; the next agent re-adopts them.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.cancel()
	m.mu.Unlock()
	m.wg.Wait()
	if m.watcher != nil {
		m.watcher.close()
	}
	if m.levels != nil {
		m.levels.close()
	}
	return nil
}

// recoverAll re-adopts the tags an earlier agent left.
func (m *Manager) recoverAll() error {
	// Temporary files of writes an agent crash interrupted.
	if stale, _ := filepath.Glob(filepath.Join(m.opts.Dir, "tags", ".*.tmp*")); len(stale) > 0 {
		for _, p := range stale {
			os.Remove(p)
		}
	}
	files, err := filepath.Glob(filepath.Join(m.opts.Dir, "tags", "*.json"))
	if err != nil {
		return fmt.Errorf("pmf: %w", err)
	}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("pmf: %w", err)
		}
		var rec tagRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return fmt.Errorf("pmf: tag file %s: %w", p, err)
		}
		if rec.Schema != tagSchema {
			return fmt.Errorf("pmf: tag file %s has schema %d; this steady reads %d", p, rec.Schema, tagSchema)
		}
		if rec.Spec.Tag+".json" != filepath.Base(p) {
			return fmt.Errorf("pmf: tag file %s holds tag %q", p, rec.Spec.Tag)
		}
		if m.opts.Discard != nil && m.opts.Discard(rec.Spec.Tag) {
			m.discardRecord(p, rec)
			continue
		}
		t := m.newTag(rec.Spec)
		t.restore(rec)
		if err := t.setup(&rec.Track); err != nil {
			t.discard(false)
			return err
		}
		m.mu.Lock()
		m.tags[t.name] = t
		m.mu.Unlock()
		t.readopt()
		m.startLoop(t)
	}
	return nil
}

// discardRecord kills what is left of a tag an earlier agent recorded
// and removes its record.
func (m *Manager) discardRecord(path string, rec tagRecord) {
	if rec.Track.Cgroup != "" {
		d := cgroup.Dir(rec.Track.Cgroup)
		d.Signal(unix.SIGKILL)
		d.WaitEmpty(2 * time.Second)
	} else if rec.Track.PGID > 0 {
		unix.Kill(-rec.Track.PGID, unix.SIGKILL)
	}
	os.Remove(path)
	m.log.Warn("did not re-adopt a tag of a resource group: the node was declared down meanwhile", "tag", rec.Spec.Tag)
}

// loadID reads the agent's marker id, creating it on first use.
func loadID(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	}
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("pmf: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	if err := atomicfile.Write(path, []byte(id+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("pmf: %w", err)
	}
	return id, nil
}

// logPath is where a tag's output goes.
func (m *Manager) logPath(name string) string {
	return filepath.Join(m.opts.Dir, "logs", name+".log")
}

// publish publishes an event of the monitor. It does not use the manager's
// context: the books still publish while the manager closes (the journal
// closes after it).
func (m *Manager) publish(subclass string, attrs api.Attrs) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := m.pub.Publish(ctx, ClassPMF, subclass, attrs); err != nil {
		m.log.Error("cannot publish", "subclass", subclass, "err", err)
	}
}

// tagsCollector reports the number of tags.
type tagsCollector struct{ m *Manager }

var descTags = prometheus.NewDesc("steady_pmf_tags", "Tags supervised by the process monitor.", nil, nil)

func (c tagsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descTags }

func (c tagsCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	n := len(c.m.tags)
	c.m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descTags, prometheus.GaugeValue, float64(n))
}

// ParseSignal reads a signal name (TERM, SIGTERM, term) or number.
func ParseSignal(s string) (unix.Signal, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := parseUint(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("%w: signal number %d is outside 1..64", ErrInvalid, n)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("%w: %q is not a signal name (TERM, KILL, HUP, INT, USR1, ...)", ErrInvalid, s)
}

func parseUint(s string) (int, error) {
	n := 0
	if s == "" {
		return 0, errors.New("empty")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + int(c-'0')
		if n > 1<<20 {
			return 0, errors.New("too big")
		}
	}
	return n, nil
}
