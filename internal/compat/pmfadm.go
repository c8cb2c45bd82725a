package compat

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
	"github.com/steady-ha/steady/internal/pmf"
)

// Pmfadm is the pmfadm(1M) personality. Exit status: 0 on success, 1 on
// any error (an unknown tag, a refused request, a -w timeout, -q of a tag
// that is not registered, and usage errors), as pmfadm did.
var Pmfadm = Personality{
	Name:    "pmfadm",
	Summary: "process monitor facility administration (Sun Cluster pmfadm)",
	Main:    pmfadmMain,
}

const pmfadmUsage = `usage:
  pmfadm -c nametag [-a action] [[-e ENV=value]... | -E] [-n retries] [-t period] [-C level#] command [args...]
  pmfadm -k nametag [-w timeout] [signal]
  pmfadm -s nametag [-w timeout] [signal]
  pmfadm -m nametag [-n retries] [-t period]
  pmfadm -l nametag
  pmfadm -L
  pmfadm -q nametag
(period in minutes, -1 for no limit; retries -1 for no limit; timeout in seconds)`

// getopt parses POSIX-style options: flags in spec followed by ':' take a
// value (attached or as the next argument); parsing stops at the first
// operand or at "--".
func getopt(args []string, spec string) (opts []opt, operands []string, err error) {
	i := 0
	for i < len(args) {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			k := strings.IndexByte(spec, c)
			if k < 0 || c == ':' {
				return nil, nil, fmt.Errorf("illegal option -- %c", c)
			}
			if k+1 < len(spec) && spec[k+1] == ':' {
				val := a[j+1:]
				if val == "" {
					i++
					if i >= len(args) {
						return nil, nil, fmt.Errorf("option requires an argument -- %c", c)
					}
					val = args[i]
				}
				opts = append(opts, opt{c, val})
				break
			}
			opts = append(opts, opt{c, ""})
		}
		i++
	}
	return opts, args[i:], nil
}

type opt struct {
	flag byte
	val  string
}

func pmfadmMain(ctx context.Context, args []string, io Stdio) int {
	err := pmfadm(ctx, args, io)
	if err == nil {
		return 0
	}
	var quiet *quietFailure
	if !errors.As(err, &quiet) {
		fmt.Fprintln(io.Err, "pmfadm: "+err.Error())
	}
	var ue *usageErr
	if errors.As(err, &ue) {
		fmt.Fprintln(io.Err, pmfadmUsage)
	}
	return 1
}

type usageErr struct{ msg string }

func (e *usageErr) Error() string { return e.msg }

func usage(format string, args ...any) error { return &usageErr{fmt.Sprintf(format, args...)} }

// quietFailure is a non-zero exit without a message (pmfadm -q).
type quietFailure struct{}

func (*quietFailure) Error() string { return "" }

