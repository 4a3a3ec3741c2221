package kernel

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/route"
	"github.com/vishvananda/netlink"
)

func r(dst, dev, src string) route.Route {
	rt := route.Route{Dst: netip.MustParsePrefix(dst), Dev: dev}
	if src != "" {
		rt.Src = netip.MustParseAddr(src)
	}
	return rt
}

func ecmp(dst string, devs ...string) route.Route {
	return route.Route{Dst: netip.MustParsePrefix(dst)}.WithDevs(devs)
}

func foreign(dst, dev string, proto, metric int) api.ForeignRoute {
	return api.ForeignRoute{Dst: netip.MustParsePrefix(dst), Dev: dev, Protocol: proto, Metric: metric}
}

func TestPlanRoutes(t *testing.T) {
	tests := []struct {
		name       string
		have, want []route.Route
		add        []route.Route
		replace    []route.Route
		del        []route.Route
	}{
		{"empty", nil, nil, nil, nil, nil},
		{"install is an add", nil, []route.Route{r("10.2.0.0/16", "vg-b", "10.1.255.254")},
			[]route.Route{r("10.2.0.0/16", "vg-b", "10.1.255.254")}, nil, nil},
		{"unchanged", []route.Route{r("10.2.0.0/16", "vg-b", "")}, []route.Route{r("10.2.0.0/16", "vg-b", "")}, nil, nil, nil},
		{"move to other tunnel is one replace", []route.Route{r("10.2.0.0/16", "vg-b", "")}, []route.Route{r("10.2.0.0/16", "vg-c", "")},
			nil, []route.Route{r("10.2.0.0/16", "vg-c", "")}, nil},
		{"source change is a replace", []route.Route{r("10.2.0.0/16", "vg-b", "10.1.0.1")}, []route.Route{r("10.2.0.0/16", "vg-b", "10.1.255.254")},
			nil, []route.Route{r("10.2.0.0/16", "vg-b", "10.1.255.254")}, nil},
		{"IPv6 route read back without the IPv4 source is unchanged", []route.Route{r("fd00:2::/48", "vg-b", "")}, []route.Route{r("fd00:2::/48", "vg-b", "10.1.255.254")}, nil, nil, nil},
		{"stale removed", []route.Route{r("10.2.0.0/16", "vg-b", ""), r("fd00:2::/48", "vg-b", "")}, []route.Route{r("10.2.0.0/16", "vg-b", "")},
			nil, nil, []route.Route{r("fd00:2::/48", "vg-b", "")}},
		{"single to ecmp is one replace", []route.Route{r("10.2.0.0/16", "vg-b", "")}, []route.Route{ecmp("10.2.0.0/16", "vg-c", "vg-b")},
			nil, []route.Route{ecmp("10.2.0.0/16", "vg-b", "vg-c")}, nil},
		{"ecmp unchanged", []route.Route{ecmp("10.2.0.0/16", "vg-c", "vg-b")}, []route.Route{ecmp("10.2.0.0/16", "vg-b", "vg-c")}, nil, nil, nil},
		{"ecmp nexthop set change is one replace", []route.Route{ecmp("10.2.0.0/16", "vg-b", "vg-c")}, []route.Route{ecmp("10.2.0.0/16", "vg-b", "vg-c", "vg-d")},
			nil, []route.Route{ecmp("10.2.0.0/16", "vg-b", "vg-c", "vg-d")}, nil},
		{"ecmp back to single is one replace", []route.Route{ecmp("10.2.0.0/16", "vg-b", "vg-c")}, []route.Route{r("10.2.0.0/16", "vg-c", "")},
			nil, []route.Route{r("10.2.0.0/16", "vg-c", "")}, nil},
		{"flush", []route.Route{r("10.3.0.0/16", "vg-c", ""), r("10.2.0.0/16", "vg-b", "")}, nil,
			nil, nil, []route.Route{r("10.2.0.0/16", "vg-b", ""), r("10.3.0.0/16", "vg-c", "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PlanRoutes(tt.have, tt.want, nil)
			if !reflect.DeepEqual(p.Add, tt.add) || !reflect.DeepEqual(p.Replace, tt.replace) || !reflect.DeepEqual(p.Delete, tt.del) || p.Conflicts != nil {
				t.Fatalf("plan = %+v, want add %v replace %v delete %v", p, tt.add, tt.replace, tt.del)
			}
		})
	}
}

// TestPlanRoutesForeign: a destination that has a route vgate did not
// install is never added, replaced or shadowed; it is a conflict naming
// that route, and vgate's own route there (if any) is deleted.
func TestPlanRoutesForeign(t *testing.T) {
	const kernelProto, staticProto, dhcp, bird = 2, 4, 16, 12
	type conflict struct {
		want  route.Route
		other api.ForeignRoute
	}
	tests := []struct {
		name       string
		have, want []route.Route
		foreign    []api.ForeignRoute
		add, del   []route.Route
		conflicts  []conflict
	}{
		{"connected subnet is not replaced",
			nil, []route.Route{r("198.18.0.0/24", "vg-b", ""), r("10.2.0.0/16", "vg-b", "")},
			[]api.ForeignRoute{foreign("198.18.0.0/24", "wan0", kernelProto, 0)},
			[]route.Route{r("10.2.0.0/16", "vg-b", "")}, nil,
			[]conflict{{r("198.18.0.0/24", "vg-b", ""), foreign("198.18.0.0/24", "wan0", kernelProto, 0)}}},
		{"a route at another metric is not shadowed either",
			nil, []route.Route{r("10.2.0.0/16", "vg-b", "")},
			[]api.ForeignRoute{foreign("10.2.0.0/16", "eth0", staticProto, 100)},
			nil, nil,
			[]conflict{{r("10.2.0.0/16", "vg-b", ""), foreign("10.2.0.0/16", "eth0", staticProto, 100)}}},
		{"default route learned by BGP leaves the host's default alone",
			nil, []route.Route{r("0.0.0.0/0", "vg-b", ""), r("::/0", "vg-b", "")},
			[]api.ForeignRoute{foreign("0.0.0.0/0", "wan0", dhcp, 100), foreign("::/0", "wan0", 9, 1024)},
			nil, nil,
			[]conflict{{r("0.0.0.0/0", "vg-b", ""), foreign("0.0.0.0/0", "wan0", dhcp, 100)}, {r("::/0", "vg-b", ""), foreign("::/0", "wan0", 9, 1024)}}},
		{"a foreign route that came later takes over: vgate's is deleted",
			[]route.Route{r("10.2.0.0/16", "vg-b", ""), r("10.3.0.0/16", "vg-c", "")}, []route.Route{r("10.2.0.0/16", "vg-b", ""), r("10.3.0.0/16", "vg-c", "")},
			[]api.ForeignRoute{foreign("10.2.0.0/16", "eth1", bird, 32)},
			nil, []route.Route{r("10.2.0.0/16", "vg-b", "")},
			[]conflict{{r("10.2.0.0/16", "vg-b", ""), foreign("10.2.0.0/16", "eth1", bird, 32)}}},
		{"the conflict names the route the kernel prefers (lowest metric)",
			nil, []route.Route{ecmp("fd00:2::/48", "vg-b", "vg-c")},
			[]api.ForeignRoute{foreign("fd00:2::/48", "eth1", staticProto, 2048), foreign("fd00:2::/48", "eth0", staticProto, 1024)},
			nil, nil,
			[]conflict{{ecmp("fd00:2::/48", "vg-b", "vg-c"), foreign("fd00:2::/48", "eth0", staticProto, 1024)}}},
		{"more- and less-specific foreign routes are not conflicts",
			nil, []route.Route{r("10.2.0.0/16", "vg-b", "")},
			[]api.ForeignRoute{foreign("10.2.0.0/24", "eth0", kernelProto, 0), foreign("10.0.0.0/8", "eth0", staticProto, 0), foreign("0.0.0.0/0", "wan0", staticProto, 0)},
			[]route.Route{r("10.2.0.0/16", "vg-b", "")}, nil, nil},
		{"other family is not a conflict",
			nil, []route.Route{r("::/0", "vg-b", "")},
			[]api.ForeignRoute{foreign("0.0.0.0/0", "wan0", staticProto, 0)},
			[]route.Route{r("::/0", "vg-b", "")}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PlanRoutes(tt.have, tt.want, tt.foreign)
			var got []conflict
			for _, c := range p.Conflicts {
				got = append(got, conflict{c.Want, c.ForeignRoute})
				if c.Dst != c.Want.Dst {
					t.Errorf("conflict %v: destination %s differs from the wanted route's", c, c.Dst)
				}
			}
			if !reflect.DeepEqual(p.Add, tt.add) || p.Replace != nil || !reflect.DeepEqual(p.Delete, tt.del) || !reflect.DeepEqual(got, tt.conflicts) {
				t.Fatalf("plan = %+v\nwant add %v delete %v conflicts %+v", p, tt.add, tt.del, tt.conflicts)
			}
		})
	}
}

