package ipmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/atomicfile"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// rtProto marks the routes the daemon owns (an unassigned routing
// protocol number), so that it never removes anyone else's.
const rtProto = netlink.RouteProtocol(83)

// Options configures a Daemon.
type Options struct {
	Settings Settings
	Groups   []GroupConfig
	// NS is the network namespace of the interfaces; netns.None() or the
	// zero value is the agent's own.
	NS netns.NsHandle
	// ARPCount announcements of a moved address, ARPInterval apart
	// (Solaris: 5, 2s).
	ARPCount    int
	ARPInterval time.Duration
	// Resync is the period of the full comparison with the kernel.
	Resync time.Duration
	// StateFile keeps the offline interfaces across agent restarts.
	StateFile string
	Logger    *slog.Logger
	// OnMessage receives every message (for events).
	OnMessage func(Message)
}

// Daemon is the multipathing daemon of one host: it owns a Core and makes
// the kernel match it.
type Daemon struct {
	opts Options
	log  *slog.Logger
	h    *netlink.Handle
	id   uint16

	reqs    chan func(time.Time)
	links   chan netlink.LinkUpdate
	replies chan reply
	// routesChanged says the routing table changed (probe targets).
	routesChanged chan struct{}
	done          chan struct{}
	wg            sync.WaitGroup

	// owned by the loop
	core     *Core
	probers  map[string]*prober
	bursts   map[netip.Addr]context.CancelFunc
	moved    map[string]movedRoute   // gateway routes moved off a failed member
	found    map[string][]netip.Addr // multicast discovery: responders by group
	lastDisc time.Time
}

type movedRoute struct {
	route netlink.Route
	home  string
}

