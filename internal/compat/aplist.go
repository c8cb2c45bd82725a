package compat

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/steady-ha/steady/api"
	"golang.org/x/sys/unix"
)

// ListOpts are cfgadm's listing options (-s), shared by "cfgadm -l" and
// "steady dr list".
type ListOpts struct {
	Select     []Selector
	Partial    bool // match=partial: a selector value matches a prefix
	Sort       []string
	Cols       []string
	Cols2      []string
	Delim      string
	NoHeadings bool
}

// Selector is one select=attr(value).
type Selector struct{ Attr, Value string }

// Fields are the listing fields and their headings.
var apFields = map[string]string{
	"ap_id": "Ap_Id", "physid": "Phys_Id", "r_state": "Receptacle", "o_state": "Occupant", "condition": "Condition",
	"type": "Type", "busy": "Busy", "status_time": "When", "status_time_p": "When", "class": "Class", "info": "Information",
}

// ParseListOpts reads a -s argument: comma-separated select=, match=,
// sort=, cols=, cols2=, delim= and noheadings; lists inside are
// colon-separated.
func ParseListOpts(s string) (ListOpts, error) {
	var o ListOpts
	if s == "" {
		return o, nil
	}
	for _, part := range splitSubopts(s) {
		key, val, has := strings.Cut(part, "=")
		need := func() error {
			if !has || val == "" {
				return fmt.Errorf("listing option %q needs a value", key)
			}
			return nil
		}
		switch key {
		case "select":
			if err := need(); err != nil {
				return o, err
			}
			for _, sel := range strings.Split(val, ":") {
				attr, rest, ok := strings.Cut(sel, "(")
				if !ok || !strings.HasSuffix(rest, ")") {
					return o, fmt.Errorf("select %q: write attr(value), e.g. class(cpu)", sel)
				}
				if attr != "ap_id" && attr != "class" && attr != "type" {
					return o, fmt.Errorf("select %q: the attribute is ap_id, class or type", sel)
				}
				o.Select = append(o.Select, Selector{attr, strings.TrimSuffix(rest, ")")})
			}
		case "match":
			switch val {
			case "exact":
			case "partial":
				o.Partial = true
			default:
				return o, fmt.Errorf("match=%q: use exact or partial", val)
			}
		case "sort", "cols", "cols2":
			if err := need(); err != nil {
				return o, err
			}
			var fs []string
			for _, f := range strings.Split(val, ":") {
				if _, ok := apFields[strings.TrimPrefix(f, "-")]; !ok || (key != "sort" && f[0] == '-') {
					return o, fmt.Errorf("%s: unknown field %q (fields: %s)", key, f, strings.Join(fieldNames(), " "))
				}
				fs = append(fs, f)
			}
			switch key {
			case "sort":
				o.Sort = fs
			case "cols":
				o.Cols = fs
			default:
				o.Cols2 = fs
			}
		case "delim":
			if err := need(); err != nil {
				return o, err
			}
			o.Delim = val
		case "noheadings":
			o.NoHeadings = true
		default:
			return o, fmt.Errorf("unknown listing option %q (select, match, sort, cols, cols2, delim, noheadings)", key)
		}
	}
	return o, nil
}

