package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/compat"
	"github.com/steady-ha/steady/internal/config"
)

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", name))
	if err != nil {
		t.Fatalf("documentation page: %v", err)
	}
	return string(b)
}

// docPage is the page that documents cmd.
func docPage(cmd *cobra.Command) string {
	parts := strings.Fields(cmd.CommandPath())
	switch {
	case len(parts) == 1:
		return "steady.md"
	case parts[1] == "version":
		return "steady-status.md"
	case parts[1] == "pmf", parts[1] == "dr", parts[1] == "rcm", parts[1] == "cluster":
		return parts[1] + ".md"
	}
	return "steady-" + parts[1] + ".md"
}

// TestEveryCommandAndFlagIsDocumented keeps docs/ in step with the command
// tree: each command appears on its page with each of its flags.
func TestEveryCommandAndFlagIsDocumented(t *testing.T) {
	root := newRoot(compat.NewRegistry(), nil, io.Discard, io.Discard)
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		if cmd.Name() == "help" || cmd.Name() == "completion" || cmd.Hidden {
			return
		}
		page := readDoc(t, docPage(cmd))
		rest := strings.TrimPrefix(cmd.CommandPath(), "steady")
		if !strings.Contains(page, "steady"+rest) && !strings.Contains(page, "### "+cmd.Name()) {
			t.Errorf("docs/%s does not mention %q", docPage(cmd), cmd.CommandPath())
		}
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			if !strings.Contains(page, "--"+f.Name) {
				t.Errorf("docs/%s does not document %s --%s", docPage(cmd), cmd.CommandPath(), f.Name)
			}
		})
		if cmd.Short == "" || (cmd.HasParent() && cmd.Long == "" && len(cmd.Commands()) == 0 && cmd.Name() != "list") {
			t.Errorf("%s has no help text", cmd.CommandPath())
		}
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func TestExitStatusTablesMatchCode(t *testing.T) {
	page := readDoc(t, "steady.md")
	for _, r := range api.ExitStatuses() {
		row := fmt.Sprintf("| %d | %s |", r.Status, r.Meaning)
		if !strings.Contains(page, row) {
			t.Errorf("docs/steady.md lacks the row %q", row)
		}
	}
	apiPage := readDoc(t, "api.md")
	for _, r := range api.CodeTable() {
		row := fmt.Sprintf("| `%s` | %d | %d |", r.Code, r.HTTPStatus, r.ExitStatus)
		if !strings.Contains(apiPage, row) {
			t.Errorf("docs/api.md lacks the row %q", row)
		}
	}
	if help := exitStatusText(); !strings.Contains(help, "8  refused") {
		t.Errorf("steady --help exit statuses: %s", help)
	}
}

func TestEveryConfigKeyIsDocumented(t *testing.T) {
	page := readDoc(t, "steady.yaml.md")
	for _, key := range configKeys(reflect.TypeOf(config.Config{}), "") {
		if !strings.Contains(page, "| `"+key+"` |") {
			t.Errorf("docs/steady.yaml.md does not document %s", key)
		}
		last := key[strings.LastIndex(key, ".")+1:]
		if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(last) + `:`).MatchString(config.DefaultFile) {
			t.Errorf("the default configuration file lacks %s", key)
		}
	}
}

func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if f.Type.Kind() == reflect.Struct && f.Type.NumField() > 0 && f.Type.PkgPath() == t.PkgPath() {
			keys = append(keys, configKeys(f.Type, prefix+name+".")...)
			continue
		}
		keys = append(keys, prefix+name)
	}
	return keys
}
