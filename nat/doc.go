// Package nat owns vgate's 1:1 prefix translation for networks that
// overlap (docs/nat.md): the rules of one peering (Rules: ingress rules
// show the peer's addresses to this side under other prefixes, egress
// rules show this side's addresses to the peer under other prefixes),
// their checks, the mapping of addresses and prefixes through them, and
// the stateless packet rewrite a peering's TUN seam runs (Translator):
// IPv4 and IPv6 addresses with incremental checksum updates (RFC 1624) of
// the IP header, TCP, UDP, UDP-Lite, DCCP and ICMPv6, the packet quoted by
// an ICMP or ICMPv6 error, and fragments.
//
// It is pure and imports no other vgate package: the config validation,
// the planner and the data plane meet on its types and net/netip.
package nat
