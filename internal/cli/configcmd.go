package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/declare"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Export and apply the declared configuration: resource types, groups, resources",
		Long: `The configuration of resource types, resource groups and resources can be
kept in one YAML file (the format is in docs/steady-config.md):
"steady config export" prints it, "steady config apply -f FILE" makes the
agent's configuration match it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newConfigApplyCmd(g), newConfigExportCmd(g))
	return cmd
}

func newConfigApplyCmd(g *globals) *cobra.Command {
	var file string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--dry-run]",
		Short: "Make the configuration match a file",
		Long: `Read FILE ("-" for standard input), check all of it, print the difference
it makes, and make it in one transaction.

Types are registered when they are not yet. Groups and resources are
created, or changed so that their explicit properties are exactly those of
the file (a property left out returns to its default); the intent flags
(managed, online, suspended, enabled, monitored) change only where the file
gives them. Objects the file does not name are left as they are (shown as
"kept"). Nothing changes unless everything is right: values and their
tunability, the whole configuration (dependencies, cycles), and the VALIDATE
method of every new or changed resource. Groups that the file puts online
then start; the command does not wait for them ("steady rg online" does).

With --dry-run the same checks run (VALIDATE methods included) and the
difference is printed, but nothing changes.`,
		Example: `  steady config export > cluster.yaml
  steady config apply -f cluster.yaml --dry-run
  steady config apply -f cluster.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usagef(cmd, "give the file with -f FILE (or -f - for standard input)")
			}
			var data []byte
			var err error
			name := file
			if file == "-" {
				name = "standard input"
				data, err = io.ReadAll(g.stdin)
			} else {
				data, err = os.ReadFile(file)
			}
			if err != nil {
				return err
			}
			d, err := declare.Parse(name, data)
			if err != nil {
				return err
			}
			res, err := g.client().RGMApply(cmd.Context(), api.RGMApplyRequest{Declaration: d, DryRun: dryRun})
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, res)
			}
			printChanges(g.stdout, res.Changes)
			n := 0
			for _, c := range res.Changes {
				if c.Action == "create" || c.Action == "update" {
					n++
				}
			}
			switch {
			case n == 0:
				fmt.Fprintln(g.stdout, "nothing to change")
			case res.Applied:
				fmt.Fprintf(g.stdout, "applied %d change(s)\n", n)
			default:
				fmt.Fprintf(g.stdout, "dry run: %d change(s) would be made\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the configuration file (- for standard input)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check and show the difference without changing anything")
	return cmd
}

// printChanges prints the difference: one line per object, its details
// indented below it. Unchanged and kept objects are counted, not listed.
func printChanges(w io.Writer, changes []api.RGMChange) {
	same := 0
	for _, c := range changes {
		if c.Action == "unchanged" || c.Action == "kept" {
			same++
			continue
		}
		fmt.Fprintf(w, "%-6s %-8s %s\n", c.Action, c.Kind, c.Name)
		for _, d := range c.Details {
			fmt.Fprintf(w, "         %s\n", d)
		}
	}
	var kept []string
	for _, c := range changes {
		if c.Action == "kept" {
			kept = append(kept, c.Kind+" "+c.Name)
		}
	}
	if same > len(kept) {
		fmt.Fprintf(w, "%d object(s) unchanged\n", same-len(kept))
	}
	if len(kept) > 0 {
		fmt.Fprintf(w, "not in the file, left as they are: %s\n", strings.Join(kept, ", "))
	}
}

func newConfigExportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "export",
		Short: "Print the configuration as a file for \"steady config apply\"",
		Long: `Print the registered resource types (with the RTR file or OCF agent they
came from), every resource group with its explicit properties and intent,
and its resources in start order, in the format "steady config apply"
reads. With -o json, the API's declaration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := g.client().RGMExport(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, d)
			}
			_, err = g.stdout.Write(declare.Format(d))
			return err
		},
	}
}
