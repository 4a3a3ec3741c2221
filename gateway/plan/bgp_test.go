package plan

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/route"
	"github.com/vgate-project/vgate/routing/bfd"
	"github.com/vgate-project/vgate/routing/spec"
)

func bgpConfig(t *testing.T) *config.Config {
	cfg := testConfig(t)
	cfg.BGP = &config.BGP{ASN: 65001, RouterID: netip.MustParseAddr("10.1.255.254")}
	cfg.Peerings = []config.Peering{
		{Name: "b", Network: "b", PublicKey: pub(t), Endpoint: "198.18.0.2:51820",
			BGP: &config.PeerBGP{ASN: 65002, Address: netip.MustParseAddr("169.254.10.2")}},
		{Name: "c", Network: "c", PublicKey: pub(t), Endpoint: "198.18.0.3:51820",
			AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.3.0.0/16")},
			// An explicit static route beside the session.
			StaticRoutes: []netip.Prefix{netip.MustParsePrefix("10.3.0.0/16")},
			BGP:          &config.PeerBGP{ASN: 65003, Address: netip.MustParseAddr("169.254.10.3"), MaxPrefixes: 5, Prepend: 2}},
		{Name: "s", Network: "s", PublicKey: pub(t),
			AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}},
	}
	return cfg
}

func testEnv() Env {
	return Env{Resolve: resolveLiteral, UnderlayMTU: func(netip.Addr) int { return 1500 }}
}

func p(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestDesiredBGP(t *testing.T) {
	cfg := bgpConfig(t)
	learned := []spec.Route{
		// D's space via b (best) and c (accepted, not best).
		{Prefix: p("10.4.0.0/16"), Neighbor: "b", Accepted: true, Best: true},
		{Prefix: p("10.4.0.0/16"), Neighbor: "c", Accepted: true},
		// c's own space: static wins for the same prefix.
		{Prefix: p("10.3.0.0/16"), Neighbor: "c", Accepted: true, Best: true},
		// Rejected routes never reach the data plane.
		{Prefix: p("10.1.5.0/24"), Neighbor: "b", Reason: api.RouteRejection{Code: api.RejectProtected, Owner: "local address space", Conflict: p("10.1.0.0/16")}},
		// A peering that no longer runs bgp is ignored.
		{Prefix: p("10.8.0.0/16"), Neighbor: "s", Accepted: true, Best: true},
		{Prefix: p("fd00:4::/48"), Neighbor: "c", Accepted: true, Best: true},
	}
	tunnels, routes, _ := desired(cfg, testEnv())
	tunnels, routes = desiredBGP(cfg, tunnels, routes, learned, nil)
	allowed := map[string][]netip.Prefix{}
	for _, tn := range tunnels {
		allowed[tn.Name] = tn.WireGuard.AllowedIPs
	}
	for name, want := range map[string][]string{
		"b": {"169.254.10.2/32", "10.4.0.0/16"},
		"c": {"10.3.0.0/16", "169.254.10.3/32", "10.4.0.0/16", "fd00:4::/48"},
		"s": {"10.9.0.0/16"},
	} {
		if got := fmt.Sprint(allowed[name]); got != fmt.Sprint(prefixes(want)) {
			t.Errorf("AllowedIPs of %s = %v, want %v", name, got, want)
		}
	}
	var got []string
	for _, r := range routes {
		got = append(got, r.Dst.String()+" "+r.Dev)
	}
	want := []string{
		"10.3.0.0/16 vg-c", // static
		"10.4.0.0/16 vg-b", // best path
		"10.9.0.0/16 vg-s",
		"169.254.10.2/32 vg-b",
		"169.254.10.3/32 vg-c",
		"fd00:4::/48 vg-c",
	}
	if !slices.Equal(got, want) {
		t.Errorf("routes =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Without learned routes: exactly the static state.
	t0, r0, _ := desired(cfg, testEnv())
	t1, r1 := desiredBGP(cfg, t0, r0, nil, nil)
	if !slices.EqualFunc(t0, t1, func(a, b Tunnel) bool { return a.WireGuard.Equal(b.WireGuard) }) || !slices.EqualFunc(sorted(r0), r1, route.Route.Equal) {
		t.Errorf("no learned routes changed the static state")
	}
}

func prefixes(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, p(s))
	}
	return out
}

func sorted(rs []route.Route) []route.Route {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b route.Route) int { return a.Dst.Compare(b.Dst) })
	return rs
}

