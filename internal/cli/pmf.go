package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/compat"
)

func newPMFCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pmf",
		Short: "Run and supervise commands under name tags (the process monitor)",
		Long: `The process monitor facility runs a command under a name tag and supervises it
and all its descendants: the tag has failed only when its last process has
exited. It restarts the command up to --retries times within a sliding
--period; when they are used up it runs the --action program ("failed TAG" as
arguments; exit 0 relaunches, anything else removes the tag), or removes the
tag. The processes run as the user who started the tag; only that user or an
administrator may change or stop it; anyone who may use the agent may read it.

Supervised processes survive the agent: a restarted agent re-adopts them, and
restarts those that died meanwhile as their policy says.

"pmfadm" (see steady install-links) offers the same with Sun Cluster's syntax.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPMFStartCmd(g), newPMFSignalCmd(g, true), newPMFSignalCmd(g, false), newPMFModifyCmd(g),
		newPMFShowCmd(g), newPMFListCmd(g), newPMFWaitCmd(g), newPMFStatusCmd(g))
	return cmd
}

// periodFlag is a duration that also accepts "infinite" (and -1) for a
// window of the tag's whole life.
type periodFlag struct{ d time.Duration }

func (p *periodFlag) String() string {
	if p.d == 0 {
		return "infinite"
	}
	return p.d.String()
}

func (p *periodFlag) Set(s string) error {
	switch s {
	case "infinite", "-1", "0":
		p.d = 0
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second {
		return fmt.Errorf("%q: give a duration of at least 1s (30s, 10m, 1h) or infinite", s)
	}
	p.d = d
	return nil
}

func (p *periodFlag) Type() string { return "duration" }

func newPMFStartCmd(g *globals) *cobra.Command {
	var (
		o      compat.PMFStartOptions
		period periodFlag
		level  int
	)
	cmd := &cobra.Command{
		Use:   "start TAG [flags] -- COMMAND [ARG]...",
		Short: "Start a command under a tag and supervise it",
		Long: `Start COMMAND (found through your PATH) under TAG, in the current directory, as
you, and supervise it. It returns once the command has been executed; a
command that cannot be started leaves nothing registered. Its output goes to
the tag's log (see "steady pmf show").

Without --pass-env the command gets a minimal environment (your PATH, HOME,
USER, LOGNAME) plus --env entries; with --pass-env your whole environment.`,
		Example: `  steady pmf start web --retries 3 --period 10m -- /usr/sbin/nginx -g 'daemon on;'
  steady pmf start job --retries -1 --action /usr/local/bin/page-me -- ./worker`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return usagef(cmd, "write the tag, then -- and the command: steady pmf start TAG -- COMMAND")
			}
			if cmd.Flags().Changed("level") {
				o.Level = &level
			}
			o.Period = period.d
			req, err := compat.NewPMFStart(args[0], args[1:], o)
			if err != nil {
				return usagef(cmd, "%v", err)
			}
			t, err := g.client().PMFStart(cmd.Context(), req)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, t)
			}
			_, err = fmt.Fprintf(g.stdout, "started %s: pid %d\n", t.Tag, t.MainPID)
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Retries, "retries", 0, "restarts allowed within --period; -1 for no limit")
	f.Var(&period, "period", "sliding window of --retries (e.g. 30s, 10m), or infinite for the tag's whole life")
	f.IntVar(&level, "level", -1, "supervise descendants only to this fork depth (0: the command's own process)")
	f.StringVar(&o.Action, "action", "", "program run with \"failed TAG\" when the restarts are used up")
	f.StringArrayVar(&o.Env, "env", nil, "add NAME=VALUE to the environment (repeatable)")
	f.BoolVar(&o.PassEnv, "pass-env", false, "give the command your whole environment")
	return cmd
}

func newPMFSignalCmd(g *globals, stop bool) *cobra.Command {
	var (
		sig  string
		wait time.Duration
	)
	name, short, long, def := "kill", "Signal a tag's processes; supervision goes on",
		`Send SIGNAL (default KILL) to every process of TAG. Supervision goes on: the
command is restarted if its budget allows. With --wait, wait that long for the
processes to exit (exit status 7 if they did not).`, "KILL"
	if stop {
		name, short, long, def = "stop", "Stop supervising a tag and signal its processes",
			`Stop supervising TAG (no more restarts) and send SIGNAL (default TERM) to its
