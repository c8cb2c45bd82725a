package event

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/atomicfile"
	"github.com/steady-ha/steady/internal/reaper"
	"github.com/steady-ha/steady/internal/runas"
)

// Classes and subclasses the subscriber runner publishes.
const (
	ClassSteady          = "EC_steady"
	SubclassSubError     = "ESC_subscriber_error"  // a command was not run
	SubclassSubFailed    = "ESC_subscriber_failed" // every retry failed; the event was skipped
	subscriberSchema     = 1
	maxSubscriberOutput  = 64 << 10
	maxSubscriberBackoff = time.Minute
)

// Errors of the subscriber runner.
var (
	ErrSubscriberNotFound = errors.New("event: no such subscriber")
	ErrSubscriberInvalid  = errors.New("event: invalid subscriber")
)

// SubscribersOptions configures NewSubscribers.
type SubscribersOptions struct {
	Dir     string // where subscriber definitions and cursors are kept
	Bus     *Bus
	Timeout time.Duration // default per-run timeout
	Retries int           // default retries after a failed run
	// Backoff is the wait before the first retry; it doubles each time,
	// up to a minute. Default 1s.
	Backoff    time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Spawner starts the commands; the agent passes its reaper. Default:
	// plain os/exec.
	Spawner reaper.Spawner
}

// Subscribers runs script subscribers: for each matching event, in order,
// the subscriber's command with its arguments expanded from the event.
// Delivery is at least once: the position of each subscriber is saved
// after each event, so a crash re-runs at most the event in progress. Each
// subscriber has its own goroutine; a slow or hanging one holds up nobody
// else. All methods are safe for concurrent use.
type Subscribers struct {
	opts SubscribersOptions
	log  *slog.Logger
	pub  Publisher

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex // guards subs and the lifecycle of their goroutines
	subs map[string]*scriptSub

	runs *prometheus.CounterVec
}

type scriptSub struct {
	mu     sync.Mutex // guards def
	def    api.Subscriber
	path   string // of its definition file
	cancel context.CancelFunc
	done   chan struct{}
}

type subscriberFile struct {
	Schema     int            `json:"schema"`
	Subscriber api.Subscriber `json:"subscriber"`
}

// NewSubscribers loads the saved subscribers. Start runs them.
func NewSubscribers(opts SubscribersOptions) (*Subscribers, error) {
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Spawner == nil {
		opts.Spawner = reaper.Plain{}
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("event: subscribers: %w", err)
	}
	s := &Subscribers{
		opts: opts,
		log:  opts.Logger,
		pub:  opts.Bus.Publisher("steady:events"),
		subs: map[string]*scriptSub{},
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steady_event_subscriber_runs_total",
			Help: "Runs of subscriber commands by result (ok, failed, timeout, not_run).",
		}, []string{"result"}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.runs); err != nil {
			return nil, fmt.Errorf("event: metrics: %w", err)
		}
	}
	files, err := filepath.Glob(filepath.Join(opts.Dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("event: subscribers: %w", err)
	}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("event: subscribers: %w", err)
		}
		var f subscriberFile
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("event: subscriber file %s: %w", p, err)
		}
		if f.Schema != subscriberSchema {
			return nil, fmt.Errorf("event: subscriber file %s: schema %d, this steady reads %d", p, f.Schema, subscriberSchema)
		}
		s.subs[f.Subscriber.ID] = &scriptSub{def: f.Subscriber, path: p}
	}
	return s, nil
}

// Start runs every loaded subscriber.
func (s *Subscribers) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		s.startLocked(sub)
	}
}

func (s *Subscribers) startLocked(sub *scriptSub) {
	ctx, cancel := context.WithCancel(s.ctx)
	sub.cancel, sub.done = cancel, make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(sub.done)
		s.loop(ctx, sub)
	}()
}

