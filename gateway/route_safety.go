package gateway

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vgate-project/vgate/gateway/kernel"
	"github.com/vgate-project/vgate/gateway/p2s"
)

// importRefresh is how often the BGP import filter is rebuilt from what
// changes without a config change: the tunnels' current endpoints
// (roaming), the connected point-to-site clients and the host's connected
// subnets. An unchanged filter costs nothing in the speaker.
const importRefresh = 3 * time.Second

// UnderlayEndpoint is an underlay address a tunnel or a point-to-site
// client uses now: a learned route covering it would carry the tunnel
// into itself.
type UnderlayEndpoint struct {
	AddrPort netip.AddrPort
	// Peering names the tunnel; Client the point-to-site client.
	Peering, Client string
}

// currentEndpoints lists the endpoints the WireGuard devices use now: each
// tunnel's (after roaming, or learned from the remote side when the
// peering has none configured) and each connected point-to-site client's,
// sorted by owner. Called with g.mu held.
func (g *Gateway) currentEndpoints() []UnderlayEndpoint {
	var out []UnderlayEndpoint
	if g.plane != nil {
		for _, t := range g.plane.Tunnels() {
			st, err := t.Stats()
			if err != nil {
				continue
			}
			if ap, err := netip.ParseAddrPort(st.Endpoint); err == nil {
				out = append(out, UnderlayEndpoint{AddrPort: unmapAP(ap), Peering: t.Name()})
			}
		}
	}
	if g.p2s != nil {
		if cs, err := g.p2s.Clients(); err == nil {
			for _, c := range cs {
				if !c.Connected {
					continue
				}
				if ap, err := netip.ParseAddrPort(c.Endpoint); err == nil {
					out = append(out, UnderlayEndpoint{AddrPort: unmapAP(ap), Client: c.Name})
				}
			}
		}
	}
	return out
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// connectedPrefixes are the subnets on the host's interfaces other than
// vgate's own. Called with g.mu held.
func (g *Gateway) connectedPrefixes() []kernel.Connected {
	own := func(dev string) bool {
		return strings.HasPrefix(dev, IfNamePrefix) || dev == p2s.IfName || g.p2s != nil && dev == g.p2s.IfName()
	}
	cs, err := g.kern.ConnectedPrefixes(own)
	if err != nil {
		g.log.Error("bgp import filter: reading connected subnets", "error", err)
	}
	return cs
}

// refreshImport rebuilds the import policy and hands it to the speaker
// when its protected prefixes changed (see importRefresh).
func (g *Gateway) refreshImport(ctx context.Context, b *bgpRuntime) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ctx.Err() != nil || g.closed || g.bgp != b || g.cfg.BGP == nil {
		return
	}
	st := BGPImport(g.cfg, g.env)
	if slices.Equal(st.Protected, b.protected) {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.speaker.Set(sctx, st); err != nil {
		g.log.Error("bgp: refreshing the import filter", "error", err)
		return
	}
	b.protected = st.Protected
	g.log.Debug("bgp: import filter refreshed", "protected", len(st.Protected))
}

// markConflicts gives the routes the kernel did not install because a
// route vgate did not install has their destination the reason, e.g. "not
// installed: conflicts with 10.2.0.0/16 dev eth0 proto static metric 0
// (not vgate's)".
func markConflicts(entries []RouteEntry, conflicts []kernel.RouteConflict) {
	by := map[netip.Prefix]kernel.RouteConflict{}
	for _, c := range conflicts {
		by[c.Dst] = c
	}
	for i := range entries {
		e := &entries[i]
		c, ok := by[e.Prefix]
		if !ok || e.Installed || e.Status != statusNotInKernel {
			continue
		}
		f := c.ForeignRoute
		e.Conflict = &f
		e.Status = "not installed: " + c.Reason()
	}
}

// addRuntimeProtected adds to BGPImport's protected prefixes what changes
// at run time: the endpoints in use now (those equal to a peering's
// configured endpoint are already there) and the connected subnets.
func addRuntimeProtected(env Env, configured map[string]netip.Addr, add func(netip.Prefix, string)) {
	if env.Endpoints != nil {
		eps := env.Endpoints()
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
	}
	if env.Connected != nil {
		for _, c := range env.Connected() {
			add(c.Prefix, "connected subnet on "+c.Dev)
		}
	}
}
