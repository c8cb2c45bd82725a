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
	iface string
	src   netip.Addr
	fd    int
	file  *os.File
	id    uint16
}

// discoverySeq marks the multicast echo that looks for targets; probes
// never use it.
const discoverySeq = 0

func openProber(iface string, src netip.Addr, id uint16) (*prober, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMP)
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
	// The test address may not be up yet (or be down while offline).
	unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
	unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 1)
	sa := &unix.SockaddrInet4{Addr: src.As4()}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("binding to "+src.String(), err)
	}
	return &prober{iface: iface, src: src, fd: fd, file: os.NewFile(uintptr(fd), "icmp-"+iface), id: id}, nil
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

// echo builds an ICMP echo request carrying the send time.
func echo(id, seq uint16, at time.Time) []byte {
	m := make([]byte, 8+16)
	m[0] = 8 // echo request
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	binary.BigEndian.PutUint64(m[8:], uint64(at.UnixNano()))
	copy(m[16:], "steadyIP")
	binary.BigEndian.PutUint16(m[2:], checksum(m))
	return m
}

func (p *prober) send(to netip.Addr, seq uint16, at time.Time) error {
	sa := &unix.SockaddrInet4{Addr: to.As4()}
	rc, err := p.file.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), echo(p.id, seq, at), 0, sa)
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
	buf := make([]byte, 1500)
	for {
		n, err := p.file.Read(buf)
		if err != nil {
			return
		}
		at := time.Now()
		b := buf[:n]
		// Raw IPv4 sockets deliver the IP header.
		if n < 20 || b[0]>>4 != 4 {
			continue
		}
		hl := int(b[0]&0x0f) * 4
		if n < hl+8 {
			continue
		}
		from := netip.AddrFrom4([4]byte(b[12:16]))
		icmp := b[hl:]
		if icmp[0] != 0 || binary.BigEndian.Uint16(icmp[4:]) != p.id {
			continue
		}
		out <- reply{iface: p.iface, from: from, seq: binary.BigEndian.Uint16(icmp[6:]), at: at}
	}
}
