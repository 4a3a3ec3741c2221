package plan

import (
	"net/netip"

	"github.com/vgate-project/vgate/overlap"
)

// resolveLiteral is Env.Resolve for tests: an address:port resolves to
// itself, a name never does (no DNS in the planner's tests).
func resolveLiteral(hostport string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(hostport)
	return overlap.UnmapAddrPort(ap), err
}
