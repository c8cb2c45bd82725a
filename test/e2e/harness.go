// Package e2e runs the real steady binary as separate processes. This file
// is the single-host part of the test harness: build the binary once, start
// an agent with its own data directory and socket, run CLI commands against
// it (optionally as another user), stop it or kill it with SIGKILL. The
// multi-host part (hosts.go) runs agents in test hosts made of network,
// PID and mount namespaces on one bridge. docs/testing.md explains both.
//
// Tests call Binary and StartAgent; everything they start is cleaned up by
// t.Cleanup, also when the test fails.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
)

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// agentSeq numbers the agents of this test process (for their cgroups).
var agentSeq atomic.Int64

// builds holds the race-detector build (tests) and the plain one
// (benchmarks, which must measure what users run).
var builds [2]buildResult

// Binary builds cmd/steady with the race detector once per test process
// and returns its path, in a directory every user may read, so that
// commands can run as others.
func Binary(t testing.TB) string { return buildBinary(t, true) }

// PlainBinary is Binary without the race detector, for benchmarks.
func PlainBinary(t testing.TB) string { return buildBinary(t, false) }

func buildBinary(t testing.TB, race bool) string {
	t.Helper()
	b := &builds[0]
	if race {
		b = &builds[1]
	}
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "steady-e2e-bin-")
		if err != nil {
			b.err = err
			return
		}
		os.Chmod(dir, 0o755)
		b.path = filepath.Join(dir, "steady")
		_, file, _, _ := runtime.Caller(0)
		args := []string{"build", "-o", b.path}
		if race {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/steady")...)
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

var markServer buildResult

// MarkServer builds the failover tests' service (test/e2e/markserver).
func MarkServer(t testing.TB) string {
	t.Helper()
	b := &markServer
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "steady-e2e-marks-")
		if err != nil {
			b.err = err
			return
		}
		os.Chmod(dir, 0o755)
		b.path = filepath.Join(dir, "markserver")
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-o", b.path, "./test/e2e/markserver")
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// CleanupBinary removes the built binaries; call it from TestMain.
func CleanupBinary() {
	for i := range builds {
		if builds[i].path != "" {
			os.RemoveAll(filepath.Dir(builds[i].path))
		}
	}
	if markServer.path != "" {
		os.RemoveAll(filepath.Dir(markServer.path))
	}
}

// DefaultConfig is the configuration template of a test agent. Templates
// see the Agent, so they can use {{.DataDir}}, {{.Socket}} and {{.Dir}}.
const DefaultConfig = `version: 1
node:
  name: e2e
data_dir: {{.DataDir}}
api:
  socket: {{.Socket}}
pmf:
  cgroup: {{.Cgroup}}
`

// AgentOptions configures StartAgent.
type AgentOptions struct {
	// Config is the configuration template; empty means DefaultConfig.
	Config string
	// Args are extra arguments to "steady agent".
	Args []string
	// Plain runs the binary built without the race detector.
	Plain bool
}

// Agent is a steady agent running as a separate process.
type Agent struct {
	t       testing.TB
	Dir     string // scratch directory, world-traversable
	DataDir string
	Socket  string
	Config  string // path of the configuration file
	Cgroup  string // the agent's own cgroup for the process monitor
	opts    AgentOptions

	mu     sync.Mutex
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	exited chan struct{}
	state  *os.ProcessState
}

// NewAgent prepares an agent's directories and configuration without
// starting it.
func NewAgent(t testing.TB, opts AgentOptions) *Agent {
	t.Helper()
	dir, err := os.MkdirTemp("", "steady-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	a := &Agent{t: t, Dir: dir, DataDir: filepath.Join(dir, "data"), Socket: filepath.Join(dir, "steady.sock"),
		Config: filepath.Join(dir, "steady.yaml"), opts: opts,
		Cgroup: fmt.Sprintf("steady-e2e-%d-%d", os.Getpid(), agentSeq.Add(1))}
	tmpl := opts.Config
	if tmpl == "" {
		tmpl = DefaultConfig
	}
	var cfg bytes.Buffer
	if err := template.Must(template.New("config").Parse(tmpl)).Execute(&cfg, a); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.Config, cfg.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.stopTags()
		a.Kill()
		a.removeCgroup()
		if t.Failed() {
			t.Logf("agent log:\n%s", a.Log())
		}
		os.RemoveAll(dir)
	})
	return a
}

// StartAgent prepares and starts an agent and waits until it answers.
func StartAgent(t testing.TB, opts AgentOptions) *Agent {
	t.Helper()
	a := NewAgent(t, opts)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	return a
}

