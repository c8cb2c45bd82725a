package cli

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/rgm/ocf"
)

func newTypeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "type",
		Short: "Register, inspect and test resource types (RTR files, OCF agents, built-in)",
		Long: `A resource type says how steady starts, stops and checks one kind of service.
It comes from one of three sources:

  rtr      a Sun Cluster resource type registration file and its method
           programs (steady type register -f FILE)
  ocf      an OCF resource agent such as ocf:heartbeat:IPaddr2, found under
           the OCF root (steady type register --ocf ocf:PROVIDER:AGENT)
  builtin  steady.Process: any command, supervised by the process monitor

Resources (steady resource) are instances of a type.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTypeRegisterCmd(g), newTypeListCmd(g), newTypeShowCmd(g), newTypeUnregisterCmd(g), newTypeTestCmd(g))
	return cmd
}

func newTypeRegisterCmd(g *globals) *cobra.Command {
	var file, agent string
	cmd := &cobra.Command{
		Use:   "register {-f FILE | --ocf ocf:PROVIDER:AGENT}",
		Short: "Register a resource type from an RTR file or an OCF agent",
		Long: `Register a resource type.

With -f, FILE is an RTR file (the Sun Cluster resource type registration
format). Its method paths are relative to RT_BASEDIR; every method program
must exist, be executable and not be writable by group or others, since it
runs as its owner. A syntax error is reported with line and column.

With --ocf, the agent's meta-data becomes the type: its parameters become
extension properties, its advised timeouts and monitor interval become the
defaults of Start_timeout, Stop_timeout, Probe_timeout and
Thorough_probe_interval.`,
		Example: `  steady type register -f /opt/ha-dns/etc/SUNW.dns.rtr
  steady type register --ocf ocf:heartbeat:Dummy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var req api.RGMTypeRequest
			switch {
			case file != "" && agent == "":
				b, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("reading the RTR file: %w", err)
				}
				req.RTR, req.RTRFile = string(b), file
			case agent != "" && file == "":
				req.OCF = agent
			default:
				return usagef(cmd, "give either -f FILE or --ocf ocf:PROVIDER:AGENT")
			}
			t, err := g.client().RegisterType(cmd.Context(), req)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, t)
			}
			ext := 0
			for _, p := range t.Props {
				if p.Extension {
					ext++
				}
			}
			_, err = fmt.Fprintf(g.stdout, "registered resource type %s (version %s, from %s) with %d extension propert%s\n",
				t.Name, orDash(t.Version), t.Source, ext, map[bool]string{true: "y", false: "ies"}[ext == 1])
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the RTR file to register")
	cmd.Flags().StringVar(&agent, "ocf", "", "the OCF agent to register, as ocf:PROVIDER:AGENT")
	return cmd
}

func newTypeListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the registered resource types",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, err := g.client().Types(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, ts)
			}
			t := newTable("TYPE", "SOURCE", "VERSION", "FAILOVER", "RESOURCES", "DESCRIPTION")
			for _, ty := range ts {
				t.add(ty.Name, ty.Source, orDash(ty.Version), yesNo(ty.Failover), strconv.Itoa(len(ty.Resources)), ellipsis(orDash(ty.Description), 50))
			}
			return t.print(g.stdout)
		},
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newTypeShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show TYPE",
		Short: "Show a resource type: its methods and the properties it declares",
		Long: `Show a resource type: where it comes from, its methods (RTR) or agent (OCF),
and every property a resource of this type has, with its type, default,
limits and when it may be changed (TUNABLE: anytime, at_creation,
when_disabled, none).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ty, err := g.client().Type(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, ty)
			}
			rows := [][2]string{
				{"Type:", ty.Name}, {"Source:", ty.Source}, {"Version:", orDash(ty.Version)},
				{"Vendor:", orDash(ty.Vendor)}, {"Description:", orDash(ty.Description)},
				{"Failover:", yesNo(ty.Failover)}, {"Single instance:", yesNo(ty.SingleInstance)},
			}
			if ty.InitNodes != "" {
				rows = append(rows, [2]string{"Init nodes:", ty.InitNodes})
			}
			if ty.Agent != "" {
				rows = append(rows, [2]string{"Agent:", ty.Agent})
			}
			if ty.BaseDir != "" {
				rows = append(rows, [2]string{"Base dir:", ty.BaseDir})
			}
			rows = append(rows, [2]string{"Resources:", orDash(strings.Join(ty.Resources, ", "))})
			if err := printKV(g.stdout, rows); err != nil {
				return err
			}
			if len(ty.Methods) > 0 {
				fmt.Fprintln(g.stdout)
				names := make([]string, 0, len(ty.Methods))
				for m := range ty.Methods {
					names = append(names, m)
				}
				sort.Strings(names)
				t := newTable("METHOD", "PROGRAM")
				for _, m := range names {
					t.add(m, ty.Methods[m])
				}
				if err := t.print(g.stdout); err != nil {
					return err
				}
			}
			fmt.Fprintln(g.stdout)
			t := newTable("PROPERTY", "TYPE", "DEFAULT", "LIMITS", "TUNABLE", "DESCRIPTION")
			for _, p := range ty.Props {
				name := p.Name
				if p.Extension {
					name += " (ext)"
				}
				def := "(required)"
				switch {
				case p.HasDefault:
					def = valueText(p.Default)
					if def == "-" {
						def = `""`
					}
				case p.Optional && p.AgentDefault != "":
					def = p.AgentDefault + " (agent's)"
				case p.Optional:
					def = "(unset)"
				}
				typ := p.Type
				if len(p.Enum) > 0 {
					typ += " {" + strings.Join(p.Enum, ",") + "}"
				}
				t.add(name, typ, def, limits(p), strings.ToLower(p.Tunable), ellipsis(orDash(p.Description), 60))
			}
			return t.print(g.stdout)
		},
	}
}

func limits(p api.RGMPropSpec) string {
	switch {
	case p.Min != nil && p.Max != nil:
		return fmt.Sprintf("%d..%d", *p.Min, *p.Max)
	case p.Min != nil:
		return fmt.Sprintf(">= %d", *p.Min)
	case p.Max != nil:
		return fmt.Sprintf("<= %d", *p.Max)
	}
	return "-"
}

func newTypeUnregisterCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unregister TYPE",
		Short: "Remove a resource type that no resource uses",
		Long: `Remove a resource type. Resources of the type must be deleted first; the