// New builds the daemon; Start runs it.
func New(opts Options) (*Daemon, error) {
	core, err := NewCore(opts.Settings, opts.Groups, uint64(time.Now().UnixNano()))
	if err != nil {
		return nil, fmt.Errorf("ipmp: %w", err)
	}
	if opts.NS == 0 {
		opts.NS = netns.None() // the zero value: the agent's own
	}
	if opts.ARPCount <= 0 {
		opts.ARPCount = 5
	}
	if opts.ARPInterval <= 0 {
		opts.ARPInterval = 2 * time.Second
	}
	if opts.Resync <= 0 {
		opts.Resync = 20 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{opts: opts, log: opts.Logger, core: core, id: uint16(os.Getpid()),
		reqs: make(chan func(time.Time)), links: make(chan netlink.LinkUpdate, 256), replies: make(chan reply, 256), routesChanged: make(chan struct{}, 1),
		done: make(chan struct{}), probers: map[string]*prober{}, bursts: map[netip.Addr]context.CancelFunc{},
		moved: map[string]movedRoute{}, found: map[string][]netip.Addr{}}
	return d, nil
}

// inNS runs fn in the interfaces' namespace.
func (d *Daemon) inNS(fn func() error) error { return InNamespace(d.opts.NS, fn) }

// InNamespace runs fn on a thread switched into network namespace ns
// (not open: the caller's own), and switches it back. Sockets keep the
// namespace they were made in; /proc/sys/net is the thread's. Should the
// switch back fail, the thread stays locked to this goroutine, so that
// nothing else runs in the wrong namespace.
func InNamespace(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("leaving network namespace %v: %w", ns, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// Start reads the interfaces, adopts the addresses where the kernel has
// them, applies the saved offline state and starts the loop.
func (d *Daemon) Start(ctx context.Context) error {
	if d.opts.NS.IsOpen() {
		h, err := netlink.NewHandleAt(d.opts.NS)
		if err != nil {
			return fmt.Errorf("ipmp: %w", err)
		}
		d.h = h
	} else {
		d.h = &netlink.Handle{}
	}
	if err := d.subscribe(); err != nil {
		return err
	}
	now := time.Now()
	has := map[string][]netip.Addr{}
	for _, name := range d.core.Members() {
		l, err := d.h.LinkByName(name)
		if err != nil {
			d.core.Link(now, name, false, LinkUnknown)
			continue
		}
		d.prepare(l)
		l, _ = d.h.LinkByName(name)
		if l != nil {
			d.core.SetMAC(now, name, l.Attrs().HardwareAddr.String())
			d.core.Link(now, name, true, linkState(l))
			as, _ := d.h.AddrList(l, netlink.FAMILY_ALL)
			for _, a := range as {
				if ip, ok := netip.AddrFromSlice(a.IP); ok {
					has[name] = append(has[name], ip.Unmap())
					if ip.Is6() && ip.IsLinkLocalUnicast() {
						d.core.SetLinkLocal(name, ip)
					}
				}
			}
		}
	}
	saved := d.loadState()
	for _, name := range saved.Offline {
		if err := d.core.Offline(now, name, true); err != nil {
			d.log.Warn("restoring offline state", "interface", name, "err", err)
		}
	}
	for _, f := range saved.Floating {
		p, err := netip.ParsePrefix(f.Address)
		if err == nil {
			err = d.core.AddFloating(now, f.Target, p)
		}
		if err != nil {
			d.log.Warn("restoring a logical hostname's address", "address", f.Address, "err", err)
		}
	}
	// Addresses stay where the kernel has them: an agent restart moves
	// nothing.
	for name, addrs := range has {
		for _, a := range addrs {
			d.core.Adopt(a, name)
		}
	}
	d.core.Start(now)
	d.targets(now)
	d.apply(now)
	d.wg.Add(1)
	go d.loop()
	return nil
}

// Close stops the loop and the probes; addresses stay as they are.
func (d *Daemon) Close() {
	select {
	case <-d.done:
		return
	default:
	}
	close(d.done)
	d.wg.Wait()
	for _, p := range d.probers {
		p.close()
	}
	for _, c := range d.bursts {
		c()
	}
}

func (d *Daemon) subscribe() error {
	opts := netlink.LinkSubscribeOptions{ReceiveBufferSize: 1 << 20, ErrorCallback: func(err error) {
		select {
		case <-d.done: // the socket closing
		default:
			d.log.Warn("link or route events", "err", err)
		}
	}}
	if d.opts.NS.IsOpen() {
		ns := d.opts.NS
		opts.Namespace = &ns
	}
	ch := make(chan netlink.LinkUpdate, 256)
	if err := netlink.LinkSubscribeWithOptions(ch, d.done, opts); err != nil {
		return fmt.Errorf("ipmp: subscribing to link events: %w", err)
	}
	// Route changes may bring or take probe targets.
	ropts := netlink.RouteSubscribeOptions{ErrorCallback: opts.ErrorCallback, Namespace: opts.Namespace}
	rch := make(chan netlink.RouteUpdate, 256)
	if err := netlink.RouteSubscribeWithOptions(rch, d.done, ropts); err != nil {
		return fmt.Errorf("ipmp: subscribing to route events: %w", err)
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			select {
			case u, ok := <-rch:
				if !ok {
					return // the resync still reads the targets
				}
				if u.Protocol == rtProto {
					continue // ours
				}
				select {
				case d.routesChanged <- struct{}{}:
				default:
				}
			case <-d.done:
				return
			}
		}
	}()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			select {
			case u, ok := <-ch:
				if !ok {
					// Lost (ENOBUFS or a closed socket): the resync
					// catches up, and a new subscription is made.
					select {
					case <-d.done:
						return
					case <-time.After(time.Second):
					}
					if err := d.subscribe(); err != nil {
						d.log.Warn("resubscribing to link events", "err", err)
					}
					return
				}
				select {
				case d.links <- u:
				case <-d.done:
					return
				}
			case <-d.done:
				return
			}
		}
	}()
	return nil
}

func linkState(l netlink.Link) LinkState {
	a := l.Attrs()
	if a.Flags&net.FlagUp != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0 {
		return LinkUp
	}
	return LinkDown
}