// Add validates a new subscriber, saves it and starts it. It receives the
// events published after it was added.
func (s *Subscribers) Add(ctx context.Context, req api.SubscriberRequest) (api.Subscriber, error) {
	def := api.Subscriber{
		Class: req.Class, Subclass: req.Subclass, User: req.User,
		Path: filepath.Clean(req.Path), Args: req.Args, Timeout: req.Timeout, Retries: -1,
		Created: time.Now().UTC(),
	}
	if req.Retries != nil {
		def.Retries = *req.Retries
	}
	if err := checkSubscriber(def); err != nil {
		return api.Subscriber{}, err
	}
	if _, err := s.identity(def); err != nil {
		return api.Subscriber{}, fmt.Errorf("%w: %w", ErrSubscriberInvalid, err)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return api.Subscriber{}, fmt.Errorf("event: %w", err)
	}
	def.ID = hex.EncodeToString(b[:])
	def.Delivered = s.opts.Bus.Journal().LastSeq()
	sub := &scriptSub{def: def, path: filepath.Join(s.opts.Dir, def.ID+".json")}
	if err := s.save(sub); err != nil {
		return api.Subscriber{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		os.Remove(sub.path)
		return api.Subscriber{}, ErrClosed
	}
	s.subs[def.ID] = sub
	s.startLocked(sub)
	s.log.Info("subscriber added", "id", def.ID, "class", def.Class, "subclass", def.Subclass, "path", def.Path)
	return def, nil
}

func checkSubscriber(def api.Subscriber) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrSubscriberInvalid, fmt.Sprintf(format, args...))
	}
	if !api.ValidName(def.Class) {
		return bad("class %q is not a valid class name", def.Class)
	}
	if def.Subclass != "" && !api.ValidName(def.Subclass) {
		return bad("subclass %q is not a valid subclass name", def.Subclass)
	}
	if _, err := runas.CheckScript(def.Path); err != nil {
		return fmt.Errorf("%w: %w", ErrSubscriberInvalid, err)
	}
	for i, a := range def.Args {
		if err := CheckMacros(a); err != nil {
			return bad("argument %d: %v", i+1, err)
		}
	}
	if t := time.Duration(def.Timeout); t < 0 || t > 24*time.Hour {
		return bad("timeout %v is outside 0..24h", t)
	}
	if def.Retries < -1 || def.Retries > 100 {
		return bad("retries %d is outside 0..100", def.Retries)
	}
	return nil
}

// identity decides who runs def's command: the named user, or the owner of
// the file.
func (s *Subscribers) identity(def api.Subscriber) (runas.Identity, error) {
	fi, err := runas.CheckScript(def.Path)
	if err != nil {
		return runas.Identity{}, err
	}
	var id runas.Identity
	if def.User != "" {
		id, err = runas.Lookup(def.User)
	} else {
		id, err = runas.Owner(fi)
	}
	if err != nil {
		return runas.Identity{}, err
	}
	if _, err := id.Credential(); err != nil {
		return runas.Identity{}, err
	}
	return id, nil
}

func (s *Subscribers) save(sub *scriptSub) error {
	sub.mu.Lock()
	data, err := json.MarshalIndent(subscriberFile{Schema: subscriberSchema, Subscriber: sub.def}, "", "  ")
	sub.mu.Unlock()
	if err != nil {
		return fmt.Errorf("event: %w", err)
	}
	if err := atomicfile.Write(sub.path, append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("event: saving subscriber: %w", err)
	}
	return nil
}

// List returns the subscribers ordered by creation.
func (s *Subscribers) List() []api.Subscriber {
	s.mu.Lock()
	out := make([]api.Subscriber, 0, len(s.subs))
	for _, sub := range s.subs {
		sub.mu.Lock()
		out = append(out, sub.def)
		sub.mu.Unlock()
	}
	s.mu.Unlock()
	sort.Slice(out, func(a, b int) bool {
		if !out[a].Created.Equal(out[b].Created) {
			return out[a].Created.Before(out[b].Created)
		}
		return out[a].ID < out[b].ID
	})
	return out
}

// Remove stops a subscriber (killing a run in progress) and forgets it.
func (s *Subscribers) Remove(ctx context.Context, id string) error {
	s.mu.Lock()
	sub, ok := s.subs[id]
	if ok {
		delete(s.subs, id)
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrSubscriberNotFound, id)
	}
	if sub.cancel != nil {
		sub.cancel()
		<-sub.done
	}
	if err := os.Remove(sub.path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("event: removing subscriber %s: %w", id, err)
	}
	if err := atomicfile.SyncDir(s.opts.Dir); err != nil {
		return err
	}
	s.log.Info("subscriber removed", "id", id)
	return nil
}

// Close stops every subscriber, killing runs in progress; their events are
// delivered again after a restart.
func (s *Subscribers) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// Failing counts subscribers whose last event failed.
func (s *Subscribers) Failing() int {
	n := 0
	for _, d := range s.List() {
		if d.LastError != "" {
			n++
		}
	}
	return n
}

func (s *Subscribers) loop(ctx context.Context, sub *scriptSub) {
	sub.mu.Lock()
	def := sub.def
	sub.mu.Unlock()
	in := s.opts.Bus.Subscribe(def.Delivered, Filter{Class: def.Class, Subclass: def.Subclass})
	for {
		ev, err := in.Next(ctx)
		var gap *GapError
		switch {
		case errors.As(err, &gap):
			s.log.Warn("subscriber missed events removed by retention", "id", def.ID, "err", err)
			continue
		case err != nil:
			return // closed or removed
		}
		if ev.Class == ClassSteady && attrString(ev.Attrs, "subscriber") == def.ID {
			// Never deliver a subscriber the news of its own failure: a
			// failing script would otherwise feed itself forever.
			continue
		}
		if !s.deliver(ctx, sub, &ev) {
			return
		}
		sub.mu.Lock()
		sub.def.Delivered = ev.Seq
		sub.mu.Unlock()
		if err := s.save(sub); err != nil {
			s.log.Error("cannot save subscriber position; it will be delivered again after a restart", "id", def.ID, "seq", ev.Seq, "err", err)
		}
	}
}

