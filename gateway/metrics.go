package gateway

import (
	"context"
	"maps"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/routing"
)

// Metrics gathers the gateway's metrics now: per-peer figures are read from
// the WireGuard devices, sessions from the BGP speaker, routes from the
// kernel. It is called per scrape; nothing polls in between. Peering
// states and reasons are Status's (peering.Evaluate).
func (g *Gateway) Metrics(ctx context.Context) api.Metrics {
	st, _ := g.Status(ctx)
	m := api.Metrics{Status: st, RoutesInstalled: -1}
	if m.P2S != nil {
		if cs, err := g.Clients(ctx); err == nil {
			m.Clients = cs
		}
	}
	if b, err := g.BGP(ctx); err == nil && b.Enabled {
		m.BGP = &b
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	m.Refusals = maps.Clone(g.refusals)
	if !g.closed && g.kern != nil {
		if rs, err := g.kern.Routes(); err == nil {
			m.RoutesInstalled = len(rs)
		}
	}
	return m
}

// prefixLimited reports whether vgate holds a session down for exceeding
// its max-prefix (a typed code from the speaker).
func prefixLimited(n routing.NeighborStatus) bool {
	return n.State != api.SessionEstablished && n.DownCode == routing.DownMaxPrefix
}
