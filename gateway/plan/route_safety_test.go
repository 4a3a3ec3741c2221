package plan

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/route"
	"github.com/vgate-project/vgate/routing/spec"
)

// TestBGPImportRuntimeProtected: the endpoints in use now and the
// connected subnets are protected, with owners naming them, and a learned
// route covering any of them is rejected with that owner.
func TestBGPImportRuntimeProtected(t *testing.T) {
	cfg := bgpConfig(t)
	in := Input{Config: cfg, Env: testEnv()}
	in.Endpoints = []UnderlayEndpoint{
		{AddrPort: netip.MustParseAddrPort("198.18.0.2:51820"), Peering: "b"}, // as configured: once
		{AddrPort: netip.MustParseAddrPort("198.18.7.3:40000"), Peering: "c"}, // roamed
		{AddrPort: netip.MustParseAddrPort("198.18.0.9:51820"), Peering: "s"}, // no endpoint configured
		{AddrPort: netip.MustParseAddrPort("[::ffff:203.0.113.5]:6000"), Client: "alice"},
	}
	in.Connected = []route.Connected{{Prefix: p("198.18.1.0/24"), Dev: "eth0"}, {Prefix: p("fd18::/64"), Dev: "eth0"}}
	st := Plan(in).BGP.Speaker
	var prot []string
	for _, x := range st.Protected {
		prot = append(prot, x.Prefix.String()+" "+x.Owner)
	}
	for _, w := range []string{
		"198.18.0.2/32 underlay endpoint of peering b",
		"198.18.0.3/32 underlay endpoint of peering c",
		"198.18.7.3/32 current underlay endpoint of peering c",
		"198.18.0.9/32 current underlay endpoint of peering s",
		"203.0.113.5/32 endpoint of point-to-site client alice",
		"198.18.1.0/24 connected subnet on eth0",
		"fd18::/64 connected subnet on eth0",
	} {
		if !slices.Contains(prot, w) {
			t.Errorf("protected %q missing from %q", w, prot)
		}
	}
	if slices.Contains(prot, "198.18.0.2/32 current underlay endpoint of peering b") {
		t.Errorf("unchanged endpoint protected twice: %q", prot)
	}
	im := spec.Import{Protected: st.Protected}
	for _, c := range []struct{ prefix, reason string }{
		{"198.18.1.0/24", "overlaps connected subnet on eth0 198.18.1.0/24"},
		{"198.18.1.128/25", "overlaps connected subnet on eth0 198.18.1.0/24"},
		{"198.18.7.0/24", "overlaps current underlay endpoint of peering c 198.18.7.3/32"},
		{"198.18.0.9/32", "overlaps current underlay endpoint of peering s 198.18.0.9/32"},
		{"203.0.112.0/23", "overlaps endpoint of point-to-site client alice 203.0.113.5/32"},
	} {
		if ok, why := im.Check("b", p(c.prefix)); ok || why != c.reason {
			t.Errorf("Check(%s) = %v %q, want rejected %q", c.prefix, ok, why, c.reason)
		}
	}
	if ok, why := im.Check("b", p("10.4.0.0/16")); !ok {
		t.Errorf("Check(10.4.0.0/16) rejected: %s", why)
	}
}

func TestMarkConflicts(t *testing.T) {
	f := api.ForeignRoute{Dst: p("10.9.0.0/16"), Dev: "eth0", Protocol: 4}
	es := []api.RouteEntry{
		{Prefix: p("10.9.0.0/16"), Source: "static", Peering: "s", Status: statusNotInKernel},
		{Prefix: p("10.9.0.0/16"), Source: "bgp", Peering: "b", Status: "best, static route preferred"},
		{Prefix: p("10.4.0.0/16"), Source: "bgp", Peering: "b", Installed: true, Status: "installed"},
	}
	markConflicts(es, []route.Conflict{{ForeignRoute: f}})
	if es[0].Status != "not installed: conflicts with 10.9.0.0/16 dev eth0 proto static metric 0 (not vgate's)" || es[0].Conflict == nil || *es[0].Conflict != api.ForeignRoute(f) {
		t.Errorf("static entry = %+v", es[0])
	}
	if es[1].Conflict != nil || es[2].Conflict != nil || es[2].Status != "installed" {
		t.Errorf("other entries changed: %+v", es[1:])
	}
}
