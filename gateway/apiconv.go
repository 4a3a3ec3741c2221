package gateway

import (
	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/wgbind"
	"github.com/vgate-project/vgate/routing/bfd"
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

// bfdStatuses converts the BFD runner's sessions, never nil.
func bfdStatuses(ss []bfd.Status) []api.BFDStatus {
	out := make([]api.BFDStatus, 0, len(ss))
	for _, s := range ss {
		out = append(out, api.BFDStatus{Peering: s.Peering, Address: s.Address, Interface: s.Interface,
			State: s.State.String(), RemoteState: s.RemoteState.String(), LocalDiag: s.LocalDiag.String(), RemoteDiag: s.RemoteDiag.String(),
			Interval: s.Interval, Multiplier: s.Multiplier, TxInterval: s.TxInterval, Detect: s.Detect,
			RemoteMultiplier: s.RemoteMultiplier, RemoteMinRx: s.RemoteMinRx, RemoteDesiredTx: s.RemoteDesiredTx,
			EverUp: s.EverUp, UpSince: s.UpSince, LastDown: s.LastDown, Downs: s.Downs,
			PeerAdminDown: s.RemoteAdminDown, Received: s.Received, Sent: s.Sent})
	}
	return out
}

// bfdDropped names the BFD runner's drop counters.
func bfdDropped(d [len(bfd.DropNames)]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(d))
	for i, n := range d {
		out[bfd.DropNames[i]] = n
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
