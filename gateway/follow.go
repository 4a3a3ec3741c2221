package gateway

import (
	"slices"
	"time"

	"github.com/vgate-project/vgate/gateway/config"
)

// Endpoints that move: a peering whose endpoint is a DNS name is looked up
// again while the gateway runs — every reresolveEvery, and soon after its
// handshake initiations go unanswered (the peer may have moved). A changed
// address is applied by re-planning the running config: the tunnel diff
// (dataplane.PlanTunnels) updates that one tunnel's endpoint with UAPI and
// touches no other tunnel. Each move is logged and shown in status.

const (
	// followTick is how often the loop checks what is due.
	followTick = 2 * time.Second
	// reresolveEvery is the periodic lookup of every endpoint name: with
	// followTick it bounds how long a moved name takes to be followed.
	reresolveEvery = 20 * time.Second
	// reresolveUnanswered: a name whose peering has had a handshake
	// initiation unanswered this long (two attempts; wireguard-go retries
	// every 5 s) is looked up again at once, and then at most this often.
	reresolveUnanswered = 10 * time.Second
)

// peerProbe is what dueNames needs to know of one peering.
type peerProbe struct {
	Endpoint        string    // as configured
	UnansweredSince time.Time // zero: none pending
	LastLookup      time.Time // of Endpoint
}

// dueNames decides which endpoint names to look up now: those not looked up
// for reresolveEvery, and those of peerings whose initiation has waited
// reresolveUnanswered without an answer and that were not looked up within
// reresolveUnanswered. Each name once, in the order of peers.
func dueNames(peers []peerProbe, now time.Time) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range peers {
		if p.Endpoint == "" || seen[p.Endpoint] {
			continue
		}
		since := now.Sub(p.LastLookup)
		due := since >= reresolveEvery
		if !p.UnansweredSince.IsZero() && now.Sub(p.UnansweredSince) >= reresolveUnanswered && since >= reresolveUnanswered {
			due = true
		}
		if due {
			seen[p.Endpoint] = true
			out = append(out, p.Endpoint)
		}
	}
	return out
}

// probes gathers dueNames' input for the running config. g.mu is held.
func (g *Gateway) probes(cfg *config.Config) []peerProbe {
	unanswered := map[string]time.Time{}
	for _, k := range g.kinds {
		if s := k.Port(); s != nil {
			for _, d := range s.Devices {
				unanswered[d.Name] = d.UnansweredSince
			}
		}
	}
	names := endpointNames(cfg)
	var out []peerProbe
	for _, p := range cfg.Peerings {
		if !slices.Contains(names, p.Endpoint) {
			continue // no endpoint, or a literal address
		}
		at, _ := g.eps.lookedUp(p.Endpoint)
		out = append(out, peerProbe{Endpoint: p.Endpoint, UnansweredSince: unanswered[p.Name], LastLookup: at})
	}
	return out
}

// followLoop looks endpoint names up again while the gateway runs and
// applies the ones that moved, until the gateway closes.
func (g *Gateway) followLoop() {
	g.everyTick(followTick, func(time.Time) bool {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			return false
		}
		cfg := g.cfg
		now := time.Now()
		due := dueNames(g.probes(cfg), now)
		g.mu.Unlock()
		var moves []endpointMove
		if len(due) > 0 {
			moves = g.eps.reresolve(due) // DNS outside the lock
		}
		mtuChanged := false
		if len(moves) > 0 || g.under.due(now, reresolveEvery) {
			mtuChanged = g.under.refresh(underlayAddrs(cfg, g.eps.Resolve), false) // underlay.go
		}
		if len(moves) == 0 && !mtuChanged {
			return true
		}
		g.mu.Lock()
		if !g.closed && g.cfg == cfg {
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
		g.mu.Unlock()
		return true
	})
}

// everyTick calls f every d until the gateway's context ends or f returns
// false.
func (g *Gateway) everyTick(d time.Duration, f func(now time.Time) bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case now := <-t.C:
			if !f(now) {
				return
			}
		}
	}
}
