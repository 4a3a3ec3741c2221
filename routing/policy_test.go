package routing

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	api "github.com/osrg/gobgp/v4/api"

	vapi "github.com/vgate-project/vgate/api"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func testImport() Import {
	return Import{
		Protected: []Protected{
			{Prefix: pfx("10.1.0.0/16"), Owner: "local address space"},
			{Prefix: pfx("fd00:1::/48"), Owner: "local address space"},
			{Prefix: pfx("10.1.255.254/32"), Owner: "tunnel address"}, // nested in the space
			{Prefix: pfx("172.16.201.0/24"), Owner: "point-to-site pool"},
		},
		Allowed: map[string][]netip.Prefix{
			"west": {pfx("10.2.0.0/16"), pfx("fd00:2::/48")},
			"v4":   {pfx("10.3.0.0/16")},
		},
	}
}

func TestImportCheck(t *testing.T) {
	im := testImport()
	for _, tc := range []struct {
		neighbor, prefix string
		ok               bool
		reason           string
	}{
		{"west", "10.2.0.0/16", true, ""},
		{"west", "10.2.7.0/24", true, ""},
		{"west", "fd00:2:0:1::/64", true, ""},
		{"west", "10.1.0.0/16", false, "overlaps local address space 10.1.0.0/16"},
		{"west", "10.1.5.0/24", false, "overlaps local address space"},            // more-specific hijack
		{"west", "10.0.0.0/8", false, "overlaps local address space"},             // covering prefix
		{"west", "0.0.0.0/0", false, "overlaps"},                                  // default route
		{"west", "10.1.255.254/32", false, "overlaps local address space"},        // tunnel address
		{"west", "172.16.201.128/25", false, "overlaps point-to-site pool"},       // pool
		{"west", "10.2.0.0/15", false, "outside the peering's address_spaces"},    // larger than declared
		{"west", "192.168.0.0/16", false, "outside the peering's address_spaces"}, // elsewhere
		{"west", "fd00:3::/48", false, "outside"},
		{"v4", "10.3.1.0/24", true, ""},
		{"v4", "fd00:3::/48", false, "outside"}, // no IPv6 declared: no IPv6 accepted
		{"free", "192.168.0.0/16", true, ""},    // no allow-list
		{"free", "fd00:9::/48", true, ""},
		{"free", "fd00:1:0:5::/64", false, "overlaps local address space fd00:1::/48"},
		{"free", "10.0.0.0/12", false, "overlaps"}, // contains 10.1/16
		{"free", "10.0.0.0/16", true, ""},          // neighbour of 10.1/16, no overlap
	} {
		ok, reason := im.Check(tc.neighbor, pfx(tc.prefix))
		if ok != tc.ok || !strings.Contains(reason, tc.reason) {
			t.Errorf("Check(%s, %s) = %v %q, want %v %q", tc.neighbor, tc.prefix, ok, reason, tc.ok, tc.reason)
		}
	}
}

// policyMatch evaluates the GoBGP policy built by policyDefinition the way
// GoBGP does (statements in order, first matching reject wins, default
// accept), using GoBGP's prefix-set rule (matchEntries).
func policyMatch(t *testing.T, im Import, ns []Neighbor, neighbor string, p netip.Prefix) bool {
	t.Helper()
	sets, pol := policyDefinition(im, ns)
	prefixSets := map[string][]prefixEntry{}
	nbrSets := map[string][]string{}
	for _, s := range sets {
		for _, e := range s.Prefixes {
			prefixSets[s.Name] = append(prefixSets[s.Name], prefixEntry{pfx(e.IpPrefix), int(e.MaskLengthMin), int(e.MaskLengthMax)})
		}
		nbrSets[s.Name] = append(nbrSets[s.Name], s.List...)
	}
	var addr string
	for _, n := range ns {
		if n.Name == neighbor {
			addr = netip.PrefixFrom(n.Address, n.Address.BitLen()).String()
		}
	}
	for _, st := range pol.Statements {
		if st.Actions.RouteAction != api.RouteAction_ROUTE_ACTION_REJECT {
			continue // modifies (GRACEFUL_SHUTDOWN), decides nothing
		}
		inSet := false
		for _, a := range nbrSets[st.Conditions.NeighborSet.Name] {
			inSet = inSet || a == addr
		}
		if !inSet {
			continue
		}
		es := prefixSets[st.Conditions.PrefixSet.Name]
		fam := len(es) > 0 && es[0].Prefix.Addr().Is4() == p.Addr().Is4()
		m := fam && matchEntries(es, p)
		if st.Conditions.PrefixSet.Type == api.MatchSet_TYPE_INVERT { // never matches the other family
			m = fam && !matchEntries(es, p)
		}
		if m {
			return false
		}
	}
	return true
}

