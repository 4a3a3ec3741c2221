package plan

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vgate-project/vgate/api"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/route"
	"github.com/vgate-project/vgate/ipsec"
	"github.com/vgate-project/vgate/routing/spec"
)

// desiredBGP adds what BGP learned to the static part of the plan (desired):
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
//
// Routes from a peering whose tunnel probe says dead (dead) are dropped at
// once, before the speaker's own withdrawal: from the kernel and from that
// peer's AllowedIPs; where one was the best path, the best of the other
// accepted paths takes its place (shortest AS path, then the peering's
// name), as GoBGP decides once the session is down.
func desiredBGP(cfg *config.Config, tunnels []Tunnel, routes []route.Route, learned []spec.Route, dead map[string]bool) ([]Tunnel, []route.Route) {
	tunnels, routes, _ = desiredBGPDraining(cfg, tunnels, routes, learned, dead, nil)
	return tunnels, routes
}

// desiredBGPDraining is desiredBGP where the peers of the peerings in
// draining (their probes say so: vgate drain) are routed around: a
// prefix with an accepted path through a peering that does not drain
// gets its kernel route only through such paths (preferUndrained); a
// draining peering stays in AllowedIPs and keeps the prefixes it alone
// has. avoided are the draining peerings no kernel route goes through.
func desiredBGPDraining(cfg *config.Config, tunnels []Tunnel, routes []route.Route, learned []spec.Route, dead, draining map[string]bool) ([]Tunnel, []route.Route, map[string]bool) {
	learned = preferUndrained(withoutDead(learned, dead), draining)
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
	best := map[netip.Prefix]spec.Route{}
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
	ifOf := ifNames(cfg)
	bestDevs := map[netip.Prefix][]string{}
	owner := map[netip.Prefix]string{} // the one peering of a route, "" for multipath
	for p, b := range best {
		bestDevs[p] = []string{ifOf[b.Neighbor]}
		owner[p] = b.Neighbor
	}
	if multipath {
		for _, r := range learned {
			p := r.Prefix.Masked()
			b, ok := best[p]
			if !ok || !r.Accepted || !bgpPeering[r.Neighbor] || r.Neighbor == b.Neighbor || len(r.ASPath) != len(b.ASPath) ||
				draining[r.Neighbor] && !draining[b.Neighbor] {
				continue
			}
			owner[p] = "" // IPsec peerings share a device: the path may add none
			if d := ifOf[r.Neighbor]; !slices.Contains(bestDevs[p], d) {
				bestDevs[p] = append(bestDevs[p], d)
			}
		}
	}
	out := make([]Tunnel, len(tunnels))
	for i, t := range tunnels {
		if add := accepted[t.Name]; len(add) > 0 {
			seen := map[netip.Prefix]bool{}
			var allowed []netip.Prefix
			for _, q := range append(slices.Clone(t.WireGuard.AllowedIPs), add...) {
				if !seen[q] {
					seen[q] = true
					allowed = append(allowed, q)
				}
			}
			t.WireGuard.AllowedIPs = allowed
		}
		out[i] = t
	}
	routes = slices.Clone(routes)
	var avoided map[string]bool
	if len(draining) > 0 {
		avoided = map[string]bool{}
		used := map[string]bool{}
		for _, devs := range bestDevs {
			for _, d := range devs {
				used[d] = true
			}
		}
		for name, on := range draining {
			if on && bgpPeering[name] && !used[ifOf[name]] {
				avoided[name] = true
			}
		}
	}
	for p, devs := range bestDevs {
		routes = append(routes, route.Route{Dst: p, Src: cfg.TunnelAddress, Peering: owner[p]}.WithDevs(devs))
	}
	slices.SortFunc(routes, func(a, b route.Route) int { return a.Dst.Compare(b.Dst) })
	return out, routes, avoided
}

