package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/api"
)

func newRGCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rg",
		Short: "Create, bring online, take offline and explain resource groups",
		Long: `A resource group is the unit that is started, stopped, restarted and (across
a cluster) moved together: its resources start in the order of their
dependencies and stop in reverse. Its properties (Nodelist,
Maximum_primaries, Desired_primaries, Failback, Pingpong_interval,
RG_dependencies, RG_affinities, Auto_start_on_new_cluster, ...) are
described in docs/rgm.md.

A new group is managed and offline. Group states: UNMANAGED, OFFLINE,
PENDING_ONLINE, ONLINE, PENDING_OFFLINE, ONLINE_FAULTED,
PENDING_ONLINE_BLOCKED, ERROR_STOP_FAILED. "steady rg why GROUP" explains the
state it is in.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newRGCreateCmd(g), newRGSetCmd(g),
		newRGActionCmd(g, "online", "Bring groups online on this node",
			`Bring the groups online: their enabled resources start in dependency order.
A group that is already online with failed resources (ONLINE_FAULTED) has
them tried again. An unmanaged group becomes managed.`, true),
		newRGActionCmd(g, "offline", "Take groups offline",
			`Take the groups offline: their resources stop in reverse dependency order.
They stay offline until brought online again.`, true),
		newRGActionCmd(g, "restart", "Restart groups in place",
			`Restart the groups where they are: every resource stops in reverse
