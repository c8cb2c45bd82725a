package cli

import (
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/internal/watchdog"
)

// newWatchdogCmd is the watchdog process the agent starts; operators do
// not run it (it is hidden from the command list).
func newWatchdogCmd(g *globals) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "watchdog --dir DATA_DIR",
		Short:  "Freeze the node's resource groups when the agent stops feeding it (started by the agent)",
		Hidden: true,
		Long: `The watchdog outlives the agent that started it. After every confirmed
heartbeat the agent gives it the node's fence deadline; when a deadline
passes unfed, the watchdog freezes the processes of the node's resource
groups before another node may take them over. The agent that comes back
tells it to thaw them (the node's membership held) or kill them (the node
was declared down). Without an answer within 30s, they are killed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usagef(cmd, "--dir is required")
			}
			log := slog.New(slog.NewTextHandler(g.stderr, nil)).With("component", "watchdog")
			return watchdog.Serve(cmd.Context(), watchdog.ServeOptions{Dir: dir, Logger: log})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the agent's data directory")
	return cmd
}
