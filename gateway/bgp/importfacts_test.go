package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/route"
)

// The import refresh re-plans only when what it watches moved:
// an endpoint roams, a client connects, a connected subnet appears.
func TestImportFactsEqual(t *testing.T) {
	ep := func(s, peering string) plan.UnderlayEndpoint {
		return plan.UnderlayEndpoint{AddrPort: netip.MustParseAddrPort(s), Peering: peering}
	}
	con := func(p, dev string) route.Connected {
		return route.Connected{Prefix: netip.MustParsePrefix(p), Dev: dev}
	}
	base := ImportFacts{
		Endpoints: []plan.UnderlayEndpoint{ep("198.18.0.2:51820", "a"), ep("198.18.0.3:51820", "b")},
		Connected: []route.Connected{con("192.168.1.0/24", "eth1")},
	}
	for _, tc := range []struct {
		name  string
		other ImportFacts
		equal bool
	}{
		{"same", ImportFacts{append([]plan.UnderlayEndpoint(nil), base.Endpoints...), append([]route.Connected(nil), base.Connected...)}, true},
		{"roamed port", ImportFacts{[]plan.UnderlayEndpoint{ep("198.18.0.2:40000", "a"), ep("198.18.0.3:51820", "b")}, base.Connected}, false},
		{"client connected", ImportFacts{append(append([]plan.UnderlayEndpoint(nil), base.Endpoints...), plan.UnderlayEndpoint{AddrPort: netip.MustParseAddrPort("198.18.0.9:1234"), Client: "laptop"}), base.Connected}, false},
		{"endpoint gone", ImportFacts{base.Endpoints[:1], base.Connected}, false},
		{"subnet added", ImportFacts{base.Endpoints, append([]route.Connected{con("10.9.0.0/16", "eth2")}, base.Connected...)}, false},
		{"subnet moved device", ImportFacts{base.Endpoints, []route.Connected{con("192.168.1.0/24", "eth2")}}, false},
	} {
		if got := base.Equal(tc.other); got != tc.equal {
			t.Errorf("%s: equal = %v, want %v", tc.name, got, tc.equal)
		}
	}
}

// A check re-plans while nothing was planned or the last apply failed,
// and after a successful one only when the facts moved; it gathers only
// when there is something to compare with.
func TestFactsMoved(t *testing.T) {
	c := New(t.Context(), func(context.Context, Why) {}, slog.New(slog.DiscardHandler))
	f := ImportFacts{Endpoints: []plan.UnderlayEndpoint{{AddrPort: netip.MustParseAddrPort("198.18.0.2:51820"), Peering: "a"}}}
	gathered := 0
	now := func(g ImportFacts) func() ImportFacts {
		return func() ImportFacts { gathered++; return g }
	}
	if !c.FactsMoved(now(f)) || gathered != 0 {
		t.Fatalf("nothing planned yet: no re-plan, or gathered %d times", gathered)
	}
	c.Planning()
	c.Planned(f)
	if c.FactsMoved(now(f)) {
		t.Error("unchanged facts re-plan")
	}
	roamed := ImportFacts{Endpoints: []plan.UnderlayEndpoint{{AddrPort: netip.MustParseAddrPort("198.18.0.2:40000"), Peering: "a"}}}
	if !c.FactsMoved(now(roamed)) {
		t.Error("a roamed endpoint does not re-plan")
	}
	c.Planning() // an apply that then fails
	if !c.FactsMoved(now(f)) {
		t.Error("after a failed apply the check does not retry")
	}
}
