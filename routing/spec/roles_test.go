package spec

import (
	"net/netip"
	"testing"
)

// The role rule over every pair of ends and everything each may have
// learned of the other: two ends never both only listen; two vgate
// gateways (each has learned nothing yet, or that the other runs vgate)
// never both dial; towards a router learned to be plain, vgate dials.
func TestPassiveRoles(t *testing.T) {
	addr := netip.MustParseAddr
	kinds := []PeerKind{PeerUnknown, PeerVgate, PeerPlain}
	addrs := []netip.Addr{addr("10.1.255.254"), addr("10.2.255.254"), addr("169.254.0.1"), addr("fd00:1::1"), addr("fd00:2::1")}
	for _, a := range addrs {
		for _, b := range addrs {
			if a == b || a.Is4() != b.Is4() {
				continue
			}
			for _, ka := range kinds {
				for _, kb := range kinds {
					pa, pb := Passive(a, b, ka), Passive(b, a, kb)
					if pa && pb {
						t.Errorf("%s (knows %d) and %s (knows %d) both only listen", a, ka, b, kb)
					}
					bothVgate := ka != PeerPlain && kb != PeerPlain
					if bothVgate && !pa && !pb {
						t.Errorf("%s (knows %d) and %s (knows %d), both vgate, both dial: a collision", a, ka, b, kb)
					}
				}
			}
			if Passive(a, b, PeerPlain) {
				t.Errorf("%s only listens to %s, a plain router (which may only listen too)", a, b)
			}
		}
	}
	if Passive(netip.Addr{}, addr("10.2.255.254"), PeerVgate) {
		t.Error("no tunnel address: passive")
	}
}