// prepare sets what a member needs: each address answered only by the
// interface that holds it (arp_ignore, arp_announce), loose reverse path
// checks, secondaries promoted when a primary goes, and the link up.
func (d *Daemon) prepare(l netlink.Link) {
	name := l.Attrs().Name
	d.inNS(func() error {
		for k, v := range map[string]string{"arp_ignore": "1", "arp_announce": "2", "rp_filter": "2", "promote_secondaries": "1"} {
			if err := os.WriteFile(filepath.Join("/proc/sys/net/ipv4/conf", name, k), []byte(v), 0o644); err != nil {
				d.log.Warn("setting a sysctl of a member", "interface", name, "sysctl", k, "err", err)
			}
		}
		return nil
	})
	if l.Attrs().Flags&net.FlagUp == 0 && !d.core.byIface[name].offline {
		if err := d.h.LinkSetUp(l); err != nil {
			d.log.Warn("bringing a member up", "interface", name, "err", err)
		}
	}
}

func (d *Daemon) loop() {
	defer d.wg.Done()
	resync := time.NewTicker(d.opts.Resync)
	defer resync.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.publish()
		next := d.core.NextWake()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-d.done:
			return
		case u := <-d.links:
			now := time.Now()
			down := d.linkEvent(now, u)
			// Take the whole burst (a switch going down reports every
			// port within a few milliseconds) before placing, so that a
			// group failure moves nothing.
			settle := time.NewTimer(linkSettle)
			for more := down; more; {
				select {
				case u := <-d.links:
					d.linkEvent(now, u)
				case <-settle.C:
					more = false
				}
			}
			settle.Stop()
			for more := true; more; {
				select {
				case u := <-d.links:
					d.linkEvent(now, u)
				default:
					more = false
				}
			}
			d.core.Place(now)
			d.apply(now)
		case r := <-d.replies:
			if r.seq == discoverySeq {
				key := d.core.GroupOf(r.iface) + "/" + string("46"[famOf(r.from)])
				if !slices.Contains(d.found[key], r.from) {
					d.found[key] = append(d.found[key], r.from)
				}
				continue
			}
			before := d.core.placementKey()
			d.core.ProbeReply(r.at, r.iface, r.from, r.seq)
			if d.core.placementKey() != before {
				d.apply(time.Now())
			}
		case <-timer.C:
			now := time.Now()
			before := d.core.placementKey()
			for _, p := range d.core.Probes(now) {
				d.sendProbe(p, now)
			}
			if d.core.placementKey() != before {
				d.apply(now)
			}
		case <-d.routesChanged:
			d.targets(time.Now())
		case <-resync.C:
			now := time.Now()
			d.resync(now)
		case fn := <-d.reqs:
			fn(time.Now())
		}
	}
}

// linkSettle is how long a member's link failure waits for the other
// members' news before addresses move.
const linkSettle = 10 * time.Millisecond

// linkEvent notes a link change without placing (the caller places once
// for the whole burst); down says a member lost its link or went away.
func (d *Daemon) linkEvent(now time.Time, u netlink.LinkUpdate) (down bool) {
	name := u.Attrs().Name
	m := d.core.byIface[name]
	if m == nil {
		return false
	}
	if u.Header.Type == unix.RTM_DELLINK {
		d.dropProber(name)
		d.core.Note(now, name, false, LinkUnknown)
		return true
	}
	if !m.present {
		// A new interface of a group (an attach, or one missing at boot).
		d.prepare(u.Link)
	}
	was := m.link
	st := linkState(u.Link)
	d.core.Note(now, name, true, st)
	d.core.SetMAC(now, name, u.Link.Attrs().HardwareAddr.String())
	return st == LinkDown && was != LinkDown
}

// placementKey summarises where every data address is and which members
// are offline or failed, to tell whether the kernel needs work.
func (c *Core) placementKey() string {
	var b []byte
	for _, g := range c.groups {
		for _, d := range g.data {
			b = append(b, d.on...)
			b = append(b, ',')
		}
		for _, m := range g.members {
			if m.failed {
				b = append(b, 'f')
			}
			if m.offline {
				b = append(b, 'o')
			}
			if m.active {
				b = append(b, 'a')
			}
			b = append(b, ';')
		}
	}
	return string(b)
}

