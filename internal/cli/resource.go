package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/api"
)

func newResourceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "resource",
		Aliases: []string{"rs"},
		Short:   "Create, change, enable, disable and inspect resources",
		Long: `A resource is one instance of a resource type (steady type) in a resource
group (steady rg): a DNS server, an address, a file system. Its properties
come from the type (system properties such as Start_timeout, Retry_count,
Failover_mode, Resource_dependencies, and the type's extension properties).

Resources start and stop with their group, in the order of their
Resource_dependencies. A disabled resource stays offline while its group is
online; an unmonitored one runs without its monitor.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newResourceCreateCmd(g), newResourceSetCmd(g),
		newResourceActionCmd(g, "enable", "Enable resources: they start when their group is online",
			"Enable the resources. Each starts if its group is online here, after the resources it depends on."),
		newResourceActionCmd(g, "disable", "Disable resources: they stop and stay offline",
			"Disable the resources. Each stops now (after the resources that depend on it) and stays offline while its group is online."),
		newResourceActionCmd(g, "monitor", "Turn the monitor of resources on",
			"Turn monitoring on: the resources' monitors (MONITOR_START, the OCF monitor action, steady.Process's probe) run while they are online."),
		newResourceActionCmd(g, "unmonitor", "Turn the monitor of resources off",
			"Turn monitoring off: the resources keep running (ONLINE_NOT_MONITORED) and failures are no longer detected."),
		newResourceClearCmd(g), newResourceDeleteCmd(g), newResourceShowCmd(g), newResourceListCmd(g), newResourceLogCmd(g))
	return cmd
}

func newResourceCreateCmd(g *globals) *cobra.Command {
	var (
		group, typ string
		props      []string
		disabled   bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME -g GROUP -t TYPE [-p NAME=VALUE]...",
		Short: "Create a resource in a group",
		Long: `Create a resource of TYPE in GROUP. Each -p sets a property; values are checked
against the type (its type, MIN/MAX, lengths, enumerations), properties that
have no default must be given, and the type's VALIDATE method (or OCF
validate-all) runs before anything changes: a failure cancels the creation
and its output is shown.

The resource is enabled unless --disabled is given: if its group is online
here, it starts at once.`,
		Example: `  steady resource create dns -g dns-rg -t SUNW.dns -p Confdir_list=/srv/dns
  steady resource create web -g web-rg -t steady.Process -p Command=/usr/bin/python3,-m,http.server,8080`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if group == "" || typ == "" {
				return usagef(cmd, "both -g GROUP and -t TYPE are required")
			}
			p, err := parseProps(cmd, props)
			if err != nil {
				return err
			}
			r, err := g.client().CreateResource(cmd.Context(), api.RGMResourceRequest{Name: args[0], Group: group, Type: typ, Props: p, Disabled: disabled})
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, r)
			}
			_, err = fmt.Fprintf(g.stdout, "created resource %s (%s) in group %s: %s\n", r.Name, r.Type, r.Group, orDash(r.State))
			return err
		},
	}
	cmd.Flags().StringVarP(&group, "group", "g", "", "the resource group")
	cmd.Flags().StringVarP(&typ, "type", "t", "", "the resource type")
	cmd.Flags().BoolVar(&disabled, "disabled", false, "create the resource disabled")
	propFlag(cmd, &props, "a property")
	return cmd
}

func newResourceSetCmd(g *globals) *cobra.Command {
	var props []string
	cmd := &cobra.Command{
		Use:   "set NAME -p NAME=VALUE...",
		Short: "Change properties of a resource",
		Long: `Change properties of a resource. A property may be changed only as its
TUNABLE allows ("steady type show TYPE"): anytime, when_disabled (disable the
resource first) or never after creation. The values are checked and the
type's VALIDATE runs before anything changes; an online resource then gets
its UPDATE method (OCF: reload, when the agent has it).`,
		Example: `  steady resource set dns -p Retry_count=5 -p Thorough_probe_interval=30`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return setProps(g, cmd, args[0], props, "resource", g.client().SetResource)
		},
	}
	propFlag(cmd, &props, "a property to change")
	return cmd
}

func newResourceActionCmd(g *globals, action, short, long string) *cobra.Command {
	var w waitOptions
	waits := action == "enable" || action == "disable"
	if waits {
		long += `

