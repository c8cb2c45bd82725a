package ipmp

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Solaris /etc/hostname.<if> and hostname6.<if> files, read as input: one
// file per interface, each line what ifconfig would be given. A line is
// cut into segments at its start and at "set", "addif" and "removeif";
// a segment with "-failover" is a test address, any other address is a
// data address; "group" and "standby" belong to the interface (the last
// one wins, hostname6 over hostname). A single-line IPv4 file implies
// "netmask + broadcast + up", as the boot scripts add; in any other file
// an address that is never brought "up" is not configured.

// HostnameFiles is what the files of a directory configure.
type HostnameFiles struct {
	Groups []GroupConfig
	// Ungrouped names the interfaces whose files name no group: steady
	// does not manage them.
	Ungrouped []string
}

// Resolver turns a host name of a file into an address.
type Resolver struct {
	Hosts    map[string]netip.Addr
	Netmasks []netip.Prefix // network -> mask, as /etc/netmasks gives
}

// LoadResolver reads /etc/hosts and /etc/netmasks style files (a missing
// file is empty).
func LoadResolver(hosts, netmasks string) (Resolver, error) {
	r := Resolver{Hosts: map[string]netip.Addr{}}
	if b, err := os.ReadFile(hosts); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(strings.SplitN(line, "#", 2)[0])
			if len(f) < 2 {
				continue
			}
			a, err := netip.ParseAddr(f[0])
			if err != nil {
				continue
			}
			for _, n := range f[1:] {
				if _, ok := r.Hosts[n]; !ok {
					r.Hosts[n] = a
				}
			}
		}
	}
	if b, err := os.ReadFile(netmasks); err == nil {
		for i, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(strings.SplitN(line, "#", 2)[0])
			if len(f) == 0 {
				continue
			}
			if len(f) != 2 {
				return r, fmt.Errorf("%s:%d: want \"network netmask\"", netmasks, i+1)
			}
			net, err1 := netip.ParseAddr(f[0])
			bits, err2 := maskBits(f[1])
			if err1 != nil || err2 != nil || !net.Is4() {
				return r, fmt.Errorf("%s:%d: %q is not an IPv4 network and netmask", netmasks, i+1, line)
			}
			r.Netmasks = append(r.Netmasks, netip.PrefixFrom(net, bits))
		}
	}
	return r, nil
}

// maskBits reads a netmask written dotted (255.255.255.0), in hex
// (0xffffff00 or ffffff00) or as a length.
func maskBits(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 32 && !strings.Contains(s, ".") && len(s) <= 2 {
		return n, nil
	}
	var v uint32
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		b := a.As4()
		v = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	} else {
		h, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 32)
		if err != nil {
			return 0, fmt.Errorf("%q is not a netmask", s)
		}
		v = uint32(h)
	}
	bits := 0
	for bits < 32 && v&(1<<(31-bits)) != 0 {
		bits++
	}
	if v<<bits != 0 {
		return 0, fmt.Errorf("%q is not a contiguous netmask", s)
	}
	return bits, nil
}

// maskFor is "netmask +": the longest /etc/netmasks entry that holds the
// address, else the address's class.
func (r Resolver) maskFor(a netip.Addr) int {
	best := -1
	for _, p := range r.Netmasks {
		if p.Masked().Contains(a) {
			if p.Bits() > best {
				best = p.Bits()
			}
		}
	}
	if best >= 0 {
		return best
	}
	switch b := a.As4(); {
	case b[0] < 128:
		return 8
	case b[0] < 192:
		return 16
	}
	return 24
}

func (r Resolver) resolve(s string, v6 bool) (netip.Prefix, bool, error) {
	name, plen, hasLen := strings.Cut(s, "/")
	a, err := netip.ParseAddr(name)
	if err != nil {
		var ok bool
		if a, ok = r.Hosts[name]; !ok {
			return netip.Prefix{}, false, fmt.Errorf("%q is neither an address nor a name in the hosts file", name)
		}
	}
	if a.Is6() != v6 {
		fam := "IPv4"
		if v6 {
			fam = "IPv6"
		}
		return netip.Prefix{}, false, fmt.Errorf("%s is not an %s address", a, fam)
	}
	bits := 32
	if v6 {
		bits = 64
	}
	if hasLen {
		n, err := strconv.Atoi(plen)
		if err != nil || n < 0 || n > a.BitLen() {
			return netip.Prefix{}, false, fmt.Errorf("%q: bad prefix length", s)
		}
		bits = n
	}
	return netip.PrefixFrom(a, bits), hasLen, nil
}