func (d *Daemon) resync(now time.Time) {
	links, err := d.h.LinkList()
	if err != nil {
		d.log.Warn("resync: listing links", "err", err)
		return
	}
	seen := map[string]bool{}
	for _, l := range links {
		name := l.Attrs().Name
		if m := d.core.byIface[name]; m != nil {
			seen[name] = true
			if !m.present {
				d.prepare(l)
			}
			d.core.Note(now, name, true, linkState(l))
			d.core.SetMAC(now, name, l.Attrs().HardwareAddr.String())
		}
	}
	for _, name := range d.core.Members() {
		if !seen[name] {
			d.dropProber(name)
			d.core.Note(now, name, false, LinkUnknown)
		}
	}
	d.core.Place(now)
	d.targets(now)
	d.apply(now)
}

// sendProbe sends a probe through its member's socket, opening it first.
func (d *Daemon) sendProbe(p Probe, now time.Time) {
	key := proberKey(p.Interface, p.Src)
	pr := d.probers[key]
	if pr == nil || pr.src != p.Src {
		if pr != nil {
			pr.close()
			delete(d.probers, key)
		}
		l, err := d.h.LinkByName(p.Interface)
		if err != nil {
			return // gone: its probes are counted lost
		}
		err = d.inNS(func() error {
			pr, err = openProber(p.Interface, l.Attrs().Index, p.Src, d.id)
			return err
		})
		if err != nil {
			d.log.Debug("opening a probe socket", "err", err)
			return // counted lost when its time passes
		}
		d.probers[key] = pr
		go pr.read(d.replies)
	}
	if err := pr.send(p.Target, p.Seq, now); err != nil {
		d.log.Debug("sending a probe", "interface", p.Interface, "target", p.Target, "err", err)
	}
}

// proberKey names a member's probe socket of one family.
func proberKey(iface string, src netip.Addr) string {
	if src.Is4() {
		return iface + "/4"
	}
	return iface + "/6"
}

func (d *Daemon) dropProber(name string) {
	for _, key := range []string{name + "/4", name + "/6"} {
		if pr := d.probers[key]; pr != nil {
			pr.close()
			delete(d.probers, key)
		}
	}
}

// targets chooses each group's probe targets, per family: next hops and
// on-link host routes inside the group's prefixes (IPv6: link-local next
// hops through its members), host routes first so that an administrator
// can pin them; else hosts that answered an echo to all hosts.
func (d *Daemon) targets(now time.Time) {
	routes4, err := d.h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		d.log.Warn("listing routes for probe targets", "err", err)
		return
	}
	routes6, _ := d.h.RouteList(nil, netlink.FAMILY_V6)
	discover := now.Sub(d.lastDisc) > time.Second
	for _, g := range d.core.groups {
		var prefixes []netip.Prefix
		members := map[int]bool{}
		want6 := false
		for _, m := range g.members {
			for _, p := range m.cfg.Test {
				if p.Addr().Is4() {
					prefixes = append(prefixes, p.Masked())
				}
			}
			if _, ok := m.testAddr(fam6); ok {
				want6 = true
			}
			if l, err := d.h.LinkByName(m.cfg.Interface); err == nil {
				members[l.Attrs().Index] = true
			}
		}
		inside := func(a netip.Addr) bool {
			if a.Is6() {
				return a.IsLinkLocalUnicast()
			}
			return slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a) })
		}
		pick := func(routes []netlink.Route, v6 bool) (cands []netip.Addr) {
			var hosts, routers []netip.Addr
			for _, r := range routes {
				if r.Table != unix.RT_TABLE_MAIN && r.Table != 0 {
					continue
				}
				if v6 && !members[r.LinkIndex] {
					continue // link-local next hops mean something only on our members
				}
				if gw, ok := netip.AddrFromSlice(r.Gw); ok && inside(gw.Unmap()) {
					if r.Dst != nil {
						if ones, bits := r.Dst.Mask.Size(); ones == bits {
							hosts = append(hosts, gw.Unmap())
							continue
						}
					}
					routers = append(routers, gw.Unmap())
					continue
				}
				if !v6 && r.Dst != nil && r.Gw == nil {
					if ones, bits := r.Dst.Mask.Size(); ones == bits && bits == 32 {
						if dst, ok := netip.AddrFromSlice(r.Dst.IP); ok && inside(dst.Unmap()) {
							hosts = append(hosts, dst.Unmap())
						}
					}
				}
			}
			return append(hosts, routers...)
		}
		for _, fam := range []struct {
			v6     bool
			routes []netlink.Route
			set    func(string, string, []netip.Addr)
			wanted bool
		}{
			{false, routes4, d.core.SetTargets, len(prefixes) > 0},
			{true, routes6, d.core.SetTargets6, want6},
		} {
			cands := pick(fam.routes, fam.v6)
			mode := "routes"
			if len(cands) == 0 && fam.wanted {
				mode = "multicast"
				key := g.cfg.Name + "/4"
				if fam.v6 {
					key = g.cfg.Name + "/6"
				}
				cands = d.found[key]
				// Ask again while few have answered.
				if len(cands) < 3 && discover {
					d.discover(g, fam.v6, now)
				}
			}
			fam.set(g.cfg.Name, mode, cands)
		}
	}
	if discover {
		d.lastDisc = now
	}
}

