package modules

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/steady-ha/steady/internal/dr"
	"github.com/steady-ha/steady/internal/rcm"
	"github.com/vishvananda/netlink"
)

// IP is the user of network interfaces that carry addresses. It
// registers net/IFNAME for every interface and refuses to let one go
// while it has addresses, unless forced; either way it passes the
// request on to the users of each address (ip/ADDRESS), which may refuse
// even a forced request (a resource group that lives on the address).
// Multipathing groups, where an address can move instead, come with the
// ipmp package.
type IP struct {
	// Handle talks netlink in the interfaces' namespace; nil is the agent's.
	Handle *netlink.Handle

	mu      sync.Mutex
	offered map[string][]string // interface -> address names passed on, for the notices
}

// Name is "ip".
func (m *IP) Name() string { return "ip" }

func (m *IP) h() *netlink.Handle {
	if m.Handle == nil {
		return &netlink.Handle{}
	}
	return m.Handle
}

// Register names every interface but loopback.
func (m *IP) Register(ctx context.Context) ([]rcm.Interest, error) {
	links, err := m.h().LinkList()
	if err != nil {
		return nil, fmt.Errorf("ip: %w", err)
	}
	var ins []rcm.Interest
	for _, l := range links {
		if l.Attrs().Flags&net.FlagLoopback == 0 {
			ins = append(ins, rcm.Interest{Name: "net/" + l.Attrs().Name, Kind: rcm.KindDR})
		}
	}
	return ins, nil
}

// addresses lists the interface's addresses as rcm names (ip/ADDRESS),
// leaving out IPv6 link-local ones, which nobody can depend on elsewhere.
func (m *IP) addresses(name string) (up bool, names, cidrs []string, err error) {
	l, err := m.h().LinkByName(name)
	if err != nil {
		return false, nil, nil, err
	}
	as, err := m.h().AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return false, nil, nil, err
	}
	for _, a := range as {
		if a.IP.IsLinkLocalUnicast() && a.IP.To4() == nil {
			continue
		}
		names = append(names, "ip/"+a.IP.String())
		cidrs = append(cidrs, a.IPNet.String())
	}
	sort.Strings(names)
	return l.Attrs().Flags&net.FlagUp != 0, names, cidrs, nil
}

// Call answers for one interface.
func (m *IP) Call(ctx context.Context, c rcm.Call) (string, error) {
	name, ok := strings.CutPrefix(c.Resource, "net/")
	if !ok {
		return "", nil
	}
	switch c.Op {
	case rcm.OpInfo:
		up, names, cidrs, err := m.addresses(name)
		if err != nil {
			return name + ": not present", nil
		}
		if c.Handle != nil && len(names) > 0 {
			c.Handle.Info(ctx, names)
		}
		switch {
		case len(cidrs) > 0:
			return name + ": hosts IP addresses: " + strings.Join(cidrs, ", "), nil
		case up:
			return name + ": up, no addresses", nil
		}
		return name + ": plumbed but down", nil
	case rcm.OpOffline:
		_, names, cidrs, err := m.addresses(name)
		if err != nil {
			return "", nil // gone already: nothing of ours
		}
		if len(names) > 0 && c.Flags&rcm.Force == 0 {
			return "", fmt.Errorf("%s hosts IP addresses %s; they would be lost (force to allow)", name, strings.Join(cidrs, ", "))
		}
		if len(names) > 0 && c.Handle != nil {
			if err := c.Handle.Offline(ctx, names, c.Flags); err != nil {
				// Their own answers are in the result; this one only says why
				// the interface cannot go.
				if errors.Is(err, rcm.ErrBusy) {
					return "", err
				}
				return "", fmt.Errorf("the users of its addresses %s refused", strings.Join(cidrs, ", "))
			}
		}
		if c.Flags&rcm.Query == 0 {
			m.mu.Lock()
			if m.offered == nil {
				m.offered = map[string][]string{}
			}
			m.offered[name] = names
			m.mu.Unlock()
		}
	case rcm.OpOnline, rcm.OpRemove:
		m.mu.Lock()
		names := m.offered[name]
		delete(m.offered, name)
		m.mu.Unlock()
		if len(names) > 0 && c.Handle != nil {
			if c.Op == rcm.OpOnline {
				return "", c.Handle.Online(ctx, names)
			}
			return "", c.Handle.Remove(ctx, names)
		}
	}
	return "", nil
}

// Network maps the sysfs device of each interface (below its PCI
// function, or /sys/devices/virtual/net) onto net/IFNAME, so that a
// request to remove a PCI card reaches the users of its interfaces. It
// only passes things on, as Solaris's network module does.
type Network struct {
	Sys string // "/sys"
}

// Name is "network".
func (n *Network) Name() string { return "network" }

// Register names the sysfs path of every interface.
func (n *Network) Register(ctx context.Context) ([]rcm.Interest, error) {
	es, err := os.ReadDir(n.Sys + "/class/net")
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	var ins []rcm.Interest
	for _, e := range es {
		if p, ok := dr.SysPath(n.Sys, "class/net/"+e.Name()); ok && e.Name() != "lo" {
			ins = append(ins, rcm.Interest{Name: p, Kind: rcm.KindDR})
		}
	}
	return ins, nil
}

// Call passes the call on to net/IFNAME.
func (n *Network) Call(ctx context.Context, c rcm.Call) (string, error) {
	i := strings.LastIndex(c.Resource, "/net/")
	if i < 0 {
		return "", nil
	}
	name := c.Resource[i+len("/net/"):]
	target := []string{"net/" + name}
	if c.Handle == nil {
		return "Network interface " + name, nil
	}
	switch c.Op {
	case rcm.OpInfo:
		c.Handle.Info(ctx, target)
		return "Network interface " + name, nil
	case rcm.OpOffline:
		if err := c.Handle.Offline(ctx, target, c.Flags); err != nil {
			return "", passedOn(err, name)
		}
	case rcm.OpSuspend:
		if err := c.Handle.Suspend(ctx, target, c.Interval, c.Flags); err != nil {
			return "", passedOn(err, name)
		}
	case rcm.OpOnline:
		return "", c.Handle.Online(ctx, target)
	case rcm.OpResume:
		return "", c.Handle.Resume(ctx, target)
	case rcm.OpRemove:
		return "", c.Handle.Remove(ctx, target)
	}
	return "", nil
}

// passedOn words the failure of a request passed on to net/name: its
// users' own answers are in the result already.
func passedOn(err error, name string) error {
	if errors.Is(err, rcm.ErrBusy) {
		return err
	}
	return fmt.Errorf("the users of net/%s refused", name)
}

// Live: its names are read afresh before every operation.
func (*IP) Live() {}

// Live: its names are read afresh before every operation.
func (*Network) Live() {}
