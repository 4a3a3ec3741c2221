package p2s

import (
	"net/netip"
	"testing"
)

// pkt is a minimal IP header from src to dst.
func pkt(src, dst string) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	if s.Is4() {
		b := make([]byte, 20)
		b[0], b[3] = 0x45, 20
		copy(b[12:16], s.AsSlice())
		copy(b[16:20], d.AsSlice())
		return b
	}
	b := make([]byte, 40)
	b[0] = 0x60
	copy(b[8:24], s.AsSlice())
	copy(b[24:40], d.AsSlice())
	return b
}

func TestReturnsCounts(t *testing.T) {
	var r Returns
	client, client6 := "172.16.201.1", "fd00:c1::1"
	to := func(dst string) []byte { return pkt(client, dst) }
	a := func(src string) []byte { return pkt(src, client6) }
	r.sent(to("10.2.0.1")) // no table yet: counts nothing, no panic
	r.SetRoutes(map[string][]netip.Prefix{
		"west": {netip.MustParsePrefix("10.2.0.0/16")},
		"east": {netip.MustParsePrefix("10.3.0.0/16"), netip.MustParsePrefix("fd00:3::/48")},
	})
	r.sent(to("10.2.0.1"))
	r.sent(to("10.2.9.9"))
	r.sent(to("10.9.0.1")) // no peering
	r.back(a("fd00:3::1"))
	c := r.Counts()
	if got := c["west"].Sent.Load(); got != 2 {
		t.Fatalf("west sent = %d, want 2", got)
	}
	if got := c["east"].Back.Load(); got != 1 {
		t.Fatalf("east back = %d, want 1", got)
	}
	// Counters survive a route change; a peering without routes goes.
	r.SetRoutes(map[string][]netip.Prefix{"west": {netip.MustParsePrefix("10.2.0.0/24")}})
	r.sent(to("10.2.0.7"))
	r.sent(to("10.2.9.9")) // outside the new route
	c = r.Counts()
	if got := c["west"].Sent.Load(); got != 3 {
		t.Fatalf("west sent after route change = %d, want 3", got)
	}
	if _, ok := c["east"]; ok {
		t.Fatalf("east still counted after its routes went: %v", r.Names())
	}
}

func TestReturnsCountNeverAllocates(t *testing.T) {
	var r Returns
	r.SetRoutes(map[string][]netip.Prefix{"west": {netip.MustParsePrefix("10.2.0.0/16")}})
	p := pkt("172.16.201.1", "10.2.0.1")
	q := pkt("10.2.0.1", "172.16.201.1")
	if n := testing.AllocsPerRun(100, func() { r.sent(p); r.back(q) }); n != 0 {
		t.Fatalf("counting allocates %v times per packet", n)
	}
}
