package ipmp

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
)

// Defaults of the in.mpathd tunables.
const (
	DefaultFDT = 10 * time.Second
	// MinFDT is the smallest failure detection time accepted.
	MinFDT = 100 * time.Millisecond
	// probeFails lost probes in a row fail a member; probeRepairs
	// answered ones in a row repair it.
	probeFails   = 5
	probeRepairs = 10
	// maxTargets is the most probe targets a group uses.
	maxTargets = 5
	// deadTargetFor is how long a target that stopped answering while the
	// others answer is left out.
	deadTargetFor = 60 * time.Second
	// lowerFDTAfter is how long after a raise of the detection time it
	// may be lowered again.
	lowerFDTAfter = 60 * time.Second
	// flapLimit: a link that came up more than flapLimit times within
	// the flap window is not taken as repaired until it holds for as long.
	flapLimit = 2
	// quietPeriod: after an interface appears, lost probes do not count
	// until one is answered or this time has passed (in.mpathd's ride
	// over spanning-tree learning on the switch port).
	quietPeriod = 40 * time.Second
)

// Errors of operator requests.
var (
	ErrUnknown    = errors.New("not a physical interface or not in an IPMP group")
	ErrRedundancy = errors.New("no other functioning interfaces are in its IPMP group")
	ErrNotOffline = errors.New("the interface is not offline")
	ErrStandby    = errors.New("a standby interface may carry only test addresses")
	ErrExists     = errors.New("the address is in use")
	ErrDupMAC     = errors.New("it was offlined because its hardware address is not unique in its group")
)

// Settings are the daemon-wide tunables (/etc/default/mpathd).
type Settings struct {
	// FDT is the failure detection time of probe-based detection.
	FDT time.Duration
	// Failback moves data addresses back to a repaired interface; without
	// it a repaired interface stays inactive while another one works.
	Failback bool
	// FlapWindow: a link that came up more than twice within it is not
	// taken as repaired until it has held for as long (0: a minute, as
	// in.mpathd; negative: no such rule).
	FlapWindow time.Duration
}

// GroupConfig is one multipathing group as configured.
type GroupConfig struct {
	Name    string
	Members []MemberConfig
}

// MemberConfig is one interface of a group.
type MemberConfig struct {
	Interface string
	// Standby holds the interface in reserve: used only when an active
	// member fails.
	Standby bool
	// Test addresses stay on the interface (the probes' source).
	Test []netip.Prefix
	// Data addresses have this interface as their home; they move.
	Data []netip.Prefix
	// TestLinkLocal probes over IPv6 from the interface's link-local
	// address (hostname6.<if> with "-failover" and no address).
	TestLinkLocal bool
}

// Validate checks a group: a name of at most 31 characters, members
// named once, addresses unique, no data address on a standby member.
func (g GroupConfig) Validate() error {
	if g.Name == "" || len(g.Name) > 31 || strings.ContainsAny(g.Name, " \t/") {
		return fmt.Errorf("group name %q: 1 to 31 characters, no spaces or slashes", g.Name)
	}
	if len(g.Members) == 0 {
		return fmt.Errorf("group %s has no interfaces", g.Name)
	}
	seen, addrs := map[string]bool{}, map[netip.Addr]string{}
	for _, m := range g.Members {
		if m.Interface == "" || len(m.Interface) > 15 || strings.ContainsAny(m.Interface, " /:") {
			return fmt.Errorf("group %s: interface name %q is not a Linux interface name", g.Name, m.Interface)
		}
		if seen[m.Interface] {
			return fmt.Errorf("group %s: interface %s is named twice", g.Name, m.Interface)
		}
		seen[m.Interface] = true
		if m.Standby && len(m.Data) > 0 {
			return fmt.Errorf("group %s: %s: %w", g.Name, m.Interface, ErrStandby)
		}
		for _, p := range append(append([]netip.Prefix(nil), m.Test...), m.Data...) {
			if !p.IsValid() || p.Addr().IsUnspecified() || p.Addr().IsMulticast() || p.Addr().IsLoopback() {
				return fmt.Errorf("group %s: %s: %v is not a usable unicast address", g.Name, m.Interface, p)
			}
			if other, ok := addrs[p.Addr()]; ok {
				return fmt.Errorf("group %s: address %v is given to %s and %s", g.Name, p.Addr(), other, m.Interface)
			}
			addrs[p.Addr()] = m.Interface
		}
	}
	return nil
}

