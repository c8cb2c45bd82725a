package ipmp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// prober is the probe socket of one member: a raw ICMP socket bound to
// the member (SO_BINDTODEVICE) and to its test address, so that a probe
// leaves through that interface whatever the routing table says and only
// answers that arrive on it count. Binding to the address alone gave
// false answers through the other member.
type prober struct {
	iface   string
	ifindex int
	src     netip.Addr
	file    *os.File
	id      uint16
}

// discoverySeq marks the multicast echo that looks for targets; probes
// never use it.
const discoverySeq = 0

func openProber(iface string, ifindex int, src netip.Addr, id uint16) (*prober, error) {
	family, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if src.Is6() {
		family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	if err != nil {
		return nil, fmt.Errorf("probe socket for %s: %w", iface, err)
	}
	fail := func(what string, err error) (*prober, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("probe socket for %s: %s: %w", iface, what, err)
	}
	if err := unix.BindToDevice(fd, iface); err != nil {
		return fail("binding to the interface", err)
	}
	// The test address may not be up yet (or be down while offline, or
	// a link-local one still tentative).
	var sa unix.Sockaddr
	if src.Is4() {
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 1)
		sa = &unix.SockaddrInet4{Addr: src.As4()}
	} else {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1)
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 1)
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex)
		// Only echo replies: the socket would otherwise see every
		// neighbour solicitation and router advertisement on the link.
		var f unix.ICMPv6Filter
		for i := range f.Data {
			f.Data[i] = 0xffffffff
		}
		f.Data[129>>5] &^= 1 << (129 & 31)
		unix.SetsockoptICMPv6Filter(fd, unix.IPPROTO_ICMPV6, unix.ICMPV6_FILTER, &f)
		sa6 := &unix.SockaddrInet6{Addr: src.As16()}
		if src.IsLinkLocalUnicast() {
			sa6.ZoneId = uint32(ifindex)
		}
		sa = sa6
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("binding to "+src.String(), err)
	}
	return &prober{iface: iface, ifindex: ifindex, src: src, file: os.NewFile(uintptr(fd), "icmp-"+iface), id: id}, nil
}

func (p *prober) close() { p.file.Close() }

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// echo builds an ICMP echo request carrying the send time. For ICMPv6
// the kernel fills in the checksum, which covers a pseudo-header.
func echo(v6 bool, id, seq uint16, at time.Time) []byte {
	m := make([]byte, 8+16)
	m[0] = 8 // echo request
	if v6 {
		m[0] = 128
	}
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	binary.BigEndian.PutUint64(m[8:], uint64(at.UnixNano()))
	copy(m[16:], "steadyIP")
	if !v6 {
		binary.BigEndian.PutUint16(m[2:], checksum(m))
	}
	return m
}

func (p *prober) send(to netip.Addr, seq uint16, at time.Time) error {
	if to.Is6() != p.src.Is6() {
		return fmt.Errorf("probe of %v from %v: families differ", to, p.src)
	}
	var sa unix.Sockaddr
	if to.Is4() {
		sa = &unix.SockaddrInet4{Addr: to.As4()}
	} else {
		sa6 := &unix.SockaddrInet6{Addr: to.As16()}
		if to.IsLinkLocalUnicast() || to.IsLinkLocalMulticast() || to.IsInterfaceLocalMulticast() {
			sa6.ZoneId = uint32(p.ifindex)
		}
		sa = sa6
	}
	rc, err := p.file.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), echo(to.Is6(), p.id, seq, at), 0, sa)
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	return serr
}

// reply is an echo reply read from a member's socket.
type reply struct {
	iface string
	from  netip.Addr
	seq   uint16
	at    time.Time
}

// read delivers the echo replies to this prober's probes until the socket
// is closed.
func (p *prober) read(out chan<- reply) {
	rc, err := p.file.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 1500)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return // closed
		}
		if rerr != nil {
			continue // a transient error (ENETDOWN while the link is down)
		}
		at := time.Now()
		b := buf[:n]
		var src netip.Addr
		var icmp []byte
		switch sa := from.(type) {
		case *unix.SockaddrInet4:
			// Raw IPv4 sockets deliver the IP header.
			if n < 20 || b[0]>>4 != 4 {
				continue
			}
			hl := int(b[0]&0x0f) * 4
			if n < hl+8 || b[hl] != 0 {
				continue
			}
			src, icmp = netip.AddrFrom4(sa.Addr), b[hl:]
		case *unix.SockaddrInet6:
			if n < 8 || b[0] != 129 {
				continue
			}
			src, icmp = netip.AddrFrom16(sa.Addr), b
		default:
			continue
		}
		if binary.BigEndian.Uint16(icmp[4:]) != p.id {
			continue
		}
		out <- reply{iface: p.iface, from: src, seq: binary.BigEndian.Uint16(icmp[6:]), at: at}
	}
}
