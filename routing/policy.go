package routing

import (
	"maps"
	"net/netip"
	"slices"

	vapi "github.com/vgate-project/vgate/api"
)

// DefaultMaxPrefixes is the per-session limit when a Neighbor sets none.
const DefaultMaxPrefixes = 1000

// Protected is a prefix no peer may announce, nor anything overlapping it
// (a more-specific or a covering prefix): the gateway's own address spaces,
// its tunnel address, the point-to-site pool, the underlay endpoints of its
// tunnels. Owner names it in rejection reasons.
type Protected struct {
	Prefix netip.Prefix
	Owner  string
}

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
// (importSets) implement exactly this, and a test holds the two together.
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

// prefixEntry is one GoBGP prefix-set line: Prefix with a mask-length range.
type prefixEntry struct {
	Prefix   netip.Prefix
	Min, Max int
}

// protectedEntries is a prefix set that matches exactly the prefixes
// overlapping one of ps, for one address family, under GoBGP's matching
// rule (longest key containing the route, then its mask-length ranges):
// each protected prefix with all its more-specifics, and each strict
// supernet exactly. Nested protected prefixes are reduced to the outermost
// first, which that rule needs to stay exact.
func protectedEntries(ps []netip.Prefix, is4 bool) []prefixEntry {
	outer := outermost(ps, is4)
	seen := map[prefixEntry]bool{}
	var out []prefixEntry
	add := func(e prefixEntry) {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	for _, p := range outer {
		add(prefixEntry{p, p.Bits(), p.Addr().BitLen()})
		for l := p.Bits() - 1; l >= 0; l-- {
			s, _ := p.Addr().Prefix(l)
			add(prefixEntry{s, l, l})
		}
	}
	sortEntries(out)
	return out
}

// allowedEntries matches the prefixes inside one of ps (of one family).
func allowedEntries(ps []netip.Prefix, is4 bool) []prefixEntry {
	var out []prefixEntry
	for _, p := range outermost(ps, is4) {
		out = append(out, prefixEntry{p, p.Bits(), p.Addr().BitLen()})
	}
	sortEntries(out)
	return out
}

// outermost returns the masked prefixes of one family that no other prefix
// of ps contains.
func outermost(ps []netip.Prefix, is4 bool) []netip.Prefix {
	var fam []netip.Prefix
	for _, p := range ps {
		if p.IsValid() && p.Addr().Is4() == is4 {
			fam = append(fam, p.Masked())
		}
	}
	var out []netip.Prefix
	for i, p := range fam {
		inner := false
		for j, q := range fam {
			if i == j {
				continue
			}
			if q.Bits() < p.Bits() && q.Contains(p.Addr()) || q == p && j < i {
				inner = true
				break
			}
		}
		if !inner {
			out = append(out, p)
		}
	}
	return out
}

func sortEntries(es []prefixEntry) {
	slices.SortFunc(es, func(a, b prefixEntry) int {
		if c := a.Prefix.Compare(b.Prefix); c != 0 {
			return c
		}
		return a.Min - b.Min
	})
}

// matchEntries is GoBGP's prefix-set match (table.PrefixCondition): find
// the longest entry prefix containing p, then check p's length against the
// ranges of the entries at that prefix. Tests use it to show that the sets
// built here give Check's answers under GoBGP's rule.
func matchEntries(es []prefixEntry, p netip.Prefix) bool {
	best := -1
	for _, e := range es {
		if e.Prefix.Addr().Is4() == p.Addr().Is4() && e.Prefix.Bits() <= p.Bits() && e.Prefix.Contains(p.Addr()) && e.Prefix.Bits() > best {
			best = e.Prefix.Bits()
		}
	}
	if best < 0 {
		return false
	}
	for _, e := range es {
		if e.Prefix.Bits() == best && e.Prefix.Contains(p.Addr()) && e.Prefix.Addr().Is4() == p.Addr().Is4() && e.Min <= p.Bits() && p.Bits() <= e.Max {
			return true
		}
	}
	return false
}
