package routing

import (
	"fmt"
	"net/netip"
	"slices"
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
// not, why. It is the reference semantics of the import policy: the prefix
// sets the speaker programs into GoBGP (importSets) implement exactly this,
// and a test holds the two together.
//
// A neighbor with ingress rules (Ingress) has its translated routes
// refused by GoBGP (so that GoBGP never selects nor re-advertises them in
// the neighbor's numbering); Check accepts them and the gateway installs
// and originates them as this side sees them (Seen).
func (im Import) Check(neighbor string, p netip.Prefix) (ok bool, reason string) {
	p = p.Masked()
	if len(im.Ingress) > 0 {
		_, _, ok, reason = im.Seen(neighbor, p)
		return ok, reason
	}
	for _, pr := range im.Protected {
		if pr.Prefix.Overlaps(p) {
			return false, fmt.Sprintf("overlaps %s %s", pr.Owner, pr.Prefix)
		}
	}
	allowed, declared := im.Allowed[neighbor]
	if !declared {
		return true, ""
	}
	if inside(allowed, p) {
		return true, ""
	}
	return false, "outside the peering's address_spaces"
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
