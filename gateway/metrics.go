package gateway

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/peering"
)

// downReason is why a peering in state s is not up, or "" when it is.
func downReason(s peering.State) api.DownReason {
	switch s {
	case peering.StateUp:
		return ""
	case peering.StateStale:
		return api.ReasonHandshakeStale
	}
	return api.ReasonNoHandshake
}

// ErrRestartRequired marks a config change a running gateway cannot take
// (checkReload's errors wrap it): a refusal, as opposed to a failure to
// apply a valid config.
var ErrRestartRequired = errors.New("needs a restart")

// refusalReasons classifies why a config error refused a reload: one
// entry per distinct reason, in api.RefusalReasons order. An error that is
// not a refusal (applying a valid config failed) yields none.
func refusalReasons(err error) []api.RefusalReason {
	if err == nil {
		return nil
	}
	found := map[api.RefusalReason]bool{}
	var errs config.Errors
	var le *peering.LimitError
	switch {
	case errors.As(err, &errs):
		for _, e := range errs {
			switch {
			case strings.HasPrefix(e.Msg, "tunnel limit:"):
				found[api.RefusedTunnelLimit] = true
			case strings.Contains(e.Msg, " overlaps "):
				found[api.RefusedOverlap] = true
			default:
				found[api.RefusedInvalid] = true
			}
		}
	case errors.As(err, &le):
		found[api.RefusedTunnelLimit] = true
	case errors.Is(err, ErrRestartRequired):
		found[api.RefusedRestartRequired] = true
	}
	var out []api.RefusalReason
	for _, r := range api.RefusalReasons {
		if found[r] {
			out = append(out, r)
		}
	}
	return out
}

// loadRefusalReasons is refusalReasons for a config that did not load
// (RecordReloadFailure): an error that is not a validation error means the
// file could not be read, which counts as invalid.
func loadRefusalReasons(err error) []api.RefusalReason {
	if rs := refusalReasons(err); rs != nil || err == nil {
		return rs
	}
	return []api.RefusalReason{api.RefusedInvalid}
}

// countRefusals records the reasons err refused a reload. g.mu is held.
func (g *Gateway) countRefusals(rs []api.RefusalReason) {
	for _, r := range rs {
		if g.refusals == nil {
			g.refusals = make(map[api.RefusalReason]uint64)
		}
		g.refusals[r]++
		g.log.Info("reload refused", "reason", r)
	}
}

// Metrics gathers the gateway's metrics now: per-peer figures are read from
// the WireGuard devices, sessions from the BGP speaker, routes from the
// kernel. It is called per scrape; nothing polls in between. A peering
// whose tunnel is up but whose BGP session is not established is reported
// down (bgp_down, or prefix_limit when vgate shut it for max-prefix).
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
		bgpReasons(m.Peerings, b.Neighbors)
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

// bgpReasons marks peerings whose tunnel is up but whose BGP session is not
// established.
func bgpReasons(ps []api.PeeringStatus, ns []api.NeighborStatus) {
	for i := range ps {
		p := &ps[i]
		if p.Reason != "" {
			continue // the tunnel itself is down: that is the reason
		}
		for _, n := range ns {
			if n.Name != p.Name || n.State == api.SessionEstablished {
				continue
			}
			p.Reason = api.ReasonBGPDown
			if strings.HasPrefix(n.Down, "max-prefix") || strings.Contains(n.Down, "; max-prefix") ||
				n.Down == "" && strings.HasPrefix(n.LastDown, "max-prefix") {
				p.Reason = api.ReasonPrefixLimit
			}
		}
	}
}

// transition is a peering whose state changed between two observations.
type transition struct {
	Peering, Network string
	From, To         api.PeeringState
	Reason           api.DownReason
}

// peeringTransitions compares the current peerings with the previous
// states (updated in place). A peering seen for the first time counts as
// coming from down, so a tunnel that is up at the first look is reported;
// peerings no longer configured are forgotten.
func peeringTransitions(prev map[string]api.PeeringState, cur []api.PeeringStatus) []transition {
	var out []transition
	seen := make(map[string]bool, len(cur))
	for _, p := range cur {
		seen[p.Name] = true
		was, ok := prev[p.Name]
		if !ok {
			was = api.StateDown
		}
		if was != p.State {
			out = append(out, transition{Peering: p.Name, Network: p.Network, From: was, To: p.State, Reason: p.Reason})
		}
		prev[p.Name] = p.State
	}
	for name := range prev {
		if !seen[name] {
			delete(prev, name)
		}
	}
	return out
}

// WatchPeerings logs every tunnel state change (up, down with its reason)
// at info until ctx ends, looking every interval. Each look reads the
// counters of each tunnel's device (one UAPI get, microseconds), so a
// one-second interval is cheap even at the 10-tunnel limit.
func (g *Gateway) WatchPeerings(ctx context.Context, interval time.Duration) {
	prev := map[string]api.PeeringState{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		g.mu.Lock()
		closed := g.closed
		g.mu.Unlock()
		if closed {
			return
		}
		st, _ := g.Status(ctx)
		for _, tr := range peeringTransitions(prev, st.Peerings) {
			logTransition(g.log, tr)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func logTransition(log *slog.Logger, tr transition) {
	if tr.To == api.StateUp {
		log.Info("tunnel up", "peering", tr.Peering, "network", tr.Network)
		return
	}
	log.Info("tunnel down", "peering", tr.Peering, "network", tr.Network, "state", string(tr.To), "reason", string(tr.Reason))
}
