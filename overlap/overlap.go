// Package overlap owns vgate's prefix-set algebra on net/netip: canonical
// form of a prefix, overlap and containment between prefixes, and conflict
// reports that name both prefixes and both owners (the invariant
// "No overlapping address spaces" of docs/architecture.md).
//
// It is pure and imports no other vgate package. Callers describe each
// prefix with an owner ("local address_spaces", `peering "west", network
// vnet-west`, …) and a domain; prefixes of the same non-empty domain may
// overlap each other (for example two peerings to the same remote network),
// everything else may not. Invalid or non-canonical prefixes are never
// silently passed: Conflicts reports them (fail closed).
package overlap

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Canonical reports whether p is a prefix vgate accepts as written: valid,
// without host bits, and not an IPv4-mapped IPv6 address. The error names
// the prefix and what is wrong with it.
func Canonical(p netip.Prefix) error {
	if !p.IsValid() {
		if p.Addr().IsValid() {
			return fmt.Errorf("prefix at %s has an invalid length", p.Addr())
		}
		return fmt.Errorf("invalid prefix (empty or malformed)")
	}
	if p.Addr().Is4In6() {
		u := netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		if p.Bits() >= 96 && u.IsValid() {
			return fmt.Errorf("%s is an IPv4-mapped IPv6 prefix; write it as IPv4: %s", p, u.Masked())
		}
		return fmt.Errorf("%s is an IPv4-mapped IPv6 prefix; write IPv4 prefixes as IPv4", p)
	}
	if m := p.Masked(); m != p {
		return fmt.Errorf("%s has host bits set; did you mean %s?", p, m)
	}
	return nil
}

// Overlaps reports whether a and b share at least one address. Prefixes of
// different families never overlap; an invalid prefix overlaps nothing (use
// Canonical or Conflicts to refuse it). Two CIDR prefixes overlap exactly
// when one contains the other.
func Overlaps(a, b netip.Prefix) bool {
	return Relate(a, b) != Disjoint
}

// Contains reports whether every address of inner is in outer. Both must
// be valid and of the same family.
func Contains(outer, inner netip.Prefix) bool {
	r := Relate(outer, inner)
	return r == Equal || r == Outer
}

// Relation is how two prefixes relate.
type Relation int

const (
	// Disjoint prefixes share no address (or one of them is invalid, or
	// they are of different families).
	Disjoint Relation = iota
	// Equal prefixes cover the same addresses.
	Equal
	// Outer means the first prefix strictly contains the second.
	Outer
	// Inner means the first prefix lies strictly inside the second.
	Inner
)

// String returns the relation as a word for messages.
func (r Relation) String() string {
	switch r {
	case Equal:
		return "equals"
	case Outer:
		return "contains"
	case Inner:
		return "is inside"
	default:
		return "is disjoint from"
	}
}

// Relate returns how a relates to b. Host bits are ignored; an IPv4-mapped
// IPv6 prefix is IPv6 (and so never relates to an IPv4 prefix).
func Relate(a, b netip.Prefix) Relation {
	if !a.IsValid() || !b.IsValid() || a.Addr().Is4() != b.Addr().Is4() {
		return Disjoint
	}
	a, b = a.Masked(), b.Masked()
	switch {
	case a.Bits() == b.Bits():
		if a.Addr() == b.Addr() {
			return Equal
		}
	case a.Bits() < b.Bits():
		if a.Contains(b.Addr()) {
			return Outer
		}
	default:
		if b.Contains(a.Addr()) {
			return Inner
		}
	}
	return Disjoint
}

// Owned is a prefix with the owner it is declared for.
type Owned struct {
	Prefix netip.Prefix
	// Owner describes the declaring party for messages, e.g. "local
	// address_spaces" or `peering "west", network vnet-west`.
	Owner string
	// Domain groups entries that may overlap each other, e.g.
	// "network:vnet-west" for every peering to that network. Entries with
	// the same non-empty Domain never conflict; an empty Domain groups
	// nothing, so even two entries of one owner conflict when they overlap.
	Domain string
}

