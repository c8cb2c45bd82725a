package pmf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/steady-ha/steady/internal/cgroup"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/atomicfile"
	"github.com/steady-ha/steady/internal/reaper"
	"golang.org/x/sys/unix"
)

// tagSchema is the version of the persisted tag record.
const tagSchema = 1

// maxLogBytes is the size at which a tag's log is rotated (to .1) when the
// command next starts.
const maxLogBytes = 10 << 20

// tagRecord is what is persisted of a tag, to re-adopt it after a restart
// of the agent.
type tagRecord struct {
	Schema    int         `json:"schema"`
	Spec      Spec        `json:"spec"`
	Instance  uint64      `json:"instance"`
	MainPID   int         `json:"main_pid,omitempty"`
	MainStart uint64      `json:"main_start,omitempty"` // start time in clock ticks, to recognise the pid
	Started   time.Time   `json:"started"`
	Window    Window      `json:"window"`
	Track     trackRecord `json:"track"`
	Stopping  bool        `json:"stopping,omitempty"`
	LastExit  string      `json:"last_exit,omitempty"`
	// Reserved: instance numbers up to this one may have been used. After
	// a crash of the agent numbering continues above it, so no number is
	// used twice although the restart path writes nothing.
	Reserved uint64 `json:"reserved"`
}

// instanceBlock is how many instance numbers one durable save reserves.
const instanceBlock = 1000

// Tag states, as shown to users.
const (
	stateRunning    = "running"
	stateRestarting = "restarting"
	stateAction     = "action"
	stateStopping   = "stopping"
)

// tag is one supervised command.
//
// Two goroutines work for it. The loop (run) watches the processes and
// decides; it is the only writer of the fields below after the start, and
// it does nothing slow between noticing an exit and executing the
// replacement. The books goroutine does, in order, what can follow: the
// exit status, the events, the durable state file. mu lets describe and
// the books read the fields meanwhile.
type tag struct {
	m    *Manager
	name string
	cmds chan func()
	wake chan struct{}
	// books carries bookkeeping from the loop (and from Start before the
	// loop runs) to the books goroutine; the loop closes it when it ends.
	books     chan func()
	booksDone chan struct{}
	loopDone  chan struct{} // closed when run returns
	gone      chan struct{} // closed when the tag is removed

	saveMu sync.Mutex // serializes writes of the state file

	mu            sync.Mutex
	spec          Spec
	window        Window
	tr            tracker
	instance      uint64
	reserved      uint64 // instance numbers reserved on disk
	floor         uint64 // after a recovery, numbering continues above this
	main          *reaper.Child
	mainPID       int
	mainStart     uint64
	started       time.Time
	lastExit      string
	exitKnown     bool // lastExit is the current instance's
	state         string
	stopping      bool
	instanceEnded chan struct{} // closed when the current instance is all gone
	ended         bool          // instanceEnded is closed
	pendingEnd    bool          // re-adopted with nothing running
	removed       bool
}

func (m *Manager) newTag(spec Spec) *tag {
	t := &tag{
		m: m, name: spec.Tag, spec: spec,
		cmds:          make(chan func()),
		wake:          make(chan struct{}, 1),
		books:         make(chan func(), 64),
		booksDone:     make(chan struct{}),
		loopDone:      make(chan struct{}),
		gone:          make(chan struct{}),
		window:        Window{Retries: spec.Retries, Period: spec.Period},
		instanceEnded: make(chan struct{}),
		state:         stateRunning,
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(t.booksDone)
		for f := range t.books {
			f()
		}
	}()
	return t
}

// later queues f for the books goroutine. Called from the loop, or before
// it starts.
func (t *tag) later(f func()) { t.books <- f }

// publish queues an event, so that events stay in order behind the
// bookkeeping of earlier ones.
func (t *tag) publish(subclass string, attrs api.Attrs) {
	t.later(func() { t.m.publish(subclass, attrs) })
}

// saveLater queues a durable save of the state as it is when it runs.
func (t *tag) saveLater() {
	t.later(func() {
		if err := t.save(nil); err != nil {
			t.m.log.Error("cannot save tag state", "tag", t.name, "err", err)
		}
	})
}

