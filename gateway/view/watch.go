package view

import (
	"context"
	"log/slog"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/peering"
)

// Source is what the watcher reads: a gateway's status (a *View).
type Source interface {
	Status(ctx context.Context) (api.Status, error)
	// Closed reports whether the gateway has been closed.
	Closed() bool
}

// transition is a peering whose state changed between two observations.
type transition struct {
	Peering, Network string
	From, To         api.PeeringState
	FromReason       api.DownReason // why it was not up before ("" if it was)
	Reason           api.DownReason
	Hint             string // what to check, for people ("" if none)
}

// seenPeering is a peering's state and reason at the last look.
type seenPeering struct {
	State  api.PeeringState
	Reason api.DownReason
}

// peeringTransitions compares the current peerings with the previous
// looks (updated in place). A change of state, or of the reason a peering
// is not up (e.g. no_handshake to handshake_unanswered), is a transition.
// A peering seen for the first time counts as coming from down, so a
// tunnel that is up at the first look is reported; peerings no longer
// configured are forgotten.
func peeringTransitions(prev map[string]seenPeering, cur []api.PeeringStatus) []transition {
	var out []transition
	seen := make(map[string]bool, len(cur))
	for _, p := range cur {
		seen[p.Name] = true
		was, ok := prev[p.Name]
		if !ok {
			was = seenPeering{State: api.StateDown, Reason: p.Reason}
			if p.State == api.StateUp {
				was.Reason = api.ReasonNoHandshake
			}
		}
		if was.State != p.State || was.Reason != p.Reason {
			out = append(out, transition{Peering: p.Name, Network: p.Network, From: was.State, To: p.State, FromReason: was.Reason, Reason: p.Reason, Hint: p.Hint})
		}
		prev[p.Name] = seenPeering{State: p.State, Reason: p.Reason}
	}
	for name := range prev {
		if !seen[name] {
			delete(prev, name)
		}
	}
	return out
}

// pathChange is a peering whose path (api.PeeringStatus.Path: direct or
// relay) changed between two looks.
type pathChange struct {
	Peering, Network, From, To string
}

// pathChanges compares each peering's path with the previous looks
// (updated in place). A peering seen for the first time, or without a path
// (no relay, IPsec), is no change; peerings no longer configured are
// forgotten.
func pathChanges(prev map[string]string, cur []api.PeeringStatus) []pathChange {
	var out []pathChange
	seen := make(map[string]bool, len(cur))
	for _, p := range cur {
		seen[p.Name] = true
		if p.Path == "" {
			delete(prev, p.Name)
			continue
		}
		if was, ok := prev[p.Name]; ok && was != p.Path {
			out = append(out, pathChange{Peering: p.Name, Network: p.Network, From: was, To: p.Path})
		}
		prev[p.Name] = p.Path
	}
	for name := range prev {
		if !seen[name] {
			delete(prev, name)
		}
	}
	return out
}

// WatchPeerings logs every tunnel state change (down with its reason at
// warn, up at info) and every change of a tunnel's path (direct UDP or
// the relay) at info until ctx ends, looking every interval. Each look reads the
// counters of each tunnel's device (one UAPI get, microseconds), so a
// one-second interval is cheap even at the 10-tunnel limit.
func WatchPeerings(ctx context.Context, src Source, log *slog.Logger, interval time.Duration) {
	prev := map[string]seenPeering{}
	paths := map[string]string{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if src.Closed() {
			return
		}
		st, _ := src.Status(ctx)
		for _, tr := range peeringTransitions(prev, st.Peerings) {
			logTransition(log, tr)
		}
		for _, c := range pathChanges(paths, st.Peerings) {
			log.Info("peering path changed", "peering", c.Peering, "network", c.Network, "path", c.To, "was", c.From)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// logTransition logs a state change: a tunnel down is something to act on
// (warn, with its reason and hint); a recovery is info, and so is a
// reason of a higher layer while down (peering.Layer: the lower layers
// recovered, e.g. probe_dead to bgp_down while the session comes back).
func logTransition(log *slog.Logger, tr transition) {
	if tr.To == api.StateUp {
		log.Info("tunnel up", "peering", tr.Peering, "network", tr.Network)
		return
	}
	lv := slog.LevelWarn
	if tr.From != api.StateUp && tr.FromReason != "" && peering.Layer(tr.Reason) > peering.Layer(tr.FromReason) {
		lv = slog.LevelInfo
	}
	attrs := []any{"peering", tr.Peering, "network", tr.Network, "state", string(tr.To), "reason", tr.Reason}
	if tr.Hint != "" {
		attrs = append(attrs, "hint", tr.Hint)
	}
	log.Log(context.Background(), lv, "tunnel down", attrs...)
}
