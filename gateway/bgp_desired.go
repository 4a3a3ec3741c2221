package gateway

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/kernel"
	"github.com/vgate-project/vgate/routing"
)

// DesiredBGP adds what BGP learned to the static desired state of Desired:
//
//   - every route accepted from a peering (post-policy Adj-RIB-In, best or
//     not) joins that peering's AllowedIPs, so return traffic on another
//     path than the forward one is accepted and spoofed sources are not;
//   - every best path becomes a kernel route through the TUN of the
//     peering it came from, unless a static route has the same prefix:
//     static address_spaces win over BGP for the same prefix (a BGP
//     more-specific inside a static space still wins by longest match, but
//     the import policy refuses those that overlap protected spaces);
//   - with bgp.multipath, every other accepted path to that prefix from a
//     different peering whose AS path is as long as the best one's (equal
//     cost: vgate sets no MED or local preference) joins the best path in
//     one multipath kernel route (ECMP across the tunnels).
//
// Routes from peerings that are gone or no longer run bgp are ignored.
// It is pure: the data plane and the kernel apply its result by diff.
func DesiredBGP(cfg *config.Config, tunnels []dataplane.TunnelSpec, routes []kernel.Route, learned []routing.Route) ([]dataplane.TunnelSpec, []kernel.Route) {
	bgpPeering := map[string]bool{}
	for _, p := range cfg.Peerings {
		if p.BGP != nil {
			bgpPeering[p.Name] = true
		}
	}
	static := map[netip.Prefix]bool{}
	for _, r := range routes {
		static[r.Dst] = true
	}
	multipath := cfg.BGP != nil && cfg.BGP.Multipath
	accepted := map[string][]netip.Prefix{}
	best := map[netip.Prefix]routing.Route{}
	for _, r := range learned {
		if !r.Accepted || !bgpPeering[r.Neighbor] {
			continue
		}
		p := r.Prefix.Masked()
		accepted[r.Neighbor] = append(accepted[r.Neighbor], p)
		if r.Best && !static[p] {
			if _, dup := best[p]; !dup {
				best[p] = r
			}
		}
	}
	bestDevs := map[netip.Prefix][]string{}
	for p, b := range best {
		bestDevs[p] = []string{IfNamePrefix + b.Neighbor}
	}
	if multipath {
		for _, r := range learned {
			p := r.Prefix.Masked()
			b, ok := best[p]
			if !ok || !r.Accepted || !bgpPeering[r.Neighbor] || r.Neighbor == b.Neighbor || len(r.ASPath) != len(b.ASPath) {
				continue
			}
			bestDevs[p] = append(bestDevs[p], IfNamePrefix+r.Neighbor)
		}
	}
	out := make([]dataplane.TunnelSpec, len(tunnels))
	for i, t := range tunnels {
		if add := accepted[t.Name]; len(add) > 0 {
			seen := map[netip.Prefix]bool{}
			var allowed []netip.Prefix
			for _, q := range append(slices.Clone(t.Peer.AllowedIPs), add...) {
				if !seen[q] {
					seen[q] = true
					allowed = append(allowed, q)
				}
			}
			t.Peer.AllowedIPs = allowed
		}
		out[i] = t
	}
	routes = slices.Clone(routes)
	for p, devs := range bestDevs {
		routes = append(routes, kernel.Route{Dst: p, Src: cfg.TunnelAddress}.WithDevs(devs))
	}
	slices.SortFunc(routes, func(a, b kernel.Route) int { return comparePrefix(a.Dst, b.Dst) })
	return out, routes
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// BGPImport is the import policy and sessions a config asks for. Protected
// are the gateway's own spaces, its tunnel address, the point-to-site
// pool, the underlay endpoints of its tunnels (a learned route covering one
// would pull the tunnel into itself) and the static spaces of peerings
// without bgp.
func BGPImport(cfg *config.Config, env Env) routing.State {
	var st routing.State
	st.Originate = slices.Clone(cfg.AddressSpaces)
	add := func(p netip.Prefix, owner string) {
		st.Protected = append(st.Protected, routing.Protected{Prefix: p.Masked(), Owner: owner})
	}
	for _, p := range cfg.AddressSpaces {
		add(p, "local address space")
	}
	if a := cfg.TunnelAddress; a.IsValid() {
		add(netip.PrefixFrom(a, a.BitLen()), "tunnel address")
	}
	if p2s := cfg.PointToSite; p2s != nil {
		for _, p := range p2s.AddressPool {
			add(p, "point-to-site pool")
			st.Originate = append(st.Originate, p.Masked())
		}
	}
	for i := range cfg.Peerings {
		p := &cfg.Peerings[i]
		if p.Endpoint != "" && env.Resolve != nil {
			if ap, err := env.Resolve(p.Endpoint); err == nil {
				a := ap.Addr().Unmap()
				add(netip.PrefixFrom(a, a.BitLen()), fmt.Sprintf("underlay endpoint of peering %s", p.Name))
			}
		}
		if p.BGP == nil {
			for _, q := range p.AddressSpaces {
				add(q, fmt.Sprintf("static address space of peering %s", p.Name))
			}
			continue
		}
		n := routing.Neighbor{
			Name:         p.Name,
			Address:      p.BGP.Address,
			ASN:          p.BGP.ASN,
			LocalAddress: cfg.TunnelAddress,
			MaxPrefixes:  p.BGP.MaxPrefixes,
			Prepend:      p.BGP.Prepend,
		}
		if len(p.AddressSpaces) > 0 {
			n.Allowed = slices.Clone(p.AddressSpaces)
		}
		st.Neighbors = append(st.Neighbors, n)
	}
	return st
}

// RouteTable is what `vgate routes` shows: the gateway's own spaces, static
// routes, and every route BGP received (accepted or rejected), each marked
// installed if the kernel has it through the expected interface.
func RouteTable(cfg *config.Config, static []kernel.Route, learned []routing.Route, kern []kernel.Route) []api.RouteEntry {
	inKernel := map[netip.Prefix]kernel.Route{}
	for _, r := range kern {
		inKernel[r.Dst] = r
	}
	var out []api.RouteEntry
	for _, p := range cfg.AddressSpaces {
		out = append(out, api.RouteEntry{Prefix: p, Source: "local", Installed: true, Status: "originated"})
	}
	staticDst := map[netip.Prefix]bool{}
	for _, r := range static {
		staticDst[r.Dst] = true
		e := api.RouteEntry{Prefix: r.Dst, Source: "static", Peering: peeringOf(r.Dev)}
		if r.Dev != "" && !isTunnelDev(r.Dev) {
			e.Source, e.Peering = "point-to-site", ""
		}
		k, ok := inKernel[r.Dst]
		e.Installed = ok && slices.Equal(k.Devices(), r.Devices())
		e.Status = installedStatus(e.Installed)
		out = append(out, e)
	}
	for _, r := range learned {
		e := api.RouteEntry{Prefix: r.Prefix, Source: "bgp", Peering: r.Neighbor, ASPath: r.ASPath}
		k, inK := inKernel[r.Prefix]
		// A path through a multipath kernel route is installed,
		// best or not (equal cost).
		ecmp := r.Accepted && !staticDst[r.Prefix] && inK && len(k.Devs) > 0 && slices.Contains(k.Devs, IfNamePrefix+r.Neighbor)
		switch {
		case !r.Accepted:
			e.Status = "rejected: " + r.Reason
		case ecmp:
			e.Installed = true
			e.Status = "installed (multipath)"
			for _, d := range k.Devs {
				e.Peerings = append(e.Peerings, peeringOf(d))
			}
		case !r.Best:
			e.Status = "accepted, not best (in AllowedIPs)"
		case staticDst[r.Prefix]:
			e.Status = "best, static route preferred"
		default:
			e.Installed = inK && slices.Equal(k.Devices(), []string{IfNamePrefix + r.Neighbor})
			e.Status = installedStatus(e.Installed)
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b api.RouteEntry) int { return comparePrefix(a.Prefix, b.Prefix) })
	return out
}

func installedStatus(ok bool) string {
	if ok {
		return "installed"
	}
	return "not in kernel"
}

func isTunnelDev(dev string) bool {
	return len(dev) > len(IfNamePrefix) && dev[:len(IfNamePrefix)] == IfNamePrefix
}

func peeringOf(dev string) string {
	if isTunnelDev(dev) {
		return dev[len(IfNamePrefix):]
	}
	return ""
}