// restore loads persisted state into a new tag.
func (t *tag) restore(rec tagRecord) {
	t.instance, t.mainPID, t.mainStart = rec.Instance, rec.MainPID, rec.MainStart
	t.started, t.window, t.stopping, t.lastExit = rec.Started, rec.Window, rec.Stopping, rec.LastExit
	t.reserved, t.floor = rec.Reserved, rec.Reserved
	t.window.Set(rec.Spec.Retries, rec.Spec.Period)
}

// setup creates the tracker: a fresh one (rec nil) or the persisted one.
func (t *tag) setup(rec *trackRecord) error {
	m := t.m
	switch {
	case rec != nil && rec.Cgroup != "" && m.watcher != nil:
		tr, err := newCgroupTracker(m.watcher, cgroup.Dir(rec.Cgroup))
		if err != nil {
			return err
		}
		t.tr = tr
	case rec != nil:
		// Tracked by process group, or by a cgroup this agent cannot use:
		// the markers still find the processes.
		t.tr = &groupTracker{tag: t.name, agent: m.id, scan: m.scan, pgid: rec.PGID}
	case m.mode == ModeCgroup:
		dir := cgroup.Dir(filepath.Join(string(m.cgRoot), "t-"+t.name))
		if pop, err := dir.Populated(); err == nil && pop {
			return fmt.Errorf("%w: processes of an earlier %s still run in cgroup %s, which no tag owns; stop them (echo 1 > %s) and start again",
				ErrExists, t.name, dir, dir.File("cgroup.kill"))
		}
		tr, err := newCgroupTracker(m.watcher, dir)
		if err != nil {
			return err
		}
		t.tr = tr
	default:
		t.tr = &groupTracker{tag: t.name, agent: m.id, scan: m.scan}
	}
	if t.spec.Level >= 0 {
		if ct, ok := t.tr.(*cgroupTracker); ok && m.levels != nil {
			m.levels.add(ct.dir, t.spec.Level)
		}
	}
	return nil
}

// launchFirst starts the command of a new tag.
func (t *tag) launchFirst() error {
	if err := t.launch(); err != nil {
		return err
	}
	t.saveLater()
	t.publish(SubclassStarted, api.Attrs{
		"tag": api.String(t.name), "pid": api.Int(int64(t.mainPID)), "instance": api.Uint(t.instance),
		"command": api.Strings(t.spec.Command...), "owner": api.String(t.spec.Owner.Name),
	})
	return nil
}

// launch starts a new instance of the command. Between the decision and
// the exec it writes nothing, except to reserve a new block of instance
// numbers once per instanceBlock launches (and at the first); the state
// with the pid is saved in the books. An agent that dies in the
// milliseconds between the exec and that save leaves a restart uncounted
// in the budget, but never an instance number used twice.
func (t *tag) launch() error {
	spec := t.spec
	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	cmd.Env = append(append([]string(nil), spec.Env...), tagEnv+"="+t.name, agentEnv+"="+t.m.id)
	cmd.Dir = spec.Dir
	logf, err := openLog(t.m.logPath(t.name))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cred, err := spec.Owner.identity().Credential()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPermission, err)
	}
	// A session of its own: no signal from the agent's terminal reaches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}
	if err := t.tr.prepare(cmd); err != nil {
		return err
	}
	next := max(t.instance, t.floor) + 1
	if next > t.reserved {
		reserve := next + instanceBlock
		if err := t.save(func(r *tagRecord) { r.Reserved = reserve }); err != nil {
			return err
		}
		t.mu.Lock()
		t.reserved = reserve
		t.mu.Unlock()
	}
	t.mu.Lock()
	t.instance, t.mainPID, t.mainStart = next, 0, 0
	t.mu.Unlock()
	child, err := t.m.opts.Spawner.Start(cmd)
	if err != nil {
		return fmt.Errorf("%w: starting %s: %w", ErrInvalid, spec.Command[0], unwrapExec(err))
	}
	start := procStart(child.Pid)
	t.mu.Lock()
	t.main, t.mainPID, t.mainStart = child, child.Pid, start
	t.started = t.m.opts.Now()
	t.state = stateRunning
	t.instanceEnded, t.ended = make(chan struct{}), false
	t.exitKnown = false
	t.mu.Unlock()
	if g, ok := t.tr.(*groupTracker); ok {
		g.started(child.Pid)
	}
	if t.m.levels != nil && t.spec.Level >= 0 {
		t.m.levels.setMain(child.Pid)
	}
	return nil
}

