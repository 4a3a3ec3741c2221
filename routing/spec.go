package routing

import (
	"net/netip"

	"github.com/vgate-project/vgate/routing/spec"
)

// The values the speaker and the prober are driven by and report in live
// in the pure routing/spec, so that the planner computes with them
// without linking GoBGP; these aliases keep their names here.

type (
	Route           = spec.Route
	State           = spec.State
	Neighbor        = spec.Neighbor
	GracefulRestart = spec.GracefulRestart
	Protected       = spec.Protected
	Import          = spec.Import
	Translation     = spec.Translation
	ProbeTarget     = spec.ProbeTarget
	PeerKind        = spec.PeerKind
)

const (
	PeerUnknown        = spec.PeerUnknown
	PeerVgate          = spec.PeerVgate
	PeerPlain          = spec.PeerPlain
	DefaultMaxPrefixes = spec.DefaultMaxPrefixes
	DrainPrepend       = spec.DrainPrepend
	GracefulShutdown   = spec.GracefulShutdown
)

// Passive reports whether this end of the session between tunnel
// addresses local and peer only listens (spec.Passive).
func Passive(local, peer netip.Addr, kind PeerKind) bool {
	return spec.Passive(local, peer, kind)
}