// The prefix sets given to GoBGP decide exactly as Check, on random
// prefixes around the interesting ones.
func TestPolicyDefinitionMatchesCheck(t *testing.T) {
	im := testImport()
	ns := []Neighbor{
		{Name: "west", Address: netip.MustParseAddr("10.2.255.254")},
		{Name: "v4", Address: netip.MustParseAddr("10.3.255.254")},
		{Name: "free", Address: netip.MustParseAddr("10.4.255.254")},
	}
	seeds := []netip.Prefix{pfx("10.1.0.0/16"), pfx("10.2.0.0/16"), pfx("172.16.201.0/24"), pfx("10.1.255.254/32"),
		pfx("fd00:1::/48"), pfx("fd00:2::/48"), pfx("10.3.0.0/16"), pfx("192.168.0.0/16")}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		s := seeds[r.IntN(len(seeds))]
		a := s.Addr().AsSlice()
		// Flip a few bits near the prefix length, then pick a length.
		for k := 0; k < r.IntN(3); k++ {
			bit := s.Bits() - 4 + r.IntN(12)
			if bit >= 0 && bit < len(a)*8 {
				a[bit/8] ^= 0x80 >> (bit % 8)
			}
		}
		addr, _ := netip.AddrFromSlice(a)
		bits := s.Bits() - 6 + r.IntN(16)
		bits = max(0, min(bits, addr.BitLen()))
		p, _ := addr.Prefix(bits)
		n := ns[r.IntN(len(ns))]
		want, _ := im.Check(n.Name, p)
		if got := policyMatch(t, im, ns, n.Name, p); got != want {
			t.Fatalf("%s from %s: policy accepts=%v, Check accepts=%v", p, n.Name, got, want)
		}
	}
}

func TestProtectedEntries(t *testing.T) {
	es := protectedEntries([]netip.Prefix{pfx("10.1.255.254/32"), pfx("10.1.0.0/16")}, true)
	// The /32 is inside the /16: only the /16 and its 16 supernets.
	if len(es) != 17 {
		t.Fatalf("entries = %v", es)
	}
	if !matchEntries(es, pfx("10.1.128.0/20")) {
		t.Fatal("10.1.128.0/20 must match (inside 10.1/16)")
	}
	if matchEntries(es, pfx("10.0.0.0/16")) {
		t.Fatal("10.0.0.0/16 must not match")
	}
}

// TestDrainPolicy: draining, the export policy's first statement adds
// GRACEFUL_SHUTDOWN and prepends the own AS for every neighbor without a
// route action (the per-neighbor prepends still follow); the import
// policy always lowers GRACEFUL_SHUTDOWN routes, draining or not.
func TestDrainPolicy(t *testing.T) {
	ns := []Neighbor{{Name: "west", Address: netip.MustParseAddr("10.2.255.254"), Prepend: 2}}
	_, imp, exp := policies(Import{}, ns, 65001, false)
	if len(exp.Statements) != 1 || exp.Statements[0].Name != "peer-west-prepend" {
		t.Fatalf("export without drain: %v", exp.Statements)
	}
	last := imp.Statements[len(imp.Statements)-1]
	if last.Actions.GetLocalPref().GetValue() != gracefulShutdownPref || last.Conditions.GetCommunitySet().GetName() != "graceful-shutdown" ||
		last.Actions.RouteAction != api.RouteAction_ROUTE_ACTION_UNSPECIFIED {
		t.Fatalf("import lacks the GRACEFUL_SHUTDOWN statement: %v", last)
	}
	_, _, exp = policies(Import{}, ns, 65001, true)
	if len(exp.Statements) != 2 {
		t.Fatalf("export when draining: %v", exp.Statements)
	}
	d := exp.Statements[0]
	if d.Actions.RouteAction != api.RouteAction_ROUTE_ACTION_UNSPECIFIED || d.Actions.GetAsPrepend().GetAsn() != 65001 ||
		d.Actions.GetAsPrepend().GetRepeat() != DrainPrepend || !slices.Equal(d.Actions.GetCommunity().GetCommunities(), []string{GracefulShutdown}) ||
		d.Conditions.GetNeighborSet().GetName() != "peers" {
		t.Fatalf("drain statement: %v", d)
	}
}

