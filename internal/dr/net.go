package dr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Nets are the APs net/IFNAME, one per network interface but loopback.
// Linux has no offline state for a NIC, so unconfigure makes one: it
// records the interface's addresses, routes, MTU and up state, then
// takes the addresses away and sets the link down. Configure puts back
// exactly what was recorded, so a NIC comes back as it was. The record
// outlives the agent (Saved), and a NIC that has gone from the system
// stays listed, empty, with its record.
type Nets struct {
	// Handle talks netlink in the interfaces' network namespace; nil is
	// the agent's own.
	Handle *netlink.Handle
	Saved  *Saved
	// Now is the clock of the status time (tests replace it).
	Now func() time.Time
	// Configured, when set, is told of an interface configure gave back
	// (the multipathing daemon puts it back in its group).
	Configured func(ctx context.Context, name string)
}

// Class is "net".
func (n Nets) Class() string { return "net" }

func (n Nets) h() *netlink.Handle {
	if n.Handle == nil {
		return &netlink.Handle{}
	}
	return n.Handle
}

// NetConfig is what unconfigure records of an interface.
type NetConfig struct {
	MTU    int          `json:"mtu"`
	Up     bool         `json:"up"`
	Addrs  []SavedAddr  `json:"addresses"`
	Routes []SavedRoute `json:"routes"`
	When   time.Time    `json:"when"`
}

// SavedAddr is one address of an interface.
type SavedAddr struct {
	CIDR      string `json:"cidr"`
	Peer      string `json:"peer,omitempty"`
	Broadcast string `json:"broadcast,omitempty"`
	Label     string `json:"label,omitempty"`
	Flags     int    `json:"flags,omitempty"`
	Scope     int    `json:"scope,omitempty"`
}

// SavedRoute is one route through an interface.
type SavedRoute struct {
	Family   int    `json:"family"`
	Dst      string `json:"dst,omitempty"` // empty: the default route
	Gw       string `json:"gw,omitempty"`
	Src      string `json:"src,omitempty"`
	Priority int    `json:"metric,omitempty"`
	Table    int    `json:"table,omitempty"`
	Scope    int    `json:"scope,omitempty"`
	Protocol int    `json:"protocol,omitempty"`
	Type     int    `json:"type,omitempty"`
}

