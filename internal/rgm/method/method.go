// Package method runs the methods of resources: RTR method programs, OCF
// agent actions and the built-in steady.Process type, and the RGM's own
// probes. Each program runs in its own process group and cgroup, as the
// owner of its file; its timeout kills the whole tree (SIGABRT, then
// SIGKILL after a grace period); its output goes to the resource's log,
// and the last lines come back for events and "steady rg why".
//
// A Runner is safe for concurrent use; the manager runs methods of
// different resources in parallel.
package method

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/steady-ha/steady/internal/cgroup"
	"github.com/steady-ha/steady/internal/reaper"
	"github.com/steady-ha/steady/internal/rgm/machine"
	"github.com/steady-ha/steady/internal/rgm/model"
	"github.com/steady-ha/steady/internal/rgm/ocf"
	"github.com/steady-ha/steady/internal/runas"
	"golang.org/x/sys/unix"
)

// MethodProbe is the RGM's own probe of a resource (OCF monitor action,
// built-in probe command); not an RTR method.
const MethodProbe = "PROBE"

// Options configures New.
type Options struct {
	Spawner reaper.Spawner
	// Cgroup is the parent cgroup of method cgroups; empty: process
	// groups only.
	Cgroup  cgroup.Dir
	LogDir  string
	BinDir  string // the compatibility commands (pmfadm, scha_*), first in PATH
	Socket  string // the agent's socket, for scha_* and pmfadm
	Node    string
	OCFRoot string
	// Grace is the time between SIGABRT and SIGKILL at a timeout.
	Grace time.Duration
	PMF   ProcessMonitor
	// Addresses places logical hostnames; nil: they fail to start.
	Addresses Addresses
	Logger    *slog.Logger
}

// Runner runs methods.
type Runner struct {
	opts Options
	seq  atomic.Uint64

	mu   sync.Mutex
	live map[string]bool // method cgroups of runs in progress: not swept
}

// New makes a runner.
func New(opts Options) (*Runner, error) {
	if opts.Spawner == nil {
		opts.Spawner = reaper.Plain{}
	}
	if opts.Grace <= 0 {
		opts.Grace = 5 * time.Second
	}
	if opts.OCFRoot == "" {
		opts.OCFRoot = ocf.DefaultRoot
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.LogDir, 0o750); err != nil {
		return nil, fmt.Errorf("method: %w", err)
	}
	r := &Runner{opts: opts, live: map[string]bool{}}
	r.sweep()
	return r, nil
}

// sweepEvery is how many method runs pass between sweeps of empty method
// cgroups.
const sweepEvery = 64

// sweep removes the method cgroups whose processes are all gone. A Start
// method that leaves a daemon behind leaves its cgroup populated; once
// the daemon exits, the empty cgroup is removed here (the kernel refuses
// to remove a populated one, so this never disturbs a live process).
func (r *Runner) sweep() {
	if r.opts.Cgroup == "" {
		return
	}
	entries, err := os.ReadDir(string(r.opts.Cgroup))
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "m-") && !r.live[e.Name()] {
			d := cgroup.Dir(filepath.Join(string(r.opts.Cgroup), e.Name()))
			if pop, err := d.Populated(); err == nil && !pop {
				d.Remove()
			}
		}
	}
}

// Call is one method to run.
type Call struct {
	Resource, Group string
	Type            *model.ResourceType
	Values          model.Values // the resource's effective properties
	Method          string       // model.Method* or MethodProbe
	Timeout         time.Duration
	// Validate: creating (-c) or updating (-u), and the -r/-x/-g
	// arguments of the values being checked.
	Creating     bool
	ValidateArgs []string
	// Epoch is the assignment epoch, given to methods as STEADY_EPOCH.
	Epoch uint64
	// Env adds variables (the notify variables of an OCF test).
	Env []string
}

