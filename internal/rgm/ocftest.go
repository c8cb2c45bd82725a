package rgm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/reaper"
	"github.com/steady-ha/steady/internal/rgm/method"
	"github.com/steady-ha/steady/internal/rgm/model"
	"github.com/steady-ha/steady/internal/rgm/ocf"
)

// DefaultTestInstance is the OCF_RESOURCE_INSTANCE of "steady type test"
// when none is given.
const DefaultTestInstance = "steady-ocf-test"

// TestOCF runs the ocf-tester sequence against an agent through the
// method runner, as steady would run it for a resource: the agent must be
// world-executable, its meta-data valid (against the OCF DTD when xmllint
// is installed; meta-data that does not parse is an error naming the
// agent), validate-all must pass, monitor must tell stopped (7) from
// running (0) and probes (interval 0) likewise, start and stop must be
// idempotent, and notify, promote/demote, migrate_to/migrate_from and
// reload are exercised when declared (the last two for information only).
// step is called as each step finishes. A failed step does not end the
// sequence unless nothing after it could mean anything (validate-all,
// start); the agent is left stopped.
func (m *Manager) TestOCF(ctx context.Context, req api.OCFTestRequest, step func(api.OCFTestStep)) (api.OCFTestReport, error) {
	report := api.OCFTestReport{Agent: req.Agent, Steps: []api.OCFTestStep{}}
	if _, _, err := ocf.ParseName(req.Agent); err != nil {
		return report, fmt.Errorf("%w: %w", model.ErrInvalid, err)
	}
	instance := req.Instance
	if instance == "" {
		instance = DefaultTestInstance
	}
	if !model.ValidName(instance) {
		return report, fmt.Errorf("%w: %q is not a valid instance name", model.ErrInvalid, instance)
	}
	if _, used := m.Config().Resources[instance]; used {
		return report, fmt.Errorf("%w: %s is a resource; test under another instance name", ErrExists, instance)
	}
	root := m.opts.OCFRoot
	if root == "" {
		root = ocf.DefaultRoot
	}
	meta, path, err := ocf.ReadMetadata(ctx, m.opts.Spawner, root, req.Agent)
	if err != nil {
		if errors.Is(err, ocf.ErrNotFound) {
			return report, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return report, fmt.Errorf("%w: %w", model.ErrInvalid, err)
	}
	t, err := model.FromOCF(req.Agent, path, meta)
	if err != nil {
		return report, err
	}
	vals, err := t.Props.Check(values(t.Props, req.Params), true)
	if err != nil {
		return report, err
	}
	vals = t.Props.Effective(vals)

	node := m.opts.Node
	type opt struct {
		info bool     // informational: a failure does not count
		env  []string // extra variables
	}
	step1 := func(st api.OCFTestStep) {
		if !st.Passed && !st.Informational {
			report.Failed++
		}
		report.Steps = append(report.Steps, st)
		if step != nil {
			step(st)
		}
	}
	run := func(name, action string, want []int, o opt) (int, bool) {
		timeout := meta.Actions[action].Timeout
		if timeout <= 0 {
			timeout = 20 * time.Second
		}
		start := time.Now()
		res := m.runner.OCFAction(ctx, method.Call{Resource: instance, Group: "steady-ocf-test", Type: t, Values: vals,
			Method: "TEST", Timeout: timeout, Env: o.env}, action)
		s := api.OCFTestStep{Name: name, Action: action, Want: want, Got: res.Code, Output: res.Output, Informational: o.info,
			Duration: api.Duration(time.Since(start).Round(time.Millisecond))}
		switch {
		case res.Err != "":
			s.Output, s.Got = "could not run: "+res.Err, -1
		case res.TimedOut:
			s.Output, s.Got = fmt.Sprintf("timed out after %v\n%s", timeout, res.Output), -1
		default:
			s.Passed = slices.Contains(want, res.Code)
		}
		if s.Passed {
			s.Output = ""
		}
		step1(s)
		return s.Got, s.Passed
	}
	check := func(name string, err error) bool {
		s := api.OCFTestStep{Name: name, Action: "-", Want: []int{0}, Passed: err == nil}
		if err != nil {
			s.Got, s.Output = 1, err.Error()
		}
		step1(s)
		return s.Passed
	}
	abort := func(after string) (api.OCFTestReport, error) {
		report.Aborted = after
		run("stop, to leave the agent stopped", "stop", []int{ocf.Success}, opt{})
		return report, ctx.Err()
	}
	has := func(action string) bool { _, ok := meta.Actions[action]; return ok }
	probe := opt{env: []string{"OCF_RESKEY_CRM_meta_interval=0"}}
	stopped, running := []int{ocf.NotRunning}, []int{ocf.Success}

	check("the agent is readable and executable by everyone (mode 755)", worldExecutable(path))
	check("meta-data is valid against the OCF DTD", m.validMetadata(ctx, root, path))
	if _, ok := run("validate-all accepts the parameters", "validate-all", []int{ocf.Success, ocf.ErrUnimplemented}, opt{}); !ok {
		return abort("validate-all: supply the parameters the agent needs with -p NAME=VALUE")
	}
	switch rc, _ := run("monitor reports the current state", "monitor", []int{ocf.Success, ocf.NotRunning, ocf.RunningPromoted}, opt{}); rc {
	case ocf.NotRunning:
	case ocf.RunningPromoted:
		run("demote, to begin from a stopped resource", "demote", running, opt{})
		run("stop, to begin from a stopped resource", "stop", running, opt{})
	case ocf.Success:
		run("stop, to begin from a stopped resource", "stop", running, opt{})
	default:
		return abort("monitor of the current state")
	}
	run("monitor of a stopped resource", "monitor", stopped, opt{})
	run("probe of a stopped resource", "monitor", []int{ocf.NotRunning, ocf.ErrInstalled}, probe)
	if _, ok := run("start", "start", running, opt{}); !ok {
		return abort("start")
	}
	run("monitor of a started resource", "monitor", running, opt{})
	run("probe of a started resource", "monitor", running, probe)
	if has("notify") {
		run("notify (pre-start)", "notify", []int{ocf.Success, ocf.ErrUnimplemented},
			opt{env: []string{"OCF_RESKEY_CRM_meta_notify_type=pre", "OCF_RESKEY_CRM_meta_notify_operation=start"}})
	}
	switch {
	case has("promote") && has("demote"):
		for _, a := range []string{"demote", "promote", "demote", "demote", "promote", "promote", "demote"} {
			run(a, a, running, opt{})
		}
	case has("promote") || has("demote"):
		check("promote and demote are declared together", fmt.Errorf("the agent declares only one of promote and demote"))
	}
	run("stop", "stop", running, opt{})
	run("monitor of a stopped resource", "monitor", stopped, opt{})
	run("start again", "start", running, opt{})
	run("monitor of a started resource", "monitor", running, opt{})
	run("start of a started resource", "start", running, opt{})
	run("monitor after the second start", "monitor", running, opt{})
	run("stop", "stop", running, opt{})
	run("monitor of a stopped resource", "monitor", stopped, opt{})
	run("stop of a stopped resource", "stop", running, opt{})
	run("monitor after the second stop", "monitor", stopped, opt{})
	if has("migrate_to") && has("migrate_from") {
		mig := opt{info: true, env: []string{"OCF_RESKEY_CRM_meta_migrate_source=" + node, "OCF_RESKEY_CRM_meta_migrate_target=" + node}}
		run("start, to migrate", "start", running, opt{})
		run("migrate_to", "migrate_to", []int{ocf.Success, ocf.ErrUnimplemented}, mig)
		run("migrate_from", "migrate_from", []int{ocf.Success, ocf.ErrUnimplemented}, mig)
		run("stop after migration", "stop", running, opt{})
	}
	if has("reload") {
		run("start, to reload", "start", running, opt{})
		run("reload", "reload", []int{ocf.Success, ocf.ErrUnimplemented}, opt{info: true})
		run("stop after reload", "stop", running, opt{})
	}
	if ctx.Err() != nil {
		return report, ctx.Err()
	}
	return report, nil
}

// worldExecutable checks that others may read and run the agent, as
// ocf-tester does (it runs meta-data as nobody).
func worldExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o005 != 0o005 {
		return fmt.Errorf("%s has mode %v: others cannot read and run it", path, fi.Mode().Perm())
	}
	return nil
}

