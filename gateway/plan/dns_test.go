package plan

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/routing/spec"
)

func TestPlanDNS(t *testing.T) {
	env := Env{Resolve: resolveLiteral, UnderlayMTU: func(netip.Addr) int { return 1500 }}
	cfg := testConfig(t)
	cfg.Peerings = cfg.Peerings[:2] // west (tunnel address) and v6
	if st := Plan(Input{Config: cfg, Env: env}); st.DNS != nil {
		t.Fatalf("no dns section, yet a name server: %+v", st.DNS)
	}
	cfg.DNS = &config.DNS{Zone: "East.Internal", Upstream: []string{"10.1.0.53", "[fd00::53]:5353"}}
	cfg.Peerings[0].DNSZone = "west.internal."
	// BGP-accepted prefixes of a peer widen what counts as that peer.
	cfg.Peerings[0].BGP = &config.PeerBGP{ASN: 65002, Address: cfg.Peerings[0].TunnelAddress}
	cfg.BGP = &config.BGP{ASN: 65001, RouterID: netip.MustParseAddr("10.1.255.254")}
	learned := []spec.Route{{Prefix: p("10.2.0.0/16"), Neighbor: "west", Accepted: true, Best: true}}
	st := Plan(Input{Config: cfg, Env: env, Learned: learned})
	z := st.DNS
	if z == nil {
		t.Fatal("no name server planned")
	}
	if z.Zone != "east.internal." || z.Gateway != "east" || z.TunnelAddress != cfg.TunnelAddress || !slices.Equal(z.Local, cfg.AddressSpaces) {
		t.Errorf("zone %+v", z)
	}
	if len(z.Upstream) != 2 || z.Upstream[0].String() != "10.1.0.53:53" || z.Upstream[1].String() != "[fd00::53]:5353" {
		t.Errorf("upstreams %v", z.Upstream)
	}
	if len(z.Peers) != 2 || z.Peers[0].Zone != "west.internal." || z.Peers[0].Addr != cfg.Peerings[0].TunnelAddress || z.Peers[1].Zone != "" {
		t.Fatalf("peers %+v", z.Peers)
	}
	if !slices.Contains(z.Peers[0].Spaces, p("10.2.0.0/16")) {
		t.Errorf("west's spaces %v lack the prefix accepted from it by BGP", z.Peers[0].Spaces)
	}
}
