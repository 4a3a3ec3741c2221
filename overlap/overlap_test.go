package overlap

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestCanonical(t *testing.T) {
	tests := []struct {
		in   netip.Prefix
		want string // error substring; "" means valid
	}{
		{pfx("10.1.0.0/16"), ""},
		{pfx("0.0.0.0/0"), ""},
		{pfx("fd00:1::/48"), ""},
		{pfx("::/0"), ""},
		{pfx("10.1.2.3/32"), ""},
		{pfx("10.1.0.1/16"), "10.1.0.1/16 has host bits set; did you mean 10.1.0.0/16?"},
		{pfx("fd00:1::1/48"), "did you mean fd00:1::/48?"},
		{pfx("::ffff:10.0.0.0/104"), "IPv4-mapped IPv6 prefix; write it as IPv4: 10.0.0.0/8"},
		{pfx("::ffff:0.0.0.0/90"), "IPv4-mapped"},
		{netip.Prefix{}, "invalid prefix"},
		{netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 33), "invalid length"},
	}
	for _, tt := range tests {
		err := Canonical(tt.in)
		if tt.want == "" {
			if err != nil {
				t.Errorf("Canonical(%v) = %v, want nil", tt.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Canonical(%v) = %v, want error containing %q", tt.in, err, tt.want)
		}
	}
}

func TestRelate(t *testing.T) {
	tests := []struct {
		a, b     string
		want     Relation
		overlaps bool
		contains bool
	}{
		{"10.0.0.0/8", "10.1.0.0/16", Outer, true, true},
		{"10.1.0.0/16", "10.0.0.0/8", Inner, true, false},
		{"10.1.0.0/16", "10.1.0.0/16", Equal, true, true},
		{"10.1.0.0/16", "10.2.0.0/16", Disjoint, false, false},
		{"10.1.0.0/16", "10.1.255.254/32", Outer, true, true},
		{"0.0.0.0/0", "192.0.2.1/32", Outer, true, true},
		{"fd00:1::/48", "fd00:1:0:1::/64", Outer, true, true},
		{"fd00:1::/48", "fd00:2::/48", Disjoint, false, false},
		{"::/0", "0.0.0.0/0", Disjoint, false, false},               // families never overlap
		{"::ffff:0.0.0.0/96", "10.0.0.0/8", Disjoint, false, false}, // mapped is IPv6
		{"10.1.0.5/16", "10.1.0.0/24", Outer, true, true},           // host bits ignored
	}
	for _, tt := range tests {
		a, b := pfx(tt.a), pfx(tt.b)
		if got := Relate(a, b); got != tt.want {
			t.Errorf("Relate(%s, %s) = %v, want %v", a, b, got, tt.want)
		}
		if got := Overlaps(a, b); got != tt.overlaps {
			t.Errorf("Overlaps(%s, %s) = %v, want %v", a, b, got, tt.overlaps)
		}
		if got := Overlaps(b, a); got != tt.overlaps {
			t.Errorf("Overlaps(%s, %s) = %v, want %v (symmetry)", b, a, got, tt.overlaps)
		}
		if got := Contains(a, b); got != tt.contains {
			t.Errorf("Contains(%s, %s) = %v, want %v", a, b, got, tt.contains)
		}
	}
	if Overlaps(netip.Prefix{}, netip.Prefix{}) || Contains(netip.Prefix{}, pfx("10.0.0.0/8")) {
		t.Error("invalid prefixes must not overlap or contain anything")
	}
}

func TestConflicts(t *testing.T) {
	local := func(s string) Owned { return Owned{pfx(s), "local address_spaces", ""} }
	west := func(s string) Owned { return Owned{pfx(s), `peering "west", network vnet-west`, "network:vnet-west"} }
	west2 := func(s string) Owned { return Owned{pfx(s), `peering "west2", network vnet-west`, "network:vnet-west"} }
	north := func(s string) Owned {
		return Owned{pfx(s), `peering "north", network vnet-north`, "network:vnet-north"}
	}

	tests := []struct {
		name    string
		entries []Owned
		want    []string // Conflict.String() of every conflict, in order
	}{
		{"empty", nil, nil},
		{"disjoint", []Owned{local("10.1.0.0/16"), west("10.2.0.0/16"), north("10.3.0.0/16")}, nil},
		{"ipv4 nested", []Owned{local("10.2.128.0/17"), west("10.2.0.0/16")}, []string{
			`10.2.128.0/17 (local address_spaces) overlaps 10.2.0.0/16 (peering "west", network vnet-west): 10.2.128.0/17 is inside 10.2.0.0/16`,
		}},
		{"ipv4 contains", []Owned{west("10.2.0.0/16"), local("10.2.128.0/17")}, []string{
			`10.2.0.0/16 (peering "west", network vnet-west) overlaps 10.2.128.0/17 (local address_spaces): 10.2.0.0/16 contains 10.2.128.0/17`,
		}},
		{"equal", []Owned{local("10.1.0.0/16"), north("10.1.0.0/16")}, []string{
			`10.1.0.0/16 (local address_spaces) overlaps 10.1.0.0/16 (peering "north", network vnet-north): 10.1.0.0/16 equals 10.1.0.0/16`,
		}},
		{"ipv6", []Owned{local("fd00:1::/48"), west("fd00:1:0:2::/64")}, []string{
			`fd00:1::/48 (local address_spaces) overlaps fd00:1:0:2::/64 (peering "west", network vnet-west): fd00:1::/48 contains fd00:1:0:2::/64`,
		}},
		{"cross family", []Owned{local("0.0.0.0/0"), west("::/0")}, nil},
		{"same domain allowed", []Owned{west("10.2.0.0/16"), west2("10.2.0.0/16"), west2("10.2.1.0/24")}, nil},
		{"same owner empty domain conflicts", []Owned{local("10.0.0.0/8"), local("10.1.0.0/16")}, []string{
			`10.0.0.0/8 (local address_spaces) overlaps 10.1.0.0/16 (local address_spaces): 10.0.0.0/8 contains 10.1.0.0/16`,
		}},
		{"different domains", []Owned{west("10.2.0.0/16"), north("10.2.3.0/24")}, []string{
			`10.2.0.0/16 (peering "west", network vnet-west) overlaps 10.2.3.0/24 (peering "north", network vnet-north): 10.2.0.0/16 contains 10.2.3.0/24`,
		}},
		{"input order", []Owned{local("10.9.0.0/16"), local("10.0.0.0/8"), local("10.9.9.0/24")}, []string{
			`10.9.0.0/16 (local address_spaces) overlaps 10.0.0.0/8 (local address_spaces): 10.9.0.0/16 is inside 10.0.0.0/8`,
			`10.9.0.0/16 (local address_spaces) overlaps 10.9.9.0/24 (local address_spaces): 10.9.0.0/16 contains 10.9.9.0/24`,
			`10.0.0.0/8 (local address_spaces) overlaps 10.9.9.0/24 (local address_spaces): 10.0.0.0/8 contains 10.9.9.0/24`,
		}},
		{"fail closed", []Owned{local("10.1.0.0/16"), {Prefix: pfx("10.1.0.1/16"), Owner: "tunnel_address"}, {Owner: "point_to_site.address_pool"}}, []string{
			`tunnel_address: 10.1.0.1/16 has host bits set; did you mean 10.1.0.0/16?`,
			`point_to_site.address_pool: invalid prefix (empty or malformed)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range Conflicts(tt.entries) {
				got = append(got, c.Error())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Conflicts:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}

// slowRange is an address range computed byte by byte, independent of
// netip.Prefix's own methods: the reference for the differential test.
type slowRange struct {
	v4          bool
	first, last [16]byte
}

func slowRangeOf(p netip.Prefix) (slowRange, bool) {
	a := p.Addr()
	if !p.IsValid() || a.Is4In6() {
		return slowRange{}, false
	}
	bits := p.Bits()
	var r slowRange
	raw := a.As16()
	off := 0
	if a.Is4() {
		r.v4 = true
		off = 96
	}
	r.first, r.last = raw, raw
	for i := off + bits; i < 128; i++ {
		byteIdx, mask := i/8, byte(0x80>>(i%8))
		if raw[byteIdx]&mask != 0 {
			return slowRange{}, false // host bit set: not canonical
		}
		r.last[byteIdx] |= mask
	}
	return r, true
}

func (r slowRange) intersects(o slowRange) bool {
	return r.v4 == o.v4 && bytes.Compare(r.first[:], o.last[:]) <= 0 && bytes.Compare(o.first[:], r.last[:]) <= 0
}

// slowConflicts is the O(n²) reference for Conflicts.
func slowConflicts(entries []Owned) []string {
	var out []string
	for i, a := range entries {
		ra, ok := slowRangeOf(a.Prefix)
		if !ok {
			out = append(out, fmt.Sprintf("invalid %d", i))
			continue
		}
		for j := i + 1; j < len(entries); j++ {
			b := entries[j]
			rb, ok := slowRangeOf(b.Prefix)
			if !ok || (a.Domain != "" && a.Domain == b.Domain) {
				continue
			}
			if ra.intersects(rb) {
				out = append(out, fmt.Sprintf("%d-%d", i, j))
			}
		}
	}
	return out
}

func summarize(entries []Owned, cs []Conflict) []string {
	var out []string
	for _, c := range cs {
		if c.A != entries[c.I] || (c.Err == nil && c.B != entries[c.J]) {
			out = append(out, fmt.Sprintf("bad index %d/%d", c.I, c.J))
		}
		if c.Err != nil {
			out = append(out, fmt.Sprintf("invalid %d", c.I))
			continue
		}
		out = append(out, fmt.Sprintf("%d-%d", c.I, c.J))
	}
	return out
}

func randomPrefix(r *rand.Rand) netip.Prefix {
	var p netip.Prefix
	switch r.IntN(10) {
	case 0, 1, 2, 3, 4:
		a := [4]byte{10, byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(256))}
		p = netip.PrefixFrom(netip.AddrFrom4(a), r.IntN(33))
	case 5, 6, 7:
		var a [16]byte
		a[0], a[1], a[2], a[3] = 0xfd, 0, byte(r.IntN(3)), byte(r.IntN(3))
		a[15] = byte(r.IntN(256))
		p = netip.PrefixFrom(netip.AddrFrom16(a), r.IntN(129))
	case 8:
		a := [4]byte{10, byte(r.IntN(4)), 0, 0}
		p = netip.PrefixFrom(netip.AddrFrom16(netip.AddrFrom4(a).As16()), 96+r.IntN(33))
	default:
		return netip.Prefix{}
	}
	if r.IntN(8) != 0 {
		p = p.Masked() // mostly canonical, sometimes with host bits
	}
	return p
}

func randomEntries(r *rand.Rand, n int) []Owned {
	domains := []string{"", "", "network:a", "network:b"}
	entries := make([]Owned, n)
	for i := range entries {
		entries[i] = Owned{Prefix: randomPrefix(r), Owner: fmt.Sprintf("owner%d", i), Domain: domains[r.IntN(len(domains))]}
	}
	return entries
}

func TestConflictsDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 2000 {
		entries := randomEntries(r, 1+r.IntN(40))
		got := summarize(entries, Conflicts(entries))
		want := slowConflicts(entries)
		if !slices.Equal(got, want) {
			t.Fatalf("iteration %d: entries %v\n got  %v\n want %v", iter, entries, got, want)
		}
	}
}

// FuzzConflicts decodes entries from bytes (7 bytes each: flags, four
// address bytes, prefix length, domain) and checks Conflicts against the
// reference ranges, and that reversing the input mirrors the result.
func FuzzConflicts(f *testing.F) {
	f.Add([]byte("\x00\x0a\x01\x00\x00\x10\x00\x00\x0a\x01\x80\x00\x11\x01"))
	f.Add([]byte("\x01\xfd\x00\x00\x01\x30\x02\x01\xfd\x00\x00\x01\x40\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var entries []Owned
		for len(data) >= 7 && len(entries) < 64 {
			flags, a, bits, dom := data[0], [4]byte(data[1:5]), int(data[5]), data[6]
			data = data[7:]
			var p netip.Prefix
			switch flags & 3 {
			case 0:
				p = netip.PrefixFrom(netip.AddrFrom4(a), bits%34) // 33 is invalid
			case 1:
				var b [16]byte
				copy(b[:], a[:])
				p = netip.PrefixFrom(netip.AddrFrom16(b), bits%130)
			case 2:
				p = netip.PrefixFrom(netip.AddrFrom16(netip.AddrFrom4(a).As16()), bits%130)
			}
			if flags&4 == 0 {
				p = p.Masked()
			}
			entries = append(entries, Owned{Prefix: p, Owner: fmt.Sprint(len(entries)), Domain: []string{"", "x", "y", ""}[dom%4]})
		}
		cs := Conflicts(entries)
		if got, want := summarize(entries, cs), slowConflicts(entries); !slices.Equal(got, want) {
			t.Fatalf("entries %v\n got  %v\n want %v", entries, got, want)
		}
		for _, c := range cs {
			if c.Err == nil {
				if !Overlaps(c.A.Prefix, c.B.Prefix) || !Overlaps(c.B.Prefix, c.A.Prefix) {
					t.Fatalf("reported %v but the prefixes do not overlap both ways", c)
				}
				if !strings.Contains(c.Error(), c.A.Prefix.String()) || !strings.Contains(c.Error(), c.B.Prefix.String()) {
					t.Fatalf("message %q does not name both prefixes", c)
				}
			}
		}
		// Symmetry: the same unordered pairs when the input is reversed.
		rev := slices.Clone(entries)
		slices.Reverse(rev)
		key := func(c Conflict) string {
			if c.Err != nil {
				return "invalid " + c.A.Owner
			}
			x, y := c.A.Owner, c.B.Owner
			if x > y {
				x, y = y, x
			}
			return x + "-" + y
		}
		var fwd, bwd []string
		for _, c := range cs {
			fwd = append(fwd, key(c))
		}
		for _, c := range Conflicts(rev) {
			bwd = append(bwd, key(c))
		}
		slices.Sort(fwd)
		slices.Sort(bwd)
		if !slices.Equal(fwd, bwd) {
			t.Fatalf("not symmetric under reversal:\n fwd %v\n bwd %v", fwd, bwd)
		}
	})
}
