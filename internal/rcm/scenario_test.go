package rcm

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of the scenario files in testdata")

// TestScenarios runs testdata/*.txt. A scenario is a list of commands;
// the indented lines after a command are its expected output. With
// -rewrite the files are rewritten with the output the engine gives.
//
// Commands:
//
//	client NAME register RESOURCE[:dr|capacity|event]...
//	client NAME refuse OP RESOURCE TEXT      OP: offline-query, offline, suspend-query, suspend, capacity-query, capacity, online, remove
//	client NAME agree OP RESOURCE            undoes a refuse
//	client NAME usage RESOURCE TEXT
//	client NAME exports RESOURCE NAME...     cascade every operation on RESOURCE onto NAMEs
//	offline|suspend [-query] [-force] [-scope] RESOURCE...
//	online|resume|remove|mark-removing ID
//	capacity [-query] NAME OLD NEW | capacity-done NAME OLD NEW
//	event NAME KEY=VALUE...
//	info [-dependents] RESOURCE...
//	inflight | snapshots
//	crash SNAPSHOT [removed]                 a new engine from that saved list, then Recover
func TestScenarios(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no scenarios in testdata")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScenario(t, f) })
	}
}

type scenario struct {
	t       *testing.T
	e       *Engine
	clients map[string]*fakeClient
	names   []string // client order of creation
	log     *[]string
	store   *recStore
	now     time.Time
}

// recStore keeps every snapshot saved, for crashes at each step.
type recStore struct{ saved []Snapshot }

func (s *recStore) Save(snap Snapshot) error {
	b, _ := json.Marshal(snap) // a deep copy, as the file would hold
	var c Snapshot
	json.Unmarshal(b, &c)
	s.saved = append(s.saved, c)
	return nil
}

type fakeClient struct {
	name      string
	interests []Interest
	refuse    map[string]string // "op resource" -> reason
	usage     map[string]string
	exports   map[string][]string
	log       *[]string
}

func (c *fakeClient) Name() string { return c.name }

func (c *fakeClient) Register(context.Context) ([]Interest, error) { return c.interests, nil }

