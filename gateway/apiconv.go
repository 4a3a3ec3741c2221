package gateway

import (
	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/wgbind"
)

// Conversions from the types of vgate's leaf packages to the control
// API's (package api), which imports none of them.

func portStats(s wgbind.Stats) api.PortStats {
	out := api.PortStats{
		Dispatched:            s.Dispatched,
		DroppedUnknownIndex:   s.DroppedUnknownIndex,
		DroppedMalformed:      s.DroppedMalformed,
		DroppedQueueFull:      s.DroppedQueueFull,
		DroppedNotOpen:        s.DroppedNotOpen,
		DroppedResponseBadMAC: s.DroppedResponseBadMAC,
		DroppedResponseLater:  s.DroppedResponseLater,
		Initiations:           s.Initiations,
		DroppedHandshakeBusy:  s.DroppedHandshakeBusy,
		DroppedBadMAC:         s.DroppedBadMAC,
		DroppedRateLimited:    s.DroppedRateLimited,
		DroppedBadHandshake:   s.DroppedBadHandshake,
		DroppedReplay:         s.DroppedReplay,
		DroppedUnknownPeer:    s.DroppedUnknownPeer,
		CookieReplies:         s.CookieReplies,
		X25519:                s.X25519,
		UnderLoad:             s.UnderLoad,
	}
	for _, d := range s.Devices {
		out.Devices = append(out.Devices, api.PortDevice(d))
	}
	return out
}

// queueStatus is a tunnel's queue management for status; nil for none.
func queueStatus(q *dataplane.QueueStats) *api.QueueStatus {
	if q == nil {
		return nil
	}
	return &api.QueueStatus{
		Discipline: "fq_codel", Qdisc: q.Qdisc, Queued: q.Queued,
		SendInFlight: q.InFlight, SendBudget: q.Budget,
		RecvInFlight: q.RecvInFlight, RecvBudget: q.RecvBudget,
		DroppedCoDel: q.DroppedCoDel, MarkedCE: q.MarkedCE,
		DroppedLimit: q.DroppedLimit, BudgetResyncs: q.BudgetResyncs,
	}
}
