// Package ipmp is IP multipathing: groups of network interfaces on one
// link, whose data addresses move to a working member when one fails and
// come back when it is repaired, while each member's test addresses stay
// with it so that its repair can be seen.
//
// The package has two halves. Core is the policy, deterministic: it takes
// link events, probe replies, operator requests and the time, and keeps
// the placement of every data address, the probes to send and the
// messages to log; it does no I/O. The Linux edge (Daemon) feeds it from
// netlink link events and ICMP probes pinned to each member
// (SO_BINDTODEVICE), and makes the kernel match the core's placement:
// addresses, the prefix routes it owns, the ARP sysctls of members,
// gratuitous ARP and unsolicited neighbour advertisements after a move.
//
// Semantics follow Solaris in.mpathd (the per-interface model of Solaris
// 8-10, in which data addresses move between physical interfaces; Linux
// has no IPMP interface to bind them to): failure = link down or the last
// five probes lost; repair = link up and ten probes answered in a row; a
// failure of every member at once moves nothing.
package ipmp