dependency order, then starts again in order.`, true),
		newRGActionCmd(g, "manage", "Take groups under management",
			`Take unmanaged groups under management (their resources' INIT methods run);
they stay offline until brought online.`, false),
		newRGActionCmd(g, "unmanage", "Release offline groups from management",
			`Release offline groups from management (their resources' FINI methods run):
steady then runs none of their methods until they are managed again.`, false),
		newRGActionCmd(g, "suspend", "Suspend automatic recovery of groups",
			`Suspend automatic recovery: failures are still detected and recorded, but
nothing is restarted or moved until the groups are resumed. Operators'
commands still work.`, false),
		newRGActionCmd(g, "resume", "Resume automatic recovery of groups",
			`Resume automatic recovery of suspended groups.`, false),
		newRGSwitchCmd(g), newRGDeleteCmd(g), newRGShowCmd(g), newRGListCmd(g), newRGWhyCmd(g))
	return cmd
}

func newRGCreateCmd(g *globals) *cobra.Command {
	var props []string
	cmd := &cobra.Command{
		Use:   "create NAME [-p NAME=VALUE]...",
		Short: "Create a resource group",
		Long: `Create a resource group, managed and offline. Properties not given take their
defaults (see docs/rgm.md); they are checked before anything is created.`,
		Example: `  steady rg create dns-rg -p Pingpong_interval=600`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := parseProps(cmd, props)
			if err != nil {
				return err
			}
			gr, err := g.client().CreateGroup(cmd.Context(), api.RGMGroupRequest{Name: args[0], Props: p})
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, gr)
			}
			_, err = fmt.Fprintf(g.stdout, "created resource group %s: %s\n", gr.Name, gr.State)
			return err
		},
	}
	propFlag(cmd, &props, "a group property")
	return cmd
}

func newRGSetCmd(g *globals) *cobra.Command {
	var props []string
	cmd := &cobra.Command{
		Use:   "set NAME -p NAME=VALUE...",
		Short: "Change properties of a resource group",
		Long:  `Change properties of a resource group. The whole configuration is checked before anything changes.`,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return setProps(g, cmd, args[0], props, "resource group", g.client().SetGroup)
		},
	}
	propFlag(cmd, &props, "a group property to change")
	return cmd
}

func newRGActionCmd(g *globals, action, short, long string, waits bool) *cobra.Command {
	var w waitOptions
	var node string
	if waits {
		long += `

Unless --no-wait is given, the command waits until each group is no longer
pending, printing its resources' state changes as they happen, and exits 1
when a group ends ONLINE_FAULTED, PENDING_ONLINE_BLOCKED or
ERROR_STOP_FAILED.`
	}
	cmd := &cobra.Command{
		Use:   action + " GROUP...",
		Short: short,
		Long:  long,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			var out []api.RGMGroup
			var failed error
			for _, name := range args {
				gr, err := c.GroupAction(cmd.Context(), name, action)
				if err != nil {
					return err
				}
				if node != "" {
					if gr, err = c.SwitchGroup(cmd.Context(), name, node); err != nil {
						return err
					}
				}
				if waits && !w.noWait {
					if !g.json() {
						fmt.Fprintf(g.stdout, "group %s: %s requested\n", name, action)
					}
					if gr, err = waitGroup(cmd.Context(), g, c, name, w.timeout); err != nil {
						return err
					}
					if !g.json() {
						fmt.Fprintf(g.stdout, "group %s: %s\n", gr.Name, describeState(gr))
					}
					if failed == nil {
						failed = settledError(g, gr)
					}
				} else if !g.json() {
					fmt.Fprintf(g.stdout, "group %s: %s (%s)\n", name, pastTense(action), gr.State)
				}
				out = append(out, gr)
			}
			if g.json() {
				if err := printJSON(g.stdout, out); err != nil {
					return err
				}
			}
			return failed
		},
	}
	if waits {
		w.add(cmd)
	}
	if action == "online" {
		cmd.Flags().StringVar(&node, "node", "", "the node to bring the groups online on (in a cluster; default: where the controller places them)")
	}
	return cmd
}

func newRGSwitchCmd(g *globals) *cobra.Command {
	var (
		w  waitOptions
		to string
	)
	cmd := &cobra.Command{
		Use:   "switch GROUP... --to NODE",
		Short: "Move resource groups to another node of the cluster",
		Long: `Move the groups to NODE: each is stopped where it runs, and only then started on
NODE (a failover group never runs on two nodes). NODE must be up, in the
group's Nodelist, and allowed by its strong affinities; a switch ignores
Pingpong_interval. The group stays on NODE afterwards (Failback does not
move it back until a more preferred node comes up again).

Unless --no-wait is given, the command waits until each group is online on
NODE, printing where it is as it moves.`,
		Example: `  steady rg switch web --to n2`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usagef(cmd, "--to NODE is required")
			}
			c := g.client()
			var out []api.RGMGroup
			for _, name := range args {
				gr, err := c.SwitchGroup(cmd.Context(), name, to)
				if err != nil {
					return err
				}
				if !w.noWait {
					if !g.json() {
						fmt.Fprintf(g.stdout, "group %s: switch to %s requested\n", name, to)
					}
					if gr, err = waitOn(cmd.Context(), g, c, name, to, w.timeout); err != nil {
						return err
					}
					if !g.json() {
						fmt.Fprintf(g.stdout, "group %s: %s\n", name, describeState(gr))
					}
				}
				out = append(out, gr)
			}
			if g.json() {
				return printJSON(g.stdout, out)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the node to move the groups to")
	w.add(cmd)
	return cmd
}

func pastTense(action string) string {
	switch action {
	case "online", "offline":
		return action + " requested"
	case "restart":
		return "restart requested"
	}
	return strings.TrimSuffix(action, "e") + "ed"
}

func newRGDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP...",
		Short: "Delete empty, offline resource groups",
		Long:  `Delete resource groups. Each must be offline (or unmanaged) and hold no resources.`,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return deleteEach(g, args, "resource group", func(name string) error { return g.client().DeleteGroup(cmd.Context(), name) })
		},
	}
}

func newRGShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show GROUP",
		Short: "Show a resource group: its state, resources and properties",
		Long: `Show a resource group: its state on this node, whether it is managed, online
(the operator's intent) and suspended, its resources in start order with
their states, and every group property.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			gr, err := c.Group(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			rs, err := c.Resources(cmd.Context(), gr.Name)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, struct {
					api.RGMGroup
					ResourceStates []api.RGMResource `json:"resource_states"`
				}{gr, rs})
			}
			rows := [][2]string{
				{"Group:", gr.Name}, {"Node:", gr.Node}, {"State:", orDash(gr.State)},
				{"Managed:", yesNo(gr.Managed)}, {"Online (intent):", yesNo(gr.Online)}, {"Suspended:", yesNo(gr.Suspended)},
				{"Restarts:", fmt.Sprint(gr.Restarts)},
			}
			if gr.Decision != "" {
				rows = append(rows, [2]string{"Decision:", gr.Decision})
			}
			if err := printKV(g.stdout, rows); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout)
			byName := map[string]api.RGMResource{}
			for _, r := range rs {
				byName[r.Name] = r
			}
			t := newTable("RESOURCE", "TYPE", "STATE", "STATUS")
			for _, name := range gr.Resources {
				r := byName[name]
				t.add(name, r.Type, orDash(r.State), orDash(r.Status))
			}
			if len(gr.Resources) > 0 {
				if err := t.print(g.stdout); err != nil {
					return err
				}
				fmt.Fprintln(g.stdout)
			}
			return propsTable(g, gr.Props)
		},
	}
}

func newRGListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List resource groups with their state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gs, err := g.client().Groups(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, gs)
			}
			places, err := g.client().Placement(cmd.Context())
			if err != nil {
				return err
			}
			byGroup := map[string]api.RGMPlacement{}
			for _, p := range places {
				byGroup[p.Group] = p
			}
			t := newTable("GROUP", "STATE", "NODES", "MANAGED", "SUSPENDED", "RESOURCES")
			for _, gr := range gs {
				p := byGroup[gr.Name]
				var on []string
				for _, ns := range p.Nodes {
					if ns.State != "OFFLINE" && ns.State != "UNMANAGED" {
						on = append(on, ns.Node+":"+ns.State)
					}
				}
				t.add(gr.Name, orDash(gr.State), orDash(strings.Join(on, " ")), yesNo(gr.Managed), yesNo(gr.Suspended), orDash(strings.Join(gr.Resources, ",")))
			}
			return t.print(g.stdout)
		},
	}
}

func newRGWhyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "why GROUP",
		Short: "Explain why a resource group is in its state",
		Long: `Explain a group's state: which resource holds it there, which method ran last
with its exit code and last output lines, which policy (Failover_mode,
Retry_count within Retry_interval, dependencies, a suspension) decided what,
and the group's latest events. In a cluster, also where the controller
placed it and why, and for every other node of its Nodelist why the group
is not there (down, evacuated, Pingpong_interval, an affinity, its primaries
are full and Failback is off).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			why, err := g.client().Why(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, why)
			}
			fmt.Fprintf(g.stdout, "Group %s is %s on %s.\n\n", why.Group.Name, orDash(why.Group.State), why.Group.Node)
			for _, s := range why.Summary {
				fmt.Fprintln(g.stdout, s)
			}
			if len(why.Placement) > 0 {
				fmt.Fprintf(g.stdout, "\nIn the cluster (%s):\n", describeState(why.Group))
				for _, s := range why.Placement {
					fmt.Fprintln(g.stdout, s)
				}
			}
			if len(why.Resources) > 0 {
				fmt.Fprintln(g.stdout)
				t := newTable("RESOURCE", "STATE", "STATUS", "LAST METHOD", "DECISION")
				for _, r := range why.Resources {
					t.add(r.Name, orDash(r.State), orDash(r.Status), ellipsis(orDash(r.Last), 50), ellipsis(orDash(r.Decision), 60))
				}
				if err := t.print(g.stdout); err != nil {
					return err
				}
			}
			if len(why.Events) > 0 {
				fmt.Fprintln(g.stdout, "\nRecent events:")
				for _, ev := range why.Events {
					fmt.Fprintf(g.stdout, "  %s  %s  %s\n", localTime(ev.Time), ev.Subclass, attrsText(ev.Attrs))
				}
			}
			return nil
		},
	}
}
