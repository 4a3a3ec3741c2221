package gateway

import (
	"github.com/vgate-project/vgate/gateway/remember"
)

// The crash memory (remember.Memory) records the peers' endpoints in
// state_dir while the gateway runs; the gateway gathers them from its
// devices (recall) and dials them right after start (resume).

// recall is what the devices know now: each running tunnel's endpoint and
// each point-to-site client's. While point-to-site is configured but not
// readable (disabled, or its device does not answer) the clients last
// saved are kept. g.mu is held.
func (g *Gateway) recall() remember.Seen {
	seen := remember.Seen{StateDir: g.cfg.StateDir, KeepClients: g.cfg.PointToSite != nil}
	for _, e := range g.tunnelEndpoints() { // route_safety.go
		seen.Peerings = append(seen.Peerings, remember.PeerEndpoint{Peering: e.peering.Name, PublicKey: e.peering.PublicKey, Endpoint: e.endpoint, LastHandshake: e.handshake})
	}
	if s := g.p2s.Current(); s != nil {
		if ep, err := s.Endpoints(); err == nil {
			seen.KeepClients = false
			for k, c := range ep {
				seen.Clients = append(seen.Clients, remember.ClientEndpoint{PublicKey: k, Endpoint: c.Endpoint, LastHandshake: c.LastHandshake})
			}
		}
	}
	return seen
}

// recallOpen is recall for the memory's loop: it takes g.mu, and gathers
// nothing once the gateway is closed.
func (g *Gateway) recallOpen() (remember.Seen, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return remember.Seen{}, false
	}
	return g.recall(), true
}

// initiator is a tunnel that can start a handshake on demand (a WireGuard
// tunnel, dataplane.Tunnel).
type initiator interface{ InitiateHandshake() error }

// resume dials every peer right after start: each tunnel with an endpoint
// (configured, or remembered for a dial-in-only peering: plan.Input)
// initiates a handshake, and so does the point-to-site device toward each
// client with a remembered endpoint. Failures are logged; the peers then
// reconnect on their own timers. g.mu is held.
func (g *Gateway) resume() {
	tunnels := 0
	for _, p := range g.cfg.Peerings {
		t, ok := g.tunnel(p.Name).(initiator)
		if !ok {
			continue
		}
		if err := t.InitiateHandshake(); err != nil {
			g.log.Warn("could not initiate a handshake after start", "peering", p.Name, "error", err)
			continue
		}
		tunnels++
	}
	var clients []string
	if s, mem := g.p2s.Current(), g.mem.Clients(); s != nil && len(mem) > 0 {
		var err error
		clients, err = s.Resume(mem)
		if err != nil {
			g.log.Warn("point-to-site: could not dial every remembered client", "error", err)
		}
	}
	g.log.Info("dialing peers after start", "tunnels", tunnels, "remembered_peerings", g.mem.Peerings(), "p2s_clients", len(clients))
}
