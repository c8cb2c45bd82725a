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
//
// An interface in a multipathing group is different: its data addresses
// move to another member instead of going, so nobody needs asking. The
// request is refused only when no other member of its group works
// (unless forced); the real pass takes it offline in its group (data
// addresses fail over, test addresses come down), and an undo puts it
// back, which fails the addresses back.
type IP struct {
	// Handle talks netlink in the interfaces' namespace; nil is the agent's.
	Handle *netlink.Handle
	// Multipath is the multipathing daemon; nil: no groups.
	Multipath Multipath

	mu      sync.Mutex
	offered map[string][]string // interface -> address names passed on, for the notices
	offline map[string]bool     // interfaces this module took offline in their group
}

// Multipath is what the ip module asks of the multipathing daemon.
type Multipath interface {
	// Member names the interface's group ("" for none), counts the other
	// working members and says whether it is offline already.
	Member(ctx context.Context, iface string) (group string, others int, offline bool, err error)
	Offline(ctx context.Context, iface string, force bool) error
	UndoOffline(ctx context.Context, iface string) error
}

// grouped answers for an interface of a multipathing group; handled is
// false when the ordinary path applies.
func (m *IP) grouped(ctx context.Context, c rcm.Call, name string) (info string, handled bool, err error) {
	if m.Multipath == nil {
		return "", false, nil
	}
	group, others, offline, err := m.Multipath.Member(ctx, name)
	if err != nil || group == "" {
		return "", false, nil
	}
	switch c.Op {
	case rcm.OpInfo:
		if offline {
			return name + ": offlined (IPMP group " + group + ")", true, nil
		}
		return name + ": providing connectivity for IPMP group " + group, true, nil
	case rcm.OpOffline:
		if offline {
			return "", false, nil // nothing of the group's is left on it
		}
		forced := c.Flags&rcm.Force != 0
		if others == 0 && !forced {
			return "", true, fmt.Errorf("%s is the only working interface of IPMP group %s; its data addresses would have nowhere to go (force to allow)", name, group)
		}
		if c.Flags&rcm.Query != 0 {
			if others == 0 {
				return "", false, nil // forced: ask the users of its addresses
			}
			return "", true, nil
		}
		if err := m.Multipath.Offline(ctx, name, forced); err != nil {
			return "", true, fmt.Errorf("taking %s offline in IPMP group %s: %w", name, group, err)
		}
		m.mu.Lock()
		if m.offline == nil {
			m.offline = map[string]bool{}
		}
		m.offline[name] = true
		m.mu.Unlock()
		return "", others > 0, nil
	case rcm.OpOnline:
		m.mu.Lock()
		mine := m.offline[name]
		delete(m.offline, name)
		m.mu.Unlock()
		if mine && offline {
			if err := m.Multipath.UndoOffline(ctx, name); err != nil {
				return "", true, fmt.Errorf("putting %s back in IPMP group %s: %w", name, group, err)
			}
		}
		return "", false, nil
	case rcm.OpRemove:
		// It stays offline in its group until it is configured again.
		m.mu.Lock()
		delete(m.offline, name)
		m.mu.Unlock()
	}
	return "", false, nil
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
	if info, handled, err := m.grouped(ctx, c, name); handled || err != nil {
		return info, err
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
