package dataplane

import "net/netip"

// WireGuard adds a 16-byte data header and a 16-byte Poly1305 tag to every
// packet, carried in UDP (8) over IPv4 (20) or IPv6 (40).
const (
	wgOverhead       = 16 + 16 + 8
	OverheadIPv4     = wgOverhead + 20 // 60
	OverheadIPv6     = wgOverhead + 40 // 80
	DefaultUnderlay  = 1500
	MinTunnelMTU     = 1280 // IPv6 minimum link MTU
	MaxTunnelMTU     = 65535 - OverheadIPv6
	defaultTunnelMTU = DefaultUnderlay - OverheadIPv6 // 1420, as wg-quick
)

// TunnelMTU is the MTU of a tunnel whose encrypted packets leave over an
// underlay link of underlayMTU bytes toward endpoint. With no endpoint
// (the remote side dials in, and may do so over either family) the IPv6
// overhead is assumed. underlayMTU <= 0 means unknown (1500). The result is
// never below 1280, so IPv6 keeps working inside the tunnel; an underlay too
// small for that will fragment rather than black-hole.
func TunnelMTU(underlayMTU int, endpoint netip.Addr) int {
	if underlayMTU <= 0 {
		underlayMTU = DefaultUnderlay
	}
	overhead := OverheadIPv6
	if endpoint.IsValid() && endpoint.Unmap().Is4() {
		overhead = OverheadIPv4
	}
	mtu := underlayMTU - overhead
	if mtu < MinTunnelMTU {
		mtu = MinTunnelMTU
	}
	if mtu > MaxTunnelMTU {
		mtu = MaxTunnelMTU
	}
	return mtu
}

// MaxMSS returns the largest TCP MSS that fits a tunnel of the given MTU for
// IPv4 (20-byte IP + 20-byte TCP header) and IPv6 (40 + 20).
func MaxMSS(mtu int) (v4, v6 uint16) {
	return uint16(mtu - 40), uint16(mtu - 60)
}
