package main

import (
	"fmt"
	"strings"

	"github.com/vgate-project/vgate/api"
)

// stateText is a peering's state with the reason it is not up, e.g.
// "down (no handshake)". A stale tunnel's reason says nothing more.
func stateText(p api.PeeringStatus) string {
	s := string(p.State)
	if p.Reason != "" && p.Reason != api.ReasonHandshakeStale {
		s += " (" + strings.ReplaceAll(string(p.Reason), "_", " ") + ")"
	}
	if p.Path == "relay" {
		s += " via relay"
	}
	return s
}

// portDrops lists the shared port's non-zero drop counters, "" if none.
func portDrops(s api.PortStats) string {
	var out []string
	for _, d := range []struct {
		n    uint64
		what string
	}{
		{s.DroppedUnknownIndex, "unknown index"},
		{s.DroppedMalformed, "malformed"},
		{s.DroppedQueueFull, "queue full"},
		{s.DroppedNotOpen, "tunnel closed"},
	} {
		if d.n > 0 {
			out = append(out, fmt.Sprintf("%d %s", d.n, d.what))
		}
	}
	return strings.Join(out, ", ")
}
