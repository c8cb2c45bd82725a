package watchdog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/steady-ha/steady/internal/cgroup"
	"github.com/steady-ha/steady/internal/reaper"
	"golang.org/x/sys/unix"
)

// SocketName is the watchdog's socket in the data directory.
const SocketName = "watchdog.sock"

// ForkFenceName is the file in the data directory through which the
// watchdog's freezes wait for the agent's forks (cgroup.ForkFence).
const ForkFenceName = "forkfence"

// request is one line from the agent.
type request struct {
	Op string `json:"op"` // arm, disarm, thaw, kill, status
	// DeadlineNS is the fence deadline on CLOCK_MONOTONIC (the same clock
	// in every process of the machine, unaffected by time changes).
	DeadlineNS int64    `json:"deadline_ns,omitempty"`
	Epoch      uint64   `json:"epoch,omitempty"`
	Targets    *Targets `json:"targets,omitempty"`
}

// Status is the watchdog's answer to every request.
type Status struct {
	PID   int    `json:"pid"`
	Armed bool   `json:"armed"`
	Epoch uint64 `json:"epoch,omitempty"`
	// Fired: the deadline passed unfed and the targets were frozen; they
	// stay frozen until an agent says thaw or kill, or Grace passes.
	Fired   bool      `json:"fired"`
	FiredAt time.Time `json:"fired_at,omitzero"`
	Killed  bool      `json:"killed"`
	Error   string    `json:"error,omitempty"`
}

func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// ServeOptions configures Serve.
type ServeOptions struct {
	Dir string
	// Grace is how long frozen work waits for an agent to say what became
	// of the node before it is killed (default 30s).
	Grace  time.Duration
	Logger *slog.Logger
}

type server struct {
	opts ServeOptions
	log  *slog.Logger

	mu       sync.Mutex // guards the fields below
	armed    bool
	deadline int64
	epoch    uint64
	targets  Targets
	fired    bool
	firedAt  time.Time
	killed   bool
	conns    int
	lastConn time.Time
	wake     chan struct{}
}

// Serve runs the watchdog until ctx ends, its socket is taken away (the
// data directory was removed, or another watchdog took its place), or
// it has nothing left to guard and no agent for a minute.
func Serve(ctx context.Context, opts ServeOptions) error {
	if opts.Grace <= 0 {
		opts.Grace = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if ff, err := cgroup.OpenForkFence(filepath.Join(opts.Dir, ForkFenceName)); err == nil {
		cgroup.UseForkFence(ff)
	} else {
		opts.Logger.Warn("no fork fence: a freeze may catch the agent forking", "err", err)
	}
	path := filepath.Join(opts.Dir, SocketName)
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	os.Chmod(path, 0o600)
	st, err := os.Stat(path)
	if err != nil {
		ln.Close()
		return fmt.Errorf("watchdog: %w", err)
	}
	s := &server{opts: opts, log: opts.Logger, wake: make(chan struct{}, 1), lastConn: time.Now()}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go s.timer(ctx, cancel)
	go func() {
		// Gone when its socket is: the agent's data directory was removed.
		for ctx.Err() == nil {
			time.Sleep(time.Second)
			if cur, err := os.Stat(path); err != nil || !os.SameFile(cur, st) {
				s.log.Info("the watchdog's socket is gone; exiting", "socket", path)
				cancel()
			}
		}
	}()
	s.log.Info("watchdog started", "socket", path, "pid", os.Getpid())
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watchdog: %w", err)
		}
		go s.serve(c)
	}
}

func (s *server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *server) status() Status {
	return Status{PID: os.Getpid(), Armed: s.armed, Epoch: s.epoch, Fired: s.fired, FiredAt: s.firedAt, Killed: s.killed}
}

func (s *server) serve(c net.Conn) {
	defer c.Close()
	s.mu.Lock()
	s.conns++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.conns--
		s.lastConn = time.Now()
		s.mu.Unlock()
	}()
	r := bufio.NewReader(c)
	enc := json.NewEncoder(c)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var req request
		var st Status
		if err := json.Unmarshal(line, &req); err != nil {
			st.Error = "bad request: " + err.Error()
		} else {
			st = s.handle(req)
		}
		if err := enc.Encode(st); err != nil {
			return
		}
	}
}

func (s *server) handle(req request) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	switch req.Op {
	case "arm":
		if req.Targets != nil {
			s.targets = *req.Targets
		}
		s.armed, s.deadline, s.epoch = true, req.DeadlineNS, req.Epoch
	case "disarm":
		s.armed = false
	case "thaw":
		if s.fired && !s.killed {
			err = Thaw(s.targets)
			s.log.Warn("thawed the node's work: its agent is back and its membership held", "epoch", s.epoch)
		}
		s.fired, s.killed, s.armed = false, false, false
	case "kill":
		if s.fired && !s.killed {
			err = Kill(s.targets)
			s.log.Warn("killed the node's frozen work: it was declared down while its agent was away", "epoch", s.epoch)
		}
		s.fired, s.killed, s.armed = false, false, false
	case "status":
	default:
		err = fmt.Errorf("unknown operation %q", req.Op)
	}
	s.poke()
	st := s.status()
	if err != nil {
		st.Error = err.Error()
	}
	return st
}

