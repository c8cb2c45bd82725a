package machine

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/internal/rgm/model"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of the scenario files")

// A scenario file is a sequence of blocks:
//
//	command args...
//	----
//	expected output (one line per action)
//	<blank line>
//
// Lines starting with # are comments. Commands:
//
//	type NAME [source=rtr|ocf|builtin] [methods=START,STOP,...]
//	group NAME [unmanaged] [offline] [Prop=value]...
//	resource NAME group=G type=T [disabled] [unmonitored] [Prop=v1,v2]...
//	set R Prop=value...          change a resource property
//	assign G online|offline
//	done ID ok|fail|timeout [rc=N]
//	probe R ok|fail|degraded [message...]
//	gaveup R message...          the process monitor gave up
//	control OP R [token=N]
//	restart-group G | retry G | clear R | enable R | disable R | monitor R | unmonitor R
//	status R STATUS [message...]
//	tick DURATION                advance the clock
//	peers N
//	recover                      persist, forget and restore the machine
//	show                         every resource and group state
//	why R                        what the machine knows of R
func TestScenarios(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no scenario files")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScenario(t, f) })
	}
}

type scenario struct {
	t   *testing.T
	m   *Machine
	cfg *model.Config
	now time.Time
	seq int
	// intent is the configured want of each group last applied, so that a
	// manual "assign" holds until the configuration says otherwise.
	intent map[string]bool
}