// preferUndrained is learned where no draining peering's path is best for
// a prefix that has an accepted path through a peering that does not
// drain: the best of those (shortest AS path, then the peering's name)
// is marked best instead.
func preferUndrained(learned []spec.Route, draining map[string]bool) []spec.Route {
	if len(draining) == 0 {
		return learned
	}
	steady := map[netip.Prefix]bool{}
	for _, r := range learned {
		if r.Accepted && !draining[r.Neighbor] {
			steady[r.Prefix.Masked()] = true
		}
	}
	out := slices.Clone(learned)
	moved := map[netip.Prefix]bool{}
	for i, r := range out {
		if p := r.Prefix.Masked(); r.Best && draining[r.Neighbor] && steady[p] {
			out[i].Best = false
			moved[p] = true
		}
	}
	pick := map[netip.Prefix]int{}
	for i, r := range out {
		p := r.Prefix.Masked()
		if !moved[p] || !r.Accepted || draining[r.Neighbor] {
			continue
		}
		if r.Best {
			pick[p] = -1 // one already is
			continue
		}
		j, ok := pick[p]
		if j == -1 {
			continue
		}
		if !ok || len(r.ASPath) < len(out[j].ASPath) || len(r.ASPath) == len(out[j].ASPath) && r.Neighbor < out[j].Neighbor {
			pick[p] = i
		}
	}
	for _, i := range pick {
		if i >= 0 {
			out[i].Best = true
		}
	}
	return out
}

// withoutDead is learned without the routes of dead peerings; a prefix
// whose best path was one of them gets the best remaining accepted path
// marked best.
func withoutDead(learned []spec.Route, dead map[string]bool) []spec.Route {
	if len(dead) == 0 {
		return learned
	}
	out := make([]spec.Route, 0, len(learned))
	orphan := map[netip.Prefix]bool{}
	hasBest := map[netip.Prefix]bool{}
	for _, r := range learned {
		if dead[r.Neighbor] {
			if r.Best && r.Accepted {
				orphan[r.Prefix.Masked()] = true
			}
			continue
		}
		if r.Best {
			hasBest[r.Prefix.Masked()] = true
		}
		out = append(out, r)
	}
	pick := map[netip.Prefix]int{}
	for i, r := range out {
		p := r.Prefix.Masked()
		if !orphan[p] || hasBest[p] || !r.Accepted {
			continue
		}
		j, ok := pick[p]
		if !ok || len(r.ASPath) < len(out[j].ASPath) || len(r.ASPath) == len(out[j].ASPath) && r.Neighbor < out[j].Neighbor {
			pick[p] = i
		}
	}
	for _, i := range pick {
		out[i].Best = true
	}
	return out
}

