package compat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
)

// Ipmpstat is ipmpstat(8) over steady's multipathing state: -g groups,
// -i interfaces, -a addresses, -t probe targets, -p probes (until
// interrupted); -n numeric, -o fields, -P parsable. Exit status 0, 1 on
// failure, 2 on a usage error.
var Ipmpstat = Personality{
	Name:    "ipmpstat",
	Summary: "show IP multipathing groups, interfaces, addresses, targets and probes (Solaris ipmpstat)",
	Main:    ipmpstatMain,
}

// IfMpadm is if_mpadm(8): -d IF takes an interface offline in its group,
// -r IF puts it back.
var IfMpadm = Personality{
	Name:    "if_mpadm",
	Summary: "take an interface of an IP multipathing group offline or back (Solaris if_mpadm)",
	Main:    ifMpadmMain,
}

const ipmpstatUsage = `usage: ipmpstat [-n] [-o field[,...] [-P]] -a|-g|-i|-p|-t`

// IPMPFields are each mode's fields, in their default order.
var IPMPFields = map[byte][]string{
	'g': {"GROUP", "GROUPNAME", "STATE", "FDT", "INTERFACES"},
	'i': {"INTERFACE", "ACTIVE", "GROUP", "FLAGS", "LINK", "PROBE", "STATE"},
	'a': {"ADDRESS", "STATE", "GROUP", "INBOUND", "OUTBOUND"},
	't': {"INTERFACE", "MODE", "TESTADDR", "TARGETS"},
	'p': {"TIME", "INTERFACE", "PROBE", "NETRTT", "RTT", "RTTAVG", "TARGET"},
}

// fdtText is ipmpstat's FDT column: seconds with two decimals.
func fdtText(d api.Duration) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprintf("%.2fs", time.Duration(d).Seconds())
}

func msText(d api.Duration) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprintf("%.2fms", float64(time.Duration(d).Microseconds())/1000)
}

// IPMPRows are the rows of one mode, each a map of field to value ("" is
// empty, shown as "--").
func IPMPRows(st *api.IPMPStatus, mode byte) []map[string]string {
	var rows []map[string]string
	switch mode {
	case 'g':
		for _, g := range st.Groups {
			ifs := append([]string{}, g.Active...)
			for _, i := range g.Inactive {
				ifs = append(ifs, "("+i+")")
			}
			for _, i := range g.Unusable {
				ifs = append(ifs, "["+i+"]")
			}
			rows = append(rows, map[string]string{"GROUP": g.Name, "GROUPNAME": g.Name, "STATE": g.State,
				"FDT": fdtText(g.FDT), "INTERFACES": strings.Join(ifs, " ")})
		}
	case 'i':
		for _, i := range st.Interfaces {
			flags := []byte("-------")
			if i.Inactive {
				flags[0] = 'i'
			}
			if i.Standby {
				flags[1] = 's'
			}
			if !i.Present || i.Link == "down" {
				flags[5] = 'd'
			}
			if i.DuplicateMAC {
				flags[6] = 'h'
			}
			active := "no"
			if i.Active {
				active = "yes"
			}
			rows = append(rows, map[string]string{"INTERFACE": i.Name, "ACTIVE": active, "GROUP": i.Group, "FLAGS": string(flags),
				"LINK": i.Link, "PROBE": i.Probe, "STATE": i.State})
		}
	case 'a':
		for _, a := range st.Addresses {
			rows = append(rows, map[string]string{"ADDRESS": a.Address, "STATE": a.State, "GROUP": a.Group,
				"INBOUND": a.Inbound, "OUTBOUND": strings.Join(a.Outbound, " ")})
		}
	case 't':
		for _, t := range st.Targets {
			rows = append(rows, map[string]string{"INTERFACE": t.Interface, "MODE": t.Mode, "TESTADDR": t.TestAddr,
				"TARGETS": strings.Join(t.Targets, " ")})
		}
	}
	return rows
}

