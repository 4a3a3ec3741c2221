package gateway

import (
	"context"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/peering"
	"github.com/vgate-project/vgate/routing"
)

// Status reports the gateway's current state. Each peering's state and
// reason come from peering.Evaluate, the one definition of "up" that the
// "N up" count, the tunnel log lines and the metrics share.
func (g *Gateway) Status(ctx context.Context) (api.Status, error) {
	g.mu.Lock()
	cfg := g.cfg
	st := api.Status{
		Name:          cfg.Name,
		PublicKey:     cfg.PrivateKey.Public().String(),
		AddressSpaces: cfg.AddressSpaces,
		TunnelAddress: cfg.TunnelAddress,
		ListenPort:    cfg.ListenPort,
		Started:       g.started,
		Reloads:       g.reloads,
		ConfigFile:    cfg.Path,
		Tunnels:       api.TunnelCount{Limit: cfg.MaxTunnels},
	}
	if wg, ok := g.kinds[plan.KindWireGuard].(*wireGuardKind); ok {
		st.Port = portStats(wg.portStats()) // apiconv.go
	}
	tunnels := make([]Tunnel, len(cfg.Peerings))
	for i, p := range cfg.Peerings {
		tunnels[i] = g.tunnel(p.Name)
	}
	b := g.bgp
	g.mu.Unlock()

	st.P2S = g.p2sStatus()
	sessions := map[string]routing.NeighborStatus{}
	if b != nil {
		if rib, err := b.speaker.Snapshot(ctx); err == nil {
			for _, n := range rib.Neighbors {
				sessions[n.Name] = n
			}
		}
	}
	now := time.Now()
	for i := range cfg.Peerings {
		p := &cfg.Peerings[i]
		ps := api.PeeringStatus{
			Name:          p.Name,
			Network:       p.Network,
			PublicKey:     p.PublicKey.String(),
			Interface:     plan.IfNamePrefix + p.Name,
			AddressSpaces: p.AddressSpaces,
		}
		obs := peering.Observation{Now: now, BGP: p.BGP != nil && cfg.BGP != nil}
		if n, ok := sessions[p.Name]; ok {
			obs.BGPEstablished = n.State == api.SessionEstablished
			obs.PrefixLimit = prefixLimited(n)
		}
		if t := tunnels[i]; t != nil {
			st.Tunnels.Used++
			ps.MTU = t.MTU()
			if s, err := t.Stats(); err != nil {
				ps.Error = err.Error()
			} else {
				ps.Endpoint = s.Endpoint
				ps.LastHandshake = s.LastHandshake
				ps.RxBytes, ps.TxBytes = s.RxBytes, s.TxBytes
				ps.AllowedIPs = s.AllowedIPs
				obs.LastHandshake = s.LastHandshake
			}
		}
		ps.State, ps.Reason = peering.Evaluate(obs)
		if ps.State == api.StateUp {
			st.Tunnels.Up++
		}
		st.Peerings = append(st.Peerings, ps)
	}
	return st, nil
}
