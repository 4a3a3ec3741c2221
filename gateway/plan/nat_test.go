package plan

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/route"
	"github.com/vgate-project/vgate/routing/spec"
)

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// natHub is a hub (10.9.0.0/16) with two branches that both number
// themselves 10.1.0.0/16, shown to the hub as 100.65/16 and 100.66/16;
// branch b is only partly translated.
func natHub(t *testing.T) *config.Config {
	return &config.Config{
		Name: "hub", AddressSpaces: pfx("10.9.0.0/16"), TunnelAddress: netip.MustParseAddr("10.9.255.254"),
		ListenPort: 51820, MaxTunnels: 10,
		Peerings: []config.Peering{
			{Name: "a", Network: "a", PublicKey: pub(t), Endpoint: "198.18.0.1:51820",
				AddressSpaces: pfx("10.1.0.0/16", "fd00:1::/48"), TunnelAddress: netip.MustParseAddr("100.65.255.254"),
				NAT: &config.NAT{Ingress: []config.NATRule{
					{Internal: netip.MustParsePrefix("10.1.0.0/16"), External: netip.MustParsePrefix("100.65.0.0/16")},
					{Internal: netip.MustParsePrefix("fd00:1::/48"), External: netip.MustParsePrefix("fd00:65::/48")},
				}}},
			{Name: "b", Network: "b", PublicKey: pub(t), Endpoint: "198.18.0.2:51820",
				AddressSpaces: pfx("10.2.0.0/16"),
				NAT: &config.NAT{Ingress: []config.NATRule{
					{Internal: netip.MustParsePrefix("10.2.4.0/24"), External: netip.MustParsePrefix("100.66.4.0/24")},
				}}},
		},
	}
}

func TestPlanNAT(t *testing.T) {
	cfg := natHub(t)
	env := Env{Resolve: resolveLiteral, UnderlayMTU: func(netip.Addr) int { return 1500 }}
	tunnels, routes, errs := desired(cfg, env)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	wantAllowed := map[string][]netip.Prefix{
		// whole spaces translated, the tunnel address as written
		"a": pfx("100.65.0.0/16", "fd00:65::/48"),
		// the untranslated pieces of 10.2.0.0/16 and the external
		"b": pfx("10.2.0.0/22", "10.2.5.0/24", "10.2.6.0/23", "10.2.8.0/21", "10.2.16.0/20", "10.2.32.0/19", "10.2.64.0/18", "10.2.128.0/17", "100.66.4.0/24"),
	}
	for _, tn := range tunnels {
		got := slices.Clone(tn.WireGuard.AllowedIPs)
		slices.SortFunc(got, netip.Prefix.Compare)
		want := wantAllowed[tn.Name]
		slices.SortFunc(want, netip.Prefix.Compare)
		if !slices.Equal(got, want) {
			t.Errorf("%s: AllowedIPs = %v, want %v", tn.Name, got, want)
		}
		p := cfg.Peerings[slices.IndexFunc(cfg.Peerings, func(p config.Peering) bool { return p.Name == tn.Name })]
		if !tn.WireGuard.NAT.Equal(p.NATRules()) || tn.WireGuard.NAT.Empty() {
			t.Errorf("%s: NAT = %+v, want the peering's rules", tn.Name, tn.WireGuard.NAT)
		}
		// every kernel route through the tunnel is one of its AllowedIPs
		for _, r := range routes {
			if r.Dev == tn.IfName && !slices.Contains(want, r.Dst) {
				t.Errorf("%s: route %v is not in this side's view", tn.Name, r.Dst)
			}
		}
	}
	for _, r := range routes {
		if r.Dst.Overlaps(netip.MustParsePrefix("10.1.0.0/16")) || r.Dst == netip.MustParsePrefix("10.2.4.0/24") {
			t.Errorf("route %v is in a peer's own view", r.Dst)
		}
	}
	if !slices.ContainsFunc(routes, func(r route.Route) bool { return r.Dst == netip.MustParsePrefix("100.65.0.0/16") && r.Dev == "vg-a" }) {
		t.Errorf("no route 100.65.0.0/16 dev vg-a in %v", routes)
	}

	// Without rules the spec carries none, and a rule change is a spec
	// change of the same tunnel (Plane.Set updates it in place).
	cfg2 := natHub(t)
	cfg2.Peerings[0].PublicKey = cfg.Peerings[0].PublicKey
	cfg2.Peerings[0].NAT.Ingress[1].External = netip.MustParsePrefix("fd00:67::/48")
	t2, _, _ := desired(cfg2, env)
	if t2[0].WireGuard.Equal(tunnels[0].WireGuard) {
		t.Error("a changed rule leaves the tunnel's spec equal")
	}
}

