package gateway

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/kernel"
)

func TestNextFlat(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		sent, back uint64
		at         int
		flagged    bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"sending, nothing back: flagged after the window", []step{
			{1, 0, 0, false}, {3, 0, 2, false}, {5, 0, 4, false}, {7, 0, 6, true}, {9, 0, 8, true}}},
		{"replies come back: never flagged", []step{
			{2, 2, 0, false}, {4, 4, 2, false}, {6, 6, 4, false}, {8, 8, 6, false}, {10, 10, 8, false}}},
		{"a reply ends the stretch", []step{
			{2, 0, 0, false}, {4, 0, 2, false}, {6, 0, 4, false}, {8, 0, 6, true}, {10, 0, 8, true}, {12, 1, 10, false}}},
		{"too few packets: not flagged", []step{
			{1, 0, 2, false}, {1, 0, 4, false}, {1, 0, 6, false}, {2, 0, 8, false}, {2, 0, 10, false}}},
		{"silence keeps the flag, then forgets it", []step{
			{2, 0, 0, false}, {4, 0, 2, false}, {6, 0, 4, false}, {8, 0, 8, true}, {8, 0, 20, true}, {8, 0, 40, false}}},
		{"nothing at all: never flagged", []step{
			{0, 0, 0, false}, {0, 0, 10, false}, {0, 0, 60, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := flatReturn{}
			for i, s := range tc.steps {
				st = nextFlat(st, returnSample{s.sent, s.back}, at(s.at))
				if _, got := st.flagged(at(s.at)); got != s.flagged {
					t.Fatalf("step %d (%+v): flagged %v, want %v (state %+v)", i, s, got, s.flagged, st)
				}
			}
		})
	}
}

func TestP2SRoutes(t *testing.T) {
	pfx := netip.MustParsePrefix
	got := p2sRoutes([]kernel.Route{
		{Dst: pfx("10.2.0.0/16"), Dev: "vg-west"},
		{Dst: pfx("10.3.0.0/16"), Dev: "vg-west"},
		{Dst: pfx("10.4.0.0/16"), Devs: []string{"vg-a", "vg-b"}}, // multipath: left out
		{Dst: pfx("172.16.201.0/24"), Dev: "vgp2s"},               // not a peering
		{Dst: pfx("10.5.0.0/16"), Devs: []string{"vg-east"}},
	})
	want := map[string][]netip.Prefix{
		"west": {pfx("10.2.0.0/16"), pfx("10.3.0.0/16")},
		"east": {pfx("10.5.0.0/16")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("p2sRoutes = %v, want %v", got, want)
	}
}
