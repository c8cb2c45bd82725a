package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/steady-ha/steady/api"
)

// printJSON writes v as indented JSON, the -o json form of every command.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table collects rows and prints them with aligned columns.
type table struct {
	header []string
	rows   [][]string
}

func newTable(header ...string) *table { return &table{header: header} }

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// fixedRow formats cells into columns of the given widths, for live
// output where later rows cannot realign earlier ones. The last column
// takes the rest of the line.
func fixedRow(widths []int, cells ...string) string {
	var b strings.Builder
	for i, c := range cells {
		if i == len(cells)-1 || i >= len(widths) {
			b.WriteString(c)
			break
		}
		c = ellipsis(c, widths[i])
		b.WriteString(c)
		b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
	}
	return strings.TrimRight(b.String(), " ")
}

func ellipsis(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// attrsText renders attributes as name=value pairs in name order, values
// quoted when they contain spaces.
func attrsText(a api.Attrs) string {
	parts := make([]string, 0, len(a))
	for _, k := range a.Names() {
		v := a[k].Display()
		if v == "" || strings.ContainsAny(v, " \t\"\n\r") {
			v = fmt.Sprintf("%q", v)
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}

func localTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05.000") }

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// jsonLine renders v as one line of JSON (JSON lines output).
func jsonLine(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
