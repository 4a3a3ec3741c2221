package spec

import (
	"maps"
	"net/netip"
	"slices"

	vapi "github.com/vgate-project/vgate/api"
)

// Import is the import policy of one speaker: what every neighbor is
// refused, and per neighbor what it is allowed.
type Import struct {
	Protected []Protected
	// Allowed maps a neighbor name to the prefixes its routes must lie
	// within. A neighbor without an entry may announce anything not
	// protected.
	Allowed map[string][]netip.Prefix
	// Ingress maps a neighbor name to its peering's ingress rules: its
	// routes are checked against Allowed as it announces them and against
	// Protected as this side sees them (Seen, nat.go). Each rule's
	// external is the neighbor's alone: any other neighbor's route
	// overlapping it is refused.
	Ingress map[string][]Translation
}

// Check decides whether a route announced by neighbor is accepted, and if
// not, why: Seen without the prefix. It is the reference semantics of the
// import policy: the prefix sets the speaker programs into GoBGP
// (routing/policy.go) implement exactly this, and a test there holds the
// two together.
//
// A neighbor with ingress rules (Ingress) has its translated routes
// refused by GoBGP (so that GoBGP never selects nor re-advertises them in
// the neighbor's numbering); Check accepts them and the gateway installs
// and originates them as this side sees them (Seen).
func (im Import) Check(neighbor string, p netip.Prefix) (ok bool, reason string) {
	_, _, ok, reason = im.Seen(neighbor, p)
	return ok, reason
}

// Seen decides whether a route announced by neighbor is accepted, and
// gives its prefix as this side sees it: translated by the neighbor's
// ingress rules (translated true), or as announced. reason is Decide's
// rejection as text.
func (im Import) Seen(neighbor string, p netip.Prefix) (seen netip.Prefix, translated, ok bool, reason string) {
	seen, translated, rej := im.Decide(neighbor, p)
	return seen, translated, rej.Code == "", rej.String()
}

// Decide is the import policy's one decision: the route's prefix as this
// side sees it and, when refused, why (the zero RouteRejection when
// accepted).
//
// The allow-list applies to the prefix as announced, the protected
// prefixes and other neighbors' ingress externals to the prefix as seen.
// Without ingress rules on any neighbor the two are the same prefix and a
// protected overlap is the reason given first.
func (im Import) Decide(neighbor string, p netip.Prefix) (seen netip.Prefix, translated bool, rej vapi.RouteRejection) {
	p = p.Masked()
	outside := vapi.RouteRejection{Code: vapi.RejectOutsideAddressSpaces}
	allowed, declared := im.Allowed[neighbor]
	isOutside := declared && !inside(allowed, p)
	if isOutside && len(im.Ingress) > 0 {
		return p, false, outside
	}
	seen, translated, rej = translate(im.Ingress[neighbor], p)
	if rej.Code != "" {
		return p, false, rej
	}
	var as netip.Prefix
	if translated {
		as = seen
	}
	for _, pr := range im.Protected {
		if pr.Prefix.Overlaps(seen) {
			return seen, translated, vapi.RouteRejection{Code: vapi.RejectProtected, Owner: pr.Owner, Conflict: pr.Prefix, Seen: as}
		}
	}
	if isOutside {
		return p, false, outside
	}
	for _, other := range slices.Sorted(maps.Keys(im.Ingress)) {
		if other == neighbor {
			continue
		}
		for _, t := range im.Ingress[other] {
			if t.External.Overlaps(seen) {
				return seen, translated, vapi.RouteRejection{Code: vapi.RejectPeeringNATExternal, Owner: other, Conflict: t.External.Masked(), Seen: as}
			}
		}
	}
	return seen, translated, vapi.RouteRejection{}
}

func inside(ps []netip.Prefix, p netip.Prefix) bool {
	for _, a := range ps {
		if a.Bits() <= p.Bits() && a.Contains(p.Addr()) {
			return true
		}
	}
	return false
}