// LinkState is what the driver says of the carrier.
type LinkState int

// Link states.
const (
	LinkUnknown LinkState = iota
	LinkUp
	LinkDown
)

func (l LinkState) String() string {
	switch l {
	case LinkUp:
		return "up"
	case LinkDown:
		return "down"
	}
	return "unknown"
}

// Message is a line the daemon logs (and publishes), in in.mpathd's words.
type Message struct {
	Time  time.Time
	Error bool // a failure, not news
	Text  string
	// Group and Interface say what it is about (for events).
	Group, Interface string
	Kind             string // failure, repair, failover, failback, group-failure, group-repair, link, offline, probe
}

type pending struct {
	seq    uint16
	target netip.Addr
	sent   time.Time
}

type target struct {
	addr       netip.Addr
	srtt, dev  time.Duration // smoothed round trip and its deviation
	samples    int
	lostRun    int
	deadUntil  time.Time
	lastAnswer time.Time
}

func (t *target) crtt(interval time.Duration) time.Duration {
	if t.samples == 0 {
		return interval
	}
	c := t.srtt + 4*t.dev
	if c < time.Millisecond {
		c = time.Millisecond
	}
	return c
}

// ProbeRecord is one probe as ipmpstat -p shows it.
type ProbeRecord struct {
	Time      time.Time
	Interface string
	Seq       uint16
	Target    netip.Addr
	RTT       time.Duration // 0: lost
	Lost      bool
}

type member struct {
	cfg     MemberConfig
	group   *group
	present bool
	link    LinkState
	offline bool
	// probe state, by family
	ps         [2]probeState
	linkLocal  netip.Addr  // its IPv6 link-local address, as last read
	ups        []time.Time // link-up times, for the flap rule
	wasUp      bool        // its link has been up since it appeared
	mac        string      // its hardware address, as last read
	dup        bool        // offlined: another member has the same hardware address
	quietUntil time.Time   // losses before the first answer do not count until then
	answered   bool        // a probe has been answered since it appeared
	// placement state
	failed   bool // as last judged
	inactive bool // repaired with FAILBACK=no, or a standby not deployed
	active   bool
}

type dataAddr struct {
	prefix netip.Prefix
	home   string // the interface whose address it is
	on     string // where it is now ("": nowhere)
	// Floating addresses (logical hostnames) have no home.
	floating bool
}

type group struct {
	cfg        GroupConfig
	members    []*member
	data       []*dataAddr
	targets    [2][]*target // by family
	mode       [2]string    // routes, multicast, disabled
	fdt        time.Duration
	flapWindow time.Duration
	raisedAt   time.Time
	allFailed  bool
}

// Core is the multipathing policy of one host. It is not safe for
// concurrent use; the daemon owns it.
type Core struct {
	set     Settings
	groups  []*group
	byIface map[string]*member
	rnd     *rand.Rand
	msgs    []Message
	probes  []ProbeRecord // ring of recent probes
	started bool
}