type segment struct {
	addr     netip.Prefix
	hasLen   bool
	netmask  int // -1: none given; -2: "+"
	test     bool
	up       bool
	removeIf bool
}

// tokens that take an argument and are passed over.
var withArg = map[string]bool{"broadcast": true, "metric": true, "mtu": true, "token": true, "destination": true, "index": true, "zone": true, "encaplimit": true, "thoplimit": true, "tdst": true, "tsrc": true}

// tokens that are passed over.
var passOver = map[string]bool{"plumb": true, "unplumb": true, "-trailers": true, "trailers": true, "arp": true, "-arp": true,
	"private": true, "-private": true, "nud": true, "-nud": true, "xmit": true, "-xmit": true, "ipmp": true, "dhcp": true,
	"auto-revarp": true, "router": true, "-router": true, "preferred": true, "-preferred": true, "deprecated": true, "-deprecated": true,
	"inet": true, "inet6": true, "local": true, "-local": true, "auto-dhcp": true, "primary": true, "wait": true}

type fileResult struct {
	group      string
	hasGroup   bool
	standby    int // 0 unsaid, 1 standby, -1 -standby
	test, data []netip.Prefix
	// linkLocalTest: hostname6 "-failover" without an address, which
	// makes the link-local address the test address.
	linkLocalTest bool
}