// ocfDTD is the DTD of agent meta-data that Debian's resource-agents
// ships; xmllint validates against it when both are installed.
const ocfDTD = "/usr/share/resource-agents/ra-api-1.dtd"

// validMetadata runs meta-data and validates it against the OCF DTD with
// xmllint; without them, it is parsed (which TestOCF already did).
func (m *Manager) validMetadata(ctx context.Context, root, path string) error {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		return nil
	}
	if _, err := os.Stat(ocfDTD); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	md := exec.CommandContext(ctx, path, "meta-data")
	md.Env = []string{"OCF_ROOT=" + root, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	// Through the agent's reaper, which would otherwise take the exit
	// status from under os/exec.
	var out, msg bytes.Buffer
	md.Stdout = &out
	if err := reaper.Run(m.opts.Spawner, md); err != nil {
		return fmt.Errorf("meta-data: %w", err)
	}
	lint := exec.CommandContext(ctx, xmllint, "--noout", "--dtdvalid", ocfDTD, "-")
	lint.Stdin, lint.Stdout, lint.Stderr = &out, &msg, &msg
	if err := reaper.Run(m.opts.Spawner, lint); err != nil {
		return fmt.Errorf("xmllint against %s: %s", ocfDTD, strings.TrimSpace(msg.String()))
	}
	return nil
}
