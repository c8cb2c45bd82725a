package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/api"
)

func newInstallLinksCmd(g *globals) *cobra.Command {
	var (
		dir           string
		force, remove bool
	)
	cmd := &cobra.Command{
		Use:   "install-links",
		Short: "Create the symlinks of the compatibility commands (pmfadm, cfgadm, ...)",
		Long: `Create, in DIR, a symlink to this steady binary for each compatibility command
it provides. Started under such a name, steady behaves as that command, so
existing scripts and habits keep working.

An existing file of that name that is not already a link to this binary is
left alone unless --force is given. --remove deletes the links this command
would create (only links that point to this binary).`,
		Example: `  steady install-links --dir /usr/local/sbin`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding this binary: %w", err)
			}
			if self, err = filepath.EvalSymlinks(self); err != nil {
				return fmt.Errorf("finding this binary: %w", err)
			}
			if dir == "" {
				dir = filepath.Dir(self)
			}
			ps := g.reg.All()
			if len(ps) == 0 {
				fmt.Fprintln(g.stdout, "this steady provides no compatibility commands yet")
				return nil
			}
			type result struct {
				Name   string `json:"name"`
				Path   string `json:"path"`
				Action string `json:"action"`
			}
			var results []result
			var failed []error
			for _, p := range ps {
				link := filepath.Join(dir, p.Name)
				action, err := installLink(link, self, force, remove)
				if err != nil {
					failed = append(failed, err)
					action = "error: " + err.Error()
				}
				results = append(results, result{p.Name, link, action})
			}
			if g.json() {
				if err := printJSON(g.stdout, results); err != nil {
					return err
				}
			} else {
				t := newTable("COMMAND", "LINK", "RESULT")
				for _, r := range results {
					t.add(r.Name, r.Path, r.Action)
				}
				if err := t.print(g.stdout); err != nil {
					return err
				}
			}
			if len(failed) > 0 {
				return &silentExit{status: api.ExitFailure}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory for the links (default: the directory of this binary)")
	f.BoolVar(&force, "force", false, "replace existing files of the same names")
	f.BoolVar(&remove, "remove", false, "remove the links instead of creating them")
	return cmd
}

// installLink makes link point to target (or removes it) and says what it did.
func installLink(link, target string, force, remove bool) (string, error) {
	// A link that leads to the binary counts, however it is written
	// (relative, or through other links).
	_, err := os.Readlink(link)
	resolved, rerr := filepath.EvalSymlinks(link)
	pointsHere := err == nil && rerr == nil && resolved == target
	exists := true
	if _, lerr := os.Lstat(link); errors.Is(lerr, fs.ErrNotExist) {
		exists = false
	}
	switch {
	case remove && pointsHere:
		if err := os.Remove(link); err != nil {
			return "", err
		}
		return "removed", nil
	case remove && exists:
		return "kept (not a link to this binary)", nil
	case remove:
		return "absent", nil
	case pointsHere:
		return "exists", nil
	case exists && !force:
		return "", fmt.Errorf("%s exists and is not a link to %s (use --force to replace it)", link, target)
	case exists:
		if err := os.Remove(link); err != nil {
			return "", err
		}
	}
	if err := os.Symlink(target, link); err != nil {
		return "", err
	}
	return "created", nil
}