func attrString(a api.Attrs, name string) string {
	s, _ := a[name].Str()
	return s
}

// deliver runs the command for ev, retrying with backoff. It returns false
// when it stopped because ctx ended (the event counts as not delivered).
func (s *Subscribers) deliver(ctx context.Context, sub *scriptSub, ev *Event) bool {
	sub.mu.Lock()
	def := sub.def
	sub.mu.Unlock()
	args := make([]string, len(def.Args))
	for i, a := range def.Args {
		x, err := Expand(a, ev)
		if err != nil {
			s.runs.WithLabelValues("not_run").Inc()
			s.giveUp(ctx, sub, ev, SubclassSubError, fmt.Sprintf("command not run: %v", err))
			return true
		}
		args[i] = x
	}
	retries := def.Retries
	if retries < 0 {
		retries = s.opts.Retries
	}
	timeout := time.Duration(def.Timeout)
	if timeout == 0 {
		timeout = s.opts.Timeout
	}
	backoff := s.opts.Backoff
	for attempt := 0; ; attempt++ {
		err := s.runOnce(ctx, def, args, ev, timeout)
		if err == nil {
			s.runs.WithLabelValues("ok").Inc()
			sub.mu.Lock()
			sub.def.LastError = ""
			sub.mu.Unlock()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		s.log.Warn("subscriber run failed", "id", def.ID, "path", def.Path, "seq", ev.Seq, "attempt", attempt+1, "err", err)
		if attempt >= retries {
			s.giveUp(ctx, sub, ev, SubclassSubFailed, fmt.Sprintf("gave up after %d run(s): %v", attempt+1, err))
			return true
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return false
		}
		backoff = min(2*backoff, maxSubscriberBackoff)
	}
}

func (s *Subscribers) giveUp(ctx context.Context, sub *scriptSub, ev *Event, subclass, reason string) {
	sub.mu.Lock()
	sub.def.Failures++
	sub.def.LastError = reason
	def := sub.def
	sub.mu.Unlock()
	s.log.Warn("subscriber skipped an event", "id", def.ID, "seq", ev.Seq, "reason", reason)
	_, err := s.pub.Publish(ctx, ClassSteady, subclass, api.Attrs{
		"subscriber":     api.String(def.ID),
		"path":           api.String(def.Path),
		"event_sequence": api.Uint(ev.Seq),
		"event_class":    api.String(ev.Class),
		"event_subclass": api.String(ev.Subclass),
		"reason":         api.String(reason),
	})
	if err != nil {
		s.log.Error("cannot publish subscriber failure", "id", def.ID, "err", err)
	}
}

// runOnce runs the command once as its user, in its own process group,
// with the event as JSON on standard input. The whole group is killed at
// the timeout.
func (s *Subscribers) runOnce(ctx context.Context, def api.Subscriber, args []string, ev *Event, timeout time.Duration) error {
	id, err := s.identity(def)
	if err != nil {
		s.runs.WithLabelValues("not_run").Inc()
		return err
	}
	cred, _ := id.Credential()
	input, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, def.Path, args...)
	cmd.Dir = "/"
	cmd.Env = id.Env()
	cmd.Stdin = bytes.NewReader(input)
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second // a background child holding the output pipe must not hold us
	child, err := s.opts.Spawner.Start(cmd)
	if err == nil {
		err = child.Wait()
	}
	if rctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		s.runs.WithLabelValues("timeout").Inc()
		return fmt.Errorf("timed out after %v and was killed", timeout)
	}
	if err != nil {
		s.runs.WithLabelValues("failed").Inc()
		if tail := out.tail(); tail != "" {
			return fmt.Errorf("%w: %s", err, tail)
		}
		return err
	}
	if o := strings.TrimSpace(out.String()); o != "" {
		s.log.Debug("subscriber output", "id", def.ID, "seq", ev.Seq, "output", o)
	}
	return nil
}

// limitedBuffer keeps the first 64 KiB of a command's output.
type limitedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := maxSubscriberOutput - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tail is the last non-empty line of output, for error messages.
func (l *limitedBuffer) tail() string {
	lines := strings.Split(strings.TrimSpace(l.String()), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