built-in steady.Process cannot be removed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().UnregisterType(cmd.Context(), args[0]); err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, map[string]string{"unregistered": args[0]})
			}
			_, err := fmt.Fprintf(g.stdout, "unregistered resource type %s\n", args[0])
			return err
		},
	}
}

func newTypeTestCmd(g *globals) *cobra.Command {
	var (
		props    []string
		instance string
	)
	cmd := &cobra.Command{
		Use:   "test ocf:PROVIDER:AGENT [-p NAME=VALUE]...",
		Short: "Run the ocf-tester sequence against an OCF agent through steady's runner",
		Long: `Check that an OCF agent behaves as steady (and Pacemaker) expect, running it
exactly as steady runs it for a resource: as root, in its own cgroup, with
the OCF_RESKEY_* parameters given with -p and the other OCF variables. The
agent need not be registered.

The sequence: meta-data must be valid XML; validate-all must succeed;
monitor must answer 7 (not running) for a stopped resource and 0 for a
started one; start and stop must succeed, also when repeated; reload,
notify, promote/demote and migrate_to/migrate_from are tried when the agent
declares them. Each step is printed as it finishes. The agent is left
stopped. Exit status 1 when a step failed.

The agent keeps its state under the instance name (OCF_RESOURCE_INSTANCE,
default steady-ocf-test), which must not be the name of a resource.`,
		Example: `  steady type test ocf:heartbeat:Dummy
  steady type test ocf:heartbeat:Delay -p startdelay=1 -p stopdelay=1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			params, err := parseProps(cmd, props)
			if err != nil {
				return err
			}
			if !g.json() {
				name := instance
				if name == "" {
					name = "steady-ocf-test"
				}
				fmt.Fprintf(g.stdout, "Testing %s (instance %s):\n", args[0], name)
			}
			widths := []int{4, 40, 12, 29, 8}
			report, err := g.client().TestOCF(cmd.Context(), api.OCFTestRequest{Agent: args[0], Instance: instance, Params: params},
				func(s api.OCFTestStep) {
					if g.json() {
						return
					}
					verdict := "ok"
					switch {
					case !s.Passed && s.Informational:
						verdict = "info"
					case !s.Passed:
						verdict = "FAIL"
					}
					rc := rcText(s.Got)
					if s.Action == "-" { // a check of steady's own, not an action
						rc = "-"
					}
					fmt.Fprintln(g.stdout, fixedRow(widths, verdict, s.Name, s.Action, rc, durationText(s.Duration), wantText(s)))
					if !s.Passed && s.Output != "" {
						for _, l := range strings.Split(strings.TrimSpace(s.Output), "\n") {
							fmt.Fprintln(g.stdout, "       | "+l)
						}
					}
				})
			if err != nil {
				return err
			}
			if g.json() {
				if err := printJSON(g.stdout, report); err != nil {
					return err
				}
			} else {
				if report.Aborted != "" {
					fmt.Fprintf(g.stdout, "stopped after %s\n", report.Aborted)
				}
				fmt.Fprintf(g.stdout, "%d step(s), %d failed\n", len(report.Steps), report.Failed)
			}
			if report.Failed > 0 || report.Aborted != "" {
				return &silentExit{status: api.ExitFailure}
			}
			return nil
		},
	}
	propFlag(cmd, &props, "an agent parameter")
	cmd.Flags().StringVar(&instance, "instance", "", "OCF_RESOURCE_INSTANCE for the test (default steady-ocf-test)")
	return cmd
}

func rcText(rc int) string {
	if rc < 0 {
		return "rc=-"
	}
	if name := ocf.CodeName(rc); strings.HasPrefix(name, "OCF_") {
		return fmt.Sprintf("rc=%d %s", rc, name)
	}
	return fmt.Sprintf("rc=%d", rc)
}

func wantText(s api.OCFTestStep) string {
	if s.Passed || s.Action == "-" {
		return ""
	}
	var w []string
	for _, rc := range s.Want {
		w = append(w, strconv.Itoa(rc))
	}
	return "want " + strings.Join(w, " or ")
}