func runScenario(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := &scenario{t: t, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), cfg: model.NewConfig(), intent: map[string]bool{}}
	s.m = New("n1", s.now)
	saved := NewSaved()
	var out strings.Builder
	lines := strings.Split(string(data), "\n")
	failed := false
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line + "\n")
			continue
		}
		cmd := line
		j := i + 1
		if j >= len(lines) || lines[j] != "----" {
			t.Fatalf("%s:%d: command %q is not followed by ----", file, i+1, cmd)
		}
		var want []string
		for j++; j < len(lines) && lines[j] != ""; j++ {
			want = append(want, lines[j])
		}
		i = j - 1
		got := s.run(cmd)
		// What a step's save compares (only the groups it concerned) must
		// be all it changed: a full comparison right after finds nothing.
		s.m.Changed(saved)
		s.m.saveAll = true
		if res, groups, goneRes, goneGroups := s.m.Changed(saved); len(res)+len(groups)+len(goneRes)+len(goneGroups) > 0 {
			t.Errorf("%s: %s: the save after the step missed resources %v, groups %v, gone %v %v", file, cmd, res, groups, goneRes, goneGroups)
		}
		out.WriteString(cmd + "\n----\n")
		for _, g := range got {
			out.WriteString(g + "\n")
		}
		if !*rewrite && strings.Join(got, "\n") != strings.Join(want, "\n") {
			failed = true
			t.Errorf("%s: %s\n got:\n  %s\nwant:\n  %s", file, cmd, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
	if *rewrite {
		text := strings.TrimRight(out.String(), "\n") + "\n"
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = failed
}

func (s *scenario) run(line string) []string {
	f := strings.Fields(line)
	cmd, args := f[0], f[1:]
	kv := map[string]string{}
	var flags, rest []string
	for _, a := range args[min(1, len(args)):] {
		if k, v, ok := strings.Cut(a, "="); ok {
			kv[k] = v
		} else {
			flags = append(flags, a)
		}
		rest = append(rest, a)
	}
	has := func(flag string) bool {
		for _, f := range flags {
			if f == flag {
				return true
			}
		}
		return false
	}
	name := ""
	if len(args) > 0 {
		name = args[0]
	}
	var acts []Action
	switch cmd {
	case "type":
		s.cfg.Types[name] = testType(name, kv["source"], kv["methods"])
		acts = s.apply()
	case "group":
		g := &model.Group{Name: name, Managed: !has("unmanaged"), Online: !has("offline"), Props: model.Values{}, Created: s.tick()}
		for k, v := range kv {
			g.Props[k] = model.SplitArray(v)
		}
		s.cfg.Groups[name] = g
		acts = s.apply()
	case "resource":
		r := &model.Resource{Name: name, Group: kv["group"], Type: kv["type"], Enabled: !has("disabled"),
			Monitored: !has("unmonitored"), Props: model.Values{}, Created: s.tick()}
		for k, v := range kv {
			if k != "group" && k != "type" {
				r.Props[k] = model.SplitArray(v)
			}
		}
		if r.Type == model.ProcessType {
			r.Props["Command"] = []string{"/bin/true"}
		}
		s.cfg.Resources[name] = r
		acts = s.apply()
	case "set":
		r := *s.cfg.Resources[name]
		r.Props = model.Values{}
		for k, v := range s.cfg.Resources[name].Props {
			r.Props[k] = v
		}
		for k, v := range kv {
			r.Props[k] = model.SplitArray(v)
		}
		s.cfg.Resources[name] = &r
		acts = s.apply()
	case "enable", "disable", "monitor", "unmonitor":
		r := *s.cfg.Resources[name]
		switch cmd {
		case "enable", "disable":
			r.Enabled = cmd == "enable"
		default:
			r.Monitored = cmd == "monitor"
		}
		s.cfg.Resources[name] = &r
		acts = s.apply()
	case "suspend":
		g := *s.cfg.Groups[name]
		g.Suspended = true
		s.cfg.Groups[name] = &g
		acts = s.apply()
	case "assign":
		acts = s.m.Assign(name, args[1] == "online", s.now)
	case "done":
		id, _ := strconv.ParseUint(strings.TrimPrefix(name, "#"), 10, 64)
		r := Result{OK: args[1] == "ok", TimedOut: args[1] == "timeout"}
		if rc, ok := kv["rc"]; ok {
			r.Code, _ = strconv.Atoi(rc)
		} else if !r.OK {
			r.Code = 1
		}
		acts = s.m.MethodDone(id, r, s.now)
	case "probe":
		msg := strings.Join(rest[1:], " ")
		acts = s.m.ProbeResult(name, args[1] != "fail", args[1] == "degraded", msg, s.now)
	case "gaveup":
		acts = s.m.GaveUp(name, strings.Join(rest, " "), s.now)
	case "control":
		token, _ := strconv.ParseUint(kv["token"], 10, 64)
		done, code, msg, a := s.m.Control(args[0], "", args[1], token, s.now)
		acts = a
		out := s.format(acts)
		if done {
			out = append(out, fmt.Sprintf("control answer: code=%d %s", code, msg))
		} else {
			out = append(out, "control pending")
		}
		return out
	case "restart-group":
		acts = s.m.RestartGroup(name, s.now)
	case "retry":
		acts = s.m.Retry(name, s.now)
	case "clear":
		var err error
		if acts, err = s.m.ClearStopFailed(name, s.now); err != nil {
			return []string{"error: " + err.Error()}
		}
	case "status":
		acts = s.m.SetStatus(name, args[1], strings.Join(rest[1:], " "), s.now)
	case "tick":
		d, err := time.ParseDuration(name)
		if err != nil {
			s.t.Fatal(err)
		}
		s.now = s.now.Add(d)
		acts = s.m.Tick(s.now)
	case "peers":
		n, _ := strconv.Atoi(name)
		s.m.SetPeers(n)
	case "recover":
		data, err := json.Marshal(s.m.Snapshot())
		if err != nil {
			s.t.Fatal(err)
		}
		var snap Snapshot
		if err := json.Unmarshal(data, &snap); err != nil {
			s.t.Fatal(err)
		}
		s.m, acts = Restore("n1", snap, s.cfg, s.now)
	case "show":
		return s.show()
	case "why":
		info, ok := s.m.Resource(name)
		if !ok {
			return []string{"no such resource"}
		}
		out := []string{fmt.Sprintf("%s status=%s %s restarts=%d", info.State, info.Status, info.StatusMsg, info.Restarts)}
		for _, l := range []struct{ k, v string }{{"last", info.Last}, {"decision", info.Decision}, {"waiting", info.Waiting}} {
			if l.v != "" {
				out = append(out, l.k+": "+l.v)
			}
		}
		return out
	default:
		s.t.Fatalf("unknown scenario command %q", cmd)
	}
	return s.format(acts)
}

func (s *scenario) tick() time.Time {
	s.seq++
	return time.Unix(int64(s.seq), 0)
}

func (s *scenario) apply() []Action {
	if err := s.cfg.Validate(); err != nil {
		s.t.Fatalf("scenario configuration is invalid: %v", err)
	}
	acts := s.m.SetConfig(s.cfg.Clone(), s.now)
	// The single-node rule: a managed group the administrator wants online
	// is assigned here (when that intent changes).
	for _, name := range sortedNames(s.cfg.Groups) {
		g := s.cfg.Groups[name]
		want := g.Managed && g.Online
		if prev, seen := s.intent[name]; !seen || prev != want {
			s.intent[name] = want
			acts = append(acts, s.m.Assign(name, want, s.now)...)
		}
	}
	return acts
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func (s *scenario) show() []string {
	var out []string
	for _, g := range sortedNames(s.m.groups) {
		out = append(out, fmt.Sprintf("group %s %s", g, s.m.groups[g].State))
	}
	for _, r := range sortedNames(s.m.res) {
		rs := s.m.res[r]
		out = append(out, fmt.Sprintf("%s %s %s", r, rs.State, rs.Status))
	}
	return out
}

func (s *scenario) format(acts []Action) []string {
	var out []string
	for _, a := range acts {
		switch a := a.(type) {
		case Run:
			out = append(out, fmt.Sprintf("run #%d %s %s timeout=%v", a.ID, a.Resource, a.Method, a.Timeout))
		case StartMonitor:
			out = append(out, fmt.Sprintf("monitor-start %s every=%v timeout=%v", a.Resource, a.Interval, a.Timeout))
		case StopMonitor:
			out = append(out, "monitor-stop "+a.Resource)
		case Fence:
			out = append(out, fmt.Sprintf("fence %s: %s", a.Resource, a.Reason))
		case Relocate:
			out = append(out, fmt.Sprintf("relocate %s: %s", a.Group, a.Reason))
		case Reply:
			out = append(out, fmt.Sprintf("reply token=%d code=%d %s", a.Token, a.Code, a.Msg))
		case Publish:
			at := a.Attrs
			str := func(k string) string { v, _ := at[k].Str(); return v }
			switch a.Subclass {
			case SubResourceState:
				out = append(out, fmt.Sprintf("%s: %s", str("resource"), str("state")))
			case SubGroupState:
				out = append(out, fmt.Sprintf("group %s: %s", str("group"), str("state")))
			case SubMethod:
				// The result shows in the next state; keep scenarios short.
			case SubDecision:
				out = append(out, fmt.Sprintf("decision %s: %s", str("resource"), str("decision")))
			default:
				var kv []string
				for _, k := range at.Names() {
					kv = append(kv, k+"="+at[k].Display())
				}
				out = append(out, fmt.Sprintf("event %s %s", a.Subclass, strings.Join(kv, " ")))
			}
		}
	}
	return out
}

// testType builds a type for scenarios.
func testType(name, source, methods string) *model.ResourceType {
	t := &model.ResourceType{Name: name, Source: source, Version: "1", Methods: map[string]string{}, Actions: map[string]model.OCFAction{}}
	if t.Source == "" {
		t.Source = model.SourceRTR
	}
	props := model.NewConfig().Types[model.ProcessType].Props
	for _, p := range props {
		if !p.Extension {
			t.Props = append(t.Props, p)
		}
	}
	if methods == "" {
		methods = "START,STOP"
	}
	for _, m := range strings.Split(methods, ",") {
		t.Methods[m] = "/opt/" + name + "/" + strings.ToLower(m)
		if _, ok := t.Props.Lookup(model.TimeoutProp(m)); !ok {
			t.Props = append(t.Props, model.PropSpec{Name: model.TimeoutProp(m), Type: model.TypeInt,
				Default: []string{"300"}, HasDefault: true, Tunable: model.TunableAnytime})
		}
	}
	return t
}

// TestDescribeNamesOCFClass: an OCF failure says whether a restart, another
// node or only a configuration change can cure it.
func TestDescribeNamesOCFClass(t *testing.T) {
	for _, c := range []struct {
		res  Result
		want string
	}{
		{Result{Code: 1, Severity: "soft"}, "exit code 1 (a soft error"},
		{Result{Code: 5, Severity: "hard"}, "will not work on this node"},
		{Result{Code: 6, Severity: "fatal"}, "will not work on any node"},
		{Result{Code: 1}, "failed with exit code 1"},
		{Result{Code: 0, OK: true, Severity: "none"}, "succeeded"},
	} {
		if got := c.res.Describe(); !strings.Contains(got, c.want) {
			t.Errorf("%+v: %q lacks %q", c.res, got, c.want)
		}
	}
}
