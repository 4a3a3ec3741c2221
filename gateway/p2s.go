package gateway

import (
	"fmt"
	"net/netip"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/relay"
)

// The point-to-site server is a p2s.Component: apply hands it the plan's
// device (plan.State.P2S) after the tunnels, and the plan's routes for
// its return watch after the kernel routes.

// p2sHooks are what the point-to-site component needs of the gateway: the
// kernel's link, the published keys and the tunnels' relay connections.
func (g *Gateway) p2sHooks() p2s.Hooks {
	return p2s.Hooks{
		LinkUp:    g.kern.LinkUp,                                                  // g.kern is made first
		OnClients: func(cs []p2s.Client) { g.pubKeys.SetClients(clientKeys(cs)) }, // pubkeys.go
		// Called from Set and Close, with g.mu held (relay.Transport).
		SetRelay: func(key keys.PrivateKey, b *relay.Bind, target relay.Target) {
			if g.relays != nil {
				g.relays.SetP2S(key, b, target)
			}
		},
	}
}

// p2sWant is the plan's point-to-site device as the component takes it.
func p2sWant(p *plan.P2S) *p2s.Want {
	if p == nil {
		return nil
	}
	return &p2s.Want{Config: p.Config, MTU: p.MTU, Relay: relay.Target(p.Relay), PrivateKey: p.PrivateKey, StateDir: p.StateDir, Self: p.Self}
}

// hostAddrs are the host's own addresses the point-to-site policy closes
// to clients (plan.Input.HostAddrs), gathered at start and reload; none
// without point_to_site.
func hostAddrs(cfg *config.Config) ([]netip.Addr, error) {
	if cfg.PointToSite == nil {
		return nil, nil
	}
	local, err := p2s.LocalAddrs()
	if err != nil {
		return nil, fmt.Errorf("point_to_site: list the host's addresses: %w", err)
	}
	return local, nil
}

// P2SServer is the running point-to-site server, for the control API's
// client and invite calls and for enrollment: errStopped once the gateway
// is closed, else p2s.Component.Server's (p2s.ErrNoP2S, p2s.ErrDisabled).
func (g *Gateway) P2SServer() (*p2s.Server, error) {
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		return nil, errStopped
	}
	return g.p2s.Server()
}