// List reads every interface, and the recorded ones that are gone.
func (n Nets) List(ctx context.Context) ([]AP, error) {
	links, err := n.h().LinkList()
	if err != nil {
		return nil, fmt.Errorf("dr: listing network interfaces: %w", err)
	}
	seen := map[string]bool{}
	var out []AP
	for _, l := range links {
		if l.Attrs().Flags&net.FlagLoopback != 0 {
			continue
		}
		seen["net/"+l.Attrs().Name] = true
		out = append(out, n.read(l))
	}
	for _, id := range n.Saved.IDs() {
		if strings.HasPrefix(id, "net/") && !seen[id] {
			out = append(out, n.gone(id))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Get reads one interface.
func (n Nets) Get(ctx context.Context, id string) (AP, error) {
	name, ok := strings.CutPrefix(id, "net/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return AP{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	l, err := n.h().LinkByName(name)
	if err != nil {
		var cfg NetConfig
		if n.Saved.Get(id, &cfg) {
			return n.gone(id), nil
		}
		return AP{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if l.Attrs().Flags&net.FlagLoopback != 0 {
		return AP{}, fmt.Errorf("%w: %s is the loopback interface", ErrNotFound, id)
	}
	return n.read(l), nil
}

func (n Nets) gone(id string) AP {
	var cfg NetConfig
	n.Saved.Get(id, &cfg)
	return AP{ID: id, Type: "net", Class: "net", Receptacle: Empty, Occupant: Unconfigured, Condition: CondUnknown,
		StatusTime: cfg.When, Resources: []string{id}, Info: "not present; recorded: " + cfg.summary()}
}

func (c NetConfig) summary() string {
	var addrs []string
	for _, a := range c.Addrs {
		addrs = append(addrs, a.CIDR)
	}
	s := fmt.Sprintf("mtu %d, %s", c.MTU, map[bool]string{true: "up", false: "down"}[c.Up])
	if len(addrs) > 0 {
		s += ", " + strings.Join(addrs, " ")
	}
	if len(c.Routes) > 0 {
		s += fmt.Sprintf(", %d routes", len(c.Routes))
	}
	return s
}

func (n Nets) read(l netlink.Link) AP {
	at := l.Attrs()
	id := "net/" + at.Name
	ap := AP{ID: id, Type: l.Type(), Class: "net", Receptacle: Connected, Occupant: Configured, Condition: CondOK,
		PhysID: "/sys/class/net/" + at.Name, Resources: []string{id}}
	up := at.Flags&net.FlagUp != 0
	switch {
	case !up:
		ap.Condition = CondUnknown
	case at.OperState == netlink.OperDown || at.OperState == netlink.OperLowerLayerDown:
		ap.Condition = CondFailed // up, but no carrier
	}
	var cfg NetConfig
	if n.Saved.Get(id, &cfg) {
		ap.Occupant = Unconfigured
		ap.StatusTime = cfg.When
		ap.Info = "unconfigured; recorded: " + cfg.summary()
		return ap
	}
	var addrs []string
	if as, err := n.h().AddrList(l, netlink.FAMILY_ALL); err == nil {
		for _, a := range as {
			if !a.IP.IsLinkLocalUnicast() {
				addrs = append(addrs, a.IPNet.String())
			}
		}
	}
	ap.Info = fmt.Sprintf("%s, mtu %d", map[bool]string{true: "up", false: "down"}[up], at.MTU)
	if len(addrs) > 0 {
		ap.Info += ", " + strings.Join(addrs, " ")
	}
	return ap
}

// Config reads what unconfigure would record of an interface.
func (n Nets) Config(name string) (netlink.Link, NetConfig, error) {
	h := n.h()
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, NetConfig{}, fmt.Errorf("%w: %s: %w", ErrNotFound, name, err)
	}
	cfg := NetConfig{MTU: l.Attrs().MTU, Up: l.Attrs().Flags&net.FlagUp != 0}
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, cfg, fmt.Errorf("%w: reading the addresses of %s: %w", ErrDriver, name, err)
	}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() && a.IP.To4() == nil {
			continue // the kernel makes it again when the link comes up
		}
		sa := SavedAddr{CIDR: a.IPNet.String(), Label: a.Label, Flags: a.Flags, Scope: a.Scope}
		if a.Peer != nil && !a.Peer.IP.Equal(a.IP) {
			sa.Peer = a.Peer.String()
		}
		if a.Broadcast != nil {
			sa.Broadcast = a.Broadcast.String()
		}
		cfg.Addrs = append(cfg.Addrs, sa)
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, cfg, fmt.Errorf("%w: reading the routes of %s: %w", ErrDriver, name, err)
	}
	for _, r := range routes {
		if r.Table == unix.RT_TABLE_LOCAL || r.Protocol == unix.RTPROT_KERNEL || r.Type != unix.RTN_UNICAST {
			continue // the kernel's own, made again from the addresses
		}
		if r.Dst != nil && r.Dst.IP.IsLinkLocalUnicast() && r.Family == unix.AF_INET6 {
			continue
		}
		sr := SavedRoute{Family: r.Family, Priority: r.Priority, Table: r.Table, Scope: int(r.Scope), Protocol: int(r.Protocol), Type: r.Type}
		if r.Dst != nil {
			sr.Dst = r.Dst.String()
		}
		if r.Gw != nil {
			sr.Gw = r.Gw.String()
		}
		if r.Src != nil {
			sr.Src = r.Src.String()
		}
		cfg.Routes = append(cfg.Routes, sr)
	}
	return l, cfg, nil
}

// Unconfigure records the interface's configuration, takes its addresses
// away and sets it down; if a step fails, what was done is put back.
func (n Nets) Unconfigure(ctx context.Context, ap AP) error {
	name := strings.TrimPrefix(ap.ID, "net/")
	l, cfg, err := n.Config(name)
	if err != nil {
		return err
	}
	if n.Now != nil {
		cfg.When = n.Now()
	} else {
		cfg.When = time.Now()
	}
	if err := n.Saved.Put(ap.ID, cfg); err != nil {
		return err
	}
	h := n.h()
	fail := func(err error) error {
		if rerr := n.apply(l.Attrs().Name, cfg); rerr != nil {
			err = fmt.Errorf("%w; putting the configuration back also failed: %w", err, rerr)
		}
		n.Saved.Delete(ap.ID)
		return err
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fail(fmt.Errorf("%w: %s: %w", ErrDriver, name, err))
	}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() && a.IP.To4() == nil {
			continue
		}
		if err := h.AddrDel(l, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fail(fmt.Errorf("%w: removing %s from %s: %w", ErrDriver, a.IPNet, name, err))
		}
	}
	if err := h.LinkSetDown(l); err != nil {
		return fail(fmt.Errorf("%w: setting %s down: %w", ErrDriver, name, err))
	}
	return nil
}

// Configure puts back the recorded configuration.
func (n Nets) Configure(ctx context.Context, ap AP) error {
	var cfg NetConfig
	if !n.Saved.Get(ap.ID, &cfg) {
		return fmt.Errorf("%w: %s has no recorded configuration (it was not unconfigured by steady)", ErrState, ap.ID)
	}
	if ap.Receptacle == Empty {
		return fmt.Errorf("%w: %s is not present; its configuration is kept for when it is", ErrState, ap.ID)
	}
	if err := n.apply(strings.TrimPrefix(ap.ID, "net/"), cfg); err != nil {
		return err
	}
	if err := n.Saved.Delete(ap.ID); err != nil {
		return err
	}
	if n.Configured != nil {
		n.Configured(ctx, strings.TrimPrefix(ap.ID, "net/"))
	}
	return nil
}

// apply sets MTU, state, addresses and routes as cfg says. It goes on
// after a failing step and reports every failure.
func (n Nets) apply(name string, cfg NetConfig) error {
	h := n.h()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrDriver, name, err)
	}
	var errs []error
	if cfg.MTU > 0 && l.Attrs().MTU != cfg.MTU {
		if err := h.LinkSetMTU(l, cfg.MTU); err != nil {
			errs = append(errs, fmt.Errorf("mtu %d: %w", cfg.MTU, err))
		}
	}
	if cfg.Up {
		if err := h.LinkSetUp(l); err != nil {
			errs = append(errs, fmt.Errorf("setting it up: %w", err))
		}
	}
	for _, sa := range cfg.Addrs {
		a, err := netlink.ParseAddr(sa.CIDR)
		if err != nil {
			errs = append(errs, fmt.Errorf("address %s: %w", sa.CIDR, err))
			continue
		}
		a.Label, a.Flags, a.Scope = sa.Label, sa.Flags, sa.Scope
		if sa.Peer != "" {
			if _, p, err := net.ParseCIDR(sa.Peer); err == nil {
				a.Peer = p
			}
		}
		if b := net.ParseIP(sa.Broadcast); b != nil {
			if b4 := b.To4(); b4 != nil {
				b = b4 // netlink sends the bytes as given; IPv4 needs four
			}
			a.Broadcast = b
		}
		if err := h.AddrReplace(l, a); err != nil {
			errs = append(errs, fmt.Errorf("address %s: %w", sa.CIDR, err))
		}
	}
	for _, sr := range cfg.Routes {
		r := netlink.Route{LinkIndex: l.Attrs().Index, Family: sr.Family, Priority: sr.Priority, Table: sr.Table,
			Scope: netlink.Scope(sr.Scope), Protocol: netlink.RouteProtocol(sr.Protocol), Type: sr.Type}
		if sr.Dst != "" {
			_, dst, err := net.ParseCIDR(sr.Dst)
			if err != nil {
				errs = append(errs, fmt.Errorf("route %s: %w", sr.Dst, err))
				continue
			}
			r.Dst = dst
		}
		r.Gw, r.Src = net.ParseIP(sr.Gw), net.ParseIP(sr.Src)
		if err := h.RouteReplace(&r); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", or(sr.Dst, "default"), or(sr.Gw, "the link"), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: restoring %s: %w", ErrDriver, name, err)
	}
	return nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