func pmfadm(ctx context.Context, args []string, io Stdio) error {
	opts, operands, err := getopt(args, "c:k:s:m:l:Lq:a:e:En:t:C:w:h:")
	if err != nil {
		return usage("%v", err)
	}
	var (
		mode               byte
		tagName            string
		action             string
		env                []string
		passEnv            bool
		retries, period    *int
		level, waitSeconds *int
	)
	intOpt := func(o opt, min int, what string) (*int, error) {
		n, err := strconv.Atoi(o.val)
		if err != nil || n < min {
			return nil, usage("-%c %q: %s", o.flag, o.val, what)
		}
		return &n, nil
	}
	for _, o := range opts {
		switch o.flag {
		case 'c', 'k', 's', 'm', 'l', 'q', 'L':
			if mode != 0 {
				return usage("give only one of -c, -k, -s, -m, -l, -L, -q")
			}
			mode, tagName = o.flag, o.val
		case 'a':
			action = o.val
		case 'e':
			env = append(env, o.val)
		case 'E':
			passEnv = true
		case 'n':
			if retries, err = intOpt(o, -1, "retries must be -1 (no limit) or a count"); err != nil {
				return err
			}
		case 't':
			if period, err = intOpt(o, -1, "the period is in minutes: -1 (no limit) or a positive number"); err != nil {
				return err
			}
			if *period == 0 {
				return usage("-t 0: the period is in minutes: -1 (no limit) or a positive number")
			}
		case 'C':
			if level, err = intOpt(o, 0, "the child monitoring level is a number from 0"); err != nil {
				return err
			}
		case 'w':
			if waitSeconds, err = intOpt(o, 0, "the timeout is a number of seconds"); err != nil {
				return err
			}
		case 'h':
			return errors.New("-h: remote hosts are not supported; run pmfadm on that node")
		}
	}
	if mode == 0 {
		return usage("give one of -c, -k, -s, -m, -l, -L, -q")
	}
	if len(env) > 0 && passEnv {
		return usage("-e and -E cannot be used together")
	}
	only := func(allowed string) error {
		for _, o := range opts {
			if o.flag != mode && !strings.ContainsRune(allowed, rune(o.flag)) {
				return usage("-%c cannot be used with -%c", o.flag, mode)
			}
		}
		return nil
	}
	c := client.New(client.Socket(""))
	switch mode {
	case 'c':
		if err := only("aeEntC"); err != nil {
			return err
		}
		if len(operands) == 0 {
			return usage("-c needs a command")
		}
		o := PMFStartOptions{Env: env, PassEnv: passEnv, Level: level, Action: action}
		if retries != nil {
			o.Retries = *retries
		}
		if period != nil && *period > 0 {
			o.Period = time.Duration(*period) * time.Minute
		}
		req, err := NewPMFStart(tagName, operands, o)
		if err != nil {
			return err
		}
		_, err = c.PMFStart(ctx, req)
		return err
	case 'k', 's':
		if err := only("w"); err != nil {
			return err
		}
		if len(operands) > 1 {
			return usage("too many operands: %q", operands)
		}
		req := api.PMFSignalRequest{}
		if len(operands) == 1 {
			if _, err := pmf.ParseSignal(operands[0]); err != nil {
				return err
			}
			req.Signal = operands[0]
		}
		if waitSeconds != nil {
			req.Wait = api.Duration(time.Duration(*waitSeconds) * time.Second)
		}
		if mode == 's' {
			return c.PMFStop(ctx, tagName, req)
		}
		return c.PMFKill(ctx, tagName, req)
	case 'm':
		if err := only("nt"); err != nil {
			return err
		}
		if len(operands) > 0 {
			return usage("-m takes no operands")
		}
		if retries == nil && period == nil {
			return usage("-m needs -n, -t or both")
		}
		req := api.PMFModifyRequest{Retries: retries}
		if period != nil {
			p := api.Duration(0)
			if *period > 0 {
				p = api.Duration(time.Duration(*period) * time.Minute)
			}
			req.Period = &p
		}
		_, err := c.PMFModify(ctx, tagName, req)
		return err
	case 'l':
		if err := only(""); err != nil {
			return err
		}
		t, err := c.PMFTag(ctx, tagName)
		if err != nil {
			return err
		}
		_, err = fmt.Fprint(io.Out, PmfadmListing(t))
		return err
	case 'L':
		if err := only(""); err != nil {
			return err
		}
		tags, err := c.PMFTags(ctx)
		if err != nil {
			return err
		}
		for _, t := range tags {
			fmt.Fprintln(io.Out, t.Tag)
		}
		return nil
	case 'q':
		if err := only(""); err != nil {
			return err
		}
		_, err := c.PMFTag(ctx, tagName)
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code == api.CodeNotFound {
			return &quietFailure{}
		}
		return err
	}
	return nil
}

// PmfadmListing renders a tag as pmfadm -l does: the command line that
// would start it again, then its state.
func PmfadmListing(t api.PMFTag) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pmfadm -c %s", t.Tag)
	if len(t.Action) > 0 {
		fmt.Fprintf(&b, " -a %s", shellQuote(strings.Join(t.Action, " ")))
	}
	fmt.Fprintf(&b, " -n %d", t.Retries)
	if p := time.Duration(t.Period); p > 0 {
		fmt.Fprintf(&b, " -t %d", int((p+time.Minute-1)/time.Minute))
	} else {
		b.WriteString(" -t -1")
	}
	if t.Level >= 0 {
		fmt.Fprintf(&b, " -C %d", t.Level)
	}
	for _, a := range t.Command {
		b.WriteString(" " + shellQuote(a))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "\tretries: %d\n", t.RetriesUsed)
	fmt.Fprintf(&b, "\towner: %s\n", t.Owner)
	if t.Level < 0 {
		b.WriteString("\tmonitor children: all\n")
	} else {
		fmt.Fprintf(&b, "\tmonitor children: level %d\n", t.Level)
	}
	pids := make([]string, len(t.PIDs))
	for i, p := range t.PIDs {
		pids[i] = strconv.Itoa(p)
	}
	fmt.Fprintf(&b, "\tpids: %s\n", strings.Join(pids, " "))
	fmt.Fprintf(&b, "\tstate: %s\n", t.State)
	if t.LastExit != "" {
		fmt.Fprintf(&b, "\tlast exit: %s\n", t.LastExit)
	}
	b.WriteString("\tenvironment:\n")
	for _, e := range t.Env {
		fmt.Fprintf(&b, "\t\t%s\n", e)
	}
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`;&|<>()*?[]{}!#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
