package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
)

// Helpers shared by "steady type", "steady resource" and "steady rg".

// parseProps turns -p NAME=VALUE flags into a map, naming the bad one.
func parseProps(cmd *cobra.Command, flags []string) (map[string]string, error) {
	props := map[string]string{}
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, usagef(cmd, "-p %q: give NAME=VALUE (a STRINGARRAY value is comma-separated)", f)
		}
		if _, dup := props[k]; dup {
			return nil, usagef(cmd, "-p %s is given twice", k)
		}
		props[k] = v
	}
	return props, nil
}

// propFlag adds the -p flag.
// setProps is the body of the "set NAME -p NAME=VALUE..." commands: parse
// the properties, make the change, report it as "changed WHAT NAME".
func setProps[T any](g *globals, cmd *cobra.Command, name string, props []string, what string,
	set func(ctx context.Context, name string, p map[string]string) (T, error)) error {
	p, err := parseProps(cmd, props)
	if err != nil {
		return err
	}
	if len(p) == 0 {
		return usagef(cmd, "give at least one -p NAME=VALUE")
	}
	obj, err := set(cmd.Context(), name, p)
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(g.stdout, obj)
	}
	_, err = fmt.Fprintf(g.stdout, "changed %s %s\n", what, name)
	return err
}

func propFlag(cmd *cobra.Command, p *[]string, what string) {
	cmd.Flags().StringArrayVarP(p, "property", "p", nil, what+" (NAME=VALUE, repeatable; STRINGARRAY values are comma-separated)")
}

// waitOptions are the flags of commands that wait for a group to settle.
type waitOptions struct {
	noWait  bool
	timeout time.Duration
}

func (w *waitOptions) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&w.noWait, "no-wait", false, "return once the request is accepted, without waiting for the group to settle")
	cmd.Flags().DurationVar(&w.timeout, "timeout", 10*time.Minute, "how long to wait for the group to settle")
}

// settledBad are the states after which a wait reports failure.
var settledBad = map[string]bool{"ONLINE_FAULTED": true, "ERROR_STOP_FAILED": true, "PENDING_ONLINE_BLOCKED": true}

// settledError says, for a group that settled in a failed state, where to
// look, and returns the exit status 1 for it; nil for any other state.
func settledError(g *globals, gr api.RGMGroup) error {
	state := effectiveState(gr)
	if !settledBad[state] {
		return nil
	}
	fmt.Fprintf(g.stderr, "steady: group %s is %s; \"steady rg why %s\" says why\n", gr.Name, state, gr.Name)
	return &silentExit{status: api.ExitFailure}
}

// effectiveState is a group's state across the cluster when the agent
// gives one, else its state on the agent's node.
func effectiveState(gr api.RGMGroup) string {
	if gr.ClusterState != "" {
		return gr.ClusterState
	}
	return gr.State
}

// describeState says a group's state and, in a cluster, where it runs.
func describeState(gr api.RGMGroup) string {
	if gr.ClusterState == "" {
		return orDash(gr.State)
	}
	if len(gr.Primaries) == 0 {
		return gr.ClusterState
	}
	return gr.ClusterState + " on " + strings.Join(gr.Primaries, ",")
}

// deleteEach deletes the named objects in turn, stopping at the first
// error, and reports them (as {"deleted": [...]} with -o json).
func deleteEach(g *globals, names []string, noun string, del func(name string) error) error {
	for _, name := range names {
		if err := del(name); err != nil {
			return err
		}
		if !g.json() {
			fmt.Fprintf(g.stdout, "deleted %s %s\n", noun, name)
		}
	}
	if g.json() {
		return printJSON(g.stdout, map[string][]string{"deleted": names})
	}
	return nil
}

// waitGroup waits until the group is no longer pending, printing each
// change of its resources' states as it happens (table output only), and
// returns the group as it settled. A group that settles in a failed state
// is an error that points at "steady rg why".
func waitGroup(ctx context.Context, g *globals, c *client.Client, name string, timeout time.Duration) (api.RGMGroup, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		g   api.RGMGroup
		err error
	}
	done := make(chan result, 1)
	go func() {
		gr, err := c.WaitGroup(ctx, name, timeout)
		done <- result{gr, err}
	}()
	seen := map[string]string{}
	where := ""
	show := func() {
		if g.json() {
			return
		}
		if gr, err := c.Group(ctx, name); err == nil && gr.ClusterState != "" {
			if w := describeState(gr); w != where {
				if gr.Placement != "" {
					fmt.Fprintf(g.stdout, "  %s (%s)\n", w, gr.Placement)
				} else {
					fmt.Fprintf(g.stdout, "  %s\n", w)
				}
				where = w
			}
		}
		rs, err := c.Resources(ctx, name)
		if err != nil {
			return
		}
		for _, r := range rs {
			if prev, ok := seen[r.Name]; !ok || prev != r.State {
				if ok {
					fmt.Fprintf(g.stdout, "  %s: %s -> %s\n", r.Name, prev, r.State)
				}
				seen[r.Name] = r.State
			}
		}
	}
	show()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case res := <-done:
			if res.err != nil {
				return res.g, res.err
			}
			show()
			if st := effectiveState(res.g); st == "PENDING_ONLINE" || st == "PENDING_OFFLINE" {
				return res.g, &api.Error{Code: api.CodeTimeout, Message: fmt.Sprintf("group %s is still %s after %v", name, st, timeout)}
			}
			return res.g, nil
		case <-tick.C:
			show()
		}
	}
}

// propsTable prints properties: name, value, type, whether it was set
// explicitly (else the default applies) and when it may be changed.
func propsTable(g *globals, props []api.RGMProp) error {
	sort.SliceStable(props, func(a, b int) bool {
		if props[a].Extension != props[b].Extension {
			return !props[a].Extension
		}
		return false
	})
	t := newTable("PROPERTY", "VALUE", "TYPE", "SET", "TUNABLE")
	for _, p := range props {
		set := "default"
		if p.Set {
			set = "yes"
		}
		name := p.Name
		if p.Extension {
			name += " (ext)"
		}
		t.add(name, valueText(p.Values), p.Type, set, strings.ToLower(p.Tunable))
	}
	return t.print(g.stdout)
}

func valueText(v []string) string {
	if len(v) == 0 {
		return "-"
	}
	if len(v) == 1 && v[0] == "" {
		return `""`
	}
	return strings.Join(v, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// waitOn waits until a group is online on node (in the cluster's view)
// and no longer pending, printing where it is as it moves.
func waitOn(ctx context.Context, g *globals, c *client.Client, name, node string, timeout time.Duration) (api.RGMGroup, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	where := ""
	for {
		gr, err := c.Group(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return gr, &api.Error{Code: api.CodeTimeout, Message: fmt.Sprintf("group %s is not online on %s after %v", name, node, timeout)}
			}
			return gr, err
		}
		if w := describeState(gr); w != where && !g.json() {
			if gr.Placement != "" {
				fmt.Fprintf(g.stdout, "  %s (%s)\n", w, gr.Placement)
			} else {
				fmt.Fprintf(g.stdout, "  %s\n", w)
			}
			where = w
		}
		st := effectiveState(gr)
		if contains(gr.Primaries, node) && st != "PENDING_ONLINE" && st != "PENDING_OFFLINE" {
			return gr, settledError(g, gr)
		}
		select {
		case <-ctx.Done():
			return gr, &api.Error{Code: api.CodeTimeout, Message: fmt.Sprintf("group %s is not online on %s after %v (it is %s; \"steady rg why %s\" says why)", name, node, timeout, describeState(gr), name)}
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
