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

// UnansweredAfter is how long a handshake initiation may wait for an
// answer before the tunnel is down (ReasonHandshakeUnanswered):
// wireguard-go retries an unanswered initiation every 5 s, so this is two
// retries unanswered, and one lost packet does not take a tunnel down.
const UnansweredAfter = 10 * time.Second

// Observation is what the gateway sees of one peering at one moment.
type Observation struct {
	Now time.Time
	// LastHandshake is the tunnel's last completed handshake; zero when
	// none has completed or no tunnel runs.
	LastHandshake time.Time
	// UnansweredSince is when the oldest handshake initiation the peer has
	// not answered was sent; zero when none waits.
	UnansweredSince time.Time
	// BGP: the peering runs a BGP session; Established says whether it is
	// up, PrefixLimit whether vgate shut it for exceeding max-prefix.
	BGP            bool
	BGPEstablished bool
	PrefixLimit    bool
	// BFDDown: vgate holds the session down because its BFD session
	// went down.
	BFDDown bool
	// IPsec: the peering is IKEv2/IPsec; its tunnel state is not a
	// handshake time but IPsecDown, the reason ipsec.Decide gave ("" when
	// its IKE and child SAs are up).
	IPsec     bool
	IPsecDown api.DownReason
}

// Evaluate is the one definition of "up": a fresh handshake, no handshake
// initiation unanswered for UnansweredAfter (for IPsec: established IKE
// and child SAs), and an established session when the peering runs BGP. It returns the state and, when not up, the
// reason. Status, its "N up" count, the tunnel up/down
// log lines and the metrics all come from it.
func Evaluate(o Observation) (api.PeeringState, api.DownReason) {
	if o.IPsec {
		if o.IPsecDown != "" {
			return api.StateDown, o.IPsecDown
		}
		return evaluateBGP(o)
	}
	if w, ok := Unanswered(o); ok && w >= UnansweredAfter {
		return api.StateDown, api.ReasonHandshakeUnanswered
	}
	switch s := StateFor(o.LastHandshake, o.Now); s {
	case api.StateDown:
		return s, api.ReasonNoHandshake
	case api.StateStale:
		return s, api.ReasonHandshakeStale
	}
	return evaluateBGP(o)
}

// evaluateBGP is the state of a peering whose tunnel is up: up, unless
// its BGP session is not established.
func evaluateBGP(o Observation) (api.PeeringState, api.DownReason) {
	switch {
	case !o.BGP || o.BGPEstablished:
		return api.StateUp, ""
	case o.PrefixLimit:
		return api.StateDown, api.ReasonPrefixLimit
	case o.BFDDown:
		return api.StateDown, api.ReasonBFDDown
	default:
		return api.StateDown, api.ReasonBGPDown
	}
}

// Unanswered is how long the oldest unanswered handshake initiation has
// waited, and whether one waits. A handshake completed since it was sent
// answers it.
func Unanswered(o Observation) (time.Duration, bool) {
	if o.UnansweredSince.IsZero() || !o.LastHandshake.IsZero() && !o.LastHandshake.Before(o.UnansweredSince) {
		return 0, false
	}
	return max(o.Now.Sub(o.UnansweredSince), 0), true
}
