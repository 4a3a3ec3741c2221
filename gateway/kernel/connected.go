package kernel

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vgate-project/vgate/gateway/route"
	"github.com/vishvananda/netlink"
	"go4.org/netipx"
)

// ConnectedPrefixes lists the subnets of the addresses on the interfaces
// skip does not claim (vgate passes its own tunnel interfaces), sorted and
// without duplicates. Left out: link-local addresses (never routed),
// host-only addresses on lo (the tunnel address and other local /32s and
// /128s: local delivery does not depend on routes). A point-to-point
// address contributes its peer's prefix as well.
func (k *Kernel) ConnectedPrefixes(skip func(dev string) bool) ([]route.Connected, error) {
	links, err := k.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	type link struct {
		name     string
		loopback bool
	}
	byIndex := make(map[int]link, len(links))
	for _, l := range links {
		byIndex[l.Attrs().Index] = link{l.Attrs().Name, l.Attrs().Flags&net.FlagLoopback != 0}
	}
	// One dump for every interface's addresses: a gateway may have
	// thousands of tunnel interfaces.
	addrs, err := k.h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	seen := map[route.Connected]bool{}
	var out []route.Connected
	for _, a := range addrs {
		l, ok := byIndex[a.LinkIndex]
		if !ok || skip != nil && skip(l.name) {
			continue
		}
		for _, n := range []*net.IPNet{a.IPNet, a.Peer} {
			p, ok := connectedPrefix(n, l.loopback)
			if !ok {
				continue
			}
			c := route.Connected{Prefix: p, Dev: l.name}
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	slices.SortFunc(out, func(a, b route.Connected) int {
		if c := a.Prefix.Compare(b.Prefix); c != 0 {
			return c
		}
		if a.Dev < b.Dev {
			return -1
		}
		if a.Dev > b.Dev {
			return 1
		}
		return 0
	})
	return out, nil
}

// connectedPrefix is the subnet of one interface address, if it counts.
func connectedPrefix(n *net.IPNet, loopback bool) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	p, ok := netipx.FromStdIPNet(n)
	if !ok {
		return netip.Prefix{}, false
	}
	a := p.Addr().Unmap()
	p = netip.PrefixFrom(a, p.Bits()).Masked()
	switch {
	case !a.IsValid(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsMulticast():
		return netip.Prefix{}, false
	case loopback && p.IsSingleIP():
		return netip.Prefix{}, false
	}
	return p, true
}
