package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/compat"
)

func newDRCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dr",
		Short: "List, take away and give back CPUs, memory, PCI cards, disks and NICs",
		Long: `Dynamic reconfiguration. Each part of the machine that can be taken away and
given back is an attachment point (AP): cpuN, memN (memory blocks),
pci/DDDD:BB:DD.F, slot/NAME (PCI hotplug slots), scsi/H:C:T:L, blk/loopN and
net/IFNAME. An AP has a receptacle state (empty, disconnected, connected), an
occupant state (unconfigured, configured), a condition (ok, failing, failed,
unusable, unknown) and a busy flag, as in cfgadm.

Before an AP is unconfigured or disconnected, every user of what it carries
is asked (filesystems, swap, processes bound to a CPU, addresses on a NIC,
RCM scripts, resource groups). One refusal stops the operation before
anything changes, and the answers are shown as a "Resource / Information"
table. A driver step that fails is undone and you are told what was
restored. See docs/dr.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newDRListCmd(g),
		newDRFuncCmd(g, "configure", "Give attachment points back",
			`Configure the attachment points: a CPU or memory block comes online, a PCI
function is found again by a rescan of its bus, a SCSI disk by a scan of its
host, a loop device is attached to its file again, and a NIC gets back the
addresses, routes, MTU and state it had when it was unconfigured. The users
registered for what came back are told.`),
		newDRFuncCmd(g, "unconfigure", "Take attachment points away, asking their users first",
			`Unconfigure the attachment points. Every user of their resources is asked
first (the query phase) and every refusal is shown; only when all agree (or
--force overrides them, where each user allows it) is the AP taken away. A
NIC's configuration is recorded so that configure brings it back as it was.`),
		newDRFuncCmd(g, "connect", "Power on the receptacle of attachment points (PCI slots)",
			`Connect the attachment points: power a PCI hotplug slot on; the kernel then
finds the card in it.`),
		newDRFuncCmd(g, "disconnect", "Power off the receptacle of attachment points (PCI slots)",
			`Disconnect the attachment points: power a PCI hotplug slot off. Its users
are asked first, as for unconfigure.`),
		newDRFuncCmd(g, "test", "Re-evaluate the condition of attachment points",
			`Test the attachment points: their condition is read again from the hardware
(a PCI function that answers all ones has failed; a SCSI device that the
kernel set offline has failed; a loop device whose file is gone has failed).`),
	)
	return cmd
}

