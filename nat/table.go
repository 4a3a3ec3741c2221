package nat

import (
	"encoding/binary"
	"slices"
)

// A table maps the addresses of one side of a rule list to the other for
// one family. Its entries are sorted by the prefix they map from and never
// overlap (Rules.Check), so the entry that may contain an address is the
// last one starting at or below it: a binary search, or a scan for a few.

// linearMax is the size up to which a scan beats the binary search.
const linearMax = 8

type entry4 struct {
	from, to, mask uint32
	id             int32
}

type table4 []entry4

// find returns the entry containing a, or -1.
func (t table4) find(a uint32) int {
	if len(t) <= linearMax {
		for i := range t {
			if a&t[i].mask == t[i].from {
				return i
			}
		}
		return -1
	}
	lo, hi := 0, len(t)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t[m].from <= a {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if i := lo - 1; i >= 0 && a&t[i].mask == t[i].from {
		return i
	}
	return -1
}

// u128 is an IPv6 address as two big-endian halves.
type u128 struct{ hi, lo uint64 }

func load128(b []byte) u128 {
	return u128{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
}

func (x u128) put(b []byte) {
	binary.BigEndian.PutUint64(b, x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
}

func (x u128) and(m u128) u128  { return u128{x.hi & m.hi, x.lo & m.lo} }
func (x u128) less(y u128) bool { return x.hi < y.hi || (x.hi == y.hi && x.lo < y.lo) }

type entry6 struct {
	from, to, mask u128
	id             int32
}

type table6 []entry6

func (t table6) find(a u128) int {
	if len(t) <= linearMax {
		for i := range t {
			if a.and(t[i].mask) == t[i].from {
				return i
			}
		}
		return -1
	}
	lo, hi := 0, len(t)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !a.less(t[m].from) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if i := lo - 1; i >= 0 && a.and(t[i].mask) == t[i].from {
		return i
	}
	return -1
}

// side is how one address of a packet is translated: fwd maps it, and
// back holds the prefixes fwd maps to. An address fwd does not map but
// back contains is ambiguous: translated, it would read as the image of
// another address (and the reverse translation would not give it back).
type side struct {
	fwd4, back4 table4
	fwd6, back6 table6
}

// tables compiles rules (checked) into the side mapping Internal to
// External (toExt) and the side mapping External to Internal; IDs start at
// base.
func tables(rules []Rule, base int) (toExt, toInt side) {
	for i, r := range rules {
		id := int32(base + i)
		if r.Internal.Addr().Is4() {
			in, ex := r.Internal.Addr().As4(), r.External.Addr().As4()
			m := ^uint32(0) << (32 - r.Internal.Bits())
			if r.Internal.Bits() == 0 {
				m = 0
			}
			iv, ev := binary.BigEndian.Uint32(in[:]), binary.BigEndian.Uint32(ex[:])
			toExt.fwd4 = append(toExt.fwd4, entry4{from: iv, to: ev, mask: m, id: id})
			toInt.fwd4 = append(toInt.fwd4, entry4{from: ev, to: iv, mask: m, id: id})
			continue
		}
		in, ex := r.Internal.Addr().As16(), r.External.Addr().As16()
		m := mask128(r.Internal.Bits())
		iv, ev := load128(in[:]), load128(ex[:])
		toExt.fwd6 = append(toExt.fwd6, entry6{from: iv, to: ev, mask: m, id: id})
		toInt.fwd6 = append(toInt.fwd6, entry6{from: ev, to: iv, mask: m, id: id})
	}
	for _, s := range []*side{&toExt, &toInt} {
		slices.SortFunc(s.fwd4, func(a, b entry4) int {
			switch {
			case a.from < b.from:
				return -1
			case a.from > b.from:
				return 1
			}
			return 0
		})
		slices.SortFunc(s.fwd6, func(a, b entry6) int {
			switch {
			case a.from.less(b.from):
				return -1
			case b.from.less(a.from):
				return 1
			}
			return 0
		})
	}
	toExt.back4, toExt.back6 = toInt.fwd4, toInt.fwd6
	toInt.back4, toInt.back6 = toExt.fwd4, toExt.fwd6
	return toExt, toInt
}

func mask128(bits int) u128 {
	switch {
	case bits <= 0:
		return u128{}
	case bits < 64:
		return u128{hi: ^uint64(0) << (64 - bits)}
	case bits == 64:
		return u128{hi: ^uint64(0)}
	case bits < 128:
		return u128{hi: ^uint64(0), lo: ^uint64(0) << (128 - bits)}
	}
	return u128{^uint64(0), ^uint64(0)}
}

// Lookup results of map4/map6 besides an entry's ID.
const (
	none      = -1
	ambiguous = -2
)

// map4 translates a: the new address and the rule's ID, or a itself and
// none or ambiguous.
func (s *side) map4(a uint32) (uint32, int32) {
	if len(s.fwd4) == 0 {
		return a, none
	}
	if i := s.fwd4.find(a); i >= 0 {
		e := &s.fwd4[i]
		return e.to | a&^e.mask, e.id
	}
	if s.back4.find(a) >= 0 {
		return a, ambiguous
	}
	return a, none
}

func (s *side) map6(a u128) (u128, int32) {
	if len(s.fwd6) == 0 {
		return a, none
	}
	if i := s.fwd6.find(a); i >= 0 {
		e := &s.fwd6[i]
		return u128{e.to.hi | a.hi&^e.mask.hi, e.to.lo | a.lo&^e.mask.lo}, e.id
	}
	if s.back6.find(a) >= 0 {
		return a, ambiguous
	}
	return a, none
}
