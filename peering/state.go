package peering

import (
	"time"

	"github.com/vgate-project/vgate/api"
)

// The states and reasons are the control API's vocabulary (package api:
// api.PeeringState, api.DownReason); this package is where they are
// decided.

// StaleAfter is the handshake age past which a tunnel is stale: WireGuard
// rekeys every 120 s, so a live tunnel with traffic never gets this old.
// Point-to-site clients use the same age to count as connected.
const StaleAfter = 180 * time.Second

// StateFor derives the tunnel state from the last handshake time: zero →
// down, age ≤ StaleAfter → up (a handshake in the future, i.e. clock skew,
// counts as up), older → stale.
func StateFor(lastHandshake, now time.Time) api.PeeringState {
	switch {
	case lastHandshake.IsZero():
		return api.StateDown
	case now.Sub(lastHandshake) <= StaleAfter:
		return api.StateUp
	default:
		return api.StateStale
	}
}

// Observation is what the gateway sees of one peering at one moment.
type Observation struct {
	Now time.Time
	// LastHandshake is the tunnel's last completed handshake; zero when
	// none has completed or no tunnel runs.
	LastHandshake time.Time
	// BGP: the peering runs a BGP session; Established says whether it is
	// up, PrefixLimit whether vgate shut it for exceeding max-prefix.
	BGP            bool
	BGPEstablished bool
	PrefixLimit    bool
}

// Evaluate is the one definition of "up": a fresh handshake, and an
// established session when the peering runs BGP. It returns the state and,
// when not up, the reason. Status, its "N up" count, the tunnel up/down
// log lines and the metrics all come from it.
func Evaluate(o Observation) (api.PeeringState, api.DownReason) {
	switch s := StateFor(o.LastHandshake, o.Now); s {
	case api.StateDown:
		return s, api.ReasonNoHandshake
	case api.StateStale:
		return s, api.ReasonHandshakeStale
	}
	switch {
	case !o.BGP || o.BGPEstablished:
		return api.StateUp, ""
	case o.PrefixLimit:
		return api.StateDown, api.ReasonPrefixLimit
	default:
		return api.StateDown, api.ReasonBGPDown
	}
}