// discover sends an echo to all hosts (224.0.0.1, ff02::1) from each
// working member; the answers come back with the discovery sequence
// number.
func (d *Daemon) discover(g *group, v6 bool, now time.Time) {
	f, all := fam4, netip.MustParseAddr("224.0.0.1")
	if v6 {
		f, all = fam6, netip.MustParseAddr("ff02::1")
	}
	for _, m := range g.members {
		src, ok := m.testAddr(f)
		if !ok || !m.usable(now) {
			continue
		}
		d.sendProbe(Probe{Interface: m.cfg.Interface, Src: src, Target: all, Seq: discoverySeq}, now)
	}
}

// apply makes the kernel match the core: addresses first added where
// they go, then routes, then removed where they left, then announced.
func (d *Daemon) apply(now time.Time) {
	want, routes := d.core.Desired()
	known := map[netip.Addr]bool{}
	for _, g := range d.core.groups {
		for _, m := range g.members {
			for _, p := range m.cfg.Test {
				known[p.Addr()] = true
			}
		}
		for _, x := range g.data {
			known[x.prefix.Addr()] = true
		}
	}
	byIface := map[string][]Assigned{}
	for _, a := range want {
		byIface[a.Interface] = append(byIface[a.Interface], a)
	}
	links := map[string]*kLink{}
	for _, name := range d.core.Members() {
		l, err := d.h.LinkByName(name)
		if err != nil {
			continue
		}
		as, err := d.h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			d.log.Warn("listing addresses", "interface", name, "err", err)
			continue
		}
		has := map[netip.Addr]netlink.Addr{}
		ll := netip.Addr{}
		for _, a := range as {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				has[ip.Unmap()] = a
				if ip.Is6() && ip.IsLinkLocalUnicast() && !ll.IsValid() {
					ll = ip
				}
			}
		}
		d.core.SetLinkLocal(name, ll)
		links[name] = &kLink{l: l, has: has}
	}
	var announce []Assigned
	for name, as := range byIface {
		lk := links[name]
		if lk == nil {
			continue
		}
		for _, a := range as {
			if _, ok := lk.has[a.Prefix.Addr()]; ok {
				continue
			}
			na := &netlink.Addr{IPNet: prefixNet(a.Prefix), Flags: unix.IFA_F_NOPREFIXROUTE}
			if a.Prefix.Addr().Is6() {
				na.Flags |= unix.IFA_F_NODAD
			}
			if err := d.h.AddrReplace(lk.l, na); err != nil {
				d.log.Warn("adding an address", "interface", name, "address", a.Prefix, "err", err)
				continue
			}
			if !a.Test {
				announce = append(announce, a)
			}
		}
	}
	d.routes(links, routes, now)
	for name, lk := range links {
		for ip, a := range lk.has {
			if !known[ip] {
				continue
			}
			if slices.ContainsFunc(byIface[name], func(x Assigned) bool { return x.Prefix.Addr() == ip }) {
				continue
			}
			if err := d.h.AddrDel(lk.l, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				d.log.Warn("removing an address", "interface", name, "address", ip, "err", err)
			}
		}
	}
	for _, a := range announce {
		lk := links[a.Interface]
		d.announce(a.Prefix.Addr(), a.Interface, lk.l.Attrs().Index, lk.l.Attrs().HardwareAddr)
	}
}

