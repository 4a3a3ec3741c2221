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
	// SendBlockedSince is when this host began refusing the tunnel's UDP
	// datagrams (a send failed with EPERM and none succeeded since); zero
	// when the last send went out.
	SendBlockedSince time.Time
	// ProbeDead: the in-tunnel probe declared the tunnel dead.
	// ProbeLastReply is the probe's last answer (zero: none yet, or no
	// probe).
	ProbeDead      bool
	ProbeLastReply time.Time
}

// ProbeSilentAfter is how long a probe that answered before may go
// without an answer before a BGP session that is down counts as down for
// the tunnel (probe_dead), not for BGP: a session's hold timer can expire
// before the probe's verdict while the tunnel is idle (probed once a
// second, dead after 8).
const ProbeSilentAfter = 3 * time.Second

// SendBlockedAfter is how long sends must keep failing before the tunnel
// is down for it (ReasonSendBlocked): one refused datagram is no state.
const SendBlockedAfter = 2 * time.Second

// Evaluate is the one definition of "up": sends that go out, a fresh
// handshake, no handshake initiation unanswered for UnansweredAfter (for
// IPsec: established IKE and child SAs), a tunnel probe that answers, and
// an established session when the peering runs BGP. It returns the state
// and, when not up, the reason: that of the lowest failing layer (this
// host's socket, the handshake, the probe, BGP), since each fails the
// ones above it. Status, its "N up" count, the tunnel up/down log lines
// and the metrics all come from it.
func Evaluate(o Observation) (api.PeeringState, api.DownReason) {
	if o.IPsec {
		if o.IPsecDown != "" {
			return api.StateDown, o.IPsecDown
		}
		return evaluateProbe(o)
	}
	if !o.SendBlockedSince.IsZero() && o.Now.Sub(o.SendBlockedSince) >= SendBlockedAfter {
		return api.StateDown, api.ReasonSendBlocked
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
	return evaluateProbe(o)
}

// evaluateProbe is the state of a peering whose tunnel is up by its
// handshake: down while the probe finds it dead (or, with its session
// down, has heard nothing for ProbeSilentAfter), else as its BGP session.
func evaluateProbe(o Observation) (api.PeeringState, api.DownReason) {
	silent := !o.ProbeLastReply.IsZero() && o.Now.Sub(o.ProbeLastReply) >= ProbeSilentAfter
	if o.ProbeDead || o.BGP && !o.BGPEstablished && silent {
		return api.StateDown, api.ReasonProbeDead
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

// Layer is how deep in the stack reason r fails: 0 this host's socket,
// 1 the tunnel itself (WireGuard handshake, IPsec SAs), 2 the tunnel probe,
// 3 BGP. Evaluate returns the reason of the lowest failing layer, so a
// reason of a higher layer than the one before means the lower layers
// recovered.
func Layer(r api.DownReason) int {
	switch r {
	case api.ReasonSendBlocked:
		return 0
	case api.ReasonProbeDead:
		return 2
	case api.ReasonBGPDown, api.ReasonPrefixLimit:
		return 3
	}
	return 1
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