// bgpImport is the import policy and sessions a config asks for. Protected
// are the gateway's own spaces, its tunnel address, the point-to-site
// pool, the underlay endpoints of its tunnels, configured and in use now
// (after roaming), and those of connected point-to-site clients (a learned
// route covering one would pull the tunnel into itself), the subnets
// connected to the host's own interfaces (a learned route overlapping one
// would take the underlay or a LAN into a tunnel) and the static spaces of
// peerings without bgp.
//
// The endpoints are the tunnels' resolved ones: the plan resolves each
// name once (desired), never again here.
func bgpImport(in Input, tunnels []Tunnel) spec.State {
	cfg := in.Config
	endpoint := make(map[string]netip.AddrPort, len(tunnels))
	for _, t := range tunnels {
		endpoint[t.Name] = t.WireGuard.Endpoint
		if a, err := netip.ParseAddr(t.IPsec.Remote); t.Kind == KindIPsec && err == nil {
			endpoint[t.Name] = netip.AddrPortFrom(a, 500) // IKE; NAT-T uses 4500 on the same address
		}
	}
	var st spec.State
	st.Originate = slices.Clone(cfg.AddressSpaces)
	add := func(p netip.Prefix, owner string) {
		st.Protected = append(st.Protected, spec.Protected{Prefix: p.Masked(), Owner: owner})
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
	configured := map[string]netip.Addr{}
	for i := range cfg.Peerings {
		p := &cfg.Peerings[i]
		if ap := endpoint[p.Name]; ap.IsValid() {
			a := ap.Addr().Unmap()
			configured[p.Name] = a
			add(netip.PrefixFrom(a, a.BitLen()), fmt.Sprintf("underlay endpoint of peering %s", p.Name))
		}
		if p.BGP == nil {
			for _, q := range p.Seen(p.AddressSpaces) { // as this side sees them
				add(q, fmt.Sprintf("static address space of peering %s", p.Name))
			}
			continue
		}
		local, peer := wireAddrs(cfg, p) // nat.go: both ends compare the same pair
		n := spec.Neighbor{
			Name:         p.Name,
			Address:      p.BGP.Address,
			ASN:          p.BGP.ASN,
			LocalAddress: cfg.TunnelAddress,
			MaxPrefixes:  p.BGP.MaxPrefixes,
			Prepend:      p.BGP.Prepend,
			GracefulRestart: func() spec.GracefulRestart {
				r, ll := cfg.BGP.GracefulRestart.Timing()
				return spec.GracefulRestart{RestartTime: r, LongLived: ll}
			}(),
			Passive: spec.Passive(local, peer, peerKind(in, p)),
		}
		if len(p.AddressSpaces) > 0 {
			n.Allowed = slices.Clone(p.AddressSpaces)
		}
		st.Neighbors = append(st.Neighbors, n)
	}
	addRuntimeProtected(in, configured, add)
	natBGP(in, &st) // nat.go
	return st
}

// routeTable is what `vgate routes` shows (Routes): the gateway's own spaces, static
// routes, and every route BGP received (accepted or rejected), each marked
// installed if the kernel has it through the expected interface.
func routeTable(cfg *config.Config, static []route.Route, learned []spec.Route, kern []route.Route, dead map[string]bool) []api.RouteEntry {
	ifOf := ifNames(cfg)
	peeringOf := func(dev string, dst netip.Prefix) string { return peeringOn(cfg, dev, dst) }
	inKernel := map[netip.Prefix]route.Route{}
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
		e := api.RouteEntry{Prefix: r.Dst, Source: "static", Peering: peeringOf(r.Dev, r.Dst)}
		e.PeerPrefix = peerPrefix(cfg, e.Peering, r.Dst) // nat.go
		if r.Dev != "" && !isTunnelDev(r.Dev) {
			e.Source, e.Peering = "point-to-site", ""
		}
		k, ok := inKernel[r.Dst]
		e.Installed = ok && slices.Equal(k.Devices(), r.Devices())
		e.Status = installedStatus(e.Installed)
		out = append(out, e)
	}
	for _, r := range learned {
		e := api.RouteEntry{Prefix: r.Prefix, Source: "bgp", Peering: r.Neighbor, ASPath: r.ASPath, PeerPrefix: r.PeerPrefix}
		k, inK := inKernel[r.Prefix]
		// A path through a multipath kernel route is installed,
		// best or not (equal cost).
		ecmp := r.Accepted && !staticDst[r.Prefix] && inK && len(k.Devs) > 0 && slices.Contains(k.Devs, ifOf[r.Neighbor])
		switch {
		case !r.Accepted:
			e.Status = "rejected: " + r.Reason.String()
		case dead[r.Neighbor]:
			e.Status = "accepted, not used: tunnel probe says dead"
		case ecmp:
			e.Installed = true
			e.Status = "installed (multipath)"
			for _, d := range k.Devs {
				e.Peerings = append(e.Peerings, peeringOf(d, r.Prefix))
			}
		case !r.Best:
			e.Status = "accepted, not best (in AllowedIPs)"
		case staticDst[r.Prefix]:
			e.Status = "best, static route preferred"
		default:
			e.Installed = inK && slices.Equal(k.Devices(), []string{ifOf[r.Neighbor]})
			e.Status = installedStatus(e.Installed)
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b api.RouteEntry) int { return a.Prefix.Compare(b.Prefix) })
	return out
}

func installedStatus(ok bool) string {
	if ok {
		return "installed"
	}
	return statusNotInKernel
}

const statusNotInKernel = "not in kernel"

