package enroll

import (
	"fmt"
	"net/netip"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestFitBound(t *testing.T) {
	b := FitBound(prefixes("172.16.201.0/24"), prefixes("10.1.0.0/16", "10.1.2.0/24", "10.2.0.53/32", "10.2.0.52/32"))
	if got := fmt.Sprint(b.Routes); got != "[10.1.0.0/16 10.2.0.52/31]" {
		t.Errorf("merged routes %s", got)
	}
	// 100 scattered /32s are widened to at most MaxBound prefixes that
	// cover them all.
	var many []netip.Prefix
	for i := range 100 {
		many = append(many, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 7, 1}), 32))
	}
	many = append(many, prefixes("fd00:1::/48", "fd00:2::1/128")...)
	fit := FitBound(many[:1], many)
	if len(fit.Routes) > MaxBound || len(fit.Routes) < 2 {
		t.Fatalf("fitted %d prefixes: %v", len(fit.Routes), fit.Routes)
	}
	if out := Outside(many, fit.Routes); len(out) > 0 {
		t.Errorf("the fitted bound misses %v", out)
	}
	if out := Outside(prefixes("10.128.0.0/16"), fit.Routes); len(out) == 0 {
		t.Errorf("the fitted bound %v covers far more than needed", fit.Routes)
	}
}

func TestBoundCheck(t *testing.T) {
	b := Bound{Pool: prefixes("172.16.201.0/24"), Routes: prefixes("10.1.0.0/16")}
	if err := b.Check(prefixes("172.16.201.0/24"), prefixes("10.1.2.0/24")); err != nil {
		t.Errorf("narrower routes: %v", err)
	}
	if err := b.Check(prefixes("172.16.201.0/24"), prefixes("10.1.0.0/16", "10.2.0.0/16")); err == nil {
		t.Error("a new route passed")
	}
	if err := b.Check(prefixes("172.16.0.0/16"), prefixes("10.1.0.0/16")); err == nil {
		t.Error("a wider pool passed")
	}
	if out := Outside(prefixes("::/0", "10.1.0.0/15"), b.Routes); len(out) != 2 {
		t.Errorf("Outside: %v", out)
	}
}
