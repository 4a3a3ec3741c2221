package p2s

import (
	"net/netip"
	"testing"
)

func TestReturnsCounts(t *testing.T) {
	var r Returns
	a := netip.MustParseAddr
	r.sent(a("10.2.0.1")) // no table yet: counts nothing, no panic
	r.SetRoutes(map[string][]netip.Prefix{
		"west": {netip.MustParsePrefix("10.2.0.0/16")},
		"east": {netip.MustParsePrefix("10.3.0.0/16"), netip.MustParsePrefix("fd00:3::/48")},
	})
	r.sent(a("10.2.0.1"))
	r.sent(a("10.2.9.9"))
	r.sent(a("10.9.0.1")) // no peering
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
	r.sent(a("10.2.0.7"))
	r.sent(a("10.2.9.9")) // outside the new route
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
	dst := netip.MustParseAddr("10.2.0.1")
	if n := testing.AllocsPerRun(100, func() { r.sent(dst); r.back(dst) }); n != 0 {
		t.Fatalf("counting allocates %v times per packet", n)
	}
}
