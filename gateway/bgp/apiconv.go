package bgp

import (
	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/routing/bfd"
)

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
