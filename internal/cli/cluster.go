package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "See the cluster's nodes, their liveness and the controller",
		Long: `The nodes of the cluster, each kept alive by a lease at the store that its
agent renews. A node whose lease expires is down; a node that cannot renew
its lease stops its failover work before the lease can expire (it fences
itself) and rejoins when the store answers again, with a new epoch. One node
is the elected controller. See docs/cluster.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show the nodes, their state and store role, and the controller",
		Long: `Show every node of the cluster: up, down or leaving; its role in the store
(leader, voter, learner, or client when it holds no store member); its
version, epoch and last heartbeat (when it last renewed its lease, by its own
clock). Then the controller, this node's epoch, and the lease timing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.client().ClusterStatus(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, st)
			}
			t := newTable("NODE", "STATE", "STORE", "VERSION", "EPOCH", "HEARTBEAT")
			for _, n := range st.Nodes {
				beat := ""
				if !n.Heartbeat.IsZero() {
					beat = fmt.Sprintf("%s (%s ago)", localTime(n.Heartbeat), time.Since(n.Heartbeat).Round(time.Millisecond))
				}
				epoch := ""
				if n.Epoch > 0 {
					epoch = fmt.Sprint(n.Epoch)
				}
				t.add(n.Name, n.State, n.StoreRole, n.Version, epoch, beat)
			}
			if err := t.print(g.stdout); err != nil {
				return err
			}
			ctl := st.Controller
			if ctl == "" {
				ctl = "(none)"
			}
			fenced := ""
			if st.Fenced {
				fenced = ", FENCED"
			}
			_, err = fmt.Fprintf(g.stdout, "\ncontroller %s; this node %s, epoch %d%s; lease %v, keepalive %v, fence after %v\n",
				ctl, st.Node, st.Epoch, fenced, time.Duration(st.Timing.LeaseTTL), time.Duration(st.Timing.Keepalive), time.Duration(st.Timing.FenceAfter))
			return err
		},
	})
	return cmd
}