func unwrapExec(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// openLog opens a tag's log for appending, rotating it when it is large.
func openLog(path string) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxLogBytes {
		os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("pmf: log: %w", err)
	}
	return f, nil
}

// discard ends a tag whose loop never ran; with release it also gives up
// its tracking and state (a first launch that failed).
func (t *tag) discard(release bool) {
	close(t.books)
	<-t.booksDone
	if release {
		t.release()
	}
	close(t.loopDone)
	close(t.gone)
}

// release gives up the tag's tracking and its state file.
func (t *tag) release() {
	if t.m.levels != nil {
		if ct, ok := t.tr.(*cgroupTracker); ok {
			t.m.levels.remove(ct.dir)
		}
	}
	t.tr.release()
	t.saveMu.Lock()
	if err := os.Remove(t.statePath()); err != nil && !os.IsNotExist(err) {
		t.m.log.Error("cannot remove tag state", "tag", t.name, "err", err)
	}
	t.saveMu.Unlock()
}

// readopt decides, before the loop starts, what a recovered tag is.
func (t *tag) readopt() {
	alive, err := t.tr.alive(time.Now())
	if err != nil || !alive {
		t.pendingEnd = true
		t.lastExit = "its processes exited while the agent was not running"
		return
	}
	if t.mainPID != 0 && procStart(t.mainPID) != t.mainStart {
		t.mainPID = 0 // that process is gone; its pid may be someone else's
	}
	if t.stopping {
		t.state = stateStopping
	}
	t.m.log.Info("re-adopted tag", "tag", t.name, "tracking", t.tr.describe())
	t.publish(SubclassReadopted, api.Attrs{
		"tag": api.String(t.name), "instance": api.Uint(t.instance), "pids": api.Ints(int64s(t.tr.pids())...),
	})
}

func int64s(in []int) []int64 {
	out := make([]int64, len(in))
	for i, v := range in {
		out[i] = int64(v)
	}
	return out
}

