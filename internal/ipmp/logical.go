package ipmp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Logical hostnames: floating addresses of a resource group. On a node
// they go on the best working member of a multipathing group (and move
// within it like any data address), or, when NetIfList names an
// interface of no group, on that interface alone.

// ResolveAddress reads a HostnameList entry: ADDRESS/PREFIXLEN, ADDRESS
// or a host name (from /etc/hosts or DNS). bits is -1 when the entry
// gives no prefix length.
func ResolveAddress(ctx context.Context, entry string) (netip.Addr, int, error) {
	if p, err := netip.ParsePrefix(entry); err == nil {
		return p.Addr(), p.Bits(), nil
	}
	if a, err := netip.ParseAddr(entry); err == nil {
		return a, -1, nil
	}
	if strings.Contains(entry, "/") {
		return netip.Addr{}, 0, fmt.Errorf("%q is not an address with a prefix length", entry)
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, entry)
	if err != nil || len(addrs) == 0 {
		return netip.Addr{}, 0, fmt.Errorf("host name %q does not resolve: %w", entry, err)
	}
	a, err := netip.ParseAddr(addrs[0])
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("host name %q: %w", entry, err)
	}
	return a.Unmap(), -1, nil
}

// groupFor finds the group whose addresses' subnets hold a, and the
// prefix length there.
func (c *Core) groupFor(a netip.Addr) (*group, int) {
	for _, g := range c.groups {
		for _, m := range g.members {
			for _, p := range append(append([]netip.Prefix(nil), m.cfg.Test...), m.cfg.Data...) {
				if p.Masked().Contains(a) {
					return g, p.Bits()
				}
			}
		}
	}
	return nil, 0
}

// AddLogical places a floating address on target (a group, or a grouped
// interface; "" for the group whose subnet holds it); bits < 0 takes the
// prefix length of that subnet. It answers the member the address is on.
func (d *Daemon) AddLogical(ctx context.Context, target string, a netip.Addr, bits int) (string, error) {
	var where string
	err := d.do(ctx, func(now time.Time) error {
		g := d.core.group(target)
		if g == nil {
			if m := d.core.byIface[target]; m != nil {
				g = m.group
			}
		}
		sub, subBits := d.core.groupFor(a)
		if target == "" {
			g = sub
		}
		if g == nil {
			if target == "" {
				return fmt.Errorf("%v is in the subnet of no IPMP group on this node; name one in NetIfList", a)
			}
			return fmt.Errorf("%s: no such IPMP group or grouped interface on this node", target)
		}
		if bits < 0 {
			if sub != g {
				return fmt.Errorf("%v is not in a subnet of group %s; give its prefix length", a, g.cfg.Name)
			}
			bits = subBits
		}
		name := target
		if name == "" {
			name = g.cfg.Name
		}
		if err := d.core.AddFloating(now, name, netip.PrefixFrom(a, bits)); err != nil {
			return err
		}
		d.apply(now)
		d.publish()
		where, _, _ = d.core.WhereIs(a)
		if where == "" {
			return fmt.Errorf("no interface of group %s works: %v has nowhere to go", g.cfg.Name, a)
		}
		return d.saveOffline()
	})
	return where, err
}

// Knows says whether target is a group or a grouped interface here.
func (d *Daemon) Knows(ctx context.Context, target string) bool {
	known := false
	d.do(ctx, func(time.Time) error {
		known = d.core.group(target) != nil || d.core.byIface[target] != nil
		return nil
	})
	return known
}

// Hosts places the addresses of logical hostnames on this node: through
// the multipathing daemon for groups, by netlink for a plain interface.
// It is safe for concurrent use.
type Hosts struct {
	Daemon *Daemon // nil: no groups on this node
	// ARPCount announcements ARPInterval apart for a plain interface.
	ARPCount    int
	ARPInterval time.Duration

	mu    sync.Mutex
	plain map[netip.Addr]string // address -> interface, for plain ones
}

func (h *Hosts) handle() *netlink.Handle { return &netlink.Handle{} }