// Run runs a method and reports its result.
func (r *Runner) Run(ctx context.Context, c Call) machine.Result {
	switch c.Type.Source {
	case model.SourceRTR:
		return r.runRTR(ctx, c)
	case model.SourceOCF:
		return r.runOCF(ctx, c)
	case model.SourceBuiltin:
		if c.Type.Name == model.LogicalHostnameType {
			return r.runHostname(ctx, c)
		}
		return r.runProcess(ctx, c)
	}
	return machine.Result{Err: "unknown type source " + c.Type.Source}
}

// ProbeResult is what a probe found.
type ProbeResult struct {
	OK, Degraded bool
	Msg          string
}

// Probe runs the RGM's own monitor of a resource once.
func (r *Runner) Probe(ctx context.Context, c Call) ProbeResult {
	c.Method = MethodProbe
	switch c.Type.Source {
	case model.SourceOCF:
		res := r.runOCF(ctx, c)
		return ProbeResult{OK: res.Succeeded(), Degraded: res.Severity == "degraded", Msg: res.Output}
	case model.SourceBuiltin:
		if c.Type.Name == model.LogicalHostnameType {
			return r.probeHostname(ctx, c)
		}
		return r.probeProcess(ctx, c)
	}
	return ProbeResult{OK: true}
}

// RunsAs is the user the methods of a resource run as: the owner of an
// RTR type's START program, steady.Process's User, root for OCF agents.
// scha_control and scha_resource_setstatus accept it as the resource's
// own caller.
func RunsAs(c Call) (runas.Identity, error) {
	switch c.Type.Source {
	case model.SourceRTR:
		fi, err := os.Stat(c.Type.Methods[model.MethodStart])
		if err != nil {
			return runas.Identity{}, fmt.Errorf("method: %w", err)
		}
		return runas.Owner(fi)
	case model.SourceBuiltin:
		return runas.Lookup(c.Values.String("User", "root"))
	}
	return runas.Lookup("root")
}

// LogPath is the log of a resource's methods.
func (r *Runner) LogPath(resource string) string {
	return filepath.Join(r.opts.LogDir, resource+".log")
}

// execSpec is one program to run.
type execSpec struct {
	call    Call
	path    string
	args    []string
	env     []string
	id      runas.Identity
	timeout time.Duration
	label   string // for the log
	// quiet runs (probes) keep their output in memory and log it only
	// when they fail, so that a probe every few seconds does not bury the
	// log.
	quiet bool
}

// execResult is what happened to it.
type execResult struct {
	ws       unix.WaitStatus
	timedOut bool
	err      error
	output   string
	took     time.Duration
}

func (e execResult) code() int {
	switch {
	case e.ws.Exited():
		return e.ws.ExitStatus()
	case e.ws.Signaled():
		return 128 + int(e.ws.Signal())
	}
	return -1
}