// addRuntimeProtected adds to bgpImport's protected prefixes what changes
// at run time: the endpoints in use now (those equal to a peering's
// configured endpoint are already there) and the connected subnets.
func addRuntimeProtected(in Input, configured map[string]netip.Addr, add func(netip.Prefix, string)) {
	eps := slices.Clone(in.Endpoints)
	slices.SortFunc(eps, func(a, b UnderlayEndpoint) int {
		return strings.Compare(a.Peering+"\x00"+a.Client, b.Peering+"\x00"+b.Client)
	})
	for _, e := range eps {
		a := e.AddrPort.Addr().Unmap()
		if !a.IsValid() {
			continue
		}
		host := netip.PrefixFrom(a, a.BitLen())
		switch {
		case e.Peering != "" && configured[e.Peering] == a:
		case e.Peering != "":
			add(host, "current underlay endpoint of peering "+e.Peering)
		case e.Client != "":
			add(host, "endpoint of point-to-site client "+e.Client)
		}
	}
	for _, c := range in.Connected {
		add(c.Prefix, "connected subnet on "+c.Dev)
	}
}

// markConflicts gives the routes the kernel did not install because a
// route vgate did not install has their destination the reason, e.g. "not
// installed: conflicts with 10.2.0.0/16 dev eth0 proto static metric 0
// (not vgate's)".
func markConflicts(entries []api.RouteEntry, conflicts []route.Conflict) {
	by := map[netip.Prefix]route.Conflict{}
	for _, c := range conflicts {
		by[c.Dst] = c
	}
	for i := range entries {
		e := &entries[i]
		c, ok := by[e.Prefix]
		if !ok || e.Installed || e.Status != statusNotInKernel {
			continue
		}
		f := api.ForeignRoute(c.ForeignRoute)
		e.Conflict = &f
		e.Status = "not installed: " + c.Reason()
	}
}

func isTunnelDev(dev string) bool {
	return len(dev) > len(IfNamePrefix) && dev[:len(IfNamePrefix)] == IfNamePrefix || dev == ipsec.IfName
}

// ifNames maps each peering to the interface its routes go through.
func ifNames(cfg *config.Config) map[string]string {
	out := make(map[string]string, len(cfg.Peerings))
	for i := range cfg.Peerings {
		out[cfg.Peerings[i].Name] = IfNameOf(&cfg.Peerings[i])
	}
	return out
}

// peeringOn names the peering a route to dst through dev uses: the
// interface's for WireGuard; for the libipsec TUN, which every IPsec
// peering shares, the IPsec peering whose spaces (its remote traffic
// selectors) hold dst.
func peeringOn(cfg *config.Config, dev string, dst netip.Prefix) string {
	switch {
	case dev == ipsec.IfName:
		for i := range cfg.Peerings {
			p := &cfg.Peerings[i]
			if !p.IsIPsec() {
				continue
			}
			_, ts := ipsec.TrafficSelectors(p.AddressSpaces, p.PeerTunnelAddress())
			for _, q := range ts {
				if q.Overlaps(dst) && q.Bits() <= dst.Bits() {
					return p.Name
				}
			}
		}
	case isTunnelDev(dev):
		return dev[len(IfNamePrefix):]
	}
	return ""
}

// peerKind is what the tunnel probe learned of peering p's BGP peer
// (routing.Passive decides from it which end dials). An IPsec peering's
// peer is a standard device, never vgate, and one the probe cannot reach
// (its BGP address is not of the tunnel address's family) is never
// learned, nor one with `probe: off` (a router that does not answer
// echo): all count as plain, so vgate dials.
func peerKind(in Input, p *config.Peering) spec.PeerKind {
	switch {
	case p.IsIPsec(), p.BGP.ProbeOff(), in.Config.TunnelAddress.Unmap().Is4() != p.BGP.Address.Unmap().Is4():
		return spec.PeerPlain
	case in.VgatePeers[p.Name]:
		return spec.PeerVgate
	case in.PlainPeers[p.Name]:
		return spec.PeerPlain
	}
	return spec.PeerUnknown
}
