// Package script runs RCM scripts (the rcmscript version 1 interface of
// Solaris) unmodified as clients of the rcm engine: one process per
// command, the name=value protocol on stdout with its consistency rules,
// exit codes 0 to 3, the environment allow-list, the file's owner as the
// user, a new session with stdin on /dev/null, and a per-command timeout
// ended by SIGABRT and, 10 s later, SIGKILL to the whole process group.
// A script that breaks the protocol is killed and its command fails.
package script

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/steady-ha/steady/internal/rcm"
	"github.com/steady-ha/steady/internal/reaper"
	"github.com/steady-ha/steady/internal/runas"
)

// ErrProtocol marks a script that broke the rcmscript protocol.
var ErrProtocol = errors.New("scripting protocol error")

// DefaultTimeout is the limit of a command when the script sets none.
const DefaultTimeout = 60 * time.Second

// Options configures Load.
type Options struct {
	Spawner reaper.Spawner
	Logger  *slog.Logger
	// Resolve maps a /dev name a script registers to its /sys/devices
	// path; nil keeps names as given.
	Resolve func(string) string
	// KillGrace is the time between SIGABRT and SIGKILL (10 s).
	KillGrace time.Duration
	// DebugLevel is passed as RCM_ENV_DEBUG_LEVEL (0 to 9).
	DebugLevel int
}

// Script is one RCM script, a client of the engine.
type Script struct {
	path    string
	name    string
	opts    Options
	Info    string        // rcm_script_func_info
	Timeout time.Duration // rcm_cmd_timeout, or DefaultTimeout; 0 = none

	mu      sync.Mutex // one command at a time
	aliases map[string]string
}

// Load checks a script file and runs its scriptinfo command.
func Load(ctx context.Context, path string, opts Options) (*Script, error) {
	if opts.Spawner == nil {
		opts.Spawner = reaper.Plain{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = 10 * time.Second
	}
	s := &Script{path: path, name: filepath.Base(path), opts: opts, Timeout: DefaultTimeout, aliases: map[string]string{}}
	out, err := s.run(ctx, "scriptinfo", "", nil, 30*time.Second)
	if err != nil {
		return nil, err
	}
	if out.vals["rcm_script_version"] != "1" {
		return nil, fmt.Errorf("%w: %s: scriptinfo must print rcm_script_version=1 (got %q)", ErrProtocol, s.name, out.vals["rcm_script_version"])
	}
	if s.Info = out.vals["rcm_script_func_info"]; s.Info == "" {
		return nil, fmt.Errorf("%w: %s: scriptinfo must print rcm_script_func_info", ErrProtocol, s.name)
	}
	if v, ok := out.vals["rcm_cmd_timeout"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: %s: rcm_cmd_timeout=%q is not a number of seconds", ErrProtocol, s.name, v)
		}
		s.Timeout = time.Duration(n) * time.Second
	}
	return s, nil
}

// Name is the script's file name, as Solaris names script clients.
func (s *Script) Name() string { return s.name }

// Path is the script's file.
func (s *Script) Path() string { return s.path }

// Register runs the register command: the names printed replace the
// previous set.
func (s *Script) Register(ctx context.Context) ([]rcm.Interest, error) {
	out, err := s.run(ctx, "register", "", nil, s.Timeout)
	if err != nil {
		return nil, err
	}
	aliases := map[string]string{}
	var ins []rcm.Interest
	for _, n := range out.lists["rcm_resource_name"] {
		name, kind := s.translate(n)
		aliases[name] = n
		ins = append(ins, rcm.Interest{Name: name, Kind: kind})
	}
	s.mu.Lock()
	s.aliases = aliases
	s.mu.Unlock()
	return ins, nil
}

// translate maps a name as Solaris scripts write it to steady's.
func (s *Script) translate(n string) (string, rcm.Kind) {
	switch {
	case n == "SUNW_cpu" || n == "SUNW_memory":
		return strings.TrimPrefix(n, "SUNW_"), rcm.KindCapacity
	case strings.HasPrefix(n, "SUNW_cpu/set"):
		return "cpu", rcm.KindCapacity
	case strings.HasPrefix(n, "SUNW_cpu/cpu"):
		return "cpu/" + strings.TrimPrefix(n, "SUNW_cpu/cpu"), rcm.KindDR
	case strings.HasPrefix(n, "SUNW_ip/"):
		return "ip/" + strings.TrimPrefix(n, "SUNW_ip/"), rcm.KindDR
	case strings.HasPrefix(n, "SUNW_network/"):
		return "net/" + strings.TrimPrefix(n, "SUNW_network/"), rcm.KindDR
	case n == "cpu" || n == "memory":
		return n, rcm.KindCapacity
	case strings.HasPrefix(n, "/dev/") && s.opts.Resolve != nil:
		return s.opts.Resolve(n), rcm.KindDR
	}
	return n, rcm.KindDR
}

