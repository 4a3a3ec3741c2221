package dataplane

import (
	"encoding/binary"
	"testing"
)

// ip4 is an IPv4 packet with protocol proto around l4.
func ip4(proto byte, l4 []byte) []byte {
	p := make([]byte, 20, 20+len(l4))
	p[0], p[9] = 0x45, proto
	binary.BigEndian.PutUint16(p[2:], uint16(20+len(l4)))
	return append(p, l4...)
}

// ip6 is an IPv6 packet with next header nh around l4.
func ip6(nh byte, l4 []byte) []byte {
	p := make([]byte, 40, 40+len(l4))
	p[0], p[6] = 0x60, nh
	binary.BigEndian.PutUint16(p[4:], uint16(len(l4)))
	return append(p, l4...)
}

func tcp(src, dst uint16) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], src)
	binary.BigEndian.PutUint16(b[2:], dst)
	return b
}

func echo(typ byte, data string) []byte { return append([]byte{typ, 0, 0, 0, 0, 1, 0, 1}, data...) }

func TestIsControl(t *testing.T) {
	for _, tc := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"probe request v4", ip4(1, echo(8, "vgP2 and the rest")), true},
		{"probe reply v4", ip4(1, echo(0, "vgP2 and the rest")), true},
		{"probe request v6", ip6(58, echo(128, "vgP2xxxx")), true},
		{"probe reply v6", ip6(58, echo(129, "vgP2xxxx")), true},
		{"bgp to 179", ip4(6, tcp(40000, 179)), true},
		{"bgp from 179", ip6(6, tcp(179, 40000)), true},
		{"a user's ping", ip4(1, echo(8, "abcdefgh")), false},
		{"a marked icmp that is no echo", ip4(1, echo(3, "vgP2xxxx")), false},
		{"https", ip4(6, tcp(40000, 443)), false},
		{"udp to 179", ip4(17, tcp(40000, 179)), false},
		{"truncated echo", ip4(1, echo(8, "vg")), false},
		{"truncated tcp", ip4(6, []byte{0, 1}), false},
		{"bad ihl", []byte{0x41, 0, 0, 0}, false},
		{"short v6", []byte{0x60, 0, 0}, false},
		{"empty", nil, false},
		{"a later fragment of bgp", func() []byte { p := ip4(6, tcp(179, 1)); p[7] = 1; return p }(), false},
		{"bgp declared longer than read", ip4(6, tcp(179, 1))[:30], false},
	} {
		if got := IsControl(tc.pkt); got != tc.want {
			t.Errorf("%s: IsControl = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A TUN read counts once if any of its packets is user traffic, not at
// all if it carries only control traffic or dropped (size 0) packets.
func TestCountDemand(t *testing.T) {
	probe, bgp, user := ip4(1, echo(8, "vgP2xxxx")), ip4(6, tcp(179, 1)), ip4(6, tcp(1, 443))
	const off = 4
	var p Plane
	c := p.Demand("west")
	if p.Demand("west") != c || p.Demand("east") == c {
		t.Fatal("Demand is not one counter per peering name")
	}
	for _, tc := range []struct {
		pkts  [][]byte
		drop  int // index of a packet filtered out (size 0), or -1
		delta uint64
	}{
		{[][]byte{probe, bgp}, -1, 0},
		{[][]byte{probe, user, user, bgp}, -1, 1},
		{[][]byte{user}, 0, 0},
		{[][]byte{bgp, user}, -1, 1},
	} {
		bufs := make([][]byte, len(tc.pkts))
		sizes := make([]int, len(tc.pkts))
		for i, pk := range tc.pkts {
			bufs[i] = append(make([]byte, off), pk...)
			sizes[i] = len(pk)
		}
		if tc.drop >= 0 {
			sizes[tc.drop] = 0
		}
		before := c.Load()
		countDemand(c, bufs, sizes, off, len(bufs))
		if got := c.Load() - before; got != tc.delta {
			t.Errorf("read of %d packets (drop %d): counted %d, want %d", len(tc.pkts), tc.drop, got, tc.delta)
		}
	}
	countDemand(nil, [][]byte{user}, []int{len(user)}, 0, 1) // no counter: nothing to do
}
