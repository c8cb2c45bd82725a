package compat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
)

// Cfgadm is the cfgadm(1M) personality, over steady's attachment points.
// Exit status: 0 success, 1 failure, 2 not supported on the target, 3
// usage, as cfgadm's.
var Cfgadm = Personality{
	Name:    "cfgadm",
	Summary: "configuration administration of attachment points (Solaris cfgadm)",
	Main:    cfgadmMain,
}

const cfgadmUsage = `usage:
  cfgadm [-f] [-y|-n] [-v] [-o hardware_options] -c function ap_id...
  cfgadm [-f] [-y|-n] [-v] [-o hardware_options] -x hardware_function ap_id...
  cfgadm [-v] [-s listing_options] [-o hardware_options] [-a] [-l [ap_id|ap_type...]]
  cfgadm [-v] [-o hardware_options] -t ap_id...
  cfgadm [-v] [-o hardware_options] -h [ap_id|ap_type...]
functions: configure, unconfigure, connect, disconnect (insert and remove are not supported)
listing options: select=attr(value):..., match=exact|partial, sort=[-]field:..., cols=field:..., cols2=..., delim=..., noheadings
fields: ap_id physid r_state o_state condition type busy status_time status_time_p class info`

// cfgadm's exit statuses.
const (
	cfgaOK       = 0
	cfgaError    = 1
	cfgaNotSupp  = 2
	cfgaUsageErr = 3
)

type cfgaUsage struct{ msg string }

func (e *cfgaUsage) Error() string { return e.msg }

type cfgaNotSupported struct{ msg string }

func (e *cfgaNotSupported) Error() string { return e.msg }

func cfgadmMain(ctx context.Context, args []string, io Stdio) int {
	err := cfgadm(ctx, args, io)
	var ue *cfgaUsage
	var ns *cfgaNotSupported
	var ae *api.Error
	var sf *silentFailure
	switch {
	case err == nil:
		return cfgaOK
	case errors.As(err, &sf):
		if errors.As(sf.err, &ns) {
			return cfgaNotSupp
		}
		return cfgaError
	case errors.As(err, &ue):
		fmt.Fprintln(io.Err, "cfgadm: "+ue.msg)
		fmt.Fprintln(io.Err, cfgadmUsage)
		return cfgaUsageErr
	case errors.As(err, &ns):
		fmt.Fprintln(io.Err, "cfgadm: "+ns.msg)
		return cfgaNotSupp
	case errors.As(err, &ae) && ae.Code == api.CodeNotSupported:
		fmt.Fprintln(io.Err, "cfgadm: Operation not supported: "+ae.Message)
		return cfgaNotSupp
	}
	if err.Error() != "" {
		fmt.Fprintln(io.Err, "cfgadm: "+err.Error())
	}
	return cfgaError
}

func cfgadm(ctx context.Context, args []string, io Stdio) error {
	opts, operands, err := getopt(args, "fynvao:c:x:ls:th")
	if err != nil {
		return &cfgaUsage{err.Error()}
	}
	var (
		function, listOpts string
		force, yes, no     bool
		verbose, all       bool
		list, test, help   bool
		hwFunction, hwOpts string
	)
	for _, o := range opts {
		switch o.flag {
		case 'f':
			force = true
		case 'y':
			yes = true
		case 'n':
			no = true
		case 'v':
			verbose = true
		case 'a':
			all = true
		case 'o':
			hwOpts = o.val
		case 'c':
			function = o.val
		case 'x':
			hwFunction = o.val
		case 'l':
			list = true
		case 's':
			listOpts = o.val
		case 't':
			test = true
		case 'h':
			help = true
		}
	}
	modes := 0
	for _, b := range []bool{function != "", hwFunction != "", list || listOpts != "" || all, test, help} {
		if b {
			modes++
		}
	}
	switch {
	case modes > 1:
		return &cfgaUsage{"-c, -x, -l, -t and -h exclude each other"}
	case yes && no:
		return &cfgaUsage{"-y and -n exclude each other"}
	case help:
		fmt.Fprintln(io.Out, cfgadmUsage)
		return nil
	case hwOpts != "":
		return &cfgaNotSupported{fmt.Sprintf("Hardware specific options not supported: %s", hwOpts)}
	case hwFunction != "":
		return &cfgaNotSupported{fmt.Sprintf("Hardware specific function not supported: %s", hwFunction)}
	}
	c := client.New(client.Socket(""))
	if function != "" || test {
		if len(operands) == 0 {
			return &cfgaUsage{"no attachment point given"}
		}
		if test {
			function = "test"
		}
		return cfgadmChange(ctx, c, function, operands, force, yes, no, verbose, io)
	}
	lo, err := ParseListOpts(listOpts)
	if err != nil {
		return &cfgaUsage{err.Error()}
	}
	aps, err := c.DRList(ctx, false)
	if err != nil {
		return libError(err)
	}
	sel, err := SelectAPs(aps, operands, lo, all)
	if err != nil {
		return cfgaErr("Attachment point not found: %s", strings.TrimPrefix(err.Error(), errNoAP.Error()+": "))
	}
	return WriteAPs(io.Out, sel, lo, verbose)
}

