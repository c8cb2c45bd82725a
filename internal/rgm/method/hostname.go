package method

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/steady-ha/steady/internal/rgm/machine"
)

// Addresses places the addresses of steady.LogicalHostname resources on
// this node (the multipathing daemon, or an interface alone).
type Addresses interface {
	// Add puts an address (a HostnameList entry) on the first of targets
	// this node has (none: the group whose subnet holds it) and answers
	// the interface it went on.
	Add(ctx context.Context, targets []string, entry string) (string, error)
	Remove(ctx context.Context, entry string) error
	// Check answers the working interface the address is on, or why it is
	// on none.
	Check(ctx context.Context, entry string) (string, error)
}

// netIfTargets picks this node's entries of NetIfList: TARGET@NODE for
// this node, and TARGET without a node, in their order.
func netIfTargets(list []string, node string) []string {
	var out []string
	for _, e := range list {
		target, on, hasNode := strings.Cut(e, "@")
		if !hasNode || on == node {
			out = append(out, target)
		}
	}
	return out
}

// checkHostnames is VALIDATE: every entry an address, an address with
// its prefix length, or something that may be a host name; every
// NetIfList entry TARGET or TARGET@NODE.
func checkHostnames(hosts, netifs []string) error {
	if len(hosts) == 0 {
		return fmt.Errorf("HostnameList is empty")
	}
	for _, h := range hosts {
		if strings.Contains(h, "/") {
			if _, err := netip.ParsePrefix(h); err != nil {
				return fmt.Errorf("HostnameList entry %q is not ADDRESS/PREFIXLEN", h)
			}
			continue
		}
		if _, err := netip.ParseAddr(h); err == nil {
			continue
		}
		if h == "" || strings.ContainsAny(h, " \t,@") {
			return fmt.Errorf("HostnameList entry %q is neither an address nor a host name", h)
		}
	}
	for _, e := range netifs {
		target, node, hasNode := strings.Cut(e, "@")
		if target == "" || (hasNode && node == "") || strings.ContainsAny(e, " \t,/") {
			return fmt.Errorf("NetIfList entry %q is not GROUP, INTERFACE, GROUP@NODE or INTERFACE@NODE", e)
		}
	}
	return nil
}

// runHostname carries out the methods of steady.LogicalHostname: START
// puts each address up (and announces it), STOP takes each away, VALIDATE
// checks the lists.
func (r *Runner) runHostname(ctx context.Context, c Call) machine.Result {
	hosts := c.Values.List("HostnameList")
	netifs := c.Values.List("NetIfList")
	switch c.Method {
	case "VALIDATE":
		if err := checkHostnames(hosts, netifs); err != nil {
			return machine.Result{Code: 1, Output: err.Error()}
		}
		return machine.Result{OK: true}
	case "START":
		if r.opts.Addresses == nil {
			return machine.Result{Code: 1, Output: "this agent places no logical hostnames"}
		}
		targets := netIfTargets(netifs, r.opts.Node)
		var done, lines []string
		for _, h := range hosts {
			where, err := r.opts.Addresses.Add(ctx, targets, h)
			if err != nil {
				// Nothing half-done: what came up goes again.
				for _, d := range done {
					r.opts.Addresses.Remove(ctx, d)
				}
				r.appendLog(c.Resource, "START: "+err.Error())
				return machine.Result{Code: 1, Output: err.Error()}
			}
			done = append(done, h)
			lines = append(lines, h+" on "+where)
		}
		r.appendLog(c.Resource, "START: "+strings.Join(lines, ", "))
		return machine.Result{OK: true, Output: strings.Join(lines, "\n")}
	case "STOP":
		if r.opts.Addresses == nil {
			return machine.Result{OK: true}
		}
		var errs []string
		for _, h := range hosts {
			if err := r.opts.Addresses.Remove(ctx, h); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			msg := strings.Join(errs, "; ")
			r.appendLog(c.Resource, "STOP: "+msg)
			return machine.Result{Code: 1, Output: msg}
		}
		r.appendLog(c.Resource, "STOP: "+strings.Join(hosts, ", ")+" removed")
		return machine.Result{OK: true}
	}
	return machine.Result{Err: "steady.LogicalHostname has no " + c.Method + " method"}
}

// probeHostname checks that every address is up on a working interface.
func (r *Runner) probeHostname(ctx context.Context, c Call) ProbeResult {
	if r.opts.Addresses == nil {
		return ProbeResult{Msg: "this agent places no logical hostnames"}
	}
	var on []string
	for _, h := range c.Values.List("HostnameList") {
		where, err := r.opts.Addresses.Check(ctx, h)
		if err != nil {
			return ProbeResult{Msg: err.Error()}
		}
		on = append(on, h+" on "+where)
	}
	return ProbeResult{OK: true, Msg: strings.Join(on, ", ")}
}
