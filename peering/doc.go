// Package peering owns a declared peering on its way to becoming a live
// tunnel, whatever its kind (WireGuard or IPsec):
//
//   - admission: the tunnel limit (admission.go), checked by config
//     validation before anything runs;
//   - the per-peering state machine (state.go): one function, Evaluate,
//     turns what the data plane and the BGP speaker observe into the state
//     and the typed reason that `vgate status`, its "N up" count, the log
//     and the metrics all show — there is no second opinion on "up".
//
// It is transport-independent and imports no other vgate package but api,
// whose codes (api.PeeringState, api.DownReason) it decides; callers hand
// it standard types. docs/architecture.md shows where it sits.
package peering
