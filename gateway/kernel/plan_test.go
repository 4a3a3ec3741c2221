package kernel

import (
	"net/netip"
	"reflect"
	"testing"
)

func r(dst, dev, src string) Route {
	rt := Route{Dst: netip.MustParsePrefix(dst), Dev: dev}
	if src != "" {
		rt.Src = netip.MustParseAddr(src)
	}
	return rt
}

func ecmp(dst string, devs ...string) Route {
	return Route{Dst: netip.MustParsePrefix(dst)}.WithDevs(devs)
}

func TestPlanRoutes(t *testing.T) {
	tests := []struct {
		name       string
		have, want []Route
		replace    []Route
		del        []Route
	}{
		{"empty", nil, nil, nil, nil},
		{"install", nil, []Route{r("10.2.0.0/16", "vg-b", "10.1.255.254")},
			[]Route{r("10.2.0.0/16", "vg-b", "10.1.255.254")}, nil},
		{"unchanged", []Route{r("10.2.0.0/16", "vg-b", "")}, []Route{r("10.2.0.0/16", "vg-b", "")}, nil, nil},
		{"move to other tunnel is one replace", []Route{r("10.2.0.0/16", "vg-b", "")}, []Route{r("10.2.0.0/16", "vg-c", "")},
			[]Route{r("10.2.0.0/16", "vg-c", "")}, nil},
		{"source change is a replace", []Route{r("10.2.0.0/16", "vg-b", "10.1.0.1")}, []Route{r("10.2.0.0/16", "vg-b", "10.1.255.254")},
			[]Route{r("10.2.0.0/16", "vg-b", "10.1.255.254")}, nil},
		{"IPv6 route read back without the IPv4 source is unchanged", []Route{r("fd00:2::/48", "vg-b", "")}, []Route{r("fd00:2::/48", "vg-b", "10.1.255.254")}, nil, nil},
		{"stale removed", []Route{r("10.2.0.0/16", "vg-b", ""), r("fd00:2::/48", "vg-b", "")}, []Route{r("10.2.0.0/16", "vg-b", "")},
			nil, []Route{r("fd00:2::/48", "vg-b", "")}},
		{"single to ecmp is one replace", []Route{r("10.2.0.0/16", "vg-b", "")}, []Route{ecmp("10.2.0.0/16", "vg-c", "vg-b")},
			[]Route{ecmp("10.2.0.0/16", "vg-b", "vg-c")}, nil},
		{"ecmp unchanged", []Route{ecmp("10.2.0.0/16", "vg-c", "vg-b")}, []Route{ecmp("10.2.0.0/16", "vg-b", "vg-c")}, nil, nil},
		{"ecmp nexthop set change is one replace", []Route{ecmp("10.2.0.0/16", "vg-b", "vg-c")}, []Route{ecmp("10.2.0.0/16", "vg-b", "vg-c", "vg-d")},
			[]Route{ecmp("10.2.0.0/16", "vg-b", "vg-c", "vg-d")}, nil},
		{"ecmp back to single is one replace", []Route{ecmp("10.2.0.0/16", "vg-b", "vg-c")}, []Route{r("10.2.0.0/16", "vg-c", "")},
			[]Route{r("10.2.0.0/16", "vg-c", "")}, nil},
		{"flush", []Route{r("10.3.0.0/16", "vg-c", ""), r("10.2.0.0/16", "vg-b", "")}, nil,
			nil, []Route{r("10.2.0.0/16", "vg-b", ""), r("10.3.0.0/16", "vg-c", "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PlanRoutes(tt.have, tt.want)
			if !reflect.DeepEqual(p.Replace, tt.replace) || !reflect.DeepEqual(p.Delete, tt.del) {
				t.Fatalf("plan = %+v, want replace %v delete %v", p, tt.replace, tt.del)
			}
		})
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