// NewCore builds the policy for the groups. seed makes the probe jitter
// repeatable in tests.
func NewCore(set Settings, groups []GroupConfig, seed uint64) (*Core, error) {
	if set.FDT == 0 {
		set.FDT = DefaultFDT
	}
	if set.FlapWindow == 0 {
		set.FlapWindow = time.Minute
	}
	if set.FDT < MinFDT {
		return nil, fmt.Errorf("failure detection time %v is below the minimum of %v", set.FDT, MinFDT)
	}
	c := &Core{set: set, byIface: map[string]*member{}, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	names := map[string]bool{}
	addrs := map[netip.Addr]string{}
	for _, gc := range groups {
		if err := gc.Validate(); err != nil {
			return nil, err
		}
		if names[gc.Name] {
			return nil, fmt.Errorf("group %s is configured twice", gc.Name)
		}
		names[gc.Name] = true
		g := &group{cfg: gc, fdt: set.FDT, flapWindow: set.FlapWindow, mode: [2]string{"disabled", "disabled"}}
		for _, mc := range gc.Members {
			if other, ok := c.byIface[mc.Interface]; ok {
				return nil, fmt.Errorf("interface %s is in groups %s and %s", mc.Interface, other.group.cfg.Name, gc.Name)
			}
			m := &member{cfg: mc, group: g}
			g.members = append(g.members, m)
			c.byIface[mc.Interface] = m
			for _, p := range append(append([]netip.Prefix(nil), mc.Test...), mc.Data...) {
				if other, ok := addrs[p.Addr()]; ok {
					return nil, fmt.Errorf("address %v is in groups %s and %s", p.Addr(), other, gc.Name)
				}
				addrs[p.Addr()] = gc.Name
			}
			for _, p := range mc.Data {
				g.data = append(g.data, &dataAddr{prefix: p, home: mc.Interface})
			}
		}
		c.groups = append(c.groups, g)
	}
	return c, nil
}

// Settings returns the tunables in force.
func (c *Core) Settings() Settings { return c.set }

func (c *Core) say(now time.Time, g *group, iface, kind string, isErr bool, format string, args ...any) {
	name := ""
	if g != nil {
		name = g.cfg.Name
	}
	c.msgs = append(c.msgs, Message{Time: now, Error: isErr, Text: fmt.Sprintf(format, args...), Group: name, Interface: iface, Kind: kind})
}

// Messages returns and forgets what happened since the last call.
func (c *Core) Messages() []Message {
	m := c.msgs
	c.msgs = nil
	return m
}

// Link records the state of an interface: present (it exists) and its
// carrier, and places the group's addresses. Interfaces of no group are
// ignored.
func (c *Core) Link(now time.Time, iface string, present bool, link LinkState) {
	c.Note(now, iface, present, link)
	c.place(now)
}

// Place places every group's addresses after a series of Notes.
func (c *Core) Place(now time.Time) { c.place(now) }

// Note records the state of an interface without placing: a burst of
// link events (a switch going down reports every port) is noted whole
// and placed once, so that a group-wide failure moves nothing.
func (c *Core) Note(now time.Time, iface string, present bool, link LinkState) {
	m := c.byIface[iface]
	if m == nil {
		return
	}
	if !present {
		link = LinkUnknown
	}
	if m.present == present && m.link == link {
		return
	}
	was := m.link
	if present && !m.present {
		m.quietUntil, m.answered = now.Add(quietPeriod), false
	}
	m.present = present
	m.link = link
	if c.started && present && was != link {
		switch link {
		case LinkDown:
			if was == LinkUp {
				c.say(now, m.group, iface, "link", true, "The link has gone down on %s", iface)
			}
		case LinkUp:
			if was == LinkDown {
				c.say(now, m.group, iface, "link", false, "The link has come up on %s", iface)
			}
		}
	}
	// A flap is a link that was up going down and up again; coming up
	// after its appearance, or while offline (a DR configure), is none.
	if link == LinkUp && was == LinkDown && c.set.FlapWindow > 0 && m.wasUp && !m.offline {
		m.ups = append(m.ups, now)
		m.ups = slices.DeleteFunc(m.ups, func(t time.Time) bool { return now.Sub(t) > c.set.FlapWindow })
		if len(m.ups) > flapLimit {
			c.say(now, m.group, iface, "link", true, "The link has come up on %s more than %d times in the last %v; disabling repair until it stabilizes", iface, flapLimit, c.set.FlapWindow)
		}
	}
	if link == LinkUp {
		m.wasUp = true
	}
	if !present {
		// A removed interface takes its probes with it.
		m.dropOutstanding()
		m.wasUp = false
		m.mac, m.dup = "", false
		// Another member that shared its address may be unique now.
		c.checkMACs(now, m.group)
	}
}

// flapping says whether the flap rule withholds the repair of m.
func (m *member) flapping(now time.Time, window time.Duration) bool {
	if len(m.ups) <= flapLimit {
		return false
	}
	last := m.ups[len(m.ups)-1]
	if now.Sub(last) >= window {
		m.ups = nil
		return false
	}
	return true
}

// held says whether m failed by probes alone while another member of its
// group is losing probes too, without having failed yet: its addresses
// wait for that member's next result, so that a path failing for the
// whole group is a group failure and moves nothing.
func (m *member) held() bool {
	if !m.probeFail() || m.link != LinkUp || !m.present || m.offline {
		return false
	}
	for _, o := range m.group.members {
		if o != m && !o.probeFail() && o.losing() && o.link == LinkUp && o.present && !o.offline {
			return true
		}
	}
	return false
}

// usable: able to carry data addresses now.
func (m *member) usable(now time.Time) bool {
	return m.present && m.link == LinkUp && !m.probeFail() && !m.offline && !m.dup && !m.flapping(now, m.group.flapWindow)
}

// SetMAC records an interface's hardware address. Members of a group
// must have unique ones (a neighbour could not tell them apart): of those
// that share one, all but the first in the group's order are offlined
// until it is unique again.
func (c *Core) SetMAC(now time.Time, iface, mac string) {
	m := c.byIface[iface]
	if m == nil || m.mac == mac {
		return
	}
	m.mac = mac
	c.checkMACs(now, m.group)
	c.place(now)
}

// checkMACs marks the members whose hardware address an earlier member
// of the group has; the caller places.
func (c *Core) checkMACs(now time.Time, g *group) {
	seen := map[string]bool{}
	for _, m := range g.members {
		dup := m.present && m.mac != "" && seen[m.mac]
		if m.present && m.mac != "" {
			seen[m.mac] = true
		}
		switch {
		case dup && !m.dup:
			c.say(now, g, m.cfg.Interface, "offline", true, "IP interface %s has a hardware address which is not unique in group %s; offlining", m.cfg.Interface, g.cfg.Name)
		case !dup && m.dup:
			c.say(now, g, m.cfg.Interface, "offline", false, "IP interface %s now has a unique hardware address in group %s; bringing it back", m.cfg.Interface, g.cfg.Name)
			m.failed = true // its return is a repair
		}
		m.dup = dup
	}
}

// Start marks the end of the initial state (the first link dump): from
// here on, changes are news and are logged as such; members missing now
// are reported with the boot-time message.
func (c *Core) Start(now time.Time) {
	c.started = true
	for _, g := range c.groups {
		for _, m := range g.members {
			for f := range m.ps {
				m.ps[f].slot = now.Add(time.Duration(c.rnd.Int64N(int64(g.interval()))))
				m.ps[f].nextProbe = m.ps[f].slot
			}
			m.failed = !m.usable(now)
		}
	}
	for _, g := range c.groups {
		c.placeGroup(now, g, true)
	}
}

func (g *group) interval() time.Duration { return g.fdt / (probeFails + 2) }

// place recomputes every group's placement.
func (c *Core) place(now time.Time) {
	if !c.started {
		return
	}
	for _, g := range c.groups {
		c.placeGroup(now, g, false)
	}
}

// placeGroup judges each member and moves data addresses where they must
// be: on their home when it works (and FAILBACK allows), else on the
// active member with the fewest. boot words the messages as the boot
// scripts do for interfaces missing at start.
func (c *Core) placeGroup(now time.Time, g *group, boot bool) {
	name := g.cfg.Name
	var usable []*member
	for _, m := range g.members {
		u := m.usable(now)
		if u {
			usable = append(usable, m)
		}
		failedNow := !u && !m.offline && !m.dup
		switch {
		case failedNow && !m.failed && !boot:
			if m.present || m.link != LinkUnknown {
				c.say(now, g, m.cfg.Interface, "failure", true, "IP interface failure detected on %s of group %s", m.cfg.Interface, name)
			} else {
				c.say(now, g, m.cfg.Interface, "failure", true, "IP interface %s of group %s has gone away", m.cfg.Interface, name)
			}
		case !failedNow && m.failed && !m.offline && !m.dup:
			c.say(now, g, m.cfg.Interface, "repair", false, "IP interface repair detected on %s of group %s", m.cfg.Interface, name)
			if !c.set.Failback {
				m.inactive = true
			}
		}
		m.failed = failedNow
	}
	if len(usable) == 0 {
		if !g.allFailed {
			g.allFailed = true
			if !boot {
				c.say(now, g, "", "group-failure", true, "All IP interfaces in group %s are now unusable", name)
			}
		}
		for _, m := range g.members {
			m.active = false
		}
		// A group-wide failure is the network's, not the interfaces': move
		// nothing. Addresses on an interface that is gone are nowhere.
		for _, d := range g.data {
			if m := c.byIface[d.on]; d.on != "" && (m == nil || !m.present || m.offline || m.dup) {
				d.on = ""
			}
			if d.on == "" && !boot {
				continue
			}
			if boot && d.on == "" && d.home != "" {
				c.say(now, g, d.home, "failover", true, "moving addresses from missing %s interfaces: %s (couldn't move; no alternative interface)", family(d.prefix), d.home)
			}
		}
		return
	}
	if g.allFailed {
		g.allFailed = false
		c.say(now, g, usable[0].cfg.Interface, "group-repair", false, "At least 1 IP interface (%s) in group %s is now usable", usable[0].cfg.Interface, name)
	}
	// Actives: the working non-standby members not held back, topped up
	// with standby (first) and held-back members to the configured count.
	want := 0
	for _, m := range g.members {
		if !m.cfg.Standby {
			want++
		}
	}
	if want == 0 {
		want = 1
	}
	for _, m := range g.members {
		m.active = false
	}
	n := 0
	for _, m := range usable {
		if !m.cfg.Standby && !m.inactive {
			m.active = true
			n++
		}
	}
	// A member held back after a repair under FAILBACK=no is used only
	// when nothing else is.
	for _, pass := range []func(*member) bool{
		func(m *member) bool { return m.cfg.Standby },
		func(m *member) bool { return !m.cfg.Standby && n == 0 },
	} {
		for _, m := range usable {
			if n >= want {
				break
			}
			if !m.active && pass(m) {
				m.active = true
				n++
				if !m.cfg.Standby {
					m.inactive = false
				}
			}
		}
	}
	for _, m := range g.members {
		if m.cfg.Standby {
			m.inactive = !m.active
		}
	}
	count := map[string]int{}
	for _, d := range g.data {
		if m := c.byIface[d.on]; m != nil && m.active {
			count[d.on]++
		}
	}
	type move struct {
		from, to string
		back     bool // home again
	}
	var moves []move
	for _, d := range g.data {
		cur := c.byIface[d.on]
		home := c.byIface[d.home]
		to := ""
		switch {
		case home != nil && home.active && d.on != d.home && (c.set.Failback || cur == nil || !cur.active):
			to = d.home
		case cur != nil && cur.active:
			continue
		case cur != nil && cur.held():
			// Probes are being lost by the others too: wait for their
			// outcome, which may be a group failure.
			continue
		default:
			var best *member
			for _, m := range g.members {
				if m.active && (best == nil || count[m.cfg.Interface] < count[best.cfg.Interface]) {
					best = m
				}
			}
			to = best.cfg.Interface
		}
		if to == d.on {
			continue
		}
		from := d.on
		if from == "" && to != d.home {
			from = d.home // it could not be put on its home
		}
		if cur != nil && cur.active {
			count[d.on]--
		}
		count[to]++
		d.on = to
		if from != "" {
			moves = append(moves, move{from, to, to == d.home})
		}
	}
	// One line per interface and family, as the boot scripts print.
	seen := map[string]bool{}
	for _, mv := range moves {
		for _, fam := range []string{"IPv4", "IPv6"} {
			has := false
			for _, d := range g.data {
				if d.on == mv.to && family(d.prefix) == fam {
					has = true
				}
			}
			key := mv.from + ">" + mv.to + fam
			if !has || seen[key] {
				continue
			}
			seen[key] = true
			if mv.back {
				c.say(now, g, mv.to, "failback", false, "moving addresses back to repaired %s interface: %s (moved from %s)", fam, mv.to, mv.from)
				continue
			}
			word := "failed"
			if boot {
				word = "missing"
			}
			if m := c.byIface[mv.from]; m != nil && m.offline {
				word = "offlined"
			}
			c.say(now, g, mv.from, "failover", false, "moving addresses from %s %s interfaces: %s (moved to %s)", word, fam, mv.from, mv.to)
		}
	}
}

func family(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// Offline takes an interface out of service (if_mpadm -d, a DR detach):
// its data addresses move to another working member and its test
// addresses come down. Refused when no other member of the group works,
// unless forced.
func (c *Core) Offline(now time.Time, iface string, force bool) error {
	m := c.byIface[iface]
	if m == nil {
		return fmt.Errorf("cannot offline %s: %w", iface, ErrUnknown)
	}
	if m.offline {
		return nil
	}
	others := 0
	for _, o := range m.group.members {
		if o != m && o.usable(now) {
			others++
		}
	}
	if others == 0 && !force {
		return fmt.Errorf("cannot offline %s: %w", iface, ErrRedundancy)
	}
	m.offline = true
	m.dropOutstanding()
	c.say(now, m.group, iface, "offline", false, "IP interface %s of group %s is offline", iface, m.group.cfg.Name)
	c.place(now)
	return nil
}

// UndoOffline puts an offline interface back (if_mpadm -r, a DR attach
// or the undo of a failed detach); its addresses come back when it works.
func (c *Core) UndoOffline(now time.Time, iface string) error {
	m := c.byIface[iface]
	if m == nil {
		return fmt.Errorf("cannot undo offline on %s: %w", iface, ErrUnknown)
	}
	if m.dup {
		return fmt.Errorf("cannot undo offline on %s: %w", iface, ErrDupMAC)
	}
	if !m.offline {
		return fmt.Errorf("cannot undo offline on %s: %w", iface, ErrNotOffline)
	}
	m.offline = false
	m.resetProbes()
	m.failed = true // its return is a repair
	c.say(now, m.group, iface, "offline", false, "IP interface %s of group %s is no longer offline", iface, m.group.cfg.Name)
	c.place(now)
	return nil
}

// AddFloating adds a data address with no home interface (a logical
// hostname): it goes to the best working member of the group, or of the
// group the interface is in.
func (c *Core) AddFloating(now time.Time, groupOrIface string, p netip.Prefix) error {
	g := c.group(groupOrIface)
	if g == nil {
		if m := c.byIface[groupOrIface]; m != nil {
			g = m.group
		}
	}
	if g == nil {
		return fmt.Errorf("%s: no such IPMP group or grouped interface", groupOrIface)
	}
	for _, o := range c.groups {
		for _, d := range o.data {
			if d.prefix.Addr() == p.Addr() {
				if d.floating && o == g {
					return nil
				}
				return fmt.Errorf("%v: %w in group %s", p.Addr(), ErrExists, o.cfg.Name)
			}
		}
		for _, m := range o.members {
			for _, t := range m.cfg.Test {
				if t.Addr() == p.Addr() {
					return fmt.Errorf("%v: %w as the test address of %s", p.Addr(), ErrExists, m.cfg.Interface)
				}
			}
		}
	}
	d := &dataAddr{prefix: p, floating: true}
	if m := c.byIface[groupOrIface]; m != nil {
		d.home = m.cfg.Interface
	}
	g.data = append(g.data, d)
	if c.started {
		c.placeGroup(now, g, false)
	}
	return nil
}

// RemoveFloating forgets a floating address.
func (c *Core) RemoveFloating(addr netip.Addr) bool {
	for _, g := range c.groups {
		for i, d := range g.data {
			if d.floating && d.prefix.Addr() == addr {
				g.data = slices.Delete(g.data, i, i+1)
				return true
			}
		}
	}
	return false
}

func (c *Core) group(name string) *group {
	for _, g := range c.groups {
		if g.cfg.Name == name {
			return g
		}
	}
	return nil
}

// Adopt tells the core where the kernel has a data address now (at start,
// after an agent restart), so that it is not moved for nothing.
func (c *Core) Adopt(addr netip.Addr, iface string) {
	for _, g := range c.groups {
		for _, d := range g.data {
			if d.prefix.Addr() == addr {
				if m := c.byIface[iface]; m != nil && m.group == g {
					d.on = iface
				}
			}
		}
	}
}

// Assigned is one address the kernel must have.
type Assigned struct {
	Prefix    netip.Prefix
	Interface string
	Test      bool
	Group     string
}

// Desired is the addresses every member must carry now: its test
// addresses unless offline, and the data addresses placed on it. Routes
// maps each data prefix of a group to the member its route goes through.
func (c *Core) Desired() (addrs []Assigned, routes map[netip.Prefix]string) {
	routes = map[netip.Prefix]string{}
	for _, g := range c.groups {
		for _, m := range g.members {
			if m.offline || m.dup || !m.present {
				continue
			}
			for _, p := range m.cfg.Test {
				addrs = append(addrs, Assigned{Prefix: p, Interface: m.cfg.Interface, Test: true, Group: g.cfg.Name})
			}
		}
		for _, d := range g.data {
			if d.on == "" {
				continue
			}
			addrs = append(addrs, Assigned{Prefix: d.prefix, Interface: d.on, Group: g.cfg.Name})
			if _, ok := routes[d.prefix.Masked()]; !ok {
				routes[d.prefix.Masked()] = d.on
			}
		}
		// A prefix only test addresses use still needs a route through a
		// working member, or the probes' replies to a neighbour would not
		// know their way.
		for _, m := range g.members {
			for _, p := range m.cfg.Test {
				if _, ok := routes[p.Masked()]; !ok {
					if a := c.routeMember(g); a != "" {
						routes[p.Masked()] = a
					}
				}
			}
		}
	}
	return addrs, routes
}

func (c *Core) routeMember(g *group) string {
	for _, m := range g.members {
		if m.active {
			return m.cfg.Interface
		}
	}
	for _, m := range g.members {
		if m.present && !m.offline {
			return m.cfg.Interface
		}
	}
	return ""
}

// Members lists every grouped interface.
func (c *Core) Members() []string {
	var out []string
	for _, g := range c.groups {
		for _, m := range g.members {
			out = append(out, m.cfg.Interface)
		}
	}
	return out
}

// GroupOf names the group of an interface ("" for none).
func (c *Core) GroupOf(iface string) string {
	if m := c.byIface[iface]; m != nil {
		return m.group.cfg.Name
	}
	return ""
}

// Usable says whether the interface carries data now.
func (c *Core) Usable(now time.Time, iface string) bool {
	m := c.byIface[iface]
	return m != nil && m.usable(now)
}

// OthersUsable counts the other working members of the interface's group.
func (c *Core) OthersUsable(now time.Time, iface string) int {
	m := c.byIface[iface]
	if m == nil {
		return 0
	}
	n := 0
	for _, o := range m.group.members {
		if o != m && o.usable(now) {
			n++
		}
	}
	return n
}

// DataOn lists the data addresses an interface hosts now.
func (c *Core) DataOn(iface string) []netip.Prefix {
	var out []netip.Prefix
	for _, g := range c.groups {
		for _, d := range g.data {
			if d.on == iface {
				out = append(out, d.prefix)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr().Less(out[j].Addr()) })
	return out
}

// WhereIs names the interface an address is on ("" for nowhere) and its
// group; ok is false for an address of no group.
func (c *Core) WhereIs(addr netip.Addr) (iface, groupName string, ok bool) {
	for _, g := range c.groups {
		for _, d := range g.data {
			if d.prefix.Addr() == addr {
				return d.on, g.cfg.Name, true
			}
		}
	}
	return "", "", false
}
