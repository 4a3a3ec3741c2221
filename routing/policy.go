package routing

import (
	"net/netip"
	"slices"
)

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
