package gateway

import (
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
	base := importFacts{
		endpoints: []plan.UnderlayEndpoint{ep("198.18.0.2:51820", "a"), ep("198.18.0.3:51820", "b")},
		connected: []route.Connected{con("192.168.1.0/24", "eth1")},
	}
	for _, tc := range []struct {
		name  string
		other importFacts
		equal bool
	}{
		{"same", importFacts{append([]plan.UnderlayEndpoint(nil), base.endpoints...), append([]route.Connected(nil), base.connected...)}, true},
		{"roamed port", importFacts{[]plan.UnderlayEndpoint{ep("198.18.0.2:40000", "a"), ep("198.18.0.3:51820", "b")}, base.connected}, false},
		{"client connected", importFacts{append(append([]plan.UnderlayEndpoint(nil), base.endpoints...), plan.UnderlayEndpoint{AddrPort: netip.MustParseAddrPort("198.18.0.9:1234"), Client: "laptop"}), base.connected}, false},
		{"endpoint gone", importFacts{base.endpoints[:1], base.connected}, false},
		{"subnet added", importFacts{base.endpoints, append([]route.Connected{con("10.9.0.0/16", "eth2")}, base.connected...)}, false},
		{"subnet moved device", importFacts{base.endpoints, []route.Connected{con("192.168.1.0/24", "eth2")}}, false},
	} {
		if got := base.equal(tc.other); got != tc.equal {
			t.Errorf("%s: equal = %v, want %v", tc.name, got, tc.equal)
		}
	}
}
