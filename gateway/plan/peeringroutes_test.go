package plan

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/vgate-project/vgate/gateway/route"
)

// Each WireGuard peering gets the routes it owns; multipath routes, the
// pool and another kind's peerings are left out.
func TestPeeringRoutes(t *testing.T) {
	pfx := netip.MustParsePrefix
	wg := func(name string) Tunnel {
		return Tunnel{Kind: KindWireGuard, Name: name, IfName: "vg-" + name}
	}
	got := State{
		Tunnels: []Tunnel{wg("west"), wg("east"), wg("a"), wg("b"), {Kind: KindIPsec, Name: "branch", IfName: "ipsec0"}},
		Routes: []route.Route{
			{Dst: pfx("10.2.0.0/16"), Dev: "vg-west", Peering: "west"},
			{Dst: pfx("10.3.0.0/16"), Dev: "vg-west", Peering: "west"},
			{Dst: pfx("10.4.0.0/16"), Devs: []string{"vg-a", "vg-b"}}, // multipath: no owner, left out
			{Dst: pfx("172.16.201.0/24"), Dev: "vgate-p2s"},           // the pool: not a peering
			{Dst: pfx("10.5.0.0/16"), Dev: "vg-east", Peering: "east"},
			{Dst: pfx("10.6.0.0/16"), Dev: "ipsec0", Peering: "branch"}, // IPsec: another kind
		},
	}.PeeringRoutes(KindWireGuard)
	want := map[string][]netip.Prefix{
		"west": {pfx("10.2.0.0/16"), pfx("10.3.0.0/16")},
		"east": {pfx("10.5.0.0/16")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("PeeringRoutes = %v, want %v", got, want)
	}
}