func TestConflictReason(t *testing.T) {
	c := route.Conflict{Want: r("10.2.0.0/16", "vg-b", ""), ForeignRoute: api.ForeignRoute{
		Dst: netip.MustParsePrefix("10.2.0.0/16"), Dev: "eth0", Gateway: netip.MustParseAddr("198.18.0.9"), Protocol: 4, Metric: 100}}
	if got, want := c.Reason(), "conflicts with 10.2.0.0/16 via 198.18.0.9 dev eth0 proto static metric 100 (not vgate's)"; got != want {
		t.Errorf("Reason = %q, want %q", got, want)
	}
	c.ForeignRoute = api.ForeignRoute{Dst: netip.MustParsePrefix("10.2.0.0/16"), Type: "blackhole", Protocol: 200}
	if got, want := c.Reason(), "conflicts with blackhole 10.2.0.0/16 proto 200 metric 0 (not vgate's)"; got != want {
		t.Errorf("Reason = %q, want %q", got, want)
	}
}

func TestRouteDevs(t *testing.T) {
	if got := ecmp("10.2.0.0/16", "vg-c", "vg-b", "vg-c"); got.Dev != "" || !reflect.DeepEqual(got.Devs, []string{"vg-b", "vg-c"}) {
		t.Errorf("WithDevs = %+v", got)
	}
	if got := ecmp("10.2.0.0/16", "vg-b"); got.Dev != "vg-b" || got.Devs != nil {
		t.Errorf("WithDevs one device = %+v", got)
	}
	if got := ecmp("10.2.0.0/16", "vg-b", "vg-c").String(); got != "10.2.0.0/16 nexthop dev vg-b nexthop dev vg-c" {
		t.Errorf("String = %q", got)
	}
}

// The pure route package names protocols as netlink (and iproute2) do,
// and vgate's own as "vgate".
func TestProtocolNames(t *testing.T) {
	for p := 0; p < 256; p++ {
		want := netlink.RouteProtocol(p).String()
		if p == int(RouteProtocol) {
			want = "vgate"
		}
		if got := route.ProtocolName(p); got != want {
			t.Errorf("route.ProtocolName(%d) = %q, want %q", p, got, want)
		}
	}
}
