package e2e

import (
	"encoding/json"
	"fmt"
	"github.com/vgate-project/vgate/api"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
)

// TestRouteSafety: vgate's routes never replace what is not its own, nor
// carry a tunnel into itself.
//
//	gw2 (AS65002) announces the underlay 198.18.0.0/24, then (its own
//	 ║             spaces may not overlap) 198.18.0.128/25 and 198.18.0.3/32
//	 ║ bgp
//	gw1 (AS65001) ══ gw3 (static; gw1 has no endpoint for gw3: it is the
//	                      one gw3 dials from, learned at the handshake)
//
// gw1 rejects them all: the /24 (it covers the tunnels' endpoints and is
// wan0's subnet), the /25 as part of wan0's subnet (it holds no endpoint),
// the /32 as the current underlay endpoint of the tunnel to gw3. Every
// tunnel keeps carrying traffic. gw1 also has, before it starts,
// a static route of its own for 10.33.0.0/16, a space it was told is
// behind gw3: vgate leaves that route alone, through reloads and shutdown,
// and `vgate routes` says why its own is not installed.
func TestRouteSafety(t *testing.T) {
	lab, gws := site(t, 3)
	gw1, gw2, gw3 := gws[0], gws[1], gws[2]
	n1, n2, n3 := lab.Network(1), lab.Network(2), lab.Network(3)
	netlab.LinkBGP(gw1, gw2)
	p13 := gw1.PeeringTo(gw3)
	p13.Endpoint = ""
	taken := netip.MustParsePrefix("10.33.0.0/16")
	p13.Spaces = append(append([]netip.Prefix{}, gw3.Spaces...), taken)
	gw1.Peerings = append(gw1.Peerings, p13)
	gw3.Peerings = append(gw3.Peerings, gw3.PeeringTo(gw1))
	underlay := n1.GatewayUnderlay.Prefix
	under24, _ := underlay(24)
	ep3 := netip.PrefixFrom(n3.GatewayUnderlay, 32)
	spaces2 := gw2.Spaces
	gw2.Spaces = append(spaces2, under24)

	// The operator's own route, in place before vgate starts.
	if out, err := lab.Run(n1.GatewayNS, "ip", "route", "add", taken.String(), "dev", "lan0", "proto", "static"); err != nil {
		t.Fatalf("ip route add: %v\n%s", err, out)
	}
	theirs := func() string {
		t.Helper()
		out, err := lab.Run(n1.GatewayNS, "ip", "route", "show", taken.String())
		if err != nil {
			t.Fatalf("ip route show: %v\n%s", err, out)
		}
		return strings.TrimSpace(out)
	}
	wantTheirs := taken.String() + " dev lan0 proto static scope link"
	if got := theirs(); got != wantTheirs {
		t.Fatalf("operator's route = %q, want %q", got, wantTheirs)
	}

	start(t, gws...)
	waitInstalled(t, gw1, "10.2.0.0/16", "net2")
	mustReach(t, lab, n1, n2)
	mustReach(t, lab, n2, n1)
	mustReach(t, lab, n3, n1) // gw3 dials in: gw1 learns its endpoint
	mustReach(t, lab, n1, n3)

	var v api.RoutesView
	// rejected waits until every prefix of want is rejected at gw1 with
	// one of its reasons.
	rejected := func(want map[netip.Prefix][]string) {
		t.Helper()
		waitFor(t, fmt.Sprintf("gw1 rejects from net2: %q", want), 30*time.Second, func() (bool, string) {
			out, err := gw1.CLI("routes", "--json", "--socket", gw1.Socket)
			if err != nil {
				return false, err.Error() + out
			}
			v = api.RoutesView{}
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				return false, err.Error()
			}
			for p, why := range want {
				r, ok := routeOf(v, p.String(), "net2")
				if !ok || r.Installed || !slices.Contains(why, r.Status) {
					return false, fmt.Sprintf("%s: %+v", p, r)
				}
			}
			return true, ""
		})
		st, err := gw1.BGP()
		if err != nil {
			t.Fatal(err)
		}
		if n := neighborOf(st, "net2"); n.State != "established" || n.Rejected != len(want) || n.Accepted != 2 {
			t.Errorf("gw1 neighbor net2 = %+v, want established, 2 accepted, %d rejected", n, len(want))
		}
		for _, l := range vgateRoutes(t, lab, n1.GatewayNS) {
			if strings.HasPrefix(l, "198.18.") {
				t.Errorf("gw1 routes part of the underlay into a tunnel: %s", l)
			}
		}
		// Every tunnel still carries traffic.
		mustReach(t, lab, n1, n2)
		mustReach(t, lab, n2, n1)
		mustReach(t, lab, n1, n3)
		mustReach(t, lab, n3, n1)
	}
	connected := "rejected: overlaps connected subnet on wan0 " + under24.String()
	endpoint3 := "rejected: overlaps current underlay endpoint of peering net3 " + ep3.String()
	rejected(map[netip.Prefix][]string{under24: {
		connected, endpoint3, "rejected: overlaps underlay endpoint of peering net2 198.18.0.2/32",
	}})
	half := netip.MustParsePrefix("198.18.0.128/25")
	gw2.Spaces = append(spaces2, half, ep3)
	if err := gw2.Reload(); err != nil {
		t.Fatal(err)
	}
	rejected(map[netip.Prefix][]string{half: {connected}, ep3: {endpoint3}})
	if _, still := routeOf(v, under24.String(), "net2"); still {
		t.Errorf("gw1 still has %s from net2 after gw2 withdrew it", under24)
	}

	// The static space whose destination the operator's route holds.
	r, ok := staticOf(v, taken, "net3")
	wantStatus := "not installed: conflicts with " + taken.String() + " dev lan0 proto static metric 0 (not vgate's)"
	if !ok || r.Installed || r.Status != wantStatus || r.Conflict == nil || r.Conflict.Dev != "lan0" || r.Conflict.Protocol != 4 {
		t.Errorf("gw1 routes: %s via net3 = %+v, want status %q", taken, r, wantStatus)
	}
	out, err := gw1.CLI("routes", "--socket", gw1.Socket)
	if err != nil || !regexpMatch(`10\.33\.0\.0/16\s+static\s+net3\s+-\s+not installed: conflicts with 10\.33\.0\.0/16 dev lan0 proto static`, out) {
		t.Errorf("vgate routes on gw1 (%v):\n%s", err, out)
	}
	if got := theirs(); got != wantTheirs {
		t.Errorf("operator's route after start = %q, want %q", got, wantTheirs)
	}

	// Withdrawing the space (reload) and stopping the gateway leave the
	// operator's route as it was.
	gw1.Peering("net3").Spaces = gw3.Spaces
	if err := gw1.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "gw1 forgets 10.33.0.0/16", 20*time.Second, func() (bool, string) {
		v, err := gw1.Routes()
		if err != nil {
			return false, err.Error()
		}
		_, ok := staticOf(v, taken, "net3")
		return !ok, fmt.Sprintf("%+v", v.Routes)
	})
	if got := theirs(); got != wantTheirs {
		t.Errorf("operator's route after the reload = %q, want %q", got, wantTheirs)
	}
	mustReach(t, lab, n1, n3)
	if err := gw1.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := theirs(); got != wantTheirs {
		t.Errorf("operator's route after gw1 stopped = %q, want %q", got, wantTheirs)
	}
	if l := vgateRoutes(t, lab, n1.GatewayNS); len(l) != 0 {
		t.Errorf("vgate routes left after stop: %q", l)
	}
}

func staticOf(v api.RoutesView, p netip.Prefix, peering string) (api.RouteEntry, bool) {
	for _, r := range v.Routes {
		if r.Prefix == p && r.Source == "static" && r.Peering == peering {
			return r, true
		}
	}
	return api.RouteEntry{}, false
}