processes. With --wait, wait that long for them to exit, then kill what is left
with SIGKILL. The tag is removed once its processes are gone.`, "TERM"
	}
	cmd := &cobra.Command{
		Use:     name + " TAG",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  steady pmf %s web --signal %s --wait 10s", name, def),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.PMFSignalRequest{Signal: sig, Wait: api.Duration(wait)}
			c := g.client()
			if stop {
				return c.PMFStop(cmd.Context(), args[0], req)
			}
			return c.PMFKill(cmd.Context(), args[0], req)
		},
	}
	cmd.Flags().StringVar(&sig, "signal", "", "signal name or number (default "+def+")")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait this long for the processes to exit")
	return cmd
}

func newPMFModifyCmd(g *globals) *cobra.Command {
	var (
		retries int
		period  periodFlag
	)
	cmd := &cobra.Command{
		Use:   "modify TAG [--retries N] [--period D]",
		Short: "Change the retries and period of a running tag",
		Long:  `Change the restart limit and window of TAG. Restarts already used stay counted while they are within the new period.`,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req api.PMFModifyRequest
			if cmd.Flags().Changed("retries") {
				req.Retries = &retries
			}
			if cmd.Flags().Changed("period") {
				p := api.Duration(period.d)
				req.Period = &p
			}
			if req.Retries == nil && req.Period == nil {
				return usagef(cmd, "give --retries, --period or both")
			}
			t, err := g.client().PMFModify(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, t)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&retries, "retries", 0, "restarts allowed within the period; -1 for no limit")
	cmd.Flags().Var(&period, "period", "sliding window (e.g. 30s, 10m) or infinite")
	return cmd
}

func newPMFShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show TAG",
		Short: "Show a tag: command, owner, retries, pids, environment",
		Long:  `Show everything about TAG: its command, owner, limits and restarts used, monitoring level, state, instance, processes, last exit, how it is tracked, its log file and environment.`,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.client().PMFTag(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, t)
			}
			level := "all descendants"
			if t.Level >= 0 {
				level = fmt.Sprintf("fork depth %d", t.Level)
			}
			action := "none (the tag is removed)"
			if len(t.Action) > 0 {
				action = strings.Join(t.Action, " ")
			}
			rows := [][2]string{
				{"Tag:", t.Tag},
				{"State:", t.State},
				{"Command:", strings.Join(t.Command, " ")},
				{"Directory:", t.Dir},
				{"Owner:", fmt.Sprintf("%s (uid %d)", t.Owner, t.UID)},
				{"Retries:", fmt.Sprintf("%d used of %s within %s", t.RetriesUsed, retriesText(t.Retries), periodText(t.Period))},
				{"Action:", action},
				{"Monitored:", level},
				{"Instance:", fmt.Sprintf("%d, started %s", t.Instance, localTime(t.Started))},
				{"PIDs:", pidsText(t.PIDs)},
				{"Last exit:", t.LastExit},
				{"Tracking:", t.Tracking},
				{"Log:", t.Log},
				{"Environment:", strings.Join(t.Env, "\n"+strings.Repeat(" ", 14))},
			}
			return printKV(g.stdout, rows)
		},
	}
}

func retriesText(n int) string {
	if n < 0 {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

func periodText(p api.Duration) string {
	if p == 0 {
		return "the life of the tag"
	}
	return time.Duration(p).String()
}

func pidsText(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, " ")
}

func newPMFListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the supervised tags",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tags, err := g.client().PMFTags(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, tags)
			}
			t := newTable("TAG", "STATE", "OWNER", "INSTANCE", "RETRIES", "PIDS", "COMMAND")
			for _, tg := range tags {
				t.add(tg.Tag, tg.State, tg.Owner, strconv.FormatUint(tg.Instance, 10),
					fmt.Sprintf("%d/%s", tg.RetriesUsed, retriesText(tg.Retries)), pidsText(tg.PIDs), strings.Join(tg.Command, " "))
			}
			return t.print(g.stdout)
		},
	}
}

func newPMFWaitCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait TAG [--timeout D]",
		Short: "Wait until a tag is gone",
		Long:  `Wait until TAG is gone: its processes have exited and it will not be restarted. Exit status 7 when --timeout passes first, 4 when there is no such tag.`,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.client().PMFWait(cmd.Context(), args[0], timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (default: wait forever)")
	return cmd
}

func newPMFStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show how the process monitor tracks processes",
		Long: `Show the tracking mode of the process monitor: "cgroup" (each tag in a cgroup
v2 of its own, the normal case) or "process-group" (without a writable cgroup
v2: the agent as child subreaper, process groups and an environment marker),
and why; whether child monitoring levels (--level, pmfadm -C) can be used; and
the number of tags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := g.client().PMFStatus(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, st)
			}
			rows := [][2]string{{"Mode:", st.Mode}}
			if st.Cgroup != "" {
				rows = append(rows, [2]string{"Cgroup:", st.Cgroup})
			}
			if st.Reason != "" {
				rows = append(rows, [2]string{"Reason:", st.Reason})
			}
			levels := "available"
			if !st.Levels {
				levels = "not available (needs cgroup mode and the kernel's process connector)"
			}
			rows = append(rows, [2]string{"Levels:", levels}, [2]string{"Tags:", strconv.Itoa(st.Tags)})
			return printKV(g.stdout, rows)
		},
	}
}
