package dataplane

import (
	"net"
	"net/netip"

	"github.com/vgate-project/vgate/overlap"
)

// ResolveUDP resolves host:port to an address, preferring what the system
// resolver returns first.
func ResolveUDP(hostport string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return overlap.UnmapAddrPort(ap), nil
	}
	ua, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap := ua.AddrPort()
	return overlap.UnmapAddrPort(ap), nil
}
