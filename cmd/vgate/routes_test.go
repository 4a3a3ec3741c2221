package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/vgate-project/vgate/api"
)

// A multipath route is one entry per path; each line names its own
// peering, so the two lines are not identical.
func TestPrintRoutesMultipath(t *testing.T) {
	p := netip.MustParsePrefix("10.2.0.0/16")
	set := []string{"west-a", "west-b"}
	v := api.RoutesView{Routes: []api.RouteEntry{
		{Prefix: p, Source: "bgp", Peering: "west-a", Peerings: set, ASPath: []uint32{65002}, Installed: true, Status: "installed (multipath)"},
		{Prefix: p, Source: "bgp", Peering: "west-b", Peerings: set, ASPath: []uint32{65002}, Installed: true, Status: "installed (multipath)"},
	}}
	var b bytes.Buffer
	printRoutes(&b, v)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two lines, got:\n%s", b.String())
	}
	for i, want := range []string{"west-a", "west-b"} {
		f := strings.Fields(lines[i+1])
		if f[2] != want {
			t.Errorf("line %d: peering %q, want %q:\n%s", i+1, f[2], want, b.String())
		}
	}
}
