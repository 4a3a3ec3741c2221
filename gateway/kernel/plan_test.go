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
		{"stale removed", []Route{r("10.2.0.0/16", "vg-b", ""), r("fd00:2::/48", "vg-b", "")}, []Route{r("10.2.0.0/16", "vg-b", "")},
			nil, []Route{r("fd00:2::/48", "vg-b", "")}},
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
