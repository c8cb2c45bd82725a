package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/api/client"
)

func newEventsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List, watch, post and subscribe to system events",
		Long: `Events are steady's system events, in the manner of Solaris syseventd: each has
a class and subclass (EC_dev / change), a publisher, the node, a time, typed
attributes and a sequence number that this node never reuses.

Every event goes to the node's journal, which survives restarts and keeps
events up to the size and age set under events: in the configuration.
Subscribers are scripts run for each matching event, with macros such as
$class or ${dr_ap_id} in their arguments.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newEventsListCmd(g), newEventsWatchCmd(g), newEventsPostCmd(g), newSubscribeCmd(g))
	return cmd
}

type eventFlags struct {
	class, subclass string
	since           uint64
	last, limit     int
}

func (f *eventFlags) register(cmd *cobra.Command, lastDefault int) {
	fl := cmd.Flags()
	fl.StringVar(&f.class, "class", "", "only events of this class, e.g. EC_dev")
	fl.StringVar(&f.subclass, "subclass", "", "only events of this subclass")
	fl.Uint64Var(&f.since, "since", 0, "events after this sequence number")
	fl.IntVar(&f.last, "last", lastDefault, "the newest N matching events")
}

func (f *eventFlags) query(cmd *cobra.Command) (client.EventQuery, error) {
	q := client.EventQuery{Class: f.class, Subclass: f.subclass, Limit: f.limit}
	sinceSet := cmd.Flags().Changed("since")
	lastSet := cmd.Flags().Changed("last")
	switch {
	case sinceSet && lastSet:
		return q, usagef(cmd, "give --since or --last, not both")
	case sinceSet:
		q.Since, q.HasSince = f.since, true
	case f.last < 0 || f.last > 10000:
		return q, usagef(cmd, "--last %d: give a number from 0 to 10000", f.last)
	default:
		q.Last = f.last
	}
	return q, nil
}

func newEventsListCmd(g *globals) *cobra.Command {
	var f eventFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List events from the journal",
		Long: `List events from the node's journal, oldest first: the newest 50 by default,
the newest N with --last N, or those after a sequence number with --since
(up to --limit at a time).`,
		Example: `  steady events list --class EC_dev
  steady events list --since 1200 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := f.query(cmd)
			if err != nil {
				return err
			}
			if f.limit < 1 || f.limit > 10000 {
				return usagef(cmd, "--limit %d: give a number from 1 to 10000", f.limit)
			}
			q.Limit = f.limit
			list, err := g.client().Events(cmd.Context(), q)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, list)
			}
			if q.HasSince && q.Since+1 < list.FirstAvailable {
				fmt.Fprintf(g.stderr, "note: events up to %d were removed by journal retention\n", list.FirstAvailable-1)
			}
			t := newTable("SEQ", "TIME", "CLASS", "SUBCLASS", "PUBLISHER", "ATTRIBUTES")
			for _, ev := range list.Events {
				t.add(strconv.FormatUint(ev.Seq, 10), localTime(ev.Time), ev.Class, ev.Subclass, ev.Publisher, attrsText(ev.Attrs))
			}
			return t.print(g.stdout)
		},
	}
	f.register(cmd, 50)
	cmd.Flags().IntVar(&f.limit, "limit", 1000, "with --since, at most this many events")
	return cmd
}

// watchWidths are the column widths of the live table.
var watchWidths = []int{8, 12, 14, 24, 16}

