package p2s

import (
	"math"
	"net/netip"
	"testing"
)

func TestPoolNext(t *testing.T) {
	mp := netip.MustParsePrefix
	ma := netip.MustParseAddr
	p := NewPool([]netip.Prefix{mp("172.16.201.0/30"), mp("172.16.202.0/24"), mp("fd00:cafe::/64")})
	none := func(netip.Addr) bool { return false }
	if a, ok := p.Next(true, none); !ok || a != ma("172.16.201.1") {
		t.Fatalf("first v4 = %v %v, want 172.16.201.1 (network address skipped)", a, ok)
	}
	if a, ok := p.Next(false, none); !ok || a != ma("fd00:cafe::1") {
		t.Fatalf("first v6 = %v %v, want fd00:cafe::1 (anycast skipped)", a, ok)
	}
	// 172.16.201.0/30 has two usable addresses; then the next prefix.
	taken := map[netip.Addr]bool{ma("172.16.201.1"): true, ma("172.16.201.2"): true}
	if a, _ := p.Next(true, func(a netip.Addr) bool { return taken[a] }); a != ma("172.16.202.1") {
		t.Fatalf("after the /30 is full: %v, want 172.16.202.1 (broadcast .3 skipped)", a)
	}
	if p.Contains(ma("172.16.201.3")) || p.Contains(ma("172.16.202.0")) || p.Contains(ma("172.16.202.255")) || !p.Contains(ma("172.16.202.254")) {
		t.Fatal("Contains: network/broadcast addresses must not be usable")
	}
	if got := p.Size(true); got != 2+254 {
		t.Fatalf("Size(v4) = %d, want 256", got)
	}
	if got := p.Size(false); got != math.MaxUint64 {
		t.Fatalf("Size(v6 /64) = %d, want saturation", got)
	}
	if got := NewPool([]netip.Prefix{mp("fd00::/120")}).Size(false); got != 255 {
		t.Fatalf("Size(v6 /120) = %d, want 255", got)
	}
	// Full pool.
	small := NewPool([]netip.Prefix{mp("10.9.9.8/31")})
	if a, ok := small.Next(true, func(a netip.Addr) bool { return a == ma("10.9.9.8") }); !ok || a != ma("10.9.9.9") {
		t.Fatalf("/31: %v %v", a, ok)
	}
	if _, ok := small.Next(true, func(netip.Addr) bool { return true }); ok {
		t.Fatal("Next on a full pool must fail")
	}
	if _, ok := small.Next(false, none); ok {
		t.Fatal("Next of a family the pool lacks must fail")
	}
}