// kLink is a member as the kernel has it now.
type kLink struct {
	l   netlink.Link
	has map[netip.Addr]netlink.Addr
}

func prefixNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

// routes owns one route per data prefix through the member chosen for it,
// with a data address as its source (test addresses are never chosen for
// traffic), and moves gateway routes off members that cannot carry them.
// The kernel keeps a connected route per interface, and outbound traffic
// follows the route, not the interface of its source address: without
// this, replies kept leaving through the failed member.
func (d *Daemon) routes(links map[string]*kLink, want map[netip.Prefix]string, now time.Time) {
	ours, err := d.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: rtProto, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		d.log.Warn("listing routes", "err", err)
	}
	for prefix, name := range want {
		lk := links[name]
		if lk == nil {
			continue
		}
		r := netlink.Route{LinkIndex: lk.l.Attrs().Index, Dst: prefixNet(prefix), Scope: netlink.SCOPE_LINK,
			Protocol: rtProto, Table: unix.RT_TABLE_MAIN}
		if src := d.source(prefix, name); src.IsValid() {
			r.Src = src.AsSlice()
		}
		if prefix.Addr().Is6() {
			r.Scope = netlink.SCOPE_UNIVERSE
		}
		if err := d.h.RouteReplace(&r); err != nil {
			d.log.Warn("routing a prefix through a member", "prefix", prefix, "interface", name, "err", err)
		}
	}
	for _, r := range ours {
		if r.Dst == nil || r.Gw != nil {
			continue
		}
		p, ok := netipPrefix(r.Dst)
		if !ok {
			continue
		}
		if name, ok := want[p]; ok {
			if lk := links[name]; lk != nil && lk.l.Attrs().Index == r.LinkIndex {
				continue
			}
		}
		if err := d.h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			d.log.Warn("removing a prefix route", "prefix", p, "err", err)
		}
	}
	d.gateways(links, want, now)
}

