package method

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/steady-ha/steady/internal/pmf"
	"github.com/steady-ha/steady/internal/rgm/machine"
	"github.com/steady-ha/steady/internal/runas"
	"golang.org/x/sys/unix"
)

// ProcessMonitor is what the built-in type needs of the process monitor.
type ProcessMonitor interface {
	Start(ctx context.Context, spec pmf.Spec) (pmf.Handle, error)
	Stop(ctx context.Context, tag string, sig unix.Signal, wait time.Duration, who pmf.Requester) error
	Exists(tag string) bool
}

// ProcessTag is the process monitor tag of a steady.Process resource, in
// the form Sun Cluster data services use.
func ProcessTag(group, resource string) string { return group + "," + resource + ",0.svc" }

// processSpec builds the process monitor spec of a steady.Process
// resource, or explains what is wrong with its properties. The command
// learns where it runs and the assignment's epoch (its fencing token)
// from STEADY_NODE, STEADY_RESOURCE, STEADY_RESOURCE_GROUP and
// STEADY_EPOCH.
func processSpec(c Call, node string) (pmf.Spec, error) {
	cmd := c.Values.List("Command")
	if len(cmd) == 0 || !filepath.IsAbs(cmd[0]) {
		return pmf.Spec{}, fmt.Errorf("property Command must start with an absolute path, not %q", strings.Join(cmd, " "))
	}
	id, err := runas.Lookup(c.Values.String("User", "root"))
	if err != nil {
		return pmf.Spec{}, fmt.Errorf("property User: %w", err)
	}
	env := append(id.Env(), "STEADY_NODE="+node, "STEADY_RESOURCE="+c.Resource, "STEADY_RESOURCE_GROUP="+c.Group,
		"STEADY_EPOCH="+strconv.FormatUint(c.Epoch, 10))
	env = append(env, c.Values.List("Environment")...)
	for _, e := range c.Values.List("Environment") {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return pmf.Spec{}, fmt.Errorf("property Environment: entry %q is not NAME=VALUE", e)
		}
	}
	if _, err := pmf.ParseSignal(c.Values.String("Stop_signal", "TERM")); err != nil {
		return pmf.Spec{}, fmt.Errorf("property Stop_signal: %w", err)
	}
	spec := pmf.Spec{
		Tag: ProcessTag(c.Group, c.Resource), Command: cmd, Env: env,
		Dir: c.Values.String("Working_directory", "/"), Owner: pmf.OwnerOf(id),
		Retries: c.Values.Int("Retry_count", 2), Period: time.Duration(c.Values.Int("Retry_interval", 300)) * time.Second,
		Level: -1,
	}
	return spec, spec.Validate()
}

// runProcess carries out the methods of steady.Process with the process
// monitor: START starts the tag (a tag that already runs counts as
// started), STOP stops it with Stop_signal and SIGKILL after Stop_timeout
// (a tag that is gone counts as stopped), VALIDATE checks the properties.
func (r *Runner) runProcess(ctx context.Context, c Call) machine.Result {
	spec, err := processSpec(c, r.opts.Node)
	switch c.Method {
	case "VALIDATE":
		if err != nil {
			return machine.Result{Code: 1, Output: err.Error()}
		}
		return machine.Result{OK: true}
	case "START":
		if err != nil {
			return machine.Result{Code: 1, Output: err.Error()}
		}
		if r.opts.PMF.Exists(spec.Tag) {
			return machine.Result{OK: true, Output: "already running under tag " + spec.Tag}
		}
		if _, err := r.opts.PMF.Start(ctx, spec); err != nil && !errors.Is(err, pmf.ErrExists) {
			r.appendLog(c.Resource, "START: "+err.Error())
			return machine.Result{Code: 1, Output: err.Error()}
		}
		return machine.Result{OK: true}
	case "STOP":
		sig, _ := pmf.ParseSignal(c.Values.String("Stop_signal", "TERM"))
		wait := time.Duration(c.Values.Int("Stop_timeout", 60)) * time.Second
		err := r.opts.PMF.Stop(ctx, ProcessTag(c.Group, c.Resource), sig, wait, pmf.Root)
		if err != nil && !errors.Is(err, pmf.ErrNotFound) {
			r.appendLog(c.Resource, "STOP: "+err.Error())
			return machine.Result{Code: 1, TimedOut: errors.Is(err, pmf.ErrTimeout), Output: err.Error()}
		}
		return machine.Result{OK: true}
	}
	return machine.Result{Err: "steady.Process has no " + c.Method + " method"}
}

// probeProcess runs Probe_command (through /bin/sh, as User) and checks
// that the tag still runs.
func (r *Runner) probeProcess(ctx context.Context, c Call) ProbeResult {
	tag := ProcessTag(c.Group, c.Resource)
	if !r.opts.PMF.Exists(tag) {
		return ProbeResult{Msg: "the process monitor no longer supervises " + tag}
	}
	probe := c.Values.String("Probe_command", "")
	if strings.TrimSpace(probe) == "" {
		return ProbeResult{OK: true}
	}
	id, err := runas.Lookup(c.Values.String("User", "root"))
	if err != nil {
		return ProbeResult{Msg: err.Error()}
	}
	timeout := time.Duration(c.Values.Int("Probe_timeout", 30)) * time.Second
	res := r.run(ctx, execSpec{call: c, path: "/bin/sh", args: []string{"-c", probe}, env: r.baseEnv(c, id), id: id,
		timeout: timeout, label: "PROBE", quiet: true})
	switch {
	case res.timedOut:
		return ProbeResult{Msg: fmt.Sprintf("the probe timed out after %v", timeout)}
	case res.err != nil:
		return ProbeResult{Msg: res.err.Error()}
	case res.code() != 0:
		msg := fmt.Sprintf("the probe exited %d", res.code())
		if lines := strings.Split(strings.TrimSpace(res.output), "\n"); res.output != "" {
			msg += ": " + lines[len(lines)-1]
		}
		return ProbeResult{Msg: msg}
	}
	return ProbeResult{OK: true}
}

func (r *Runner) appendLog(resource, line string) {
	f, err := os.OpenFile(r.LogPath(resource), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "--- %s %s\n", time.Now().UTC().Format(time.RFC3339), line)
}