// Start runs the agent process and waits until its API answers.
func (a *Agent) Start() error {
	a.mu.Lock()
	args := append([]string{"agent", "--config", a.Config}, a.opts.Args...)
	bin := Binary(a.t)
	if a.opts.Plain {
		bin = PlainBinary(a.t)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = environ()
	if a.stderr == nil {
		a.stderr = &bytes.Buffer{}
	}
	cmd.Stdout = &lockedWriter{mu: &a.mu, w: a.stderr}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		a.mu.Unlock()
		return err
	}
	a.cmd, a.exited, a.state = cmd, make(chan struct{}), nil
	exited := a.exited
	a.mu.Unlock()
	go func() {
		cmd.Wait()
		a.mu.Lock()
		a.state = cmd.ProcessState
		a.mu.Unlock()
		close(exited)
	}()
	return waitAnswer(a.Socket, exited, func() string { return fmt.Sprintf("agent exited while starting (%v):\n%s", a.ExitState(), a.Log()) }, a.Log)
}

// waitAnswer waits until the agent at socket answers, at most a minute,
// and says why not: it exited (gone tells how) or stayed silent.
func waitAnswer(socket string, exited <-chan struct{}, gone func() string, log func() string) error {
	c := client.New(socket)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Status(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New(gone())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within 60s: %v\n%s", socket, err, log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Log is what the agent process has written so far (all its runs).
func (a *Agent) Log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stderr == nil {
		return ""
	}
	return a.stderr.String()
}

// PID is the process id of the running agent.
func (a *Agent) PID() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd.Process.Pid
}

// Signal sends sig to the agent process.
func (a *Agent) Signal(sig syscall.Signal) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return errors.New("agent not started")
	}
	return a.cmd.Process.Signal(sig)
}

// Wait waits up to d for the process to exit and returns its state.
func (a *Agent) Wait(d time.Duration) (*os.ProcessState, error) {
	a.mu.Lock()
	exited := a.exited
	a.mu.Unlock()
	select {
	case <-exited:
		return a.ExitState(), nil
	case <-time.After(d):
		return nil, fmt.Errorf("agent still running after %v", d)
	}
}

// ExitState is the state of the last run, nil while it runs.
func (a *Agent) ExitState() *os.ProcessState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// Stop sends SIGTERM and waits for a clean exit.
func (a *Agent) Stop() (*os.ProcessState, error) {
	if err := a.Signal(syscall.SIGTERM); err != nil {
		return nil, err
	}
	return a.Wait(30 * time.Second)
}

// stopTags stops every tag of a running agent, so that no supervised
// process outlives the test.
func (a *Agent) stopTags() {
	if a.ExitState() != nil || a.cmd == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := client.New(a.Socket)
	tags, err := c.PMFTags(ctx)
	if err != nil {
		return
	}
	for _, t := range tags {
		c.PMFStop(ctx, t.Tag, api.PMFSignalRequest{Signal: "KILL", Wait: api.Duration(5 * time.Second)})
	}
}

// removeCgroup kills whatever is left in the agent's cgroup and removes it.
func (a *Agent) removeCgroup() {
	for _, mount := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		root := filepath.Join(mount, a.Cgroup)
		if _, err := os.Stat(root); err != nil {
			continue
		}
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
				os.WriteFile(filepath.Join(p, "cgroup.kill"), []byte("1"), 0)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			for try := 0; try < 50 && os.Remove(dirs[i]) != nil; try++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

// Kill sends SIGKILL to the agent and waits for it to be gone.
func (a *Agent) Kill() {
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// Result is the outcome of a CLI command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// CLIOptions says how to run a CLI command.
type CLIOptions struct {
	// Cred runs the command as another user (root only).
	Cred *syscall.Credential
	// Name runs the binary under another name (argv[0]).
	Name string
	Env  []string
}

// CLI runs "steady ARGS..." against the agent.
func (a *Agent) CLI(args ...string) Result {
	return a.CLIAs(CLIOptions{}, args...)
}

// CLIAs runs a CLI command with options.
func (a *Agent) CLIAs(o CLIOptions, args ...string) Result {
	return Run(a.t, o, append([]string{"--socket", a.Socket}, args...)...)
}

// environ is the test's environment for steady's processes. The race
// detector sleeps a second before every exit to collect reports from
// other goroutines; steady's short commands (the CLI, scha_*, pmfadm in
// methods) would each take a second longer, so that sleep is off.
func environ() []string {
	return append(os.Environ(), "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
}

// Run runs the steady binary with args (no agent needed).
func Run(t testing.TB, o CLIOptions, args ...string) Result {
	t.Helper()
	bin := Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	if o.Name != "" {
		cmd.Args[0] = o.Name
	}
	cmd.Env = append(environ(), o.Env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Dir = "/"
	if o.Cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.Cred}
	}
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running steady %v: %v", args, err)
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}