// commands maps operations to rcmscript commands.
func command(c rcm.Call) string {
	q := c.Flags&rcm.Query != 0
	switch c.Op {
	case rcm.OpInfo:
		return "resourceinfo"
	case rcm.OpOffline:
		if q {
			return "queryremove"
		}
		return "preremove"
	case rcm.OpOnline:
		return "undoremove"
	case rcm.OpRemove:
		return "postremove"
	case rcm.OpSuspend:
		if q {
			return "querysuspend"
		}
		return "presuspend"
	case rcm.OpResume:
		if c.Suspended {
			return "postresume"
		}
		return "cancelsuspend"
	case rcm.OpCapacity:
		if q {
			return "querycapacity"
		}
		return "precapacity"
	case rcm.OpCapacityDone:
		return "postcapacity"
	}
	return "" // scripts receive no events
}

// Call runs the command for c. Exit 2 (not supported) counts as success.
func (s *Script) Call(ctx context.Context, c rcm.Call) (string, error) {
	cmd := command(c)
	if cmd == "" {
		return "", nil
	}
	s.mu.Lock()
	res := s.aliases[c.Resource]
	s.mu.Unlock()
	if res == "" {
		res = c.Resource
	}
	var env []string
	switch cmd {
	case "queryremove", "preremove", "querysuspend", "presuspend", "querycapacity", "precapacity":
		env = append(env, "RCM_ENV_FORCE="+map[bool]string{true: "TRUE", false: "FALSE"}[c.Flags&rcm.Force != 0])
	}
	if c.Op == rcm.OpSuspend {
		env = append(env, "RCM_ENV_INTERVAL="+strconv.Itoa(int((c.Interval+time.Second-1)/time.Second)))
	}
	if cp := c.Capacity; cp != nil {
		env = append(env, "RCM_ENV_CAPACITY="+strconv.Itoa(cp.NewTotal))
		if cp.PageSize > 0 {
			env = append(env, "RCM_ENV_UNIT_SIZE="+strconv.Itoa(cp.PageSize))
		}
		if cp.NewCPUs != nil {
			ids := make([]string, len(cp.NewCPUs))
			for i, id := range cp.NewCPUs {
				ids[i] = strconv.Itoa(id)
			}
			env = append(env, "RCM_ENV_CPU_IDS="+strings.Join(ids, " "))
		}
	}
	out, err := s.run(ctx, cmd, res, env, s.Timeout)
	if err != nil {
		return "", err
	}
	return out.vals["rcm_resource_usage_info"], nil
}

// output is what a command printed.
type output struct {
	vals  map[string]string
	lists map[string][]string
}

// allowed lists, per command, the names it may print (besides
// rcm_failure_reason and the log names, allowed everywhere).
var allowed = map[string][]string{
	"scriptinfo":   {"rcm_script_version", "rcm_script_func_info", "rcm_cmd_timeout"},
	"register":     {"rcm_resource_name"},
	"resourceinfo": {"rcm_resource_usage_info"},
}

// drCommand: the commands for which exit 2 and 3 mean something.
func drCommand(cmd string) bool {
	switch cmd {
	case "scriptinfo", "register", "resourceinfo":
		return false
	}
	return true
}

func refusing(cmd string) bool {
	switch cmd {
	case "queryremove", "preremove", "querysuspend", "presuspend", "querycapacity", "precapacity":
		return true
	}
	return false
}