// baseEnv is the environment every method gets.
func (r *Runner) baseEnv(c Call, id runas.Identity) []string {
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	if r.opts.BinDir != "" {
		path = r.opts.BinDir + ":" + path
	}
	env := []string{
		"PATH=" + path, "HOME=" + id.Home, "USER=" + id.Name, "LOGNAME=" + id.Name, "LANG=C",
		"STEADY_SOCKET=" + r.opts.Socket, "STEADY_NODE=" + r.opts.Node,
		"STEADY_RESOURCE=" + c.Resource, "STEADY_RESOURCE_GROUP=" + c.Group, "STEADY_RESOURCE_TYPE=" + c.Type.Name,
		"STEADY_EPOCH=" + strconv.FormatUint(c.Epoch, 10),
	}
	// The agent's time zone, so that methods log the times the operator
	// reads; GORACE, so that a race-detector build of steady (the tests')
	// runs its scha_* commands without the detector's exit delay.
	for _, k := range []string{"TZ", "GORACE"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// run runs one program to completion or its timeout.
func (r *Runner) run(ctx context.Context, s execSpec) execResult {
	start := time.Now()
	logf, err := os.OpenFile(r.LogPath(s.call.Resource), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return execResult{err: fmt.Errorf("method: log: %w", err)}
	}
	defer logf.Close()
	header := fmt.Sprintf("--- %s %s %s\n", start.UTC().Format(time.RFC3339), s.label, strings.Join(append([]string{s.path}, s.args...), " "))
	var mem limitedBuffer
	bodyStart := int64(0)
	if !s.quiet {
		logf.WriteString(header)
		bodyStart, _ = logf.Seek(0, io.SeekEnd)
	}
	cred, err := s.id.Credential()
	if err != nil {
		return execResult{err: err}
	}
	cmd := exec.Command(s.path, s.args...)
	cmd.Env, cmd.Dir = s.env, "/"
	if s.quiet {
		cmd.Stdout, cmd.Stderr = &mem, &mem
		cmd.WaitDelay = time.Second
	} else {
		// The file itself, not a pipe: a daemon a method leaves behind
		// keeps writing to it harmlessly.
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	var cg cgroup.Dir
	if r.opts.Cgroup != "" {
		n := r.seq.Add(1)
		if n%sweepEvery == 0 {
			r.sweep()
		}
		name := fmt.Sprintf("m-%d-%d", os.Getpid(), n)
		r.mu.Lock()
		r.live[name] = true
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			delete(r.live, name)
			r.mu.Unlock()
		}()
		cg = cgroup.Dir(filepath.Join(string(r.opts.Cgroup), name))
		if err := cg.Create(); err == nil {
			if fd, err := cg.OpenFD(); err == nil {
				defer unix.Close(fd)
				cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
			}
		}
	}
	child, err := r.opts.Spawner.Start(cmd)
	if err != nil {
		if cg != "" {
			cg.Remove()
		}
		return execResult{err: unwrapExec(err)}
	}
	kill := func(sig syscall.Signal) {
		if cg != "" && cmd.SysProcAttr.UseCgroupFD {
			cg.Signal(sig)
		}
		unix.Kill(-child.Pid, sig)
	}
	var res execResult
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	select {
	case <-child.Done():
	case <-timer.C:
		res.timedOut = true
	case <-ctx.Done():
		res.err = ctx.Err()
	}
	if res.timedOut || res.err != nil {
		// The whole tree: SIGABRT first (Sun Cluster's choice, so that the
		// processes dump core), SIGKILL after the grace period.
		kill(syscall.SIGABRT)
		select {
		case <-child.Done():
		case <-time.After(r.opts.Grace):
			kill(syscall.SIGKILL)
			<-child.Done()
		}
		if cg != "" {
			// The whole tree: what the method left behind too, and only
			// once it is gone is the method over.
			kill(syscall.SIGKILL)
			cg.WaitEmpty(r.opts.Grace)
		}
	}
	child.Wait()
	res.ws = child.Status()
	res.took = time.Since(start)
	if cg != "" {
		if pop, _ := cg.Populated(); !pop {
			cg.Remove()
		}
	}
	failed := res.timedOut || res.err != nil || !res.ws.Exited() || res.ws.ExitStatus() != 0
	if s.quiet {
		res.output = strings.TrimRight(mem.String(), "\n")
		if !failed {
			return res
		}
		logf.WriteString(header)
		if res.output != "" {
			logf.WriteString(res.output + "\n")
		}
	} else {
		res.output = tail(r.LogPath(s.call.Resource), bodyStart, 2048)
	}
	switch {
	case res.timedOut:
		fmt.Fprintf(logf, "--- timed out after %v; killed\n", s.timeout)
	case res.err != nil:
		fmt.Fprintf(logf, "--- interrupted: %v\n", res.err)
	default:
		fmt.Fprintf(logf, "--- %s after %v\n", reaper.DescribeStatus(res.ws), res.took.Round(time.Millisecond))
	}
	return res
}

// limitedBuffer keeps the last 4 KiB written to it.
type limitedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 4096 {
		l.b = l.b[len(l.b)-4096:]
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// tail reads at most max bytes of path from offset on, keeping the last
// lines.
func tail(path string, offset int64, max int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	end, _ := f.Seek(0, io.SeekEnd)
	from := offset
	if end-from > int64(max) {
		from = end - int64(max)
	}
	buf := make([]byte, end-from)
	if _, err := f.ReadAt(buf, from); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	text := string(buf)
	if from > offset {
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text = text[i+1:]
		}
	}
	return strings.TrimRight(text, "\n")
}

func unwrapExec(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// runRTR runs an RTR method program: METHOD -R res -T type -G group, as the
// owner of its file.
func (r *Runner) runRTR(ctx context.Context, c Call) machine.Result {
	path, ok := c.Type.Methods[c.Method]
	if !ok {
		return machine.Result{Err: fmt.Sprintf("type %s has no %s method", c.Type.Name, c.Method)}
	}
	fi, err := runas.CheckScript(path)
	if err != nil {
		return machine.Result{Err: err.Error()}
	}
	id, err := runas.Owner(fi)
	if err != nil {
		return machine.Result{Err: err.Error()}
	}
	args := []string{"-R", c.Resource, "-T", c.Type.Name, "-G", c.Group}
	if c.Method == model.MethodValidate {
		if c.Creating {
			args = append(args, "-c")
		} else {
			args = append(args, "-u")
		}
		args = append(args, c.ValidateArgs...)
	}
	res := r.run(ctx, execSpec{call: c, path: path, args: args, env: r.baseEnv(c, id), id: id, timeout: c.Timeout, label: c.Method})
	return machine.Result{Code: res.code(), OK: res.err == nil && !res.timedOut && res.code() == 0,
		TimedOut: res.timedOut, Err: errText(res.err), Output: res.output}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ocfActions maps methods to OCF actions.
var ocfActions = map[string]string{
	model.MethodStart: "start", model.MethodStop: "stop", model.MethodValidate: "validate-all",
	model.MethodUpdate: "reload", MethodProbe: "monitor",
}

// runOCF runs an OCF agent action as root, with OCF_RESKEY_* and the
// other variables agents expect.
func (r *Runner) runOCF(ctx context.Context, c Call) machine.Result {
	action, ok := ocfActions[c.Method]
	if !ok {
		return machine.Result{Err: fmt.Sprintf("OCF agents have no %s method", c.Method)}
	}
	return r.OCFAction(ctx, c, action)
}

// OCFAction runs any action of an OCF agent (for "steady type test": also
// meta-data, notify, migrate_to, ...). The result's Code is the agent's
// exit code; OK and Severity classify it as for a resource.
func (r *Runner) OCFAction(ctx context.Context, c Call, action string) machine.Result {
	provider, agent, _ := ocf.ParseName(c.Type.Name)
	var interval time.Duration
	if action == "monitor" {
		interval = time.Duration(c.Values.Int("Thorough_probe_interval", 10)) * time.Second
	}
	id := runas.Identity{Name: "root", Home: "/root"}
	env := append(r.baseEnv(c, id)[1:], ocf.Env(ocf.EnvOptions{
		Root: r.opts.OCFRoot, Instance: c.Resource, Type: agent, Provider: provider,
		Params: c.Type.OCFParams(c.Values), Interval: interval, Timeout: c.Timeout, Node: r.opts.Node,
	})...)
	env = append(env, c.Env...)
	res := r.run(ctx, execSpec{call: c, path: c.Type.Agent, args: []string{action}, env: env, id: id,
		timeout: c.Timeout, label: "ocf " + action, quiet: c.Method == MethodProbe})
	out := machine.Result{Code: res.code(), TimedOut: res.timedOut, Err: errText(res.err), Output: res.output}
	if res.err == nil && !res.timedOut {
		o := ocf.Classify(action, out.Code, false)
		out.OK = o.OK
		out.Severity = string(o.Severity)
		if o.Degraded {
			out.Severity = "degraded"
		}
		if reasons := ocf.ExitReasons(res.output); len(reasons) > 0 || !o.OK {
			out.Output = ocf.Describe(action, out.Code, res.output)
			if res.output != "" {
				out.Output += "\n" + res.output
			}
		}
	}
	return out
}