func TestBGPImport(t *testing.T) {
	cfg := bgpConfig(t)
	cfg.PointToSite = &config.PointToSite{AddressPool: []netip.Prefix{p("172.16.201.0/24")}}
	tunnels, _, _ := desired(cfg, testEnv())
	st := bgpImport(Input{Config: cfg}, tunnels)
	if fmt.Sprint(st.Originate) != "[10.1.0.0/16 172.16.201.0/24]" {
		t.Errorf("originate = %v", st.Originate)
	}
	var prot []string
	for _, x := range st.Protected {
		prot = append(prot, x.Prefix.String()+" "+x.Owner)
	}
	for _, w := range []string{
		"10.1.0.0/16 local address space",
		"169.254.10.1/32 tunnel address",
		"172.16.201.0/24 point-to-site pool",
		"198.18.0.2/32 underlay endpoint of peering b",
		"10.9.0.0/16 static address space of peering s",
	} {
		if !slices.Contains(prot, w) {
			t.Errorf("protected %q missing from %q", w, prot)
		}
	}
	if len(st.Neighbors) != 2 {
		t.Fatalf("neighbors = %+v", st.Neighbors)
	}
	b, c := st.Neighbors[0], st.Neighbors[1]
	if b.Allowed != nil || b.LocalAddress != cfg.TunnelAddress || b.ASN != 65002 {
		t.Errorf("b = %+v (no address_spaces: no allow-list)", b)
	}
	if fmt.Sprint(c.Allowed) != "[10.3.0.0/16]" || c.MaxPrefixes != 5 || c.Prepend != 2 {
		t.Errorf("c = %+v", c)
	}
}