// run runs one command of the script and checks the protocol.
func (s *Script) run(ctx context.Context, command, resource string, extra []string, timeout time.Duration) (*output, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := runas.CheckScript(s.path)
	if err != nil {
		return nil, fmt.Errorf("rcm script %s: %w", s.name, err)
	}
	id, err := runas.Owner(fi)
	if err != nil {
		return nil, fmt.Errorf("rcm script %s: %w", s.name, err)
	}
	cred, err := id.Credential()
	if err != nil {
		return nil, fmt.Errorf("rcm script %s: %w", s.name, err)
	}
	args := []string{command}
	if resource != "" {
		args = append(args, resource)
	}
	cmd := exec.Command(s.path, args...)
	cmd.Env = append(s.env(), extra...)
	// The working directory rule: /var/run for root's scripts, /tmp for
	// the others.
	cmd.Dir = "/tmp"
	if id.UID == 0 {
		cmd.Dir = "/var/run"
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}
	p := &parser{command: command, script: s.name, log: s.opts.Logger}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = p, &stderr
	child, err := s.opts.Spawner.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("rcm script %s: %s: %w", s.name, command, err)
	}
	p.setKill(func() { syscall.Kill(-child.Pid, syscall.SIGKILL) })
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	timedOut := false
	select {
	case <-child.Done():
	case <-ctx.Done():
		syscall.Kill(-child.Pid, syscall.SIGKILL)
	case <-timer:
		timedOut = true
		syscall.Kill(child.Pid, syscall.SIGABRT)
		select {
		case <-child.Done():
		case <-time.After(s.opts.KillGrace):
		}
		syscall.Kill(-child.Pid, syscall.SIGKILL)
	}
	werr := child.Wait()
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if l != "" {
			s.opts.Logger.Error("rcm script stderr", "script", s.name, "command", command, "line", l)
		}
	}
	if timedOut {
		return nil, fmt.Errorf("rcm script %s: %s %s: timeout error after %v", s.name, command, resource, timeout)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("rcm script %s: %s: %w", s.name, command, ctx.Err())
	}
	p.finish()
	if p.err != nil {
		return nil, fmt.Errorf("%w: %s: %s: %v", ErrProtocol, s.name, command, p.err)
	}
	code := 0
	if werr != nil {
		st := child.Status()
		if !st.Exited() {
			return nil, fmt.Errorf("rcm script %s: %s: %s", s.name, command, reaper.DescribeStatus(st))
		}
		code = st.ExitStatus()
	}
	reason := strings.Join(p.out.lists["rcm_failure_reason"], " ")
	switch {
	case code == 0 || (code == 2 && drCommand(command)):
		if reason != "" {
			return nil, fmt.Errorf("%w: %s: %s exited %d but printed rcm_failure_reason=%s", ErrProtocol, s.name, command, code, reason)
		}
		if command == "resourceinfo" && code == 0 && p.out.vals["rcm_resource_usage_info"] == "" {
			return nil, fmt.Errorf("%w: %s: resourceinfo printed no rcm_resource_usage_info", ErrProtocol, s.name)
		}
		return &p.out, nil
	case code == 1 || (code == 3 && refusing(command)):
		if reason == "" {
			return nil, fmt.Errorf("%w: %s: %s exited %d without rcm_failure_reason", ErrProtocol, s.name, command, code)
		}
		return nil, errors.New(reason)
	}
	return nil, fmt.Errorf("%w: %s: %s exited %d, which it may not", ErrProtocol, s.name, command, code)
}

// env is the allow-listed environment of every command.
func (s *Script) env() []string {
	env := []string{"PATH=/usr/sbin:/usr/bin"}
	for _, k := range []string{"LANG", "LC_COLLATE", "LC_CTYPE", "LC_MESSAGES", "LC_MONETARY", "LC_NUMERIC", "LC_TIME", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, "RCM_ENV_DEBUG_LEVEL="+strconv.Itoa(min(max(s.opts.DebugLevel, 0), 9)))
}

// parser checks stdout line by line as it comes, so that a script that
// breaks the protocol is killed at once.
type parser struct {
	command, script string
	log             *slog.Logger
	mu              sync.Mutex // guards kill and killed: output may come before kill is set
	kill            func()
	killed          bool
	buf             []byte
	out             output
	err             error
}

const maxLine = 4096

func (p *parser) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			if len(p.buf) > maxLine {
				p.fail(fmt.Errorf("a line longer than %d bytes", maxLine))
				p.buf = p.buf[:0]
			}
			return len(b), nil
		}
		p.line(string(p.buf[:i]))
		p.buf = p.buf[i+1:]
	}
}

func (p *parser) finish() {
	if len(p.buf) > 0 {
		p.line(string(p.buf))
		p.buf = nil
	}
}

func (p *parser) fail(err error) {
	if p.err != nil {
		return
	}
	p.err = err
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killed = true
	if p.kill != nil {
		p.kill()
	}
}

func (p *parser) setKill(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.kill = f
	if p.killed {
		f()
	}
}

func (p *parser) line(l string) {
	if p.err != nil || strings.TrimSpace(l) == "" {
		return
	}
	if len(l) > maxLine {
		p.fail(fmt.Errorf("a line longer than %d bytes", maxLine))
		return
	}
	name, value, ok := strings.Cut(l, "=")
	switch {
	case !ok:
		p.fail(fmt.Errorf("line %q is not name=value", l))
		return
	case value == "":
		p.fail(fmt.Errorf("%s has an empty value", name))
		return
	}
	if lvl, ok := strings.CutPrefix(name, "rcm_log_"); ok {
		level := map[string]slog.Level{"err": slog.LevelError, "warn": slog.LevelWarn, "info": slog.LevelInfo, "debug": slog.LevelDebug}
		if l, ok := level[lvl]; ok {
			p.log.Log(context.Background(), l, "rcm script "+p.script+": "+value, "command", p.command)
			return
		}
	}
	legal := name == "rcm_failure_reason"
	for _, n := range allowed[p.command] {
		legal = legal || n == name
	}
	if !legal {
		p.fail(fmt.Errorf("%s is not allowed in %s", name, p.command))
		return
	}
	if p.out.vals == nil {
		p.out.vals, p.out.lists = map[string]string{}, map[string][]string{}
	}
	p.out.vals[name] = value
	p.out.lists[name] = append(p.out.lists[name], value)
}
