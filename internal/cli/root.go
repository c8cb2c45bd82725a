// Package cli holds the steady subcommands (cobra) and the dispatch on the
// name the binary was started under. Commands are thin: they parse flags,
// call the agent through api/client, and print tables or JSON. Errors end
// up in exitStatus, the one place that turns them into exit statuses.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
	"github.com/steady-ha/steady/internal/compat"
	"github.com/steady-ha/steady/internal/config"
	"github.com/steady-ha/steady/internal/declare"
)

// Main runs steady with args (args[0] is the name it was started under)
// and returns the exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	reg := personalities()
	name := filepath.Base(args[0])
	if !isSteadyName(name) {
		p, ok := reg.Lookup(name)
		if !ok {
			names := []string{"steady"}
			for _, p := range reg.All() {
				names = append(names, p.Name)
			}
			fmt.Fprintf(stderr, "steady: started as %q, which is not a command steady provides (it answers to: %s)\n", name, strings.Join(names, ", "))
			return api.ExitUsage
		}
		return p.Main(ctx, args[1:], compat.Stdio{In: stdin, Out: stdout, Err: stderr})
	}
	root := newRoot(reg, stdin, stdout, stderr)
	root.SetArgs(args[1:])
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return api.ExitOK
	}
	if strings.HasPrefix(err.Error(), "unknown command ") {
		// cobra's own error for a mistyped subcommand has no type.
		err = &usageError{cmd: cmd, err: err}
	}
	var silent *silentExit
	if !errors.As(err, &silent) {
		fmt.Fprintln(stderr, "steady: "+err.Error())
	}
	var ue *usageError
	if errors.As(err, &ue) && ue.cmd != nil {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", ue.cmd.CommandPath())
	}
	return exitStatus(err)
}

// isSteadyName accepts "steady" and renamed copies such as "steady-0.2".
func isSteadyName(name string) bool {
	return name == "steady" || strings.HasPrefix(name, "steady-") || strings.HasPrefix(name, "steady.")
}

// personalities is the registry of compatibility names of this build.
func personalities() *compat.Registry {
	return compat.NewRegistry(compat.Pmfadm, compat.SchaResourceGet, compat.SchaResourceGroupGet,
		compat.SchaResourceTypeGet, compat.SchaClusterGet, compat.SchaControl, compat.SchaResourceSetstatus, compat.Cfgadm,
		compat.Ipmpstat, compat.IfMpadm)
}

// commandNames lists the names of the compatibility commands.
func commandNames(reg *compat.Registry) []string {
	var names []string
	for _, p := range reg.All() {
		names = append(names, p.Name)
	}
	return names
}

// usageError is a command-line mistake: exit status 2 and a usage hint.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// silentExit carries an exit status without a message (the command has
// already said what it had to say).
type silentExit struct{ status int }

func (e *silentExit) Error() string { return fmt.Sprintf("exit status %d", e.status) }

// exitStatus is the one place that maps errors to exit statuses.
func exitStatus(err error) int {
	var se *silentExit
	var ue *usageError
	var ce *config.Error
	var de *declare.Error
	switch {
	case err == nil:
		return api.ExitOK
	case errors.As(err, &se):
		return se.status
	case errors.As(err, &ue), errors.As(err, &ce), errors.As(err, &de):
		return api.ExitUsage
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code.ExitStatus()
	}
	return api.ExitFailure
}

// globals are the flags every command has.
type globals struct {
	socket string
	output string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	reg    *compat.Registry
}

func (g *globals) client() *client.Client { return client.New(client.Socket(g.socket)) }

func (g *globals) json() bool { return g.output == "json" }

func newRoot(reg *compat.Registry, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr, reg: reg}
	root := &cobra.Command{
		Use:   "steady",
		Short: "Keep services running while hardware, network, OS and cluster change",
		Long: `steady keeps services running while the hardware, the network, the operating
system and the cluster change under them.

"steady agent" is the daemon that runs on every node. Every other command is a
client of an agent's API on its local socket: /run/steady/steady.sock, or the
socket named by --socket or $STEADY_SOCKET.

` + exitStatusText(),
		SilenceUsage:      true,
		SilenceErrors:     true,
		DisableAutoGenTag: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "table" && g.output != "json" {
				return usagef(cmd, "--output %q: use table or json", g.output)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef(cmd, "unknown command %q", args[0])
			}
			return cmd.Help()
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.socket, "socket", "", "agent socket (default $STEADY_SOCKET or "+client.DefaultSocket+")")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return &usageError{cmd: cmd, err: err} })
	root.AddCommand(
		newAgentCmd(g),
		newStatusCmd(g),
		newVersionCmd(g),
		newEventsCmd(g),
		newPMFCmd(g),
		newTypeCmd(g),
		newResourceCmd(g),
		newRGCmd(g),
		newDRCmd(g),
		newRCMCmd(g),
		newIPMPCmd(g),
		newClusterCmd(g),
		newConfigCmd(g),
		newInstallLinksCmd(g),
		newWatchdogCmd(g),
	)
	setArgsUsage(root)
	return root
}

// setArgsUsage makes argument-count errors usage errors on every command.
func setArgsUsage(cmd *cobra.Command) {
	if v := cmd.Args; v != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := v(c, args); err != nil {
				return &usageError{cmd: c, err: err}
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		setArgsUsage(sub)
	}
}

func exitStatusText() string {
	var b strings.Builder
	b.WriteString("Exit status:")
	for _, r := range api.ExitStatuses() {
		fmt.Fprintf(&b, "\n  %d  %s", r.Status, r.Meaning)
	}
	return b.String()
}