// A route both outside the neighbor's allow-list and overlapping a
// protected prefix: without ingress rules anywhere the protected overlap is
// the reason; with them, the allow-list (checked before translation).
func TestImportReasonOrder(t *testing.T) {
	mp := netip.MustParsePrefix
	im := Import{
		Protected: []Protected{{Prefix: mp("10.9.0.0/16"), Owner: "local address space"}},
		Allowed:   map[string][]netip.Prefix{"a": {mp("10.1.0.0/16")}},
	}
	for _, c := range []struct {
		ingress bool
		want    string
	}{
		{false, "overlaps local address space 10.9.0.0/16"},
		{true, "outside the peering's address_spaces"},
	} {
		im.Ingress = nil
		if c.ingress {
			im.Ingress = map[string][]Translation{"b": {{Internal: mp("10.1.0.0/16"), External: mp("100.66.0.0/16")}}}
		}
		if ok, reason := im.Check("a", mp("10.9.1.0/24")); ok || reason != c.want {
			t.Errorf("ingress %v: Check = %v %q, want refused %q", c.ingress, ok, reason, c.want)
		}
		if _, _, ok, reason := im.Seen("a", mp("10.9.1.0/24")); ok || reason != c.want {
			t.Errorf("ingress %v: Seen = %v %q, want refused %q", c.ingress, ok, reason, c.want)
		}
	}
}

// Decide's codes: each refusal says which rule refused the route.
func TestImportDecideCodes(t *testing.T) {
	mp := netip.MustParsePrefix
	im := Import{
		Protected: []Protected{{Prefix: mp("10.9.0.0/16"), Owner: "local address space"}},
		Allowed:   map[string][]netip.Prefix{"a": {mp("10.1.0.0/16"), mp("10.7.0.0/16"), mp("100.65.0.0/16")}},
		Ingress:   map[string][]Translation{"a": {{Internal: mp("10.1.0.0/16"), External: mp("100.65.0.0/16")}, {Internal: mp("10.7.4.0/24"), External: mp("10.9.4.0/24")}}},
	}
	for _, c := range []struct {
		nb, p string
		want  vapi.RejectCode
	}{
		{"a", "10.1.4.0/24", ""},
		{"a", "10.2.0.0/16", vapi.RejectOutsideAddressSpaces},
		{"a", "10.7.0.0/16", vapi.RejectNATInternal},
		{"a", "100.65.1.0/24", vapi.RejectNATExternal},
		{"a", "10.7.4.0/24", vapi.RejectProtected}, // seen as 10.9.4.0/24
		{"b", "100.65.0.0/16", vapi.RejectPeeringNATExternal},
		{"b", "10.9.1.0/24", vapi.RejectProtected},
	} {
		_, _, rej := im.Decide(c.nb, mp(c.p))
		if rej.Code != c.want {
			t.Errorf("%s %s: %q (%s), want %q", c.nb, c.p, rej.Code, rej, c.want)
		}
		if _, _, ok, reason := im.Seen(c.nb, mp(c.p)); ok != (c.want == "") || reason != rej.String() {
			t.Errorf("%s %s: Seen %v %q, Decide %s", c.nb, c.p, ok, reason, rej)
		}
	}
}
