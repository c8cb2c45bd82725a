package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/api"
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
	cmd.AddCommand(newClusterInitCmd(g), newClusterTokenCmd(g), newClusterJoinCmd(g), newClusterRemoveCmd(g), newClusterLeaveCmd(g), newClusterEvacuateCmd(g), &cobra.Command{
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

// waitBack waits until the agent answers again after it restarted to
// take up a cluster configuration, showing progress.
func waitBack(cmd *cobra.Command, g *globals) error {
	return waitAgent(cmd, g, "as a cluster member", "")
}

// waitAgent waits for the restarted agent; want "standalone" also waits
// until it sees only itself.
func waitAgent(cmd *cobra.Command, g *globals, as, want string) error {
	fmt.Fprintf(g.stderr, "the agent restarts %s ", as)
	deadline := time.Now().Add(90 * time.Second)
	time.Sleep(500 * time.Millisecond)
	for {
		ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
		st, err := g.client().ClusterStatus(ctx)
		cancel()
		if err == nil && len(st.Nodes) > 0 && (want == "" || len(st.Nodes) == 1) {
			fmt.Fprintln(g.stderr, "done")
			return nil
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(g.stderr)
			return fmt.Errorf("the agent did not answer within 90s after restarting: %w", err)
		}
		fmt.Fprint(g.stderr, ".")
		time.Sleep(250 * time.Millisecond)
	}
}

// formed finishes init and join: wait for the rebuilt agent, then say
// what was formed (format takes the name, id and address).
func formed(cmd *cobra.Command, g *globals, res *api.ClusterFormed, err error, format string) error {
	if err != nil {
		return err
	}
	if err := waitBack(cmd, g); err != nil {
		return err
	}
	if g.json() {
		return printJSON(g.stdout, res)
	}
	_, err = fmt.Fprintf(g.stdout, format, res.Name, res.ID, res.Address)
	return err
}

func newClusterInitCmd(g *globals) *cobra.Command {
	var name, address string
	cmd := &cobra.Command{
		Use:   "init [--name NAME] [--address ADDRESS]",
		Short: "Make this node the first of a new cluster",
		Long: `Make this node the first of a new cluster: a cluster CA (ECDSA P-256) and this
node's certificate are created in DATA_DIR/cluster/pki, and the agent restarts
with its store member listening on ADDRESS (ports 2380 for store peers, 2379
for store clients, 7946 for other agents), with mutual TLS. Its data is kept.
Other nodes join with "steady cluster join" and a token from "steady cluster
token create". A node that belongs to a cluster already is refused.`,
		Example: `  steady cluster init --name prod --address 198.18.0.11`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.client().ClusterInit(cmd.Context(), api.ClusterInitRequest{Name: name, Address: address})
			return formed(cmd, g, res, err, "cluster %s created (id %s); this node serves it at %s\n")
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the cluster's name (default: this node's name)")
	cmd.Flags().StringVar(&address, "address", "", "the address other nodes reach this node at (default: the first global address of an interface that is up)")
	return cmd
}

func newClusterTokenCmd(g *globals) *cobra.Command {
	token := &cobra.Command{
		Use:   "token",
		Short: "Make join tokens",
		Long:  "Make one-time tokens that let a new node join the cluster.",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create [--ttl D]",
		Short: "Make a one-time join token",
		Long: `Make a one-time join token, valid for --ttl. It holds a secret (only its hash is
stored) and the fingerprint of the cluster CA, so that the joining node checks
it talks to this cluster before it sends anything. Give it to
"steady cluster join" on the new node; it works once. Only a node that holds
the cluster CA can make tokens.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl <= 0 {
				return usagef(cmd, "--ttl %v: give a positive duration", ttl)
			}
			t, err := g.client().ClusterToken(cmd.Context(), api.ClusterTokenRequest{TTL: api.Duration(ttl)})
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, t)
			}
			fmt.Fprintln(g.stdout, t.Token)
			_, err = fmt.Fprintf(g.stderr, "valid once, until %s\n", localTime(t.Expires))
			return err
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	token.AddCommand(create)
	return token
}

func newClusterJoinCmd(g *globals) *cobra.Command {
	var token, address string
	cmd := &cobra.Command{
		Use:   "join ADDRESS --token TOKEN [--address ADDRESS]",
		Short: "Join this node to the cluster of the node at ADDRESS",
		Long: `Join this node to the cluster of the node at ADDRESS (port 7946 unless given).
This node makes its key and a certificate request; the other node checks the
token, signs the request and adds this node's store member, which starts as a
learner and votes once it has caught up (up to 5 voters). This node's own
standalone store is kept aside in DATA_DIR, not merged. The agent restarts
as a member. A wrong or expired token, or a node that answers with another
cluster's certificate, is refused and nothing is written.`,
		Example: `  steady cluster join 198.18.0.11 --token stj1.…`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "" {
				return usagef(cmd, "--token is required (make one with \"steady cluster token create\" on a member)")
			}
			res, err := g.client().ClusterJoin(cmd.Context(), api.ClusterJoinRequest{Target: args[0], Token: token, Address: address})
			return formed(cmd, g, res, err, "joined cluster %s (id %s) as %s\n")
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "the join token")
	cmd.Flags().StringVar(&address, "address", "", "this node's address (default: the one that reaches ADDRESS)")
	return cmd
}

func newClusterRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NODE",
		Short: "Remove a node that is gone",
		Long: `Remove a node that is gone for good: its store member is removed, its
certificate is revoked (every member refuses it from the next connection on)
and it is no longer listed. A node that is up is refused (stop it first), as
are this node and the node that holds the store's last voting member.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().ClusterRemove(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(g.stdout, "removed %s; its certificate is revoked\n", args[0])
			return err
		},
	}
}

func newClusterLeaveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "leave",
		Short: "Take this node out of its cluster",
		Long: `Take this node out of its cluster, gracefully: it marks itself leaving (the
others see it "left", not "down"), ends its membership, has its certificate
revoked, and removes its store member. Its cluster files and the cluster's
store data are put aside in DATA_DIR, and the agent restarts as a standalone
node with an empty store. The node that holds the store's last voting member
cannot leave (the cluster would go with it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().ClusterLeave(cmd.Context()); err != nil {
				return err
			}
			if err := waitAgent(cmd, g, "standalone", "standalone"); err != nil {
				return err
			}
			_, err := fmt.Fprintln(g.stdout, "left the cluster; this node is standalone")
			return err
		},
	}
}

