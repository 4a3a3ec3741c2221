package spec

import (
	"net/netip"
	"time"

	vapi "github.com/vgate-project/vgate/api"
)

// Route is one path received from a neighbor, accepted or not.
type Route struct {
	Prefix   netip.Prefix `json:"prefix"`
	Neighbor string       `json:"neighbor"`
	NextHop  netip.Addr   `json:"next_hop,omitzero"`
	ASPath   []uint32     `json:"as_path"`
	Accepted bool         `json:"accepted"`
	// Best: the speaker's best path for the prefix.
	Best bool `json:"best"`
	// Reason says why a route was rejected (its text in JSON).
	Reason vapi.RouteRejection `json:"reason,omitzero"`
	// PeerPrefix is the prefix as the neighbor announced it when its
	// ingress NAT rules translated it into Prefix (zero otherwise).
	PeerPrefix netip.Prefix `json:"peer_prefix,omitzero"`
	Since      time.Time    `json:"since,omitzero"`
}
