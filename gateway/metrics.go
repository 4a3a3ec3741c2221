package gateway

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"time"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/overlap"
	"github.com/vgate-project/vgate/peering"
	"github.com/vgate-project/vgate/routing"
)

// Reasons a reload is refused (the label values of vgate_refusals_total).
const (
	RefusedTunnelLimit     = "tunnel_limit"     // more peerings than max_tunnels
	RefusedOverlap         = "overlap"          // overlapping address spaces
	RefusedInvalid         = "invalid"          // any other config problem
	RefusedRestartRequired = "restart_required" // a change a running gateway cannot take
)

// RefusalReasons lists every refusal reason, in a fixed order.
var RefusalReasons = []string{RefusedTunnelLimit, RefusedOverlap, RefusedInvalid, RefusedRestartRequired}

// refusalReasons classifies why err refused a reload, by the errors'
// types, never their text: one entry per distinct reason, in
// RefusalReasons order. An error that is not a refusal (applying a valid
// config failed) yields none.
func refusalReasons(err error) []string {
	if err == nil {
		return nil
	}
	found := map[string]bool{}
	var errs config.Errors
	switch {
	case errors.As(err, &errs):
		for _, e := range errs {
			switch {
			case errors.Is(e, peering.ErrTunnelLimit):
				found[RefusedTunnelLimit] = true
			case errors.As(e, new(overlap.Conflict)):
				found[RefusedOverlap] = true
			default:
				found[RefusedInvalid] = true
			}
		}
	case errors.Is(err, peering.ErrTunnelLimit):
		found[RefusedTunnelLimit] = true
	case errors.Is(err, plan.ErrRestartRequired):
		found[RefusedRestartRequired] = true
	case errors.Is(err, config.ErrUnreadable):
		found[RefusedInvalid] = true
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
		g.countReason(r)
	}
}

func (g *Gateway) countReason(r string) {
	if g.refusals == nil {
		g.refusals = make(map[string]uint64)
	}
	g.refusals[r]++
	g.log.Info("reload refused", "reason", r)
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
// kernel. It is called per scrape; nothing polls in between. Peering
// states and reasons are Status's (peering.Evaluate).
func (g *Gateway) Metrics(ctx context.Context) Metrics {
	m := Metrics{Status: g.Status(ctx), RoutesInstalled: -1}
	if m.P2S != nil {
		if cs, err := g.Clients(); err == nil {
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
	return n.State != "established" && n.DownCode == routing.DownMaxPrefix
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
		for _, tr := range peeringTransitions(prev, g.Status(ctx).Peerings) {
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