Unless --no-wait is given, the command waits until each resource's group is
no longer pending and prints the state changes as they happen.`
	}
	cmd := &cobra.Command{
		Use:   action + " NAME...",
		Short: short,
		Long:  long,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			var out []api.RGMResource
			var firstErr error
			for _, name := range args {
				r, err := c.ResourceAction(cmd.Context(), name, action)
				if err != nil {
					return err
				}
				if !g.json() {
					fmt.Fprintf(g.stdout, "resource %s: %s\n", name, strings.TrimSuffix(action, "e")+"ed")
				}
				if !w.noWait && waits {
					gr, err := waitGroup(cmd.Context(), g, c, r.Group, w.timeout)
					if err != nil {
						return err
					}
					if firstErr == nil {
						firstErr = settledError(g, gr)
					}
					if r, err = c.Resource(cmd.Context(), name); err != nil {
						return err
					}
				}
				if !g.json() && !w.noWait {
					fmt.Fprintf(g.stdout, "resource %s: %s\n", name, orDash(r.State))
				}
				out = append(out, r)
			}
			if g.json() {
				if err := printJSON(g.stdout, out); err != nil {
					return err
				}
			}
			return firstErr
		},
	}
	if waits {
		w.add(cmd)
	} else {
		w.noWait = true
	}
	return cmd
}

func newResourceClearCmd(g *globals) *cobra.Command {
	var flag string
	cmd := &cobra.Command{
		Use:   "clear NAME [--flag STOP_FAILED]",
		Short: "Clear the STOP_FAILED flag of a resource",
		Long: `A resource whose Stop method failed is STOP_FAILED, and its group is
ERROR_STOP_FAILED: steady does not know whether it still runs, so it neither
starts nor moves it. Make sure it is stopped (stop it by hand if needed),
then clear the flag: the resource becomes OFFLINE and the group converges
again.`,
		Example: `  steady resource clear dns --flag STOP_FAILED`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.client().ClearResource(cmd.Context(), args[0], flag)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, r)
			}
			_, err = fmt.Fprintf(g.stdout, "cleared %s on resource %s: %s\n", strings.ToUpper(flag), r.Name, orDash(r.State))
			return err
		},
	}
	cmd.Flags().StringVar(&flag, "flag", "STOP_FAILED", "the flag to clear (STOP_FAILED)")
	return cmd
}

func newResourceDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete disabled resources",
		Long: `Delete resources. Each must be disabled and offline ("steady resource disable"
first); no other resource may depend on it. Its FINI method runs if its
group is managed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return deleteEach(g, args, "resource", func(name string) error { return g.client().DeleteResource(cmd.Context(), name) })
		},
	}
}

func newResourceShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a resource: its state, status, last method and every property",
		Long: `Show a resource: its state and status on this node, its last method and the
RGM's last decision about it, and every property with its value, whether it
was set explicitly or is the default, and when it may be changed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.client().Resource(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, r)
			}
			status := r.Status
			if r.StatusMsg != "" {
				status += " (" + r.StatusMsg + ")"
			}
			rows := [][2]string{
				{"Resource:", r.Name}, {"Group:", r.Group}, {"Type:", r.Type + " " + r.TypeVersion},
				{"Node:", r.Node}, {"State:", orDash(r.State)}, {"Status:", orDash(status)},
				{"Enabled:", yesNo(r.Enabled)}, {"Monitored:", yesNo(r.Monitored)},
				{"Restarts:", fmt.Sprintf("%d (resource, within Retry_interval), %d (group)", r.Restarts, r.RGRestarts)},
			}
			if r.Last != "" {
				rows = append(rows, [2]string{"Last method:", r.Last})
			}
			if r.Decision != "" {
				rows = append(rows, [2]string{"Decision:", r.Decision})
			}
			if r.Waiting != "" {
				rows = append(rows, [2]string{"Waiting:", r.Waiting})
			}
			if err := printKV(g.stdout, rows); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout)
			return propsTable(g, r.Props)
		},
	}
}

func newResourceListCmd(g *globals) *cobra.Command {
	var group string
	cmd := &cobra.Command{
		Use:   "list [-g GROUP]",
		Short: "List resources with their state and status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs, err := g.client().Resources(cmd.Context(), group)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, rs)
			}
			t := newTable("RESOURCE", "GROUP", "TYPE", "STATE", "STATUS", "ENABLED", "MONITORED", "MESSAGE")
			for _, r := range rs {
				t.add(r.Name, r.Group, r.Type, orDash(r.State), orDash(r.Status), yesNo(r.Enabled), yesNo(r.Monitored), ellipsis(orDash(r.StatusMsg), 50))
			}
			return t.print(g.stdout)
		},
	}
	cmd.Flags().StringVarP(&group, "group", "g", "", "only the resources of this group")
	return cmd
}

func newResourceLogCmd(g *globals) *cobra.Command {
	var lines int
	cmd := &cobra.Command{
		Use:   "log NAME [-n LINES]",
		Short: "Show the log of a resource's methods",
		Long: `Show the last lines of the log of a resource's methods: every method run, with
a header line (time, method, command line), everything it printed, and how
it ended (exit code, signal, timeout). Monitor probes appear only when they
fail.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := g.client().ResourceLog(cmd.Context(), args[0], lines)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, l)
			}
			if len(l.Lines) == 0 {
				_, err := fmt.Fprintf(g.stdout, "no method of %s has run yet (%s)\n", args[0], l.Path)
				return err
			}
			_, err = fmt.Fprintln(g.stdout, strings.Join(l.Lines, "\n"))
			return err
		},
	}
	cmd.Flags().IntVarP(&lines, "lines", "n", 50, "how many lines")
	return cmd
}