func TestRouteTable(t *testing.T) {
	cfg := bgpConfig(t)
	_, static, _ := desired(cfg, testEnv())
	learned := []spec.Route{
		{Prefix: p("10.4.0.0/16"), Neighbor: "b", Accepted: true, Best: true, ASPath: []uint32{65002, 65004}},
		{Prefix: p("10.4.0.0/16"), Neighbor: "c", Accepted: true, ASPath: []uint32{65003, 65004}},
		{Prefix: p("10.3.0.0/16"), Neighbor: "c", Accepted: true, Best: true},
		{Prefix: p("10.1.5.0/24"), Neighbor: "b", Reason: api.RouteRejection{Code: api.RejectProtected, Owner: "local address space", Conflict: p("10.1.0.0/16")}},
		{Prefix: p("10.6.0.0/16"), Neighbor: "b", Accepted: true, Best: true},
	}
	kern := []route.Route{{Dst: p("10.4.0.0/16"), Dev: "vg-b"}, {Dst: p("10.3.0.0/16"), Dev: "vg-c"}}
	var got []string
	for _, e := range routeTable(cfg, static, learned, kern, nil) {
		got = append(got, fmt.Sprintf("%s %s %s %v %v %s", e.Prefix, e.Source, e.Peering, e.ASPath, e.Installed, e.Status))
	}
	for _, w := range []string{
		"10.1.0.0/16 local  [] true originated",
		"10.1.5.0/24 bgp b [] false rejected: overlaps local address space 10.1.0.0/16",
		"10.3.0.0/16 static c [] true installed",
		"10.3.0.0/16 bgp c [] false best, static route preferred",
		"10.4.0.0/16 bgp b [65002 65004] true installed",
		"10.4.0.0/16 bgp c [65003 65004] false accepted, not best (in AllowedIPs)",
		"10.6.0.0/16 bgp b [] false not in kernel",
		"10.9.0.0/16 static s [] false not in kernel",
	} {
		if !slices.Contains(got, w) {
			t.Errorf("missing %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
}

func TestDesiredBGPMultipath(t *testing.T) {
	cfg := bgpConfig(t)
	cfg.Peerings[1].AddressSpaces = nil // c: no allow-list, no static route
	cfg.Peerings[1].StaticRoutes = nil
	cfg.Peerings = append(cfg.Peerings, config.Peering{Name: "d", Network: "d", PublicKey: pub(t), Endpoint: "198.18.0.4:51820",
		BGP: &config.PeerBGP{ASN: 65004, Address: netip.MustParseAddr("169.254.10.4")}})
	learned := []spec.Route{
		// Equal length via b (best), c and d: three-way ECMP.
		{Prefix: p("10.4.0.0/16"), Neighbor: "b", Accepted: true, Best: true, ASPath: []uint32{65002, 65005}},
		{Prefix: p("10.4.0.0/16"), Neighbor: "d", Accepted: true, ASPath: []uint32{65004, 65005}},
		{Prefix: p("10.4.0.0/16"), Neighbor: "c", Accepted: true, ASPath: []uint32{65003, 65005}},
		// Longer (prepended) path: not equal cost.
		{Prefix: p("10.5.0.0/16"), Neighbor: "c", Accepted: true, Best: true, ASPath: []uint32{65003, 65005}},
		{Prefix: p("10.5.0.0/16"), Neighbor: "b", Accepted: true, ASPath: []uint32{65002, 65002, 65005}},
		// Rejected equal path: never installed.
		{Prefix: p("10.6.0.0/16"), Neighbor: "b", Accepted: true, Best: true, ASPath: []uint32{65002}},
		{Prefix: p("10.6.0.0/16"), Neighbor: "c", ASPath: []uint32{65003}, Reason: api.RouteRejection{Code: api.RejectOutsideAddressSpaces}},
		// Equal path from a peering without bgp: ignored.
		{Prefix: p("10.7.0.0/16"), Neighbor: "b", Accepted: true, Best: true, ASPath: []uint32{65002}},
		{Prefix: p("10.7.0.0/16"), Neighbor: "s", Accepted: true, ASPath: []uint32{65009}},
		// Static wins over BGP, multipath or not.
		{Prefix: p("10.9.0.0/16"), Neighbor: "b", Accepted: true, Best: true, ASPath: []uint32{65002}},
		{Prefix: p("10.9.0.0/16"), Neighbor: "c", Accepted: true, ASPath: []uint32{65003}},
		// IPv6 alike.
		{Prefix: p("fd00:4::/48"), Neighbor: "c", Accepted: true, Best: true, ASPath: []uint32{65003, 65005}},
		{Prefix: p("fd00:4::/48"), Neighbor: "b", Accepted: true, ASPath: []uint32{65002, 65005}},
	}
	render := func(rs []route.Route) []string {
		var out []string
		for _, r := range rs {
			if r.Dst.Addr().Is4() && r.Dst.Bits() == 32 {
				continue // tunnel addresses
			}
			out = append(out, r.Dst.String()+" "+strings.Join(r.Devices(), ","))
		}
		return out
	}
	for _, tt := range []struct {
		multipath bool
		want      []string
	}{
		{false, []string{"10.4.0.0/16 vg-b", "10.5.0.0/16 vg-c", "10.6.0.0/16 vg-b", "10.7.0.0/16 vg-b", "10.9.0.0/16 vg-s", "fd00:4::/48 vg-c"}},
		{true, []string{"10.4.0.0/16 vg-b,vg-c,vg-d", "10.5.0.0/16 vg-c", "10.6.0.0/16 vg-b", "10.7.0.0/16 vg-b", "10.9.0.0/16 vg-s", "fd00:4::/48 vg-b,vg-c"}},
	} {
		t.Run(fmt.Sprint("multipath=", tt.multipath), func(t *testing.T) {
			cfg.BGP.Multipath = tt.multipath
			tunnels, routes, errs := desired(cfg, testEnv())
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			tunnels, routes = desiredBGP(cfg, tunnels, routes, learned, nil)
			if got := render(routes); !slices.Equal(got, tt.want) {
				t.Errorf("routes =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, r := range routes {
				if len(r.Devs) == 1 || (len(r.Devs) > 1 && r.Dev != "") {
					t.Errorf("route %+v: one device must be Dev, several Devs", r)
				}
			}
			// AllowedIPs do not depend on multipath.
			for _, tn := range tunnels {
				if tn.Name == "b" && !slices.Contains(tn.WireGuard.AllowedIPs, p("10.5.0.0/16")) {
					t.Errorf("AllowedIPs of b = %v", tn.WireGuard.AllowedIPs)
				}
			}
		})
	}
}

func TestRouteTableMultipath(t *testing.T) {
	cfg := bgpConfig(t)
	cfg.BGP.Multipath = true
	_, static, _ := desired(cfg, testEnv())
	learned := []spec.Route{
		{Prefix: p("10.4.0.0/16"), Neighbor: "b", Accepted: true, Best: true, ASPath: []uint32{65002, 65004}},
		{Prefix: p("10.4.0.0/16"), Neighbor: "c", Accepted: true, ASPath: []uint32{65003, 65004}},
	}
	kern := []route.Route{route.Route{Dst: p("10.4.0.0/16")}.WithDevs([]string{"vg-c", "vg-b"})}
	var got []string
	for _, e := range routeTable(cfg, static, learned, kern, nil) {
		if e.Source == "bgp" {
			got = append(got, fmt.Sprintf("%s %s %v %v %s", e.Prefix, e.Peering, e.Peerings, e.Installed, e.Status))
		}
	}
	want := []string{
		"10.4.0.0/16 b [b c] true installed (multipath)",
		"10.4.0.0/16 c [b c] true installed (multipath)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("routes =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// On a BGP peering, address_spaces is the import allow-list only: no static
// route, no static AllowedIPs; the route comes from BGP and follows it.
func TestAllowListIsNotAStaticRoute(t *testing.T) {
	cfg := bgpConfig(t)
	cfg.Peerings[1].StaticRoutes = nil // c: allow-list 10.3.0.0/16, no static route
	in := Input{Config: cfg, Env: testEnv()}
	st := Plan(in)
	for _, r := range st.Routes {
		if r.Dst == p("10.3.0.0/16") {
			t.Fatalf("allow-list planned as a route without BGP: %+v", r)
		}
	}
	if c := st.Tunnels[1]; slices.Contains(c.WireGuard.AllowedIPs, p("10.3.0.0/16")) {
		t.Fatalf("allow-list in AllowedIPs before BGP accepted it: %v", c.WireGuard.AllowedIPs)
	}
	// Learned from c, then from b as well (both accepted: 10.3/16 is
	// inside c's allow-list, b has none): the route follows the best path.
	for _, via := range []string{"c", "b"} {
		in.Learned = []spec.Route{{Prefix: p("10.3.0.0/16"), Neighbor: via, Accepted: true, Best: true}}
		st = Plan(in)
		found := false
		for _, r := range st.Routes {
			if r.Dst == p("10.3.0.0/16") {
				found = true
				if r.Dev != "vg-"+via {
					t.Errorf("10.3.0.0/16 via %s, want vg-%s", r.Dev, via)
				}
			}
		}
		if !found {
			t.Errorf("learned 10.3.0.0/16 from %s not routed", via)
		}
		var view []string
		for _, e := range Routes(in, st.Routes, nil) {
			if e.Prefix == p("10.3.0.0/16") {
				view = append(view, e.Source+" "+e.Status)
			}
		}
		if !slices.Equal(view, []string{"bgp installed"}) {
			t.Errorf("routes view for 10.3.0.0/16 via %s = %q, want only the installed BGP route", via, view)
		}
	}
}

// TestProbeDeadDropsRoutes: a peering whose tunnel probe says dead loses
// its learned routes from the kernel and its AllowedIPs at once; where it
// held the best path, the best remaining path takes over (shortest AS
// path, then name); its tunnel address route stays (the probe needs it).
func TestProbeDeadDropsRoutes(t *testing.T) {
	cfg := bgpConfig(t)
	cfg.Peerings = append(cfg.Peerings, config.Peering{Name: "d", Network: "d", PublicKey: pub(t),
		BGP: &config.PeerBGP{ASN: 65004, Address: netip.MustParseAddr("169.254.10.4")}})
	learned := []spec.Route{
		{Prefix: p("10.4.0.0/16"), Neighbor: "b", Accepted: true, Best: true, ASPath: []uint32{65002, 65004}},
		{Prefix: p("10.4.0.0/16"), Neighbor: "d", Accepted: true, ASPath: []uint32{65004, 65004, 65004}},
		{Prefix: p("10.4.0.0/16"), Neighbor: "c", Accepted: true, ASPath: []uint32{65003, 65004}},
		{Prefix: p("10.5.0.0/16"), Neighbor: "b", Accepted: true, Best: true, ASPath: []uint32{65002}},
		{Prefix: p("10.6.0.0/16"), Neighbor: "d", Accepted: true, Best: true, ASPath: []uint32{65004}},
	}
	tests := []struct {
		name       string
		dead       map[string]bool
		routes     []string
		allowedOfB []string
	}{
		{"all alive", nil,
			[]string{"10.4.0.0/16 vg-b", "10.5.0.0/16 vg-b", "10.6.0.0/16 vg-d"},
			[]string{"169.254.10.2/32", "10.4.0.0/16", "10.5.0.0/16"}},
		{"b dead: c's shorter path replaces it, b's only route goes", map[string]bool{"b": true},
			[]string{"10.4.0.0/16 vg-c", "10.6.0.0/16 vg-d"},
			[]string{"169.254.10.2/32"}},
		{"c dead: nothing it held changes", map[string]bool{"c": true},
			[]string{"10.4.0.0/16 vg-b", "10.5.0.0/16 vg-b", "10.6.0.0/16 vg-d"},
			[]string{"169.254.10.2/32", "10.4.0.0/16", "10.5.0.0/16"}},
		{"b and c dead: d's longer path is all that is left", map[string]bool{"b": true, "c": true},
			[]string{"10.4.0.0/16 vg-d", "10.6.0.0/16 vg-d"},
			[]string{"169.254.10.2/32"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tunnels, routes, _ := desired(cfg, testEnv())
			tunnels, routes = desiredBGP(cfg, tunnels, routes, slices.Clone(learned), tt.dead)
			var got []string
			for _, r := range routes {
				if r.Dst.Bits() == 16 && r.Dst.Addr().Is4() && r.Dst.Addr().As4()[1] >= 4 && r.Dst.Addr().As4()[1] <= 6 {
					got = append(got, r.Dst.String()+" "+strings.Join(r.Devices(), ","))
				}
			}
			if !slices.Equal(got, tt.routes) {
				t.Errorf("routes = %q, want %q", got, tt.routes)
			}
			for _, tn := range tunnels {
				if tn.Name == "b" && fmt.Sprint(tn.WireGuard.AllowedIPs) != fmt.Sprint(prefixes(tt.allowedOfB)) {
					t.Errorf("AllowedIPs of b = %v, want %v", tn.WireGuard.AllowedIPs, tt.allowedOfB)
				}
			}
		})
	}
	// The input is not changed (the gateway keeps its RIB snapshot).
	if !learned[0].Best || learned[2].Best {
		t.Errorf("learned changed: %+v", learned)
	}
}

// TestPassiveEnd: the planner hands routing.Passive what the probe
// learned of each peer (roles_test.go tests the rule itself): with the
// lower tunnel address, a peer not yet known and a vgate peer get a
// listening end, a plain router (or one the probe cannot reach: another
// address family) a dialing one; with the higher address every session
// dials.
func TestPassiveEnd(t *testing.T) {
	cfg := bgpConfig(t)
	cfg.TunnelAddress = netip.MustParseAddr("169.254.10.1")
	cfg.Peerings[0].BGP.Address = netip.MustParseAddr("169.254.10.2")                                // b: unknown
	cfg.Peerings[1].BGP.Address = netip.MustParseAddr("169.254.10.3")                                // c: vgate, then plain
	cfg.Peerings = append(cfg.Peerings, config.Peering{Name: "v6", Network: "v6", PublicKey: pub(t), // another family
		Endpoint: "198.18.0.6:51820", BGP: &config.PeerBGP{ASN: 65006, Address: netip.MustParseAddr("fd00:6::1")}})
	passive := func(in Input) map[string]bool {
		out := map[string]bool{}
		for _, n := range Plan(in).BGP.Speaker.Neighbors {
			out[n.Name] = n.Passive
		}
		return out
	}
	for _, tt := range []struct {
		name         string
		local        string
		vgate, plain map[string]bool
		want         map[string]bool
	}{
		{"lower, nothing learned", "169.254.10.1", nil, nil, map[string]bool{"b": true, "c": true, "v6": false}},
		{"lower, c runs vgate", "169.254.10.1", map[string]bool{"c": true}, nil, map[string]bool{"b": true, "c": true, "v6": false}},
		{"lower, c is plain", "169.254.10.1", nil, map[string]bool{"c": true}, map[string]bool{"b": true, "c": false, "v6": false}},
		{"higher", "169.254.10.9", map[string]bool{"b": true, "c": true}, nil, map[string]bool{"b": false, "c": false, "v6": false}},
	} {
		cfg.TunnelAddress = netip.MustParseAddr(tt.local)
		got := passive(Input{Config: cfg, Env: testEnv(), VgatePeers: tt.vgate, PlainPeers: tt.plain})
		if !maps.Equal(got, tt.want) {
			t.Errorf("%s: passive %v, want %v", tt.name, got, tt.want)
		}
	}
	// An IPsec peering's peer is a standard device: plain, whatever the
	// probe says.
	ipsecPeer := &config.Peering{Name: "hq", Type: config.TypeIPsec, BGP: &config.PeerBGP{ASN: 65010, Address: netip.MustParseAddr("169.254.21.9")}}
	if k := peerKind(Input{Config: cfg, VgatePeers: map[string]bool{"hq": true}}, ipsecPeer); k != spec.PeerPlain {
		t.Errorf("IPsec peering: kind %v, want plain", k)
	}
}

// TestDrainingPeerRoutedAround: a peering whose peer drains (its probes
// say so) loses the kernel route of every prefix another peering also
// has, best or ECMP member, and keeps the ones only it has and its
// AllowedIPs; it counts as avoided only when no kernel route goes through
// it. The speaker is told to drain from Input.Drain.
func TestDrainingPeerRoutedAround(t *testing.T) {
	cfg := bgpConfig(t)
	cfg.Peerings = append(cfg.Peerings, config.Peering{Name: "d", Network: "d", PublicKey: pub(t),
		BGP: &config.PeerBGP{ASN: 65004, Address: netip.MustParseAddr("169.254.10.4")}})
	learned := []spec.Route{
		{Prefix: p("10.4.0.0/16"), Neighbor: "b", Accepted: true, Best: true, ASPath: []uint32{65004}},
		{Prefix: p("10.4.0.0/16"), Neighbor: "d", Accepted: true, ASPath: []uint32{65004}},
		{Prefix: p("10.4.0.0/16"), Neighbor: "c", Accepted: true, ASPath: []uint32{65003, 65004}},
		{Prefix: p("10.5.0.0/16"), Neighbor: "b", Accepted: true, Best: true, ASPath: []uint32{65002}},
		{Prefix: p("10.6.0.0/16"), Neighbor: "d", Accepted: true, Best: true, ASPath: []uint32{65004}},
	}
	tests := []struct {
		name       string
		multipath  bool
		draining   map[string]bool
		routes     []string
		avoided    []string
		allowedOfB []string
	}{
		{"none drains", true, nil,
			[]string{"10.4.0.0/16 vg-b,vg-d", "10.5.0.0/16 vg-b", "10.6.0.0/16 vg-d"}, nil,
			[]string{"169.254.10.2/32", "10.4.0.0/16", "10.5.0.0/16"}},
		{"d drains: out of the ECMP route, keeps what only it has", true, map[string]bool{"d": true},
			[]string{"10.4.0.0/16 vg-b", "10.5.0.0/16 vg-b", "10.6.0.0/16 vg-d"}, nil,
			[]string{"169.254.10.2/32", "10.4.0.0/16", "10.5.0.0/16"}},
		{"b drains: d's equal path is best, b's only prefix stays", false, map[string]bool{"b": true},
			[]string{"10.4.0.0/16 vg-d", "10.5.0.0/16 vg-b", "10.6.0.0/16 vg-d"}, nil,
			[]string{"169.254.10.2/32", "10.4.0.0/16", "10.5.0.0/16"}},
		{"b and d drain: c's longer path carries 10.4", true, map[string]bool{"b": true, "d": true},
			[]string{"10.4.0.0/16 vg-c", "10.5.0.0/16 vg-b", "10.6.0.0/16 vg-d"}, nil,
			[]string{"169.254.10.2/32", "10.4.0.0/16", "10.5.0.0/16"}},
		{"c drains: it carried nothing, avoided", true, map[string]bool{"c": true},
			[]string{"10.4.0.0/16 vg-b,vg-d", "10.5.0.0/16 vg-b", "10.6.0.0/16 vg-d"}, []string{"c"},
			[]string{"169.254.10.2/32", "10.4.0.0/16", "10.5.0.0/16"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg.BGP.Multipath = tt.multipath
			tunnels, routes, _ := desired(cfg, testEnv())
			tunnels, routes, avoided := desiredBGPDraining(cfg, tunnels, routes, slices.Clone(learned), nil, tt.draining)
			var got []string
			for _, r := range routes {
				if r.Dst.Bits() == 16 && r.Dst.Addr().Is4() && r.Dst.Addr().As4()[1] >= 4 && r.Dst.Addr().As4()[1] <= 6 {
					devs := slices.Clone(r.Devices())
					slices.Sort(devs)
					got = append(got, r.Dst.String()+" "+strings.Join(devs, ","))
				}
			}
			if !slices.Equal(got, tt.routes) {
				t.Errorf("routes = %q, want %q", got, tt.routes)
			}
			if a := slices.Sorted(maps.Keys(avoided)); !slices.Equal(a, tt.avoided) {
				t.Errorf("avoided = %v, want %v", a, tt.avoided)
			}
			for _, tn := range tunnels {
				if tn.Name == "b" && fmt.Sprint(tn.WireGuard.AllowedIPs) != fmt.Sprint(prefixes(tt.allowedOfB)) {
					t.Errorf("AllowedIPs of b = %v, want %v", tn.WireGuard.AllowedIPs, tt.allowedOfB)
				}
			}
		})
	}
	if !learned[0].Best || learned[1].Best {
		t.Errorf("learned changed: %+v", learned)
	}
	in := Input{Config: cfg, Env: testEnv(), Drain: true}
	if st := Plan(in); st.BGP == nil || !st.BGP.Speaker.Drain {
		t.Error("Input.Drain did not reach the speaker state")
	}
}

// TestBFDAndProbeOff: bgp.bfd gives a BFD target to the peer's tunnel
// address through the peering's tunnel; `probe: off` gives no probe
// target and makes this end dial (the peer is taken for a router).
func TestBFDAndProbeOff(t *testing.T) {
	cfg := bgpConfig(t)
	cfg.TunnelAddress = netip.MustParseAddr("169.254.10.1")
	cfg.Peerings[0].BGP.Address = netip.MustParseAddr("169.254.10.2")
	cfg.Peerings[0].BGP.BFD = &config.BFD{Interval: 50 * time.Millisecond}
	cfg.Peerings[0].BGP.Probe = &config.Probe{Off: true}
	cfg.Peerings[1].BGP.Address = netip.MustParseAddr("169.254.10.3")
	cfg.Peerings[1].BGP.BFD = &config.BFD{Off: true}
	st := Plan(Input{Config: cfg, Env: testEnv()})
	b, c := cfg.Peerings[0], cfg.Peerings[1]
	want := map[string]bfd.Target{b.Name: {Address: b.BGP.Address, Interface: IfNameOf(&b), Timing: bfd.Timing{Interval: 50 * time.Millisecond, Multiplier: 5}}}
	if !maps.Equal(st.BGP.BFD, want) {
		t.Errorf("bfd targets %+v, want %+v", st.BGP.BFD, want)
	}
	if _, ok := st.BGP.Probes[b.Name]; ok {
		t.Errorf("probe target for %s with probe: off", b.Name)
	}
	if _, ok := st.BGP.Probes[c.Name]; !ok {
		t.Errorf("no probe target for %s", c.Name)
	}
	for _, n := range st.BGP.Speaker.Neighbors {
		if want := n.Name == c.Name; n.Passive != want {
			t.Errorf("%s: passive %v, want %v", n.Name, n.Passive, want)
		}
	}
}
