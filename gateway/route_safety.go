package gateway

import (
	"net/netip"
	"strings"
	"time"

	"github.com/vgate-project/vgate/gateway/bgp"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/route"
	"github.com/vgate-project/vgate/ipsec"
	"github.com/vgate-project/vgate/overlap"
)

// The import filter's facts: what changes without a config or RIB change
// — the tunnels' current endpoints (roaming), the connected point-to-site
// clients and the host's connected subnets — and which the filter
// protects (plan.Input, bgp.ImportFacts). Every bgp.ImportRefresh the BGP
// component asks to re-plan (bgp.ImportFactsDue); the gateway gathers
// them here, from its own running parts, and re-plans only when they
// moved.

// importFactsChanged reports whether a refresh has anything to re-plan
// for (bgp.Component.FactsMoved). Reading the facts is a device get per
// tunnel and one netlink dump, far cheaper than planning and applying
// every bgp.ImportRefresh. g.mu is held.
func (g *Gateway) importFactsChanged() bool {
	if g.cfg == nil || g.cfg.BGP == nil {
		return true
	}
	return g.bgp.FactsMoved(func() bgp.ImportFacts {
		return bgp.ImportFacts{Endpoints: g.currentEndpoints(), Connected: g.connectedPrefixes()}
	})
}

// currentEndpoints lists the endpoints the WireGuard devices use now: each
// tunnel's (after roaming, or learned from the remote side when the
// peering has none configured) and each connected point-to-site client's.
// g.mu is held.
func (g *Gateway) currentEndpoints() []plan.UnderlayEndpoint {
	var out []plan.UnderlayEndpoint
	for _, e := range g.tunnelEndpoints() {
		out = append(out, plan.UnderlayEndpoint{AddrPort: e.endpoint, Peering: e.peering.Name})
	}
	if s := g.p2s.Current(); s != nil {
		if cs, err := s.Clients(); err == nil {
			for _, c := range cs {
				if !c.Connected {
					continue
				}
				if ap, err := netip.ParseAddrPort(c.Endpoint); err == nil {
					out = append(out, plan.UnderlayEndpoint{AddrPort: overlap.UnmapAddrPort(ap), Client: c.Name})
				}
			}
		}
	}
	return out
}

// connectedPrefixes are the subnets on the host's interfaces other than
// vgate's own. g.mu is held.
func (g *Gateway) connectedPrefixes() []route.Connected {
	s := g.p2s.Current()
	own := func(dev string) bool {
		return strings.HasPrefix(dev, plan.IfNamePrefix) || dev == p2s.IfName || s != nil && dev == s.IfName() ||
			g.kinds[plan.KindIPsec] != nil && dev == ipsec.IfName
	}
	cs, err := g.kern.ConnectedPrefixes(own)
	if err != nil {
		g.log.Error("bgp import filter: reading connected subnets", "error", err)
	}
	return cs
}

// tunnelEndpoint is a running tunnel's underlay endpoint now.
type tunnelEndpoint struct {
	peering   *config.Peering
	endpoint  netip.AddrPort
	handshake time.Time
}

// tunnelEndpoints are the endpoints the running tunnels use now (after
// roaming, or learned from the remote side when the peering has none
// configured), in config order; a tunnel without one is left out. g.mu is
// held.
func (g *Gateway) tunnelEndpoints() []tunnelEndpoint {
	var out []tunnelEndpoint
	for i := range g.cfg.Peerings {
		p := &g.cfg.Peerings[i]
		t := g.tunnel(p.Name)
		if t == nil {
			continue
		}
		st, err := t.Stats()
		if err != nil {
			continue
		}
		if ap, err := netip.ParseAddrPort(st.Endpoint); err == nil {
			out = append(out, tunnelEndpoint{peering: p, endpoint: overlap.UnmapAddrPort(ap), handshake: st.LastHandshake})
		}
	}
	return out
}
