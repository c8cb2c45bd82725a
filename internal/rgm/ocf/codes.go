package ocf

import (
	"bufio"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Exit codes of OCF agents.
const (
	Success          = 0
	ErrGeneric       = 1
	ErrArgs          = 2
	ErrUnimplemented = 3
	ErrPerm          = 4
	ErrInstalled     = 5
	ErrConfigured    = 6
	NotRunning       = 7
	RunningPromoted  = 8
	FailedPromoted   = 9
	Degraded         = 190
	DegradedPromoted = 191
)

// CodeName names an exit code as the OCF headers do.
func CodeName(rc int) string {
	switch rc {
	case Success:
		return "OCF_SUCCESS"
	case ErrGeneric:
		return "OCF_ERR_GENERIC"
	case ErrArgs:
		return "OCF_ERR_ARGS"
	case ErrUnimplemented:
		return "OCF_ERR_UNIMPLEMENTED"
	case ErrPerm:
		return "OCF_ERR_PERM"
	case ErrInstalled:
		return "OCF_ERR_INSTALLED"
	case ErrConfigured:
		return "OCF_ERR_CONFIGURED"
	case NotRunning:
		return "OCF_NOT_RUNNING"
	case RunningPromoted:
		return "OCF_RUNNING_PROMOTED"
	case FailedPromoted:
		return "OCF_FAILED_PROMOTED"
	case Degraded:
		return "OCF_DEGRADED"
	case DegradedPromoted:
		return "OCF_DEGRADED_PROMOTED"
	}
	return "exit code " + strconv.Itoa(rc)
}

// Severity says how far a failure reaches, as Pacemaker classifies them.
type Severity string

// Severities.
const (
	SevNone  Severity = "none"  // not a failure
	SevSoft  Severity = "soft"  // may work after a restart, here or elsewhere
	SevHard  Severity = "hard"  // will not work on this node
	SevFatal Severity = "fatal" // will not work anywhere (configuration)
)

// Outcome is the meaning of an agent's exit for one action.
type Outcome struct {
	OK       bool // the action did what was asked
	Running  bool // (monitor) the resource runs
	Degraded bool // runs, but degraded (190/191)
	Severity Severity
}

// Classify interprets rc for action; probe is a monitor whose expected
// answer is unknown (a stopped resource answering 7 is fine).
func Classify(action string, rc int, probe bool) Outcome {
	switch rc {
	case Success, RunningPromoted:
		return Outcome{OK: true, Running: action != "stop", Severity: SevNone}
	case Degraded, DegradedPromoted:
		return Outcome{OK: true, Running: true, Degraded: true, Severity: SevNone}
	case NotRunning:
		if action == "monitor" && probe {
			return Outcome{OK: true, Severity: SevNone}
		}
		if action == "stop" {
			// stop must answer 0 when already stopped; 7 is accepted as the
			// same state, but is an agent bug worth a note.
			return Outcome{OK: true, Severity: SevNone}
		}
		return Outcome{Severity: SevSoft}
	case ErrArgs, ErrPerm, ErrInstalled:
		return Outcome{Severity: SevHard}
	case ErrUnimplemented:
		return Outcome{Severity: SevHard}
	case ErrConfigured:
		return Outcome{Severity: SevFatal}
	}
	return Outcome{Severity: SevSoft}
}

// EnvOptions are the inputs of Env.
type EnvOptions struct {
	Root      string
	Instance  string // the resource name
	Type      string // the agent name
	Provider  string
	Params    map[string]string
	Interval  time.Duration // monitor interval; 0 for a probe and other actions
	Timeout   time.Duration
	Node      string
	CheckDeep int // OCF_CHECK_LEVEL
}

// Env builds the environment of an agent action: OCF_RESKEY_* for each
// parameter, the meta variables Pacemaker passes (interval and timeout in
// milliseconds) and the OCF_* variables agents and ocf-shellfuncs read.
func Env(o EnvOptions) []string {
	env := []string{
		"OCF_ROOT=" + o.Root,
		"OCF_RA_VERSION_MAJOR=1",
		"OCF_RA_VERSION_MINOR=1",
		"OCF_RESOURCE_INSTANCE=" + o.Instance,
		"OCF_RESOURCE_TYPE=" + o.Type,
		"OCF_RESOURCE_PROVIDER=" + o.Provider,
		"OCF_CHECK_LEVEL=" + strconv.Itoa(o.CheckDeep),
		"OCF_EXIT_REASON_PREFIX=ocf-exit-reason:",
		"OCF_RESKEY_CRM_meta_interval=" + strconv.FormatInt(o.Interval.Milliseconds(), 10),
		"OCF_RESKEY_CRM_meta_timeout=" + strconv.FormatInt(o.Timeout.Milliseconds(), 10),
		"OCF_RESKEY_CRM_meta_name=" + o.Instance,
		"OCF_RESKEY_CRM_meta_on_node=" + o.Node,
		"OCF_RESKEY_crm_feature_set=3.17.4",
		"HA_RSCTMP=/run/resource-agents",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LC_ALL=C",
	}
	keys := make([]string, 0, len(o.Params))
	for k := range o.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, "OCF_RESKEY_"+k+"="+o.Params[k])
	}
	return env
}

// ExitReasons returns the messages of "ocf-exit-reason:" lines an agent
// printed, which are meant for the user.
func ExitReasons(output string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(output))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "ocf-exit-reason:"); i >= 0 {
			if r := strings.TrimSpace(line[i+len("ocf-exit-reason:"):]); r != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// Describe renders an action's result for people: the code's name and the
// exit reason when the agent gave one.
func Describe(action string, rc int, output string) string {
	s := fmt.Sprintf("%s returned %s", action, CodeName(rc))
	if r := ExitReasons(output); len(r) > 0 {
		s += ": " + r[len(r)-1]
	}
	return s
}