// parseFile reads one hostname file.
func parseFile(path string, v6 bool, r Resolver) (fileResult, error) {
	var res fileResult
	b, err := os.ReadFile(path)
	if err != nil {
		return res, fmt.Errorf("ipmp: %w", err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(strings.SplitN(l, "#", 2)[0])
		if l != "" {
			lines = append(lines, l)
		}
	}
	base := filepath.Base(path)
	for i, line := range lines {
		toks := strings.Fields(line)
		if !v6 && len(lines) == 1 {
			toks = append(toks, "netmask", "+", "broadcast", "+", "up")
		}
		where := func(format string, args ...any) error {
			return fmt.Errorf("%s line %d: %s", base, i+1, fmt.Sprintf(format, args...))
		}
		var segs []*segment
		cur := &segment{netmask: -1}
		segs = append(segs, cur)
		for j := 0; j < len(toks); j++ {
			t := toks[j]
			next := func() (string, error) {
				if j+1 >= len(toks) {
					return "", where("%q needs an argument", t)
				}
				j++
				return toks[j], nil
			}
			switch {
			case t == "set" || t == "addif" || t == "removeif":
				a, err := next()
				if err != nil {
					return res, err
				}
				p, hasLen, err := r.resolve(a, v6)
				if err != nil {
					return res, where("%s: %v", t, err)
				}
				if t == "set" && cur.addr == (netip.Prefix{}) {
					cur.addr, cur.hasLen = p, hasLen
					continue
				}
				cur = &segment{addr: p, hasLen: hasLen, netmask: -1, removeIf: t == "removeif"}
				segs = append(segs, cur)
			case t == "group":
				g, err := next()
				if err != nil {
					return res, err
				}
				res.group, res.hasGroup = g, true
				if g == `""` || g == "''" {
					res.group = ""
				}
			case t == "netmask":
				m, err := next()
				if err != nil {
					return res, err
				}
				if m == "+" {
					cur.netmask = -2
					continue
				}
				bits, err := maskBits(m)
				if err != nil {
					return res, where("netmask %v", err)
				}
				cur.netmask = bits
			case t == "prefixlen":
				m, err := next()
				if err != nil {
					return res, err
				}
				n, err := strconv.Atoi(m)
				if err != nil || n < 0 || n > 128 {
					return res, where("prefixlen %q", m)
				}
				cur.netmask = n
			case t == "-failover":
				cur.test = true
			case t == "failover":
				cur.test = false
			case t == "standby":
				res.standby = 1
			case t == "-standby":
				res.standby = -1
			case t == "up":
				cur.up = true
			case t == "down":
				cur.up = false
			case withArg[t]:
				if _, err := next(); err != nil {
					return res, err
				}
			case passOver[t]:
			default:
				if cur.addr != (netip.Prefix{}) || len(segs) > 1 {
					return res, where("unknown token %q", t)
				}
				p, hasLen, err := r.resolve(t, v6)
				if err != nil {
					return res, where("%v", err)
				}
				cur.addr, cur.hasLen = p, hasLen
			}
		}
		for _, s := range segs {
			if s.addr == (netip.Prefix{}) && s.test && v6 && !s.removeIf {
				res.linkLocalTest = true
				continue
			}
			if s.addr == (netip.Prefix{}) || s.removeIf || !s.up {
				continue
			}
			p := s.addr
			switch {
			case s.hasLen:
			case s.netmask >= 0:
				p = netip.PrefixFrom(p.Addr(), s.netmask)
			case s.netmask == -2 && p.Addr().Is4():
				p = netip.PrefixFrom(p.Addr(), r.maskFor(p.Addr()))
			case p.Addr().Is4():
				p = netip.PrefixFrom(p.Addr(), r.maskFor(p.Addr()))
			}
			if p.Bits() > p.Addr().BitLen() {
				return res, where("prefix length %d for %v", p.Bits(), p.Addr())
			}
			if s.test {
				res.test = append(res.test, p)
			} else {
				res.data = append(res.data, p)
			}
		}
	}
	return res, nil
}

// ReadHostnameFiles reads dir's hostname.<if> and hostname6.<if> files.
// Errors name the file and line.
func ReadHostnameFiles(dir string, r Resolver) (HostnameFiles, error) {
	var out HostnameFiles
	es, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return out, nil
		}
		return out, fmt.Errorf("ipmp: %w", err)
	}
	type ifc struct {
		v4, v6 *fileResult
	}
	byIf := map[string]*ifc{}
	var names []string
	for _, e := range es {
		name := e.Name()
		var v6 bool
		var ifname string
		switch {
		case strings.HasPrefix(name, "hostname6."):
			v6, ifname = true, strings.TrimPrefix(name, "hostname6.")
		case strings.HasPrefix(name, "hostname."):
			ifname = strings.TrimPrefix(name, "hostname.")
		default:
			continue
		}
		if e.IsDir() || ifname == "" || strings.HasSuffix(name, "~") || strings.Contains(ifname, ".dpkg-") {
			continue
		}
		if strings.Contains(ifname, ":") {
			return out, fmt.Errorf("%s: logical interfaces have no file of their own; use addif in hostname.%s", name, strings.Split(ifname, ":")[0])
		}
		res, err := parseFile(filepath.Join(dir, name), v6, r)
		if err != nil {
			return out, err
		}
		if byIf[ifname] == nil {
			byIf[ifname] = &ifc{}
			names = append(names, ifname)
		}
		if v6 {
			byIf[ifname].v6 = &res
		} else {
			byIf[ifname].v4 = &res
		}
	}
	sort.Strings(names)
	groups := map[string]*GroupConfig{}
	var order []string
	for _, ifname := range names {
		f := byIf[ifname]
		m := MemberConfig{Interface: ifname}
		group, standby := "", 0
		for _, res := range []*fileResult{f.v4, f.v6} {
			if res == nil {
				continue
			}
			if res.hasGroup {
				group = res.group
			}
			if res.standby != 0 {
				standby = res.standby
			}
			m.Test = append(m.Test, res.test...)
			m.Data = append(m.Data, res.data...)
			m.TestLinkLocal = m.TestLinkLocal || res.linkLocalTest
		}
		m.Standby = standby == 1
		if group == "" {
			out.Ungrouped = append(out.Ungrouped, ifname)
			continue
		}
		g := groups[group]
		if g == nil {
			g = &GroupConfig{Name: group}
			groups[group] = g
			order = append(order, group)
		}
		g.Members = append(g.Members, m)
	}
	for _, name := range order {
		if err := groups[name].Validate(); err != nil {
			return out, fmt.Errorf("ipmp: hostname files in %s: %w", dir, err)
		}
		out.Groups = append(out.Groups, *groups[name])
	}
	return out, nil
}

// Merge adds the groups of the hostname files to those of the
// configuration file; an interface in both is an error.
func Merge(cfg []GroupConfig, files []GroupConfig) ([]GroupConfig, error) {
	seen := map[string]string{}
	for _, g := range cfg {
		for _, m := range g.Members {
			seen[m.Interface] = g.Name
		}
	}
	out := append([]GroupConfig(nil), cfg...)
	for _, g := range files {
		for _, m := range g.Members {
			if other, ok := seen[m.Interface]; ok {
				return nil, fmt.Errorf("interface %s is configured both in group %s of steady.yaml and by its hostname file (group %s)", m.Interface, other, g.Name)
			}
		}
		merged := false
		for i := range out {
			if out[i].Name == g.Name {
				out[i].Members = append(out[i].Members, g.Members...)
				merged = true
			}
		}
		if !merged {
			out = append(out, g)
		}
	}
	return out, nil
}
