package cli

import (
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/version"
)

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the agent's node, store and the health of each subsystem",
		Long: `Show the status of the agent: its node, version, uptime and data directory,
the state of the store, the event journal, and the health of each subsystem
(ok, degraded or failed, with the reason).

Exits 0 when every subsystem is ok and 1 when one is degraded or failed, so
that monitoring can use it directly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := g.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				if err := printJSON(g.stdout, st); err != nil {
					return err
				}
			} else if err := printStatus(g, st); err != nil {
				return err
			}
			for _, s := range st.Subsystems {
				if s.Health != api.HealthOK {
					return &silentExit{status: api.ExitFailure}
				}
			}
			return nil
		},
	}
}

func printStatus(g *globals, st api.Status) error {
	s := st.Store
	store := fmt.Sprintf("%s member %s, %s, revision %d, %s", s.Mode, s.Member, s.Role, s.Revision, humanBytes(s.DBSize))
	if s.Error != "" {
		store = fmt.Sprintf("%s member %s: %s", s.Mode, s.Member, s.Error)
	}
	e := st.Events
	err := printKV(g.stdout, [][2]string{
		{"Node:", st.Node},
		{"Version:", st.Version},
		{"PID:", fmt.Sprint(st.PID)},
		{"Uptime:", fmt.Sprintf("%s (since %s)", durationText(st.Uptime), localTime(st.Started))},
		{"Data dir:", st.DataDir},
		{"Store:", store},
		{"Events:", fmt.Sprintf("last sequence %d, journal %s in %d segment(s), %d subscriber(s)", e.LastSeq, humanBytes(e.Bytes), e.Segments, e.Subscribers)},
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(g.stdout)
	t := newTable("SUBSYSTEM", "HEALTH", "DETAIL")
	for _, sub := range st.Subsystems {
		t.add(sub.Name, string(sub.Health), sub.Detail)
	}
	if err := t.print(g.stdout); err != nil {
		return err
	}
	if len(st.Groups) == 0 {
		_, err := fmt.Fprintln(g.stdout, "\nNo resource groups (steady rg create NAME).")
		return err
	}
	fmt.Fprintln(g.stdout)
	t = newTable("GROUP", "STATE", "RESOURCES ONLINE")
	for _, gr := range st.Groups {
		t.add(gr.Name, gr.State, fmt.Sprintf("%d/%d", gr.Online, gr.Resources))
	}
	return t.print(g.stdout)
}

// printKV prints label/value rows with the values aligned.
func printKV(w io.Writer, rows [][2]string) error {
	var b strings.Builder
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "%-*s  %s\n", width, r[0], r[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func durationText(d api.Duration) string {
	text, _ := d.MarshalText()
	return string(text)
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this steady binary",
		Long: `Print the version of this steady binary and the Go toolchain it was built
with. The agent's version is in "steady status".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.json() {
				return printJSON(g.stdout, map[string]string{"version": version.Version, "go": runtime.Version()})
			}
			_, err := fmt.Fprintln(g.stdout, "steady "+version.String())
			return err
		},
	}
}
