package p2s

import (
	"math"
	"net/netip"
	"slices"
)

// Pool is the point-to-site address pool: the prefixes of
// point_to_site.address_pool. A client gets one address of each family the
// pool has. Usable addresses exclude, for IPv4 prefixes of /30 and shorter,
// the network and broadcast addresses, and for IPv6 the subnet-router
// anycast address (the prefix's first address).
type Pool struct {
	prefixes []netip.Prefix
}

// NewPool returns the pool of the given prefixes (masked; invalid ones are
// ignored: config validation has refused them already).
func NewPool(prefixes []netip.Prefix) Pool {
	var ps []netip.Prefix
	for _, p := range prefixes {
		if p.IsValid() {
			ps = append(ps, p.Masked())
		}
	}
	return Pool{prefixes: ps}
}

// Prefixes returns the pool's prefixes.
func (p Pool) Prefixes() []netip.Prefix { return slices.Clone(p.prefixes) }

// Families reports which address families the pool serves.
func (p Pool) Families() (v4, v6 bool) {
	for _, q := range p.prefixes {
		if q.Addr().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}

// usableRange returns the first and last usable address of q.
func usableRange(q netip.Prefix) (first, last netip.Addr, ok bool) {
	first = q.Addr()
	last = lastAddr(q)
	if q.Addr().Is4() {
		if q.Bits() <= 30 {
			first, last = first.Next(), last.Prev()
		}
	} else if q.Bits() < 128 {
		first = first.Next()
	}
	return first, last, first.IsValid() && last.IsValid() && first.Compare(last) <= 0
}

func lastAddr(q netip.Prefix) netip.Addr {
	a := q.Masked().Addr()
	b := a.AsSlice()
	for i := q.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

// Contains reports whether a is a usable address of the pool.
func (p Pool) Contains(a netip.Addr) bool {
	for _, q := range p.prefixes {
		if !q.Contains(a) {
			continue
		}
		first, last, ok := usableRange(q)
		if ok && a.Compare(first) >= 0 && a.Compare(last) <= 0 {
			return true
		}
	}
	return false
}

// Covers reports whether a lies anywhere in the pool's prefixes (usable or
// not).
func (p Pool) Covers(a netip.Addr) bool {
	for _, q := range p.prefixes {
		if q.Contains(a) {
			return true
		}
	}
	return false
}

// Next returns the lowest usable address of the given family for which
// taken reports false. It scans at most one address more than taken
// rejects, so it costs O(len(taken)) even in a /64.
func (p Pool) Next(is4 bool, taken func(netip.Addr) bool) (netip.Addr, bool) {
	for _, q := range p.prefixes {
		if q.Addr().Is4() != is4 {
			continue
		}
		first, last, ok := usableRange(q)
		if !ok {
			continue
		}
		for a := first; a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
			if !taken(a) {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// Size returns the number of usable addresses of a family, saturating at
// math.MaxUint64.
func (p Pool) Size(is4 bool) uint64 {
	var n uint64
	for _, q := range p.prefixes {
		if q.Addr().Is4() != is4 {
			continue
		}
		if _, _, ok := usableRange(q); !ok {
			continue
		}
		host := q.Addr().BitLen() - q.Bits()
		var c uint64
		if host >= 64 {
			c = math.MaxUint64
		} else {
			c = uint64(1) << host
		}
		if is4 && q.Bits() <= 30 {
			c -= 2
		} else if !is4 && q.Bits() < 128 && c != math.MaxUint64 {
			c--
		}
		if n+c < n {
			return math.MaxUint64
		}
		n += c
	}
	return n
}
