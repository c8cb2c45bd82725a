package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/internal/compat"
)

func newIPMPCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ipmp",
		Short: "Show IP multipathing groups and take their interfaces offline or back",
		Long: `IP multipathing keeps a host's addresses reachable when one of its network
interfaces fails. Interfaces on one link form a group. Each one has test
addresses, which stay on it and are the source of its probes, and data
addresses, which applications use and which move to a working member when
it fails (link down, or five probes in a row lost), and come back when it
is repaired (link up and ten probes answered), unless failback is off.
Standby members carry data only while an active one has failed. When every
member fails at once nothing moves: the network is at fault, not the
interfaces.

Groups come from the ipmp section of steady.yaml and from Solaris
hostname.<if> files. ipmpstat and if_mpadm work by name (steady
install-links). See docs/ipmp.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newIPMPStatusCmd(g), newIPMPOfflineCmd(g, false), newIPMPOfflineCmd(g, true), newIPMPProbesCmd(g))
	return cmd
}

func newIPMPStatusCmd(g *globals) *cobra.Command {
	var groups, ifaces, addrs, targets bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show groups, interfaces, data addresses and probe targets",
		Long: `Show the multipathing state. Without a flag: groups, interfaces and data
addresses, one table each. A group's STATE is ok, degraded (a member is
failed or offline) or failed (none works); its interfaces are listed
active, (inactive) or [unusable]. An interface's PROBE is ok, failed,
unknown (no target answers yet, or none is known) or disabled (no test
address); its STATE is ok, failed, offline or unknown (not present). A data
address is up on its INBOUND member, or down when no member can carry it.`,
		Example: `  steady ipmp status
  steady ipmp status -t
  steady ipmp status -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := g.client().IPMP(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, st)
			}
			var modes []byte
			for _, m := range []struct {
				on   bool
				mode byte
			}{{groups, 'g'}, {ifaces, 'i'}, {addrs, 'a'}, {targets, 't'}} {
				if m.on {
					modes = append(modes, m.mode)
				}
			}
			if len(modes) == 0 {
				modes = []byte{'g', 'i', 'a'}
			}
			if len(st.Groups) == 0 {
				fmt.Fprintln(g.stdout, "No IP multipathing groups are configured on this node.")
				return nil
			}
			for i, m := range modes {
				if i > 0 {
					fmt.Fprintln(g.stdout)
				}
				if err := compat.PrintIPMP(g.stdout, compat.IPMPFields[m], compat.IPMPRows(st, m), false); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&groups, "groups", "g", false, "the groups")
	f.BoolVarP(&ifaces, "interfaces", "i", false, "the interfaces")
	f.BoolVarP(&addrs, "addresses", "a", false, "the data addresses")
	f.BoolVarP(&targets, "targets", "t", false, "each interface's probe targets")
	return cmd
}

func newIPMPOfflineCmd(g *globals, undo bool) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "offline INTERFACE",
		Short: "Take an interface out of service in its group",
		Long: `Take an interface offline in its multipathing group (if_mpadm -d): its data
addresses move to another working member and its test addresses come down,
so that it can be serviced. Refused when no other member of its group
works, unless --force. The state is kept across agent restarts; undo it
with "steady ipmp undo-offline".`,
		Example: `  steady ipmp offline eth1`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.client().IPMPOffline(cmd.Context(), args[0], force, undo)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, st)
			}
			return compat.PrintIPMP(g.stdout, compat.IPMPFields['i'], compat.IPMPRows(st, 'i'), false)
		},
	}
	if undo {
		cmd.Use = "undo-offline INTERFACE"
		cmd.Short = "Put an offline interface back in service"
		cmd.Long = `Put an interface that was taken offline back in its group (if_mpadm -r): its
test addresses come back up, and once it works again its data addresses
fail back to it (when failback is on).`
		cmd.Example = `  steady ipmp undo-offline eth1`
	} else {
		cmd.Flags().BoolVarP(&force, "force", "f", false, "offline even the last working interface of its group (its data addresses are lost)")
	}
	return cmd
}

func newIPMPProbesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "probes",
		Short: "Follow the probes as they are sent (until interrupted)",
		Long: `Print each probe as its answer arrives or it is judged lost, as ipmpstat -p:
the time relative to the start, the interface, the probe's sequence number,
its round trip (-- when lost), a smoothed average, and the target.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fields, _ := compat.SelectFields('p', "")
			return compat.FollowProbes(cmd.Context(), g.client(), g.stdout, fields, false)
		},
	}
}