func (c *fakeClient) Call(ctx context.Context, call Call) (string, error) {
	op := call.Op.String()
	if call.Flags&Query != 0 {
		op += "-query"
	}
	if call.Op == OpInfo {
		u := c.usage[call.Resource]
		if u == "" {
			u = c.name + " uses " + call.Resource
		}
		if ex := c.exports[call.Resource]; ex != nil {
			call.Handle.Info(ctx, ex)
		}
		return u, nil
	}
	extra := ""
	if call.Flags&Force != 0 {
		extra += " force"
	}
	if call.Op == OpResume {
		extra += fmt.Sprintf(" suspended=%t", call.Suspended)
	}
	if call.Capacity != nil {
		extra += fmt.Sprintf(" %d->%d", call.Capacity.OldTotal, call.Capacity.NewTotal)
	}
	if call.Event != nil {
		var kv []string
		for k, v := range call.Event {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		extra += " " + strings.Join(kv, " ")
	}
	line := fmt.Sprintf("call %s %s %s seq=%d.%d%s", c.name, op, call.Resource, call.Handle.ID(), call.Handle.Depth()-1, extra)
	// The caller's line goes before the lines of what it cascades into.
	at := len(*c.log)
	*c.log = append(*c.log, "")
	var err error
	if ex := c.exports[call.Resource]; ex != nil {
		switch call.Op {
		case OpOffline:
			err = call.Handle.Offline(ctx, ex, call.Flags)
		case OpSuspend:
			err = call.Handle.Suspend(ctx, ex, call.Interval, call.Flags)
		case OpOnline:
			err = call.Handle.Online(ctx, ex)
		case OpResume:
			err = call.Handle.Resume(ctx, ex)
		case OpRemove:
			err = call.Handle.Remove(ctx, ex)
		}
		if err != nil {
			err = fmt.Errorf("dependents refused: %w", err)
		}
	}
	if r, ok := c.refuse[op+" "+call.Resource]; ok && err == nil {
		err = errors.New(r)
	}
	if err != nil {
		line += " -> " + err.Error()
	} else {
		line += " -> ok"
	}
	(*c.log)[at] = line
	return "", err
}

func runScenario(t *testing.T, file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	s := &scenario{t: t, clients: map[string]*fakeClient{}, log: &log, store: &recStore{},
		now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.e = s.newEngine(Snapshot{})
	var out strings.Builder
	var got, want []string
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	flush := func(cmd string, lineNo int, expected []string) {
		if cmd == "" {
			return
		}
		res := s.run(cmd, lineNo)
		for _, r := range res {
			out.WriteString("  " + r + "\n")
		}
		got = append(got, res...)
		want = append(want, expected...)
		if !*rewrite && strings.Join(res, "\n") != strings.Join(expected, "\n") {
			t.Errorf("%s:%d: %s\ngot:\n  %s\nwant:\n  %s", file, lineNo, cmd, strings.Join(res, "\n  "), strings.Join(expected, "\n  "))
		}
	}
	cmd, cmdLine := "", 0
	var expected []string
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "  "):
			expected = append(expected, l[2:])
			continue
		default:
			flush(cmd, cmdLine, expected)
			cmd, cmdLine, expected = "", 0, nil
		}
		if l == "" || strings.HasPrefix(l, "#") {
			out.WriteString(l + "\n")
			continue
		}
		out.WriteString(l + "\n")
		cmd, cmdLine = l, i+1
	}
	flush(cmd, cmdLine, expected)
	if *rewrite {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (s *scenario) newEngine(snap Snapshot) *Engine {
	return New(Options{Store: s.store, Restored: snap, Now: func() time.Time { return s.now },
		Observer: func(p Phase) {
			if p.Step == "recover" || p.Step == "undo" || p.Step == "busy" {
				*s.log = append(*s.log, fmt.Sprintf("phase %s %s %s", p.Step, p.Op, strings.Join(p.Resources, " ")))
			}
		}})
}

func (s *scenario) run(cmd string, lineNo int) []string {
	t := s.t
	*s.log = nil
	ctx := context.Background()
	f := strings.Fields(cmd)
	flags, rest := Flags(0), []string{}
	for _, a := range f[1:] {
		switch a {
		case "-query":
			flags |= Query
		case "-force":
			flags |= Force
		case "-scope":
			flags |= Scope
		case "-dependents":
			flags |= Dependents
		default:
			rest = append(rest, a)
		}
	}
	id := func() uint64 {
		n, err := strconv.ParseUint(rest[0], 10, 64)
		if err != nil {
			t.Fatalf("line %d: %v", lineNo, err)
		}
		return n
	}
	var res *Result
	var err error
	switch f[0] {
	case "client":
		s.client(f[1:], cmd, lineNo)
		return nil
	case "offline":
		res, err = s.e.RequestOffline(ctx, rest, flags, "test")
	case "suspend":
		res, err = s.e.RequestSuspend(ctx, rest, time.Second, flags, "test")
	case "online":
		res, err = s.e.NotifyOnline(ctx, id())
	case "resume":
		res, err = s.e.NotifyResume(ctx, id())
	case "remove":
		res, err = s.e.NotifyRemove(ctx, id())
	case "mark-removing":
		err = s.e.MarkRemoving(id())
	case "capacity", "capacity-done":
		o, _ := strconv.Atoi(rest[1])
		n, _ := strconv.Atoi(rest[2])
		if f[0] == "capacity" {
			res, err = s.e.RequestCapacity(ctx, rest[0], Capacity{OldTotal: o, NewTotal: n}, flags)
		} else {
			res, err = s.e.NotifyCapacity(ctx, rest[0], Capacity{OldTotal: o, NewTotal: n})
		}
	case "event":
		attrs := map[string]string{}
		for _, kv := range rest[1:] {
			k, v, _ := strings.Cut(kv, "=")
			attrs[k] = v
		}
		res, err = s.e.NotifyEvent(ctx, rest[0], attrs)
	case "info":
		res, err = s.e.Info(ctx, rest, flags)
	case "inflight":
		var out []string
		for _, en := range s.e.InFlight() {
			out = append(out, fmt.Sprintf("%d %s %s %s", en.ID, en.Op, en.State, strings.Join(en.Resources, " ")))
		}
		return out
	case "snapshots":
		var out []string
		for i, snap := range s.store.saved {
			var es []string
			for _, en := range snap.Entries {
				es = append(es, fmt.Sprintf("%d:%s:%s", en.ID, en.Op, en.State))
			}
			out = append(out, fmt.Sprintf("%d [%s]", i, strings.Join(es, " ")))
		}
		return out
	case "crash":
		n, _ := strconv.Atoi(rest[0])
		removed := len(rest) > 1 && rest[1] == "removed"
		s.e = s.newEngine(s.store.saved[n])
		for _, name := range s.names {
			if err := s.e.AddClient(ctx, s.clients[name]); err != nil {
				t.Fatal(err)
			}
		}
		err = s.e.Recover(ctx, func(Entry) bool { return removed })
	default:
		t.Fatalf("line %d: unknown command %q", lineNo, f[0])
	}
	out := append([]string(nil), *s.log...)
	switch {
	case err != nil:
		out = append(out, "error: "+err.Error())
	case res != nil:
		out = append(out, fmt.Sprintf("ok id=%d", res.ID))
	default:
		out = append(out, "ok")
	}
	if res != nil {
		for _, a := range res.Answers {
			line := fmt.Sprintf("answer %s %s %s [%s]", a.Seq, a.Client, a.Resource, a.State)
			if a.Info != "" {
				line += " info=" + strconv.Quote(a.Info)
			}
			if a.Error != "" {
				line += " error=" + strconv.Quote(a.Error)
			}
			out = append(out, line)
		}
	}
	return out
}

func (s *scenario) client(f []string, cmd string, lineNo int) {
	name, verb, args := f[0], f[1], f[2:]
	c := s.clients[name]
	if c == nil {
		c = &fakeClient{name: name, refuse: map[string]string{}, usage: map[string]string{}, exports: map[string][]string{}, log: s.log}
		s.clients[name] = c
		s.names = append(s.names, name)
	}
	text := func(n int) string { return strings.Join(args[n:], " ") }
	switch verb {
	case "register":
		c.interests = nil
		for _, a := range args {
			kind := KindDR
			if n, ok := strings.CutSuffix(a, ":capacity"); ok {
				a, kind = n, KindCapacity
			} else if n, ok := strings.CutSuffix(a, ":event"); ok {
				a, kind = n, KindEvent
			}
			c.interests = append(c.interests, Interest{a, kind})
		}
		if s.e.clients[name] == nil {
			if err := s.e.AddClient(context.Background(), c); err != nil {
				s.t.Fatalf("line %d: %v", lineNo, err)
			}
		} else {
			s.e.Refresh(context.Background())
		}
	case "refuse":
		c.refuse[args[0]+" "+args[1]] = text(2)
	case "agree":
		delete(c.refuse, args[0]+" "+args[1])
	case "usage":
		c.usage[args[0]] = text(1)
	case "exports":
		c.exports[args[0]] = args[1:]
	default:
		s.t.Fatalf("line %d: unknown client verb in %q", lineNo, cmd)
	}
}