// splitSubopts splits on commas outside parentheses (a select value may
// hold anything but a parenthesis).
func splitSubopts(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func fieldNames() []string {
	out := make([]string, 0, len(apFields))
	for f := range apFields {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// Dynamic says whether an AP is listed only with -a: memory blocks, which
// number in the thousands and belong to the system board as a whole.
func Dynamic(ap api.AP) bool { return ap.Class == "memory" }

// SelectAPs keeps the APs named by operands (an AP id, or a class such
// as cpu) and by the selectors, and sorts them. An operand that matches
// nothing is an error naming it.
func SelectAPs(aps []api.AP, operands []string, o ListOpts, all bool) ([]api.AP, error) {
	var out []api.AP
	matched := make([]bool, len(operands))
	for _, ap := range aps {
		if len(operands) > 0 {
			hit := false
			for i, op := range operands {
				if ap.ID == op || ap.Class == op {
					hit, matched[i] = true, true
				}
			}
			if !hit {
				continue
			}
		} else if !all && Dynamic(ap) {
			continue
		}
		keep := true
		for _, s := range o.Select {
			v := field(ap, s.Attr)
			if v != s.Value && !(o.Partial && strings.HasPrefix(v, s.Value)) {
				keep = false
			}
		}
		if keep {
			out = append(out, ap)
		}
	}
	for i, ok := range matched {
		if !ok {
			return nil, fmt.Errorf("%w: %s", errNoAP, operands[i])
		}
	}
	if len(o.Sort) > 0 {
		sort.SliceStable(out, func(i, j int) bool {
			for _, f := range o.Sort {
				desc := strings.HasPrefix(f, "-")
				f = strings.TrimPrefix(f, "-")
				a, b := field(out[i], f), field(out[j], f)
				if a == b {
					continue
				}
				if f == "ap_id" {
					return naturalLess(a, b) != desc
				}
				return (a < b) != desc
			}
			return false
		})
	}
	return out, nil
}

var errNoAP = fmt.Errorf("attachment point not found")

// naturalLess orders cpu2 before cpu10.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		if unicode.IsDigit(rune(a[0])) && unicode.IsDigit(rune(b[0])) {
			i, j := digits(a), digits(b)
			x, _ := strconv.ParseUint(a[:i], 10, 64)
			y, _ := strconv.ParseUint(b[:j], 10, 64)
			if x != y {
				return x < y
			}
			a, b = a[i:], b[j:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digits(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

func field(ap api.AP, f string) string {
	switch f {
	case "ap_id":
		return ap.ID
	case "physid":
		return ap.PhysID
	case "r_state":
		return ap.Receptacle
	case "o_state":
		return ap.Occupant
	case "condition":
		return ap.Condition
	case "type":
		return ap.Type
	case "busy":
		return map[bool]string{true: "y", false: "n"}[ap.Busy]
	case "status_time":
		if ap.StatusTime.IsZero() {
			return "unavailable"
		}
		return ap.StatusTime.Local().Format("Jan _2 15:04")
	case "status_time_p":
		if ap.StatusTime.IsZero() {
			return ""
		}
		return ap.StatusTime.Local().Format("20060102150405")
	case "class":
		if ap.Class == "" {
			return "none"
		}
		return ap.Class
	case "info":
		return ap.Info
	}
	return ""
}

// WriteAPs prints the APs in cfgadm's layout: the columns of cols (by
// default ap_id, r_state, o_state, condition, and info with verbose), and
// with verbose a second line of cols2 (status_time, type, busy, physid)
// under each. Columns line up unless a delimiter is given.
func WriteAPs(w io.Writer, aps []api.AP, o ListOpts, verbose bool) error {
	cols, cols2 := o.Cols, o.Cols2
	if cols == nil {
		cols = []string{"ap_id", "r_state", "o_state", "condition"}
		if verbose {
			cols = append(cols, "info")
		}
	}
	if cols2 == nil && verbose {
		cols2 = []string{"status_time", "type", "busy", "physid"}
	}
	line := func(fs []string, ap *api.AP) []string {
		out := make([]string, len(fs))
		for i, f := range fs {
			if ap == nil {
				out[i] = apFields[f]
			} else {
				out[i] = field(*ap, f)
			}
		}
		return out
	}
	var rows1, rows2 [][]string
	if !o.NoHeadings {
		rows1 = append(rows1, line(cols, nil))
		if len(cols2) > 0 {
			rows2 = append(rows2, line(cols2, nil))
		}
	}
	for i := range aps {
		rows1 = append(rows1, line(cols, &aps[i]))
		if len(cols2) > 0 {
			rows2 = append(rows2, line(cols2, &aps[i]))
		}
	}
	f1, f2 := aligned(rows1, o.Delim), aligned(rows2, o.Delim)
	var b strings.Builder
	for i := range f1 {
		b.WriteString(f1[i])
		b.WriteByte('\n')
		if len(cols2) > 0 {
			b.WriteString(f2[i])
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// aligned pads every column but the last to its widest cell, or joins
// with delim when one is given.
func aligned(rows [][]string, delim string) []string {
	out := make([]string, len(rows))
	if delim != "" {
		for i, r := range rows {
			out[i] = strings.Join(r, delim)
		}
		return out
	}
	var width []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for i, r := range rows {
		var b strings.Builder
		for j, c := range r {
			b.WriteString(c)
			if j < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[j]-len([]rune(c))+2))
			}
		}
		out[i] = strings.TrimRight(b.String(), " ")
	}
	return out
}

// WriteAnswers prints the "Resource / Information" table of a refused or
// dry-run operation: one row per client answer.
func WriteAnswers(w io.Writer, as []api.RCMAnswer) error {
	rows := [][]string{{"Resource", "Client", "Information"}}
	for _, a := range as {
		text := a.Info
		if a.Error != "" {
			text = a.Error
			if a.Info != "" && !strings.Contains(a.Error, a.Info) {
				text += " [" + a.Info + "]"
			}
		}
		rows = append(rows, []string{a.Resource, a.Client, text})
	}
	lines := aligned(rows, "")
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// IsTerminal says whether f is a terminal: confirmations are asked only
// there.
func IsTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(file.Fd()), unix.TCGETS)
	return err == nil
}
