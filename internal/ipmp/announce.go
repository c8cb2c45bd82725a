package ipmp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// The announcements after a move: a gratuitous ARP request for an IPv4
// address (sender and target both the address, from the new member's
// MAC), an unsolicited, overriding neighbour advertisement to all nodes
// for an IPv6 one. Neighbours update the entries they have (arp_accept=0
// only updates), which is what a failover needs.

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// garpFrame builds the Ethernet frame of a gratuitous ARP request.
func garpFrame(mac net.HardwareAddr, addr netip.Addr) []byte {
	f := make([]byte, 42)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_ARP)
	a := f[14:]
	binary.BigEndian.PutUint16(a[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(a[2:], 0x0800) // IPv4
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], 1) // request
	ip := addr.As4()
	copy(a[8:14], mac)
	copy(a[14:18], ip[:])
	copy(a[24:28], ip[:]) // target hardware address stays zero
	return f
}

// sendGARP sends one gratuitous ARP on the interface.
func sendGARP(ifindex int, mac net.HardwareAddr, addr netip.Addr) error {
	if len(mac) != 6 {
		return fmt.Errorf("interface %d has no Ethernet address", ifindex)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("gratuitous ARP: %w", err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifindex, Halen: 6}
	copy(sa.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Sendto(fd, garpFrame(mac, addr), 0, sa); err != nil {
		return fmt.Errorf("gratuitous ARP for %v: %w", addr, err)
	}
	return nil
}

// naMessage is an unsolicited neighbour advertisement (RFC 4861 4.4) with
// the override flag and the target link-layer address option; the kernel
// fills in the checksum of ICMPv6 raw sockets.
func naMessage(mac net.HardwareAddr, addr netip.Addr) []byte {
	m := make([]byte, 24+8)
	m[0] = 136  // neighbour advertisement
	m[4] = 0x20 // override, neither solicited nor router
	t := addr.As16()
	copy(m[8:24], t[:])
	m[24], m[25] = 2, 1 // target link-layer address, 8 bytes
	copy(m[26:32], mac)
	return m
}

// sendNA sends one unsolicited neighbour advertisement to ff02::1 on the
// interface.
func sendNA(ifname string, ifindex int, mac net.HardwareAddr, addr netip.Addr) error {
	if len(mac) != 6 {
		return fmt.Errorf("%s has no Ethernet address", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		return fmt.Errorf("neighbour advertisement: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.BindToDevice(fd, ifname); err != nil {
		return fmt.Errorf("neighbour advertisement on %s: %w", ifname, err)
	}
	// Hop limit 255, or receivers drop it as off-link.
	unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255)
	unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex)
	sa := &unix.SockaddrInet6{ZoneId: uint32(ifindex)}
	copy(sa.Addr[:], netip.MustParseAddr("ff02::1").AsSlice())
	if err := unix.Sendto(fd, naMessage(mac, addr), 0, sa); err != nil {
		return fmt.Errorf("neighbour advertisement for %v: %w", addr, err)
	}
	return nil
}
