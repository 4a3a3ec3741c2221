package peering

import "time"

// State is a peering's state as status, logs and metrics show it.
type State string

const (
	// StateDown: configured, but not usable (see the Reason).
	StateDown State = "down"
	// StateUp: the tunnel has a fresh handshake and, when the peering
	// runs BGP, its session is established.
	StateUp State = "up"
	// StateStale: the last handshake is older than StaleAfter.
	StateStale State = "stale"
)

// Reason is a typed code for why a peering is not up: the label values of
// vgate_peering_down_reason and the "reason" of `vgate status --json`.
// Decisions compare codes, never message text.
type Reason string

const (
	ReasonNone           Reason = ""                // up
	ReasonNoHandshake    Reason = "no_handshake"    // no handshake has completed yet
	ReasonHandshakeStale Reason = "handshake_stale" // last handshake older than StaleAfter
	ReasonBGPDown        Reason = "bgp_down"        // the tunnel is up but its BGP session is not established
	ReasonPrefixLimit    Reason = "prefix_limit"    // the BGP session was shut for exceeding its max-prefix
)

// Reasons lists every down reason in a fixed order, so that metrics export
// a stable series per reason.
var Reasons = []Reason{ReasonNoHandshake, ReasonHandshakeStale, ReasonBGPDown, ReasonPrefixLimit}

// StaleAfter is the handshake age past which a tunnel is stale: WireGuard
// rekeys every 120 s, so a live tunnel with traffic never gets this old.
// Point-to-site clients use the same age to count as connected.
const StaleAfter = 180 * time.Second

// StateFor derives the tunnel state from the last handshake time: zero →
// down, age ≤ StaleAfter → up (a handshake in the future, i.e. clock skew,
// counts as up), older → stale.
func StateFor(lastHandshake, now time.Time) State {
	switch {
	case lastHandshake.IsZero():
		return StateDown
	case now.Sub(lastHandshake) <= StaleAfter:
		return StateUp
	default:
		return StateStale
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
func Evaluate(o Observation) (State, Reason) {
	switch s := StateFor(o.LastHandshake, o.Now); s {
	case StateDown:
		return s, ReasonNoHandshake
	case StateStale:
		return s, ReasonHandshakeStale
	}
	switch {
	case !o.BGP || o.BGPEstablished:
		return StateUp, ReasonNone
	case o.PrefixLimit:
		return StateDown, ReasonPrefixLimit
	default:
		return StateDown, ReasonBGPDown
	}
}