func TestBGPImportProtectsSeenStaticSpaces(t *testing.T) {
	cfg := natHub(t)
	cfg.BGP = &config.BGP{ASN: 65009}
	st := bgpImport(Input{Config: cfg}, nil)
	var got []netip.Prefix
	for _, p := range st.Protected {
		if p.Owner == "static address space of peering a" {
			got = append(got, p.Prefix)
		}
	}
	if want := pfx("100.65.0.0/16", "fd00:65::/48"); !slices.Equal(got, want) {
		t.Errorf("protected for peering a = %v, want %v", got, want)
	}
}

func TestPlanNATBGP(t *testing.T) {
	mp := netip.MustParsePrefix
	cfg := natHub(t)
	cfg.BGP = &config.BGP{ASN: 65009}
	a := &cfg.Peerings[0]
	a.AddressSpaces = pfx("10.1.0.0/16")
	a.NAT.Ingress = a.NAT.Ingress[:1]
	a.NAT.Egress = []config.NATRule{{Internal: mp("10.9.0.0/16"), External: mp("100.99.0.0/16")}}
	a.TunnelAddress = netip.Addr{}
	a.BGP = &config.PeerBGP{ASN: 65001, Address: netip.MustParseAddr("100.65.255.254")}
	b := &cfg.Peerings[1]
	b.BGP = &config.PeerBGP{ASN: 65002, Address: netip.MustParseAddr("10.2.255.254")}
	learned := []spec.Route{
		{Prefix: mp("100.65.4.0/24"), PeerPrefix: mp("10.1.4.0/24"), Neighbor: "a", Accepted: true, Best: true},
		{Prefix: mp("10.2.8.0/24"), Neighbor: "b", Accepted: true, Best: true},
	}
	st := Plan(Input{Config: cfg, Env: Env{Resolve: resolveLiteral, UnderlayMTU: func(netip.Addr) int { return 1500 }}, Learned: learned})
	sp := st.BGP.Speaker
	for _, want := range pfx("10.9.0.0/16", "100.65.4.0/24", "100.99.0.0/16") {
		if !slices.Contains(sp.Originate, want) {
			t.Errorf("originate %v lacks %v", sp.Originate, want)
		}
	}
	na, nb := sp.Neighbors[0], sp.Neighbors[1]
	if len(na.Ingress) != 1 || na.Ingress[0].External != mp("100.65.0.0/16") || len(nb.Ingress) != 1 {
		t.Errorf("ingress a %v b %v", na.Ingress, nb.Ingress)
	}
	// a is not sent its own translated space nor this side's 10.9/16 (it
	// sees it as 100.99/16); b is not sent a's image of 10.9/16.
	if want := pfx("10.9.0.0/16", "100.65.0.0/16"); !slices.Equal(na.Hide, want) {
		t.Errorf("hide a = %v, want %v", na.Hide, want)
	}
	if want := pfx("100.66.4.0/24", "100.99.0.0/16"); !slices.Equal(nb.Hide, want) {
		t.Errorf("hide b = %v, want %v", nb.Hide, want)
	}
	// The translated route is installed through a's tunnel.
	if !slices.ContainsFunc(st.Routes, func(r route.Route) bool { return r.Dst == mp("100.65.4.0/24") && r.Dev == "vg-a" }) {
		t.Errorf("routes %v", st.Routes)
	}
	// Which end dials compares the addresses as they cross the tunnel:
	// 100.99.255.254 (this side to a) against 10.1.255.254 (a): a is
	// lower, so this side dials; the probe reads a's payload the same way.
	if na.Passive {
		t.Error("hub listens, though its address on the wire is the higher")
	}
	if pr := st.BGP.Probes["a"]; pr.PeerWire != netip.MustParseAddr("10.1.255.254") || pr.LocalWire != netip.MustParseAddr("100.99.255.254") {
		t.Errorf("probe a = %+v", pr)
	}
	if pr := st.BGP.Probes["b"]; pr.PeerWire.IsValid() || pr.LocalWire.IsValid() {
		t.Errorf("probe b has wire addresses: %+v", pr)
	}
	// vgate routes shows the peer's prefix beside.
	rt := Routes(Input{Config: cfg, Env: Env{Resolve: resolveLiteral, UnderlayMTU: func(netip.Addr) int { return 1500 }}, Learned: learned}, nil, nil)
	if i := slices.IndexFunc(rt, func(e api.RouteEntry) bool { return e.Prefix == mp("100.65.4.0/24") }); i < 0 || rt[i].PeerPrefix != mp("10.1.4.0/24") {
		t.Errorf("routes view %+v", rt)
	}
	if i := slices.IndexFunc(rt, func(e api.RouteEntry) bool { return e.Prefix == mp("100.65.255.254/32") }); i < 0 || rt[i].PeerPrefix != mp("10.1.255.254/32") || rt[i].Source != "static" {
		t.Errorf("routes view %+v", rt)
	}
}
