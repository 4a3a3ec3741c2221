package gateway

import (
	"time"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/environ"
)

// The planner's outside facts (environ.Facts) follow endpoint names that
// move while the gateway runs; these are the loop's hooks into the
// gateway (environ.Follow).

// followRunning is the running config and, by peering, since when its
// handshake initiations have gone unanswered; ok false once closed.
func (g *Gateway) followRunning() (*config.Config, map[string]time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, nil, false
	}
	unanswered := map[string]time.Time{}
	for _, k := range g.kinds {
		if s := k.Port(); s != nil {
			for _, d := range s.Devices {
				unanswered[d.Name] = d.UnansweredSince
			}
		}
	}
	return g.cfg, unanswered, true
}

// followMoved re-plans cfg after its endpoint names moved or an underlay
// MTU changed, if cfg still runs: the tunnel diff updates only the tunnels
// that moved.
func (g *Gateway) followMoved(cfg *config.Config, moves []environ.Move) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.cfg != cfg {
		return
	}
	for _, mv := range moves {
		for _, p := range cfg.Peerings {
			if p.Endpoint == mv.Name {
				g.log.Info("peering endpoint moved; updating that tunnel", "peering", p.Name, "endpoint", mv.Name, "from", mv.From, "to", mv.To)
			}
		}
	}
	if err := g.applyConfig(g.ctx, cfg); err != nil {
		g.log.Error("applying a moved endpoint failed", "error", err)
	}
}