// PrintIPMP writes rows in ipmpstat's human form (aligned, "--" for
// empty) or its parsable one (':' separated, ':' and '\' escaped).
func PrintIPMP(w io.Writer, fields []string, rows []map[string]string, parsable bool) error {
	if parsable {
		for _, r := range rows {
			cells := make([]string, len(fields))
			for i, f := range fields {
				cells[i] = strings.NewReplacer(`\`, `\\`, ":", `\:`).Replace(r[f])
			}
			fmt.Fprintln(w, strings.Join(cells, ":"))
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(fields, "\t"))
	for _, r := range rows {
		cells := make([]string, len(fields))
		for i, f := range fields {
			cells[i] = r[f]
			if cells[i] == "" {
				cells[i] = "--"
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// SelectFields reads -o: a comma-separated list of a mode's fields, or
// "all".
func SelectFields(mode byte, spec string) ([]string, error) {
	all := IPMPFields[mode]
	if spec == "" {
		if mode == 'p' {
			return []string{"TIME", "INTERFACE", "PROBE", "NETRTT", "RTT", "TARGET"}, nil
		}
		return all, nil
	}
	if strings.EqualFold(spec, "all") {
		return all, nil
	}
	var out []string
	for _, f := range strings.Split(spec, ",") {
		f = strings.ToUpper(strings.TrimSpace(f))
		ok := false
		for _, a := range all {
			if a == f {
				ok = true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown output field %q (fields: %s)", f, strings.Join(all, ","))
		}
		out = append(out, f)
	}
	return out, nil
}

type ipmpUsage struct{ msg string }

func (e *ipmpUsage) Error() string { return e.msg }

func ipmpstatMain(ctx context.Context, args []string, io Stdio) int {
	err := ipmpstat(ctx, args, io)
	var ue *ipmpUsage
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(io.Err, "ipmpstat: "+ue.msg)
		fmt.Fprintln(io.Err, ipmpstatUsage)
		return 2
	}
	fmt.Fprintln(io.Err, "ipmpstat: "+err.Error())
	return 1
}

func ipmpstat(ctx context.Context, args []string, io Stdio) error {
	opts, operands, err := getopt(args, "nagiptPo:")
	if err != nil {
		return &ipmpUsage{err.Error()}
	}
	if len(operands) > 0 {
		return &ipmpUsage{"unexpected operand " + operands[0]}
	}
	var mode byte
	var fieldSpec string
	var parsable bool
	for _, o := range opts {
		switch o.flag {
		case 'a', 'g', 'i', 'p', 't':
			if mode != 0 && mode != byte(o.flag) {
				return &ipmpUsage{"only one of -a, -g, -i, -p and -t may be given"}
			}
			mode = byte(o.flag)
		case 'o':
			fieldSpec = o.val
		case 'P':
			parsable = true
		}
	}
	if mode == 0 {
		return &ipmpUsage{"one of -a, -g, -i, -p and -t is needed"}
	}
	if parsable && fieldSpec == "" {
		return &ipmpUsage{"-P needs -o"}
	}
	fields, err := SelectFields(mode, fieldSpec)
	if err != nil {
		return &ipmpUsage{err.Error()}
	}
	c := client.New(client.Socket(""))
	if mode == 'p' {
		return FollowProbes(ctx, c, io.Out, fields, parsable)
	}
	st, err := c.IPMP(ctx)
	if err != nil {
		return err
	}
	return PrintIPMP(io.Out, fields, IPMPRows(st, mode), parsable)
}

// FollowProbes prints probes as they are sent until ctx ends (^C), with
// times relative to the start, as ipmpstat -p.
func FollowProbes(ctx context.Context, c *client.Client, w io.Writer, fields []string, parsable bool) error {
	start := time.Now()
	since := start.Add(-time.Second)
	seen := map[string]bool{}
	avg := map[string]time.Duration{}
	widths := []int{10, 10, 6, 9, 9, 9}
	if !parsable {
		fmt.Fprintln(w, row(widths, fields))
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		ps, err := c.IPMPProbes(ctx, since)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, p := range ps {
			key := fmt.Sprintf("%s/%d/%s", p.Interface, p.Seq, p.Time.Format(time.RFC3339Nano))
			if seen[key] {
				continue
			}
			seen[key] = true
			r := map[string]string{"TIME": fmt.Sprintf("%.2fs", p.Time.Sub(start).Seconds()), "INTERFACE": p.Interface,
				"PROBE": fmt.Sprint(p.Seq), "TARGET": p.Target, "NETRTT": msText(p.RTT), "RTT": msText(p.RTT)}
			if !p.Lost {
				a := avg[p.Interface+p.Target]
				if a == 0 {
					a = time.Duration(p.RTT)
				} else {
					a += (time.Duration(p.RTT) - a) / 8
				}
				avg[p.Interface+p.Target] = a
				r["RTTAVG"] = msText(api.Duration(a))
			}
			if parsable {
				PrintIPMP(w, fields, []map[string]string{r}, true)
				continue
			}
			cells := make([]string, len(fields))
			for i, f := range fields {
				cells[i] = r[f]
				if cells[i] == "" {
					cells[i] = "--"
				}
			}
			fmt.Fprintln(w, row(widths, cells))
			if p.Time.After(since) {
				since = p.Time
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func row(widths []int, cells []string) string {
	var b strings.Builder
	for i, c := range cells {
		if i == len(cells)-1 || i >= len(widths) {
			b.WriteString(c)
			break
		}
		b.WriteString(c)
		if pad := widths[i] - len(c); pad > 0 {
			b.WriteString(strings.Repeat(" ", pad))
		}
		b.WriteString("  ")
	}
	return b.String()
}

func ifMpadmMain(ctx context.Context, args []string, io Stdio) int {
	opts, operands, err := getopt(args, "d:r:")
	usage := func(msg string) int {
		fmt.Fprintln(io.Err, "if_mpadm: "+msg)
		fmt.Fprintln(io.Err, "usage: if_mpadm -d | -r <interface_name>")
		return 2
	}
	if err != nil {
		return usage(err.Error())
	}
	if len(opts) != 1 || len(operands) > 0 {
		return usage("exactly one of -d IF and -r IF is needed")
	}
	c := client.New(client.Socket(""))
	undo := opts[0].flag == 'r'
	if _, err := c.IPMPOffline(ctx, opts[0].val, false, undo); err != nil {
		verb := "offline"
		if undo {
			verb = "undo-offline"
		}
		var ae *api.Error
		msg := err.Error()
		if errors.As(err, &ae) {
			msg = ae.Message
			// The daemon says "cannot offline eth0: why"; if_mpadm says
			// "cannot offline: why".
			if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "cannot ") {
				msg = rest
			}
		}
		fmt.Fprintf(io.Err, "if_mpadm: cannot %s: %s\n", verb, msg)
		return 1
	}
	return 0
}