// libError words an agent error as cfgadm's library messages do.
func libError(err error) error {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return cfgaErr("Library error: %v", err)
	}
	switch ae.Code {
	case api.CodeNotFound:
		return cfgaErr("Attachment point not found: %s", ae.Message)
	case api.CodeBusy:
		return cfgaErr("Attachment point is busy, try again: %s", ae.Message)
	case api.CodeRefused:
		return cfgaErr("Component system is busy, try again: %s", ae.Message)
	case api.CodeConflict:
		return cfgaErr("Insufficient condition: %s", ae.Message)
	case api.CodeUnauthorized:
		return cfgaErr("Insufficient privileges: %s", ae.Message)
	case api.CodeNotSupported:
		return ae
	case api.CodeInternal:
		if strings.Contains(ae.Message, "hardware specific failure") {
			return cfgaErr("Hardware specific failure: %s", strings.Replace(ae.Message, "hardware specific failure: ", "", 1))
		}
	}
	return cfgaErr("Library error: %s", ae.Message)
}

// confirm asks before a function that interrupts service: -y says yes,
// -n no, and without either the question goes to a terminal (no terminal
// is a no, as in cfgadm).
func confirm(in io.Reader, errw io.Writer, yes, no bool, question string) bool {
	switch {
	case yes:
		return true
	case no || !IsTerminal(in) || !IsTerminal(errw):
		return false
	}
	fmt.Fprintf(errw, "%s\nContinue (yes/no)? ", question)
	line, _ := bufio.NewReader(in).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}

func cfgadmChange(ctx context.Context, c *client.Client, function string, aps []string, force, yes, no, verbose bool, io Stdio) error {
	switch function {
	case "configure", "unconfigure", "connect", "disconnect", "test":
	case "insert", "remove":
		return &cfgaNotSupported{fmt.Sprintf("Operation not supported: %s (attachment points on Linux have no insert or remove step; use disconnect, then take the card out)", function)}
	default:
		return &cfgaUsage{fmt.Sprintf("unknown function %q", function)}
	}
	if function == "unconfigure" || function == "disconnect" {
		q := fmt.Sprintf("This operation will suspend activity on, and %s, the following: %s", function, strings.Join(aps, " "))
		if !confirm(io.In, io.Err, yes, no, q) {
			return cfgaErr("Operation cancelled: not confirmed (give -y to confirm without a terminal)")
		}
	}
	res, err := c.DR(ctx, api.DRRequest{Function: function, APs: aps, Force: force})
	if err != nil {
		return libError(err)
	}
	var last error
	for _, o := range res.Outcomes {
		if o.Error == nil {
			if verbose || function == "test" {
				fmt.Fprintf(io.Out, "%s: %s done; condition %s\n", o.AP.ID, function, o.AP.Condition)
			}
			continue
		}
		last = libError(o.Error)
		fmt.Fprintf(io.Err, "cfgadm: %v\n", last)
		if len(o.Answers) > 0 {
			WriteAnswers(io.Err, o.Answers)
		}
		if o.Restored != "" {
			fmt.Fprintf(io.Err, "restored: %s\n", o.Restored)
		}
		if o.Error.Code == api.CodeNotSupported {
			last = &cfgaNotSupported{o.Error.Message}
		}
	}
	if last != nil {
		return &silentFailure{last}
	}
	return nil
}

// silentFailure has been reported already; it only sets the exit status.
type silentFailure struct{ err error }

func (e *silentFailure) Error() string { return "" }
func (e *silentFailure) Unwrap() error { return e.err }

// cfgaMessage is an error worded as cfgadm's library words it (with a
// capital, unlike Go's errors).
type cfgaMessage struct{ msg string }

func (e *cfgaMessage) Error() string { return e.msg }

func cfgaErr(format string, args ...any) error {
	return &cfgaMessage{fmt.Sprintf(format, args...)}
}