// source is the address a prefix route through name prefers: a data
// address in the prefix on that member.
func (d *Daemon) source(prefix netip.Prefix, name string) netip.Addr {
	for _, p := range d.core.DataOn(name) {
		if prefix.Contains(p.Addr()) {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

func routeKey(r netlink.Route) string {
	return fmt.Sprintf("%v|%v|%d|%d|%d", r.Dst, r.Gw, r.Priority, r.Table, r.Family)
}

// gateways moves routes through a next hop in a group's prefix off a
// member that cannot carry traffic, to the member the prefix routes
// through, and back to it when it works again.
func (d *Daemon) gateways(links map[string]*kLink, want map[netip.Prefix]string, now time.Time) {
	all, err := d.h.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return
	}
	byIndex := map[int]string{}
	for name, lk := range links {
		byIndex[lk.l.Attrs().Index] = name
	}
	for _, r := range all {
		if r.Gw == nil || r.Protocol == rtProto || (r.Table != unix.RT_TABLE_MAIN && r.Table != 0) {
			continue
		}
		name, ok := byIndex[r.LinkIndex]
		if !ok {
			continue
		}
		gw, _ := netip.AddrFromSlice(r.Gw)
		gw = gw.Unmap()
		via := ""
		for p, n := range want {
			if p.Contains(gw) {
				via = n
			}
		}
		key := routeKey(r)
		mv, wasMoved := d.moved[key]
		target := ""
		switch {
		case wasMoved && mv.home != name && d.core.Usable(now, mv.home) && links[mv.home] != nil:
			target = mv.home
		case !d.core.Usable(now, name) && via != "" && via != name:
			target = via
		}
		if target == "" {
			continue
		}
		nr := netlink.Route{LinkIndex: links[target].l.Attrs().Index, Dst: r.Dst, Gw: r.Gw, Src: r.Src, Priority: r.Priority,
			Table: r.Table, Protocol: r.Protocol, Scope: r.Scope, Family: r.Family, Type: r.Type}
		if err := d.h.RouteDel(&r); err != nil {
			d.log.Warn("moving a route", "route", r.String(), "err", err)
			continue
		}
		if err := d.h.RouteAdd(&nr); err != nil {
			d.log.Warn("moving a route", "route", nr.String(), "err", err)
			d.h.RouteAdd(&r)
			continue
		}
		d.log.Info("route moved", "route", nr.String(), "from", name, "to", target)
		if wasMoved && target == mv.home {
			delete(d.moved, key)
		} else if !wasMoved {
			d.moved[routeKey(nr)] = movedRoute{route: r, home: name}
		}
	}
}

// announce sends the burst of gratuitous ARPs (or neighbour
// advertisements) for an address that came to an interface; a newer move
// of the same address ends the previous burst.
func (d *Daemon) announce(addr netip.Addr, ifname string, ifindex int, mac net.HardwareAddr) {
	if c := d.bursts[addr]; c != nil {
		c()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.bursts[addr] = cancel
	send := func() error {
		return d.inNS(func() error {
			if addr.Is4() {
				return sendGARP(ifindex, mac, addr)
			}
			return sendNA(ifname, ifindex, mac, addr)
		})
	}
	// The first at once: it is what repairs the neighbours' caches.
	if err := send(); err != nil {
		d.log.Warn("announcing a moved address", "address", addr, "interface", ifname, "err", err)
	}
	go func() {
		for i := 1; i < d.opts.ARPCount; i++ {
			select {
			case <-ctx.Done():
				return
			case <-d.done:
				return
			case <-time.After(d.opts.ARPInterval):
			}
			send()
		}
	}()
}

// publish logs the core's messages and hands them on.
func (d *Daemon) publish() {
	for _, m := range d.core.Messages() {
		if m.Error {
			d.log.Warn(m.Text, "group", m.Group, "interface", m.Interface)
		} else {
			d.log.Info(m.Text, "group", m.Group, "interface", m.Interface)
		}
		if d.opts.OnMessage != nil {
			d.opts.OnMessage(m)
		}
	}
}

// do runs fn in the loop and waits for it.
func (d *Daemon) do(ctx context.Context, fn func(now time.Time) error) error {
	errc := make(chan error, 1)
	select {
	case d.reqs <- func(now time.Time) { errc <- fn(now) }:
	case <-d.done:
		return errors.New("ipmp: the daemon has stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Status is the state as of the last change.
func (d *Daemon) Status(ctx context.Context) (api.IPMPStatus, error) {
	var st api.IPMPStatus
	err := d.do(ctx, func(now time.Time) error {
		st = d.core.Status(now)
		return nil
	})
	return st, err
}

// Probes are the probes sent since t (ipmpstat -p).
func (d *Daemon) Probes(ctx context.Context, since time.Time) ([]api.IPMPProbe, error) {
	var out []api.IPMPProbe
	err := d.do(ctx, func(now time.Time) error {
		out = d.core.ProbesSince(since)
		return nil
	})
	return out, err
}

// Offline takes a member out of service: data addresses move, test
// addresses come down. The state is kept across agent restarts.
func (d *Daemon) Offline(ctx context.Context, iface string, force bool) error {
	return d.do(ctx, func(now time.Time) error {
		if err := d.core.Offline(now, iface, force); err != nil {
			return err
		}
		d.dropProber(iface)
		d.apply(now)
		d.publish()
		return d.saveOffline()
	})
}

// UndoOffline puts a member back; its data addresses come back once it
// works (and FAILBACK allows).
func (d *Daemon) UndoOffline(ctx context.Context, iface string) error {
	return d.do(ctx, func(now time.Time) error {
		if err := d.core.UndoOffline(now, iface); err != nil {
			return err
		}
		if l, err := d.h.LinkByName(iface); err == nil {
			d.prepare(l)
			if l, err = d.h.LinkByName(iface); err == nil {
				d.core.Link(now, iface, true, linkState(l))
			}
		}
		d.apply(now)
		d.publish()
		return d.saveOffline()
	})
}

// Member says whether iface is in a group, and how many other members of
// its group work now.
func (d *Daemon) Member(ctx context.Context, iface string) (group string, others int, offline bool, err error) {
	err = d.do(ctx, func(now time.Time) error {
		group = d.core.GroupOf(iface)
		others = d.core.OthersUsable(now, iface)
		if m := d.core.byIface[iface]; m != nil {
			offline = m.offline
		}
		return nil
	})
	return group, others, offline, err
}

// AddFloating places an address with no home (a logical hostname) on the
// best working member of a group (or of the named interface's group).
func (d *Daemon) AddFloating(ctx context.Context, groupOrIface string, p netip.Prefix) error {
	return d.do(ctx, func(now time.Time) error {
		if err := d.core.AddFloating(now, groupOrIface, p); err != nil {
			return err
		}
		d.apply(now)
		d.publish()
		return nil
	})
}

// RemoveFloating takes a floating address away.
func (d *Daemon) RemoveFloating(ctx context.Context, addr netip.Addr) error {
	return d.do(ctx, func(now time.Time) error {
		iface, _, _ := d.core.WhereIs(addr)
		if !d.core.RemoveFloating(addr) {
			return nil
		}
		if iface != "" {
			if l, err := d.h.LinkByName(iface); err == nil {
				as, _ := d.h.AddrList(l, netlink.FAMILY_ALL)
				for _, a := range as {
					if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
						d.h.AddrDel(l, &a)
					}
				}
			}
		}
		if c := d.bursts[addr]; c != nil {
			c()
			delete(d.bursts, addr)
		}
		d.apply(now)
		return d.saveOffline()
	})
}

// WhereIs names the member an address of a group is on now ("" for
// nowhere) and its group, and whether the kernel has it there on a
// working member; known is false for an address of no group.
func (d *Daemon) WhereIs(ctx context.Context, addr netip.Addr) (iface, group string, up, known bool, err error) {
	err = d.do(ctx, func(now time.Time) error {
		iface, group, known = d.core.WhereIs(addr)
		if iface == "" {
			return nil
		}
		l, err := d.h.LinkByName(iface)
		if err != nil {
			return nil
		}
		as, _ := d.h.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range as {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
				up = d.core.Usable(now, iface)
			}
		}
		return nil
	})
	return iface, group, up, known, err
}

// savedState is what outlives the agent: the interfaces taken offline and
// the logical hostnames' addresses (their resources stay online across an
// agent restart, and their addresses must go on moving).
type savedState struct {
	Version  int             `json:"version"`
	Offline  []string        `json:"offline"`
	Floating []savedFloating `json:"floating,omitempty"`
}

type savedFloating struct {
	Address string `json:"address"`
	Target  string `json:"target"` // group or interface
}

func (d *Daemon) saveOffline() error {
	if d.opts.StateFile == "" {
		return nil
	}
	st := savedState{Version: 1, Offline: []string{}}
	for _, name := range d.core.Members() {
		if d.core.byIface[name].offline {
			st.Offline = append(st.Offline, name)
		}
	}
	sort.Strings(st.Offline)
	for _, g := range d.core.groups {
		for _, x := range g.data {
			if x.floating {
				target := g.cfg.Name
				if x.home != "" {
					target = x.home
				}
				st.Floating = append(st.Floating, savedFloating{Address: x.prefix.String(), Target: target})
			}
		}
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.MkdirAll(filepath.Dir(d.opts.StateFile), 0o750); err != nil {
		return fmt.Errorf("ipmp: %w", err)
	}
	if err := atomicfile.Write(d.opts.StateFile, append(b, '\n'), 0o640); err != nil {
		return fmt.Errorf("ipmp: saving the offline interfaces: %w", err)
	}
	return nil
}

func (d *Daemon) loadState() savedState {
	if d.opts.StateFile == "" {
		return savedState{}
	}
	b, err := os.ReadFile(d.opts.StateFile)
	if err != nil {
		return savedState{}
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil || st.Version != 1 {
		d.log.Warn("ignoring an unreadable saved state", "file", d.opts.StateFile, "err", err)
		return savedState{}
	}
	return st
}
