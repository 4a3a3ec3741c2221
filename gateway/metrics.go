package gateway

import (
	"context"
	"errors"
	"github.com/vgate-project/vgate/gateway/p2s"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/peering"
	"github.com/vgate-project/vgate/routing"
)

// Reasons a configured peering is not up, as status and metrics show them
// (the label values of vgate_peering_down_reason). The first two come from
// the WireGuard handshake; the others are hooks for BGP and admission.
const (
	ReasonNoHandshake    = "no_handshake"    // no handshake has completed yet
	ReasonHandshakeStale = "handshake_stale" // last handshake older than peering.StaleAfter
	ReasonBGPDown        = "bgp_down"        // the tunnel is up but its BGP session is not established
	ReasonPrefixLimit    = "prefix_limit"    // the BGP session was shut for exceeding its max-prefix
	ReasonRefusedOverlap = "refused_overlap" // not admitted: its address spaces overlap
	ReasonRefusedLimit   = "refused_limit"   // not admitted: past max_tunnels
)

// DownReasons lists every down reason, in a fixed order, so that metrics
// can export a stable series per reason.
var DownReasons = []string{
	ReasonNoHandshake, ReasonHandshakeStale, ReasonBGPDown,
	ReasonPrefixLimit, ReasonRefusedOverlap, ReasonRefusedLimit,
}

// downReason is why a peering in state s is not up, or "" when it is.
func downReason(s peering.State) string {
	switch s {
	case peering.StateUp:
		return ""
	case peering.StateStale:
		return ReasonHandshakeStale
	}
	return ReasonNoHandshake
}

// Reasons a reload is refused (the label values of vgate_refusals_total).
const (
	RefusedTunnelLimit     = "tunnel_limit"     // more peerings than max_tunnels
	RefusedOverlap         = "overlap"          // overlapping address spaces
	RefusedInvalid         = "invalid"          // any other config problem
	RefusedRestartRequired = "restart_required" // a change a running gateway cannot take
)

// RefusalReasons lists every refusal reason, in a fixed order.
var RefusalReasons = []string{RefusedTunnelLimit, RefusedOverlap, RefusedInvalid, RefusedRestartRequired}

// restartHint is what checkReload's errors say; it marks a refusal (the
// config is valid but cannot be applied live) as opposed to a failure to
// apply a valid config.
const restartHint = "needs a restart"

// RefusalReasons classifies why a config error refused a reload: one
// entry per distinct reason, in RefusalReasons order. An error that is not
// a refusal (applying a valid config failed) yields none.
func refusalReasons(err error) []string {
	if err == nil {
		return nil
	}
	found := map[string]bool{}
	var errs config.Errors
	var le *peering.LimitError
	switch {
	case errors.As(err, &errs):
		for _, e := range errs {
			switch {
			case strings.HasPrefix(e.Msg, "tunnel limit:"):
				found[RefusedTunnelLimit] = true
			case strings.Contains(e.Msg, " overlaps "):
				found[RefusedOverlap] = true
			default:
				found[RefusedInvalid] = true
			}
		}
	case errors.As(err, &le):
		found[RefusedTunnelLimit] = true
	case strings.Contains(err.Error(), restartHint):
		found[RefusedRestartRequired] = true
	case strings.HasPrefix(err.Error(), "config:"):
		found[RefusedInvalid] = true // the file could not be read
	}
	var out []string
	for _, r := range RefusalReasons {
		if found[r] {
			out = append(out, r)
		}
	}
	return out
}

// countRefusals records the reasons err refused a reload. g.mu is held.
func (g *Gateway) countRefusals(err error) {
	for _, r := range refusalReasons(err) {
		if g.refusals == nil {
			g.refusals = make(map[string]uint64)
		}
		g.refusals[r]++
		g.log.Info("reload refused", "reason", r)
	}
}

// Metrics is what the Prometheus collector reads at scrape time: the
// status plus figures `vgate status` does not show.
type Metrics struct {
	Status
	// RoutesInstalled is the number of kernel routes vgate owns (protocol
	// 76), or -1 if they could not be listed.
	RoutesInstalled int
	// Refusals counts refused reloads by reason (RefusalReasons).
	Refusals map[string]uint64
	// BGP is the speaker's sessions and tunnel probes; nil without bgp or
	// when the speaker could not be read.
	BGP *BGPStatus
	// Clients are the registered point-to-site clients (nil without
	// point_to_site), each with its device counters.
	Clients []p2s.ClientInfo
}

// Metrics gathers the gateway's metrics now: per-peer figures are read from
// the WireGuard devices, sessions from the BGP speaker, routes from the
// kernel. It is called per scrape; nothing polls in between. A peering
// whose tunnel is up but whose BGP session is not established is reported
// down (bgp_down, or prefix_limit when vgate shut it for max-prefix).
func (g *Gateway) Metrics() Metrics {
	m := Metrics{Status: g.Status(), RoutesInstalled: -1}
	if m.P2S != nil {
		if cs, err := g.Clients(); err == nil {
			m.Clients = cs
		}
	}
	if b, err := g.BGP(); err == nil && b.Enabled {
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
func bgpReasons(ps []PeeringStatus, ns []routing.NeighborStatus) {
	for i := range ps {
		p := &ps[i]
		if p.Reason != "" {
			continue // the tunnel itself is down: that is the reason
		}
		for _, n := range ns {
			if n.Name != p.Name || n.State == "established" {
				continue
			}
			p.Reason = ReasonBGPDown
			if strings.HasPrefix(n.Down, "max-prefix") || strings.Contains(n.Down, "; max-prefix") ||
				n.Down == "" && strings.HasPrefix(n.LastDown, "max-prefix") {
				p.Reason = ReasonPrefixLimit
			}
		}
	}
}

// transition is a peering whose state changed between two observations.
type transition struct {
	Peering, Network string
	From, To         peering.State
	Reason           string
}

// peeringTransitions compares the current peerings with the previous
// states (updated in place). A peering seen for the first time counts as
// coming from down, so a tunnel that is up at the first look is reported;
// peerings no longer configured are forgotten.
func peeringTransitions(prev map[string]peering.State, cur []PeeringStatus) []transition {
	var out []transition
	seen := make(map[string]bool, len(cur))
	for _, p := range cur {
		seen[p.Name] = true
		was, ok := prev[p.Name]
		if !ok {
			was = peering.StateDown
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
	prev := map[string]peering.State{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		g.mu.Lock()
		closed := g.closed
		g.mu.Unlock()
		if closed {
			return
		}
		for _, tr := range peeringTransitions(prev, g.Status().Peerings) {
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
	if tr.To == peering.StateUp {
		log.Info("tunnel up", "peering", tr.Peering, "network", tr.Network)
		return
	}
	log.Info("tunnel down", "peering", tr.Peering, "network", tr.Network, "state", string(tr.To), "reason", tr.Reason)
}
