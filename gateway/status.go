package gateway

import (
	"context"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/peering"
)

// Status reports the gateway's current state (`vgate status`). It never
// contains key material other than public keys.
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
		Port:          portStats(g.mux.Stats()), // apiconv.go
	}
	g.mu.Unlock()

	st.P2S = g.p2sStatus()
	now := time.Now()
	for i := range cfg.Peerings {
		p := &cfg.Peerings[i]
		ps := api.PeeringStatus{
			Name:          p.Name,
			Network:       p.Network,
			PublicKey:     p.PublicKey.String(),
			Interface:     IfNamePrefix + p.Name,
			State:         api.StateDown,
			AddressSpaces: p.AddressSpaces,
		}
		state := peering.StateDown
		if t := g.plane.Tunnel(p.Name); t != nil {
			st.Tunnels.Used++
			ps.MTU = t.MTU()
			if s, err := t.Stats(); err != nil {
				ps.Error = err.Error()
			} else {
				ps.Endpoint = s.Endpoint
				ps.LastHandshake = s.LastHandshake
				ps.RxBytes, ps.TxBytes = s.RxBytes, s.TxBytes
				ps.AllowedIPs = s.AllowedIPs
				state = peering.StateFor(s.LastHandshake, now)
			}
		}
		ps.State = peeringState(state) // apiconv.go
		if state == peering.StateUp {
			st.Tunnels.Up++
		}
		ps.Reason = downReason(state)
		st.Peerings = append(st.Peerings, ps)
	}
	return st, nil
}