// run is the tag's loop.
func (t *tag) run(ctx context.Context) {
	defer func() {
		close(t.books) // the books finish what is queued, then stop
		close(t.loopDone)
	}()
	// Without notifications the tag looks every second. With them it
	// still looks every few seconds: a notification that never comes
	// (seen once in CI under load, cause unknown) must not leave a dead
	// tag unnoticed, or a kill waiting for it hanging.
	every := 3 * time.Second
	if t.tr.changes() == nil {
		every = time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	poll := tick.C
	if t.pendingEnd {
		t.pendingEnd = false
		t.onEnd(ctx)
	}
	for !t.removed {
		var mainDone <-chan struct{}
		if t.main != nil {
			mainDone = t.main.Done()
		}
		select {
		case <-t.tr.changes():
			t.check(ctx, time.Now())
		case <-mainDone:
			t.mainExited()
			t.check(ctx, time.Now())
		case <-t.wake:
			t.check(ctx, time.Now())
		case <-poll:
			// The periodic look may share a view up to a second old.
			t.check(ctx, time.Now().Add(-time.Second))
		case f := <-t.cmds:
			f()
		case <-ctx.Done():
			return
		}
	}
}

// do runs f on the tag's loop and returns its error.
func (t *tag) do(ctx context.Context, f func() error) error {
	res := make(chan error, 1)
	select {
	case t.cmds <- func() { res <- f() }:
	case <-t.loopDone:
		if t.m.ctx.Err() != nil {
			return ErrClosed
		}
		return fmt.Errorf("%w: %s", ErrNotFound, t.name)
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-res
}

func (t *tag) nudge() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *tag) denied(who Requester) error {
	return fmt.Errorf("%w: tag %s belongs to %s (uid %d); only its owner or an administrator may change it", ErrPermission, t.name, t.spec.Owner.Name, t.spec.Owner.UID)
}

// mainExited records the exit status of the command's own process.
func (t *tag) mainExited() {
	c := t.main
	t.mu.Lock()
	t.main = nil
	t.lastExit, t.exitKnown = reaper.DescribeStatus(c.Status()), true
	t.mu.Unlock()
}

// check looks whether a monitored process is left, on a view of the
// processes taken no earlier than since.
func (t *tag) check(ctx context.Context, since time.Time) {
	if t.ended || t.state == stateAction {
		return
	}
	if _, byGroup := t.tr.(*groupTracker); byGroup && t.main != nil {
		return // the command's own process runs; its exit will be reported
	}
	alive, err := t.tr.alive(since)
	if err != nil {
		t.m.log.Warn("cannot tell whether the tag's processes run", "tag", t.name, "err", err)
		return
	}
	if !alive {
		t.onEnd(ctx)
	}
}

// onEnd handles the end of an instance: its last monitored process exited.
// Between the detection and the exec of the replacement it does only what
// the decision needs; the rest goes to the books.
func (t *tag) onEnd(ctx context.Context) {
	detected := time.Now()
	now := t.m.opts.Now()
	t.mu.Lock()
	if !t.ended {
		close(t.instanceEnded)
		t.ended = true
	}
	// What is known of the ending instance, taken before a relaunch resets it.
	end := ending{main: t.main, pid: t.mainPID, instance: t.instance, known: t.exitKnown, last: t.lastExit}
	t.mu.Unlock()
	exited := func() { t.publishExited(t.collect(end), end) }

	if t.stopping {
		t.later(exited)
		t.remove("stopped")
		return
	}
	if t.allow(now) {
		t.record(now)
		err := t.launch()
		latency := time.Since(detected)
		t.later(exited)
		if err != nil {
			t.m.log.Error("cannot restart", "tag", t.name, "err", err)
			t.exhaust(ctx, fmt.Sprintf("cannot restart: %v", err))
			return
		}
		t.m.latency.Observe(latency.Seconds())
		t.m.restarts.Inc()
		attrs := api.Attrs{
			"tag": api.String(t.name), "pid": api.Int(int64(t.mainPID)), "instance": api.Uint(t.instance),
			"retries_used": api.Int(int64(t.used(now))), "retries": api.Int(int64(t.spec.Retries)),
			"latency_us": api.Int(latency.Microseconds()),
		}
		// Saved before announced: the journal never names an instance the
		// state file does not know.
		t.saveLater()
		t.later(func() {
			t.m.log.Info("restarted", "tag", t.name, "pid", attrs["pid"].Display(), "retries_used", attrs["retries_used"].Display())
			t.m.publish(SubclassRestarted, attrs)
		})
		return
	}
	t.later(exited)
	t.exhaust(ctx, fmt.Sprintf("%d restart(s) used within %s", t.used(now), periodText(t.spec.Period)))
}

// ending is what onEnd knows of the instance that ended.
type ending struct {
	main     *reaper.Child // nil once its exit was recorded, or when re-adopted
	pid      int
	instance uint64
	known    bool // last is this instance's exit
	last     string
}

// allow, record and used read and change the window under mu, since
// describe reads it from other goroutines.
func (t *tag) allow(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.window.Allow(now)
}

func (t *tag) record(now time.Time) {
	t.mu.Lock()
	t.window.Record(now)
	t.mu.Unlock()
}

func (t *tag) used(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.window.Used(now)
}

// collect returns how the ended instance's own process exited, waiting
// briefly for the reaper when it has not reported yet (it does within
// milliseconds of the exit), and records it as the tag's last exit.
// It runs in the books.
func (t *tag) collect(e ending) string {
	status := e.last
	switch {
	case e.main != nil:
		select {
		case <-e.main.Done():
			status = reaper.DescribeStatus(e.main.Status())
		case <-time.After(time.Second):
			status = "unknown (the exit was not reported within 1s)"
		}
	case !e.known:
		status = "unknown (not a child of this agent)"
	}
	t.mu.Lock()
	if t.instance == e.instance {
		t.exitKnown = true
	}
	t.lastExit = status
	t.mu.Unlock()
	return status
}

func (t *tag) publishExited(status string, e ending) {
	attrs := api.Attrs{"tag": api.String(t.name), "pid": api.Int(int64(e.pid)), "instance": api.Uint(e.instance),
		"status": api.String(status)}
	if code, ok := strings.CutPrefix(status, "exit status "); ok {
		n, _ := strconv.Atoi(code)
		attrs["exit_code"] = api.Int(int64(n))
	}
	if sig, ok := strings.CutPrefix(status, "killed by signal "); ok {
		attrs["signal"] = api.String(strings.TrimSuffix(sig, " (core dumped)"))
	}
	t.m.publish(SubclassExited, attrs)
}

func periodText(p time.Duration) string {
	if p <= 0 {
		return "the life of the tag"
	}
	return p.String()
}

// exhaust handles a spent budget: the action program decides, or the tag
// goes.
func (t *tag) exhaust(ctx context.Context, why string) {
	t.m.exhausted.Inc()
	action := "none"
	if len(t.spec.Action) > 0 {
		action = t.spec.Action[0]
	}
	t.m.log.Warn("restarts exhausted", "tag", t.name, "why", why, "action", action)
	t.publish(SubclassExhausted, api.Attrs{
		"tag": api.String(t.name), "reason": api.String(why), "action": api.String(action),
		"retries": api.Int(int64(t.spec.Retries)), "period": api.String(periodText(t.spec.Period)),
	})
	if len(t.spec.Action) == 0 {
		t.remove("exhausted")
		return
	}
	t.mu.Lock()
	t.state = stateAction
	t.mu.Unlock()
	go func() {
		code, err := t.runAction(ctx)
		select {
		case t.cmds <- func() { t.actionDone(code, err) }:
		case <-t.loopDone: // stopped meanwhile
		}
	}()
}

// runAction runs the action program as the owner, with "failed TAG", in
// the tag's directory and with only PATH in its environment.
func (t *tag) runAction(ctx context.Context) (int, error) {
	spec := t.spec
	actx, cancel := context.WithTimeout(ctx, t.m.opts.ActionTimeout)
	defer cancel()
	cmd := exec.CommandContext(actx, spec.Action[0], append(spec.Action[1:], "failed", t.name)...)
	cmd.Dir = spec.Dir
	cmd.Env = []string{"PATH=" + envPath(spec.Env)}
	cred, err := spec.Owner.identity().Credential()
	if err != nil {
		return -1, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	cmd.WaitDelay = time.Second
	logf, err := openLog(t.m.logPath(t.name))
	if err != nil {
		return -1, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	child, err := t.m.opts.Spawner.Start(cmd)
	if err != nil {
		return -1, unwrapExec(err)
	}
	err = child.Wait()
	if actx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		return -1, fmt.Errorf("timed out after %v", t.m.opts.ActionTimeout)
	}
	if err == nil {
		return 0, nil
	}
	if ws := child.Status(); ws.Exited() {
		return ws.ExitStatus(), nil
	}
	return -1, err
}

func envPath(env []string) string {
	for _, e := range env {
		if p, ok := strings.CutPrefix(e, "PATH="); ok {
			return p
		}
	}
	return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

// actionDone applies the action program's verdict (on the loop).
func (t *tag) actionDone(code int, err error) {
	decision := "remove"
	if err == nil && code == 0 && !t.stopping {
		decision = "relaunch"
	}
	attrs := api.Attrs{"tag": api.String(t.name), "exit_code": api.Int(int64(code)), "decision": api.String(decision)}
	if err != nil {
		attrs["error"] = api.String(err.Error())
	}
	t.publish(SubclassAction, attrs)
	t.m.log.Info("action program finished", "tag", t.name, "exit_code", code, "err", err, "decision", decision)
	if decision == "remove" {
		t.remove("action")
		return
	}
	if err := t.launch(); err != nil {
		t.m.log.Error("cannot relaunch after the action program", "tag", t.name, "err", err)
		t.remove("action")
		return
	}
	t.publish(SubclassRestarted, api.Attrs{
		"tag": api.String(t.name), "pid": api.Int(int64(t.mainPID)), "instance": api.Uint(t.instance),
		"retries_used": api.Int(int64(t.used(t.m.opts.Now()))), "retries": api.Int(int64(t.spec.Retries)),
		"reason": api.String("action program"),
	})
	t.saveLater()
}

// stop ends monitoring and signals the processes (on the loop).
func (t *tag) stop(who Requester, sig unix.Signal) error {
	if !who.may(t.spec.Owner) {
		return t.denied(who)
	}
	t.mu.Lock()
	t.stopping = true
	wasAction := t.state == stateAction
	t.state = stateStopping
	t.mu.Unlock()
	// Durable before the signal: a restarted agent must not restart it.
	if err := t.save(nil); err != nil {
		return err
	}
	t.publish(SubclassStopped, api.Attrs{"tag": api.String(t.name), "signal": api.String(reaper.SignalName(sig))})
	if wasAction || t.ended {
		// Nothing runs (the action program decides nothing any more).
		t.remove("stopped")
		return nil
	}
	if err := t.tr.signal(sig); err != nil {
		return err
	}
	if sig != unix.SIGKILL && sig != unix.SIGCONT && sig != unix.SIGSTOP {
		// A stopped process (SIGSTOP, a debugger) acts on the signal
		// only once it runs again.
		t.tr.signal(unix.SIGCONT)
	}
	t.check(t.m.ctx, time.Now())
	return nil
}

// escalate kills what a stop left running (on the loop).
func (t *tag) escalate() error {
	t.publish(SubclassStopped, api.Attrs{"tag": api.String(t.name), "signal": api.String("KILL"), "escalated": api.Bool(true)})
	return t.tr.signal(unix.SIGKILL)
}

// remove ends the tag (on the loop): the loop stops, and the books, after
// what is queued, give up its tracking and state and announce it gone.
func (t *tag) remove(why string) {
	if t.removed {
		return
	}
	t.removed = true
	t.later(func() {
		t.release()
		t.m.forget(t)
		t.m.log.Info("tag removed", "tag", t.name, "why", why)
		close(t.gone)
	})
}

func (t *tag) statePath() string { return filepath.Join(t.m.opts.Dir, "tags", t.name+".json") }

// save writes the tag's state, as changed by edit, durably. The record is
// taken when the write happens, under saveMu, so a late save never writes
// an older state over a newer one.
func (t *tag) save(edit func(*tagRecord)) error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	t.mu.Lock()
	rec := tagRecord{
		Schema: tagSchema, Spec: t.spec, Instance: t.instance, MainPID: t.mainPID, MainStart: t.mainStart,
		Started: t.started, Window: t.window, Track: t.tr.record(), Stopping: t.stopping, LastExit: t.lastExit,
		Reserved: t.reserved,
	}
	t.mu.Unlock()
	if edit != nil {
		edit(&rec)
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("pmf: %w", err)
	}
	if err := atomicfile.Write(t.statePath(), append(data, '\n'), 0o640); err != nil {
		return fmt.Errorf("pmf: saving tag %s: %w", t.name, err)
	}
	return nil
}

func (t *tag) handle() Handle {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Handle{Tag: t.name, Instance: t.instance, Spec: t.spec}
}

// describe reports the tag for pmfadm -l and the API.
func (t *tag) describe() api.PMFTag {
	pids := t.tr.pids()
	t.mu.Lock()
	defer t.mu.Unlock()
	state := t.state
	if t.ended && state == stateRunning {
		state = stateRestarting
	}
	if pids == nil {
		pids = []int{}
	}
	return api.PMFTag{
		Tag: t.name, State: state, Command: t.spec.Command, Env: t.spec.Env, Dir: t.spec.Dir,
		Owner: t.spec.Owner.Name, UID: t.spec.Owner.UID,
		Retries: t.spec.Retries, Period: api.Duration(t.spec.Period), RetriesUsed: t.window.Used(t.m.opts.Now()),
		Level: t.spec.Level, Action: t.spec.Action, Instance: t.instance, MainPID: t.mainPID, PIDs: pids,
		Started: t.started, LastExit: t.lastExit, Tracking: t.tr.describe(), Log: t.m.logPath(t.name),
	}
}

// procStart is a process's start time in clock ticks since boot, which
// tells a pid apart from a later reuse; 0 when the process is gone.
func procStart(pid int) uint64 {
	f := procStat(pid)
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// procStat returns the fields of /proc/PID/stat after the command name
// (which may hold spaces): state, ppid, pgrp, ..., starttime at index 19.
// Nil when the process is gone.
func procStat(pid int) []string {
	return statFields(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
}

func statFields(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return nil
	}
	return strings.Fields(string(b[i+2:]))
}