func newClusterEvacuateCmd(g *globals) *cobra.Command {
	var (
		w   waitOptions
		dur time.Duration
	)
	cmd := &cobra.Command{
		Use:   "evacuate NODE [--for D]",
		Short: "Move every resource group off a node",
		Long: `Move every resource group off NODE, as before maintenance: each group is
stopped on NODE and started on the next node of its Nodelist, and no group
is placed on NODE for --for (default 1m; at most 24h). Groups that no other
node can host go offline.

Unless --no-wait is given, the command waits until NODE runs no group.`,
		Example: `  steady cluster evacuate n2 --for 30m`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			node := args[0]
			c := g.client()
			if err := c.Evacuate(cmd.Context(), node, dur); err != nil {
				return err
			}
			if w.noWait {
				if !g.json() {
					fmt.Fprintf(g.stdout, "evacuating %s for %v\n", node, dur)
				}
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), w.timeout)
			defer cancel()
			last := -1
			for {
				places, err := c.Placement(ctx)
				if err != nil {
					return err
				}
				var left []string
				for _, p := range places {
					on := contains(p.Primaries, node)
					for _, ns := range p.Nodes {
						on = on || ns.Node == node && ns.State != "OFFLINE" && ns.State != "UNMANAGED"
					}
					if on {
						left = append(left, p.Group)
					}
				}
				if len(left) != last && !g.json() {
					fmt.Fprintf(g.stdout, "%s runs %d group(s)\n", node, len(left))
					last = len(left)
				}
				if len(left) == 0 {
					if g.json() {
						return printJSON(g.stdout, map[string]any{"node": node, "evacuated": true, "for": api.Duration(dur)})
					}
					_, err := fmt.Fprintf(g.stdout, "%s is evacuated; no group is placed on it for %v\n", node, dur)
					return err
				}
				select {
				case <-ctx.Done():
					return &api.Error{Code: api.CodeTimeout, Message: fmt.Sprintf("%s still runs %s after %v", node, strings.Join(left, ", "), w.timeout)}
				case <-time.After(200 * time.Millisecond):
				}
			}
		},
	}
	cmd.Flags().DurationVar(&dur, "for", time.Minute, "how long no group is placed on the node")
	w.add(cmd)
	return cmd
}