func (o Owned) String() string {
	if o.Owner == "" {
		return o.Prefix.String()
	}
	return fmt.Sprintf("%s (%s)", o.Prefix, o.Owner)
}

// Conflict is either two overlapping entries A and B, or, when Err is not
// nil, entry A alone being invalid or not canonical (B is then zero).
type Conflict struct {
	A, B Owned
	// I and J are the indexes of A and B in the input of Conflicts (J is
	// -1 when Err is set).
	I, J int
	Err  error
}

// Relation is how A's prefix relates to B's.
func (c Conflict) Relation() Relation { return Relate(c.A.Prefix, c.B.Prefix) }

// String names both prefixes and both owners, for example
// `10.2.0.0/16 (peering "west", network vnet-west) overlaps 10.2.128.0/17
// (local address_spaces): 10.2.0.0/16 contains 10.2.128.0/17`.
func (c Conflict) String() string {
	if c.Err != nil {
		if c.A.Owner == "" {
			return c.Err.Error()
		}
		return fmt.Sprintf("%s: %v", c.A.Owner, c.Err)
	}
	return fmt.Sprintf("%s overlaps %s: %s %s %s", c.A, c.B, c.A.Prefix, c.Relation(), c.B.Prefix)
}

// Error implements error.
func (c Conflict) Error() string { return c.String() }

// Conflicts returns every pair of entries whose prefixes overlap and that
// do not share a non-empty Domain, plus one Conflict with Err set for each
// entry whose prefix is not canonical (such an entry takes part in no pair:
// it is already refused). The order is deterministic: by the index of A,
// then of B, in entries, with A before B in the input; an invalid entry's
// report comes before its pairs would.
func Conflicts(entries []Owned) []Conflict {
	type item struct {
		p   netip.Prefix
		idx int
	}
	items := make([]item, 0, len(entries))
	type pair struct{ i, j int } // i < j, or j == -1 for an invalid entry
	var pairs []pair
	for i, e := range entries {
		if err := Canonical(e.Prefix); err != nil {
			pairs = append(pairs, pair{i, -1})
			continue
		}
		items = append(items, item{e.Prefix, i})
	}
	// Sorted by family, then address, then shorter prefix first, every
	// prefix contained in items[k] follows it contiguously.
	slices.SortFunc(items, func(x, y item) int {
		if c := x.p.Compare(y.p); c != 0 {
			return c
		}
		return cmp.Compare(x.idx, y.idx)
	})
	for k, outer := range items {
		for _, inner := range items[k+1:] {
			if inner.p.Addr().BitLen() != outer.p.Addr().BitLen() || !outer.p.Contains(inner.p.Addr()) {
				break
			}
			a, b := entries[outer.idx], entries[inner.idx]
			if a.Domain != "" && a.Domain == b.Domain {
				continue
			}
			pairs = append(pairs, pair{min(outer.idx, inner.idx), max(outer.idx, inner.idx)})
		}
	}
	slices.SortFunc(pairs, func(x, y pair) int {
		if c := cmp.Compare(x.i, y.i); c != 0 {
			return c
		}
		return cmp.Compare(x.j, y.j)
	})
	out := make([]Conflict, 0, len(pairs))
	for _, p := range pairs {
		if p.j < 0 {
			out = append(out, Conflict{A: entries[p.i], I: p.i, J: -1, Err: Canonical(entries[p.i].Prefix)})
			continue
		}
		out = append(out, Conflict{A: entries[p.i], B: entries[p.j], I: p.i, J: p.j})
	}
	return out
}

// Join is ps as "a, b, c"; empty when ps is.
func Join(ps []netip.Prefix) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// UnmapAddrPort is ap with an IPv4-mapped IPv6 address written as IPv4,
// the form vgate keeps endpoints in.
func UnmapAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