func newEventsWatchCmd(g *globals) *cobra.Command {
	var f eventFlags
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Show events as they are published",
		Long: `Show events as they are published, as a live table, or as JSON lines (one
event per line) with -o json. Starts with new events; --last N first shows
the newest N, --since N replays from a sequence number. Stops on Ctrl-C.`,
		Example: `  steady events watch --class EC_dev
  steady events watch -o json | jq .attrs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := f.query(cmd)
			if err != nil {
				return err
			}
			stream, err := g.client().FollowEvents(cmd.Context(), q)
			if err != nil {
				return err
			}
			defer stream.Close()
			if !g.json() {
				fmt.Fprintln(g.stdout, fixedRow(watchWidths, "SEQ", "TIME", "CLASS", "SUBCLASS", "PUBLISHER", "ATTRIBUTES"))
			}
			for {
				ev, err := stream.Next()
				var gap *client.Gap
				switch {
				case errors.As(err, &gap):
					fmt.Fprintf(g.stderr, "note: %v\n", gap)
					continue
				case errors.Is(err, io.EOF):
					if cmd.Context().Err() != nil {
						return nil // interrupted
					}
					return &api.Error{Code: api.CodeUnavailable, Message: "the agent ended the event stream (it is stopping)"}
				case err != nil:
					return err
				}
				if g.json() {
					line, _ := jsonLine(ev)
					fmt.Fprintln(g.stdout, line)
					continue
				}
				fmt.Fprintln(g.stdout, fixedRow(watchWidths, strconv.FormatUint(ev.Seq, 10), ev.Time.Local().Format("15:04:05.000"),
					ev.Class, ev.Subclass, ev.Publisher, attrsText(ev.Attrs)))
			}
		},
	}
	f.register(cmd, 0)
	return cmd
}

func newEventsPostCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "post CLASS SUBCLASS [NAME=VALUE | NAME:TYPE=VALUE]...",
		Short: "Publish an event",
		Long: `Publish an event with the given class, subclass and attributes, as the calling
user (publisher "user:NAME"). It returns once the event is on disk and prints
its sequence number.

An attribute is NAME=VALUE for a string, or NAME:TYPE=VALUE with TYPE one of
string, int64, uint64, bool, time (RFC 3339), string_array or int64_array
(arrays comma-separated).`,
		Example: `  steady events post EC_test ESC_hello who=me count:int64=3 tags:string_array=a,b`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.PublishRequest{Class: args[0], Subclass: args[1], Attrs: api.Attrs{}}
			for _, a := range args[2:] {
				name, v, err := parseAttr(a)
				if err != nil {
					return usagef(cmd, "%v", err)
				}
				if _, dup := req.Attrs[name]; dup {
					return usagef(cmd, "attribute %q given twice", name)
				}
				req.Attrs[name] = v
			}
			if err := req.Validate(); err != nil {
				return usagef(cmd, "%v", err)
			}
			seq, err := g.client().PublishEvent(cmd.Context(), req)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, api.PublishResponse{Seq: seq})
			}
			_, err = fmt.Fprintln(g.stdout, seq)
			return err
		},
	}
}

// parseAttr reads NAME=VALUE or NAME:TYPE=VALUE.
func parseAttr(s string) (string, api.Value, error) {
	lhs, value, ok := strings.Cut(s, "=")
	if !ok {
		return "", api.Value{}, fmt.Errorf("attribute %q: write NAME=VALUE or NAME:TYPE=VALUE", s)
	}
	name, typ, typed := strings.Cut(lhs, ":")
	if !typed {
		typ = string(api.TypeString)
	}
	if !api.ValidName(name) {
		return "", api.Value{}, fmt.Errorf("attribute name %q is not valid (a letter or _, then letters, digits, _ . -)", name)
	}
	v, err := api.ParseValue(api.Type(typ), value)
	if err != nil {
		return "", api.Value{}, fmt.Errorf("attribute %s: %v", name, err)
	}
	return name, v, nil
}

func newSubscribeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "subscribe",
		Short: "Manage script subscribers (syseventadm)",
		Long: `Script subscribers run a command for each matching event, like syseventadm's
entries: in order, at least once, as a given user or as the owner of the
script file. A failed run is retried with backoff; after the retries the event
is skipped for that subscriber and an EC_steady/ESC_subscriber_failed event
says so. A run that exceeds its timeout is killed with its whole process group.
A slow subscriber never delays other subscribers or publishers.

In the arguments, these macros are replaced from the event: $class $subclass
$publisher $vendor $node $sequence $timestamp and any attribute as $name or
${name}; \$ is a literal dollar sign. An event that lacks an attribute named
by a macro does not run the command; an EC_steady/ESC_subscriber_error event
says so. The event is also given as JSON on standard input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newSubscribeAddCmd(g), newSubscribeListCmd(g), newSubscribeRemoveCmd(g))
	return cmd
}

func newSubscribeAddCmd(g *globals) *cobra.Command {
	var (
		req     api.SubscriberRequest
		timeout time.Duration
		retries int
	)
	cmd := &cobra.Command{
		Use:   "add --class CLASS [--subclass SUBCLASS] [--user USER] PATH [ARG]...",
		Short: "Add a script subscriber",
		Long: `Add a script subscriber for events of CLASS (and SUBCLASS when given). PATH
must be an absolute path to an executable that is not writable by group or
others; it runs as USER, or as the owner of the file. The subscriber receives
events published from now on. Prints the subscriber's id.`,
		Example: `  steady events subscribe add --class EC_dev --subclass add \
      /usr/local/lib/steady/on-device-add '$devpath' '${subsystem}'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Class == "" {
				return usagef(cmd, "--class is required")
			}
			req.Path, req.Args = args[0], args[1:]
			req.Timeout = api.Duration(timeout)
			if cmd.Flags().Changed("retries") {
				req.Retries = &retries
			}
			sub, err := g.client().AddSubscriber(cmd.Context(), req)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, sub)
			}
			_, err = fmt.Fprintln(g.stdout, sub.ID)
			return err
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // flags after PATH belong to the script
	f.StringVar(&req.Class, "class", "", "event class to subscribe to (required)")
	f.StringVar(&req.Subclass, "subclass", "", "event subclass (default: every subclass)")
	f.StringVar(&req.User, "user", "", "run as this user (default: the owner of PATH)")
	f.DurationVar(&timeout, "timeout", 0, "kill a run after this long (default: events.subscriber_timeout)")
	f.IntVar(&retries, "retries", 0, "retries of a failed run (default: events.subscriber_retries)")
	return cmd
}

func newSubscribeListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List script subscribers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			subs, err := g.client().Subscribers(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(g.stdout, subs)
			}
			t := newTable("ID", "CLASS", "SUBCLASS", "USER", "COMMAND", "DELIVERED", "FAILURES", "LAST ERROR")
			for _, s := range subs {
				sc, user := s.Subclass, s.User
				if sc == "" {
					sc = "*"
				}
				if user == "" {
					user = "(owner)"
				}
				command := strings.Join(append([]string{s.Path}, s.Args...), " ")
				t.add(s.ID, s.Class, sc, user, command, strconv.FormatUint(s.Delivered, 10), strconv.FormatUint(s.Failures, 10), s.LastError)
			}
			return t.print(g.stdout)
		},
	}
}

func newSubscribeRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID...",
		Short: "Remove script subscribers",
		Long:  `Remove script subscribers by id (see "steady events subscribe list"). A run in progress is killed.`,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			for _, id := range args {
				if err := c.RemoveSubscriber(cmd.Context(), id); err != nil {
					return err
				}
				if !g.json() {
					fmt.Fprintf(g.stdout, "removed %s\n", id)
				}
			}
			return nil
		},
	}
}