// Add puts the address (a HostnameList entry) on the first target this
// node has; targets empty: the group whose subnet holds it. It answers
// where the address went.
func (h *Hosts) Add(ctx context.Context, targets []string, entry string) (string, error) {
	a, bits, err := ResolveAddress(ctx, entry)
	if err != nil {
		return "", err
	}
	if len(targets) == 0 {
		if h.Daemon == nil {
			return "", fmt.Errorf("%v: this node has no IPMP group; name an interface in NetIfList", a)
		}
		return h.Daemon.AddLogical(ctx, "", a, bits)
	}
	for _, t := range targets {
		if h.Daemon != nil && h.Daemon.Knows(ctx, t) {
			return h.Daemon.AddLogical(ctx, t, a, bits)
		}
		l, err := h.handle().LinkByName(t)
		if err != nil {
			continue
		}
		if bits < 0 {
			bits = a.BitLen()
		}
		na := &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(a, bits))}
		if a.Is6() {
			na.Flags = unix.IFA_F_NODAD
		}
		if err := h.handle().AddrReplace(l, na); err != nil {
			return "", fmt.Errorf("adding %v to %s: %w", a, t, err)
		}
		h.mu.Lock()
		if h.plain == nil {
			h.plain = map[netip.Addr]string{}
		}
		h.plain[a] = t
		h.mu.Unlock()
		go h.announce(l, a)
		return t, nil
	}
	return "", fmt.Errorf("none of %s is an IPMP group or an interface of this node", strings.Join(targets, ", "))
}

func (h *Hosts) announce(l netlink.Link, a netip.Addr) {
	count, every := h.ARPCount, h.ARPInterval
	if count <= 0 {
		count = 5
	}
	if every <= 0 {
		every = 2 * time.Second
	}
	for i := 0; i < count; i++ {
		if i > 0 {
			time.Sleep(every)
		}
		if a.Is4() {
			sendGARP(l.Attrs().Index, l.Attrs().HardwareAddr, a)
		} else {
			sendNA(l.Attrs().Name, l.Attrs().Index, l.Attrs().HardwareAddr, a)
		}
	}
}

// Remove takes the address away (nothing to do when it is not there).
func (h *Hosts) Remove(ctx context.Context, entry string) error {
	a, _, err := ResolveAddress(ctx, entry)
	if err != nil {
		return err
	}
	h.mu.Lock()
	iface, plain := h.plain[a]
	delete(h.plain, a)
	h.mu.Unlock()
	if plain {
		l, err := h.handle().LinkByName(iface)
		if err != nil {
			return nil // the interface is gone, and the address with it
		}
		as, _ := h.handle().AddrList(l, netlink.FAMILY_ALL)
		for _, x := range as {
			if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a {
				if err := h.handle().AddrDel(l, &x); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
					return fmt.Errorf("removing %v from %s: %w", a, iface, err)
				}
			}
		}
		return nil
	}
	if h.Daemon != nil {
		return h.Daemon.RemoveFloating(ctx, a)
	}
	return nil
}

// Check says whether the address is up on a working interface.
func (h *Hosts) Check(ctx context.Context, entry string) (string, error) {
	a, _, err := ResolveAddress(ctx, entry)
	if err != nil {
		return "", err
	}
	h.mu.Lock()
	iface, plain := h.plain[a]
	h.mu.Unlock()
	if !plain && h.Daemon != nil {
		where, g, up, known, err := h.Daemon.WhereIs(ctx, a)
		switch {
		case err != nil:
			return "", err
		case !known:
			// Not known to the daemon (an agent restarted without it):
			// look at the kernel below.
		case where == "":
			return "", fmt.Errorf("%v is on no interface: no interface of group %s works", a, g)
		case !up:
			return "", fmt.Errorf("%v is on %s, which has failed, and no other interface of its group works", a, where)
		default:
			return where, nil
		}
	}
	links, err := h.handle().LinkList()
	if err != nil {
		return "", err
	}
	for _, l := range links {
		if plain && l.Attrs().Name != iface {
			continue
		}
		as, _ := h.handle().AddrList(l, netlink.FAMILY_ALL)
		for _, x := range as {
			if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a {
				if linkState(l) != LinkUp {
					return "", fmt.Errorf("%v is on %s, whose link is down", a, l.Attrs().Name)
				}
				return l.Attrs().Name, nil
			}
		}
	}
	return "", fmt.Errorf("%v is on no interface of this node", a)
}
