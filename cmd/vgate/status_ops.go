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
		n         uint64
		what, key string
	}{
		{s.DroppedUnknownIndex, "unknown index", "unknown_index"},
		{s.DroppedMalformed, "malformed", "malformed"},
		{s.DroppedQueueFull, "queue full", "queue_full"},
		{s.DroppedNotOpen, "tunnel closed", "not_open"},
	} {
		if d.n > 0 {
			var recent *uint64
			if n, ok := s.DroppedLastMinute[d.key]; ok {
				recent = &n
			}
			out = append(out, fmt.Sprintf("%d %s%s", d.n, d.what, lastMinute(recent)))
		}
	}
	return strings.Join(out, ", ")
}