func newDRListCmd(g *globals) *cobra.Command {
	var all, verbose bool
	var listOpts string
	cmd := &cobra.Command{
		Use:   "list [AP_ID|CLASS...]",
		Short: "List attachment points",
		Long: `List attachment points, all of them or those named by id or class (cpu,
memory, pci, slot, scsi, blk, net). Memory blocks, which number in the
thousands, are listed only with -a or when named.

-s takes cfgadm's listing options, comma-separated:
  select=attr(value):...   keep APs whose ap_id, class or type is value
  match=exact|partial      partial: value matches the start
  sort=[-]field:...        sort by fields, - for descending
  cols=field:...           the columns (default ap_id:r_state:o_state:condition)
  cols2=field:...          a second line per AP (with -v: status_time:type:busy:physid)
  delim=STRING             separate columns by STRING instead of aligning them
  noheadings               no heading line
Fields: ap_id physid r_state o_state condition type busy status_time
status_time_p class info.`,
		Example: `  steady dr list
  steady dr list -a -s select=class(memory),cols=ap_id:o_state:info
  steady dr list net -v
  steady dr list -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			lo, err := compat.ParseListOpts(listOpts)
			if err != nil {
				return usagef(cmd, "-s: %v", err)
			}
			aps, err := g.client().DRList(cmd.Context(), g.json())
			if err != nil {
				return err
			}
			sel, err := compat.SelectAPs(aps, args, lo, all)
			if err != nil {
				return &api.Error{Code: api.CodeNotFound, Message: err.Error()}
			}
			if g.json() {
				if sel == nil {
					sel = []api.AP{}
				}
				return printJSON(g.stdout, sel)
			}
			return compat.WriteAPs(g.stdout, sel, lo, verbose)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "also list memory blocks")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also show information, status time, type, busy and physical id")
	cmd.Flags().StringVarP(&listOpts, "select", "s", "", "cfgadm listing options (see above)")
	return cmd
}

func newDRFuncCmd(g *globals, function, short, long string) *cobra.Command {
	var force, dryRun, yes bool
	takesAway := function == "unconfigure" || function == "disconnect"
	cmd := &cobra.Command{
		Use:   function + " AP_ID...",
		Short: short,
		Long:  long,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dryRun && !takesAway {
				return usagef(cmd, "--dry-run is for unconfigure and disconnect")
			}
			if takesAway && !dryRun && !yes {
				q := fmt.Sprintf("%s %s: what runs on it loses it.", function, strings.Join(args, " "))
				if !compat.IsTerminal(g.stdin) {
					return usagef(cmd, "not confirmed: give -y to %s without a terminal", function)
				}
				if !askYes(g, q) {
					return &silentExit{status: api.ExitFailure}
				}
			}
			if !g.json() && function != "test" {
				verb := strings.TrimSuffix(function, "e") + "ing"
				if dryRun {
					verb = "asking the users of"
				}
				fmt.Fprintf(g.stderr, "%s %s ...\n", verb, strings.Join(args, " "))
			}
			res, err := g.client().DR(cmd.Context(), api.DRRequest{Function: function, APs: args, Force: force, DryRun: dryRun})
			if err != nil {
				return err
			}
			if g.json() {
				if err := printJSON(g.stdout, res); err != nil {
					return err
				}
			}
			status := api.ExitOK
			for _, o := range res.Outcomes {
				if o.Error != nil {
					status = o.Error.Code.ExitStatus()
				}
				if g.json() {
					continue
				}
				printOutcome(g, o)
			}
			if status != api.ExitOK {
				return &silentExit{status: status}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "ask users to let go even where they would refuse (each user decides what force overrides)")
	if takesAway {
		cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only ask the users, and show what each said")
		cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	}
	return cmd
}

func printOutcome(g *globals, o api.DROutcome) {
	switch {
	case o.Error != nil:
		fmt.Fprintf(g.stderr, "steady: %s %s: %s\n", o.Function, o.AP.ID, strings.TrimPrefix(o.Error.Message, o.AP.ID+": "))
		if len(o.Answers) > 0 {
			compat.WriteAnswers(g.stderr, o.Answers)
		}
		if o.Restored != "" {
			fmt.Fprintf(g.stderr, "restored: %s\n", o.Restored)
		}
	case o.DryRun:
		fmt.Fprintf(g.stdout, "%s %s would be allowed; the users said:\n", o.Function, o.AP.ID)
		if len(o.Answers) == 0 {
			fmt.Fprintln(g.stdout, "  (nobody uses it)")
			return
		}
		compat.WriteAnswers(g.stdout, o.Answers)
	case o.Function == "test":
		fmt.Fprintf(g.stdout, "%s: condition %s\n", o.AP.ID, o.AP.Condition)
	default:
		done := o.Function + "ed"
		if strings.HasSuffix(o.Function, "e") {
			done = o.Function + "d"
		}
		fmt.Fprintf(g.stdout, "%s: %s (%s, %s, %s)\n", o.AP.ID, done, o.AP.Receptacle, o.AP.Occupant, o.AP.Condition)
	}
}

// askYes asks a yes/no question on the terminal.
func askYes(g *globals, q string) bool {
	fmt.Fprintf(g.stderr, "%s\nContinue (yes/no)? ", q)
	var a string
	fmt.Fscanln(g.stdin, &a)
	a = strings.ToLower(a)
	return a == "y" || a == "yes"
}

func newRCMCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rcm",
		Short: "See who uses what, and manage RCM scripts",
		Long: `The reconfiguration coordination manager asks the users of a resource before it
is taken away. Users are built-in modules (filesys, cpu, memory, ip, network)
and RCM scripts (rcmscript version 1) in /etc/steady/rcm/scripts and
/etc/rcm/scripts. Resource names: /dev/... and /sys/devices/... for devices,
cpu/N, memory/N, net/IFNAME, ip/ADDRESS, rg/NAME. See docs/rcm.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	scripts := &cobra.Command{
		Use:   "scripts",
		Short: "List or reload RCM scripts",
		Long:  "List or reload the RCM scripts (rcmscript version 1) the agent runs as users of resources.",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	scripts.AddCommand(newRCMScriptsCmd(g, "list", "List RCM scripts, the resources each registered, and why one did not load",
		`List the RCM script files found in the script directories, the names each
registered and its command timeout, or why it is not loaded.`),
		newRCMScriptsCmd(g, "reload", "Load new and changed RCM scripts, drop removed ones, and ask all to register again",
			`Load new and changed RCM scripts, drop the ones whose files are gone, and ask
every script to register again. Run it after installing or changing a
script.`))
	cmd.AddCommand(newRCMInfoCmd(g), newRCMClientsCmd(g), scripts)
	return cmd
}

func newRCMInfoCmd(g *globals) *cobra.Command {
	var dependents bool
	cmd := &cobra.Command{
		Use:   "info RESOURCE...",
		Short: "Show who uses resources, and how",
		Long: `Show every registered user of the resources and of everything below them (a
disk's partitions, a PCI function's disks and interfaces), and how each uses
it. With --dependents, users that export other resources are followed too:
a NIC to its addresses, an address to the resource groups on it.`,
		Example: `  steady rcm info /dev/sdb
  steady rcm info net/eth1 --dependents`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := g.client().RCMInfo(cmd.Context(), args, dependents)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, res)
			}
			if len(res.Answers) == 0 {
				_, err := fmt.Fprintf(g.stdout, "nobody has registered %s\n", strings.Join(args, ", "))
				return err
			}
			t := newTable("RESOURCE", "CLIENT", "STATE", "INFORMATION")
			for _, a := range res.Answers {
				info := a.Info
				if a.Error != "" {
					info = "error: " + a.Error
				}
				t.add(a.Resource, a.Client, a.State, info)
			}
			return t.print(g.stdout)
		},
	}
	cmd.Flags().BoolVar(&dependents, "dependents", false, "follow the resources that users export")
	return cmd
}

func newRCMClientsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "clients",
		Short: "List the users (modules and scripts) and how many resources each registered",
		Long: `List the users of resources: the built-in modules and the loaded RCM scripts,
how many names each registered, when, and why its last registration failed
(it then keeps its previous names).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := g.client().RCMClients(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, cs)
			}
			t := newTable("CLIENT", "RESOURCES", "REGISTERED", "ERROR")
			for _, c := range cs {
				t.add(c.Name, fmt.Sprint(len(c.Interests)), localTime(c.Registered), c.Error)
			}
			return t.print(g.stdout)
		},
	}
}

func newRCMScriptsCmd(g *globals, verb, short, long string) *cobra.Command {
	return &cobra.Command{
		Use:   verb,
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			list := c.RCMScripts
			if verb == "reload" {
				list = c.RCMReload
			}
			ss, err := list(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, ss)
			}
			if len(ss) == 0 {
				_, err := fmt.Fprintln(g.stdout, "no RCM scripts")
				return err
			}
			t := newTable("NAME", "PATH", "TIMEOUT", "RESOURCES", "STATUS")
			for _, s := range ss {
				status := "loaded: " + s.Info
				if s.Error != "" {
					status = "error: " + s.Error
				}
				t.add(s.Name, s.Path, s.Timeout, strings.Join(s.Resources, " "), status)
			}
			return t.print(g.stdout)
		},
	}
}
