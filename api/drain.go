package api

import "time"

// DrainState is where a gateway's drain (vgate drain) stands.
type DrainState string

const (
	// DrainOff: the gateway does not drain.
	DrainOff DrainState = ""
	// Draining: its routes are announced least preferred, and some peer
	// still routes through it (DrainStatus.Waiting).
	Draining DrainState = "draining"
	// Drained: every established BGP peer has moved its traffic to
	// another path (a vgate peer says so through the tunnel probe; a
	// router has been sent the least-preferred routes). Stopping the
	// gateway now loses nothing its peers could route around it.
	Drained DrainState = "drained"
)

// DrainStatus is the gateway's drain, in api.Status and the answer of
// POST /v1/drain.
type DrainStatus struct {
	State DrainState `json:"state"`
	// Since is when the drain began.
	Since time.Time `json:"since,omitzero"`
	// Waiting are the BGP peerings whose peer still routes through this
	// gateway: a vgate peer that has not said it moved (it may have no
	// other path), or a session the least-preferred routes have not been
	// sent to yet.
	Waiting []string `json:"waiting,omitempty"`
	// Persisted: the drain outlives a restart (state_dir) until undone.
	Persisted bool `json:"persisted,omitempty"`
}

// DrainRequest asks the gateway to drain (Drain) or to stop draining.
type DrainRequest struct {
	Drain bool `json:"drain"`
}
