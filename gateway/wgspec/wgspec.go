// Package wgspec is what a WireGuard tunnel is, apart from running one: the
// desired state of its single peer, and the MTU arithmetic of a tunnel over
// an underlay link. It is pure, so that the planner (gateway/plan) can say
// what it wants without importing the data plane that runs it.
package wgspec

import (
	"net/netip"
	"slices"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/nat"
)

// PeerSpec is the desired state of a tunnel's single WireGuard peer.
type PeerSpec struct {
	PublicKey keys.PublicKey
	// Endpoint is the remote gateway's underlay address; zero when only
	// the remote side dials.
	Endpoint  netip.AddrPort
	Keepalive time.Duration
	// AllowedIPs: everything the peer may send from or receive at, as
	// this side sees the addresses (after NAT).
	AllowedIPs []netip.Prefix
	// NAT are the peering's translation rules, applied at the TUN seam
	// (nat.go); never part of the UAPI text.
	NAT nat.Rules
}

// Equal reports whether two specs configure the same peer identically
// (AllowedIPs compared as sets).
func (s PeerSpec) Equal(o PeerSpec) bool {
	add, del := DiffPrefixes(s.AllowedIPs, o.AllowedIPs)
	return s.PublicKey == o.PublicKey && s.Endpoint == o.Endpoint &&
		s.Keepalive == o.Keepalive && len(add) == 0 && len(del) == 0 && s.NAT.Equal(o.NAT)
}

// DiffPrefixes returns the prefixes of want missing from have (add) and the
// prefixes of have absent from want (del), each sorted and deduplicated.
func DiffPrefixes(have, want []netip.Prefix) (add, del []netip.Prefix) {
	h := make(map[netip.Prefix]bool, len(have))
	for _, p := range have {
		h[p.Masked()] = true
	}
	w := make(map[netip.Prefix]bool, len(want))
	for _, p := range want {
		w[p.Masked()] = true
	}
	for p := range w {
		if !h[p] {
			add = append(add, p)
		}
	}
	for p := range h {
		if !w[p] {
			del = append(del, p)
		}
	}
	slices.SortFunc(add, netip.Prefix.Compare)
	slices.SortFunc(del, netip.Prefix.Compare)
	return add, del
}

// P2SIfName is the point-to-site device's interface. It does not start
// with "vg-", so no peering name can collide with it.
const P2SIfName = "vgate-p2s"

// WireGuard adds a 16-byte data header and a 16-byte Poly1305 tag to every
// packet, carried in UDP (8) over IPv4 (20) or IPv6 (40).
const (
	wgOverhead      = 16 + 16 + 8
	OverheadIPv4    = wgOverhead + 20 // 60
	OverheadIPv6    = wgOverhead + 40 // 80
	DefaultUnderlay = 1500
	MinTunnelMTU    = 1280 // IPv6 minimum link MTU
	MaxTunnelMTU    = 65535 - OverheadIPv6
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