// timer fires at the deadline, kills after Grace, and ends the process
// once nothing is left to guard.
func (s *server) timer(ctx context.Context, stop context.CancelFunc) {
	for ctx.Err() == nil {
		s.mu.Lock()
		wait := time.Second
		now := monoNow()
		switch {
		case s.fired && !s.killed:
			if d := time.Until(s.firedAt.Add(s.opts.Grace)); d <= 0 {
				s.log.Error("no agent came back to say what became of the node; killing its frozen work", "grace", s.opts.Grace)
				if err := Kill(s.targets); err != nil {
					s.log.Error("killing", "err", err)
				}
				s.killed = true
				s.armed = false
			} else if d < wait {
				wait = d
			}
		case s.armed && !s.fired:
			if now >= s.deadline {
				if err := Freeze(s.targets); err != nil {
					s.log.Error("freezing", "err", err)
				}
				s.fired, s.firedAt = true, time.Now()
				s.log.Error("the agent did not renew the fence deadline; the node's work is frozen", "epoch", s.epoch)
			} else if d := time.Duration(s.deadline - now); d < wait {
				wait = d
			}
		case s.conns == 0 && time.Since(s.lastConn) > time.Minute:
			s.mu.Unlock()
			s.log.Info("nothing to guard and no agent; exiting")
			stop()
			return
		}
		s.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Client is the agent's side: it starts the watchdog when none answers
// and keeps one connection to it. Safe for concurrent use.
type Client struct {
	dir, binary string
	spawner     reaper.Spawner
	log         *slog.Logger

	mu   sync.Mutex // guards the fields below
	conn net.Conn
	r    *bufio.Reader
	sent *Targets // the targets the watchdog has
}

// NewClient returns a client for the watchdog of the data directory dir;
// binary is the steady binary that runs it ("steady watchdog --dir DIR").
func NewClient(dir, binary string, spawner reaper.Spawner, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{dir: dir, binary: binary, spawner: spawner, log: log}
}

// ErrNoWatchdog: the watchdog could not be started or reached.
var ErrNoWatchdog = errors.New("watchdog: not reachable")

func (c *Client) connectLocked(spawn bool) error {
	if c.conn != nil {
		return nil
	}
	path := filepath.Join(c.dir, SocketName)
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		if !spawn {
			return fmt.Errorf("%w: %s: %w", ErrNoWatchdog, path, err)
		}
		if err := c.spawn(); err != nil {
			return err
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			conn, err = net.DialTimeout("unix", path, time.Second)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: %s: %w", ErrNoWatchdog, path, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	c.conn, c.r, c.sent = conn, bufio.NewReader(conn), nil
	return nil
}

// spawn starts the watchdog in a session of its own, so that it outlives
// the agent and the agent's process group.
func (c *Client) spawn() error {
	if c.binary == "" {
		return fmt.Errorf("%w: no binary to start it with", ErrNoWatchdog)
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, "watchdog.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(c.binary, "watchdog", "--dir", c.dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if c.spawner != nil {
		_, err = c.spawner.Start(cmd)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return fmt.Errorf("watchdog: starting %s: %w", c.binary, err)
	}
	c.log.Info("started the watchdog", "pid", cmd.Process.Pid)
	return nil
}

// call sends a request; only arming starts a watchdog that is not
// running (there is nothing to ask or disarm of one that is not).
func (c *Client) call(req request) (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for attempt := 0; attempt < 2; attempt++ {
		if err := c.connectLocked(req.Op == "arm"); err != nil {
			return Status{}, err
		}
		send := req
		if req.Op == "arm" && c.sent != nil && req.Targets != nil && c.sent.Equal(*req.Targets) {
			send.Targets = nil
		}
		b, _ := json.Marshal(send)
		c.conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, err := c.conn.Write(append(b, '\n'))
		var st Status
		if err == nil {
			var line []byte
			if line, err = c.r.ReadBytes('\n'); err == nil {
				err = json.Unmarshal(line, &st)
			}
		}
		if err != nil {
			c.conn.Close()
			c.conn = nil
			continue
		}
		if req.Op == "arm" && req.Targets != nil {
			t := *req.Targets
			c.sent = &t
		}
		if st.Error != "" {
			return st, fmt.Errorf("watchdog: %s", st.Error)
		}
		return st, nil
	}
	return Status{}, ErrNoWatchdog
}

// Arm sets the deadline (by this process's clock) and the targets (nil:
// those it has).
func (c *Client) Arm(deadline time.Time, epoch uint64, t *Targets) (Status, error) {
	ns := monoNow() + int64(time.Until(deadline))
	return c.call(request{Op: "arm", DeadlineNS: ns, Epoch: epoch, Targets: t})
}

// Disarm stops the watchdog from firing (a node alone in its cluster has
// nobody who could take its work over).
func (c *Client) Disarm() error {
	_, err := c.call(request{Op: "disarm"})
	return err
}

// Status asks the watchdog what it did (ErrNoWatchdog when none runs).
func (c *Client) Status() (Status, error) { return c.call(request{Op: "status"}) }

// Resolve tells a watchdog that fired what became of the node: kill
// (declared down meanwhile) or thaw (the membership held).
func (c *Client) Resolve(kill bool) error {
	op := "thaw"
	if kill {
		op = "kill"
	}
	_, err := c.call(request{Op: op})
	return err
}

// Close drops the connection; the watchdog goes on (armed, it fires at
// the last deadline it was given).
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	return nil
}
