package gateway

import (
	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/wgbind"
	"github.com/vgate-project/vgate/peering"
	"github.com/vgate-project/vgate/routing"
)

// Conversions from the types of vgate's leaf packages to the control
// API's (package api), which imports none of them.

func portStats(s wgbind.Stats) api.PortStats {
	return api.PortStats{
		Dispatched:          s.Dispatched,
		DroppedUnknownIndex: s.DroppedUnknownIndex,
		DroppedMalformed:    s.DroppedMalformed,
		DroppedQueueFull:    s.DroppedQueueFull,
		DroppedNotOpen:      s.DroppedNotOpen,
	}
}

func peeringState(s peering.State) api.PeeringState {
	switch s {
	case peering.StateUp:
		return api.StateUp
	case peering.StateStale:
		return api.StateStale
	}
	return api.StateDown
}

func neighborStatus(n routing.NeighborStatus) api.NeighborStatus {
	return api.NeighborStatus{
		Name:          n.Name,
		Address:       n.Address,
		ASN:           n.ASN,
		State:         n.State,
		Since:         n.Since,
		Received:      n.Received,
		Accepted:      n.Accepted,
		Rejected:      n.Rejected,
		Advertised:    n.Advertised,
		MaxPrefixes:   n.MaxPrefixes,
		RejectedTotal: n.RejectedTotal,
		Down:          n.Down,
		LastDown:      n.LastDown,
	}
}

// neighborStatuses converts a speaker's sessions; never nil.
func neighborStatuses(ns []routing.NeighborStatus) []api.NeighborStatus {
	out := make([]api.NeighborStatus, len(ns))
	for i, n := range ns {
		out[i] = neighborStatus(n)
	}
	return out
}
