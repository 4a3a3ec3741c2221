package kernel

import (
	"slices"

	"github.com/vgate-project/vgate/api"
	"golang.org/x/sys/unix"
)

// Why vgate refuses instead of using a table of its own
//
// vgate's routes live in the main table next to the host's own (connected
// subnets, the default route, static and DHCP routes, other daemons). The
// alternative, a dedicated table selected by an ip rule, does not make
// sharing safe, it only moves the problem:
//
//   - a rule placed before main makes every vgate route win over the
//     host's more-specific routes: a learned 10.0.0.0/8 would capture a
//     connected 10.0.5.0/24, a learned default route the underlay itself;
//   - a rule placed after main is never reached on a host with a default
//     route in main (every gateway has one): main always answers first,
//     and vgate's routes would never carry traffic, unless main is
//     consulted with suppress_prefixlength 0, which again lets vgate's
//     routes shadow the host's default route.
//
// So vgate stays in main, where longest-prefix match between the host's
// routes and vgate's is what an operator reading `ip route` expects, and
// it never touches a destination that has a route it did not install:
// such a wanted route is skipped and reported as a route.Conflict (see
// PlanRoutes). Overlaps that are not the same destination (a learned
// prefix covering an underlay endpoint or a connected subnet) are the
// business of the BGP import filter, fed by ConnectedPrefixes.

// sortForeign orders foreign routes by destination, then as the kernel
// prefers them (lowest metric first).
func sortForeign(fs []api.ForeignRoute) []api.ForeignRoute {
	fs = slices.Clone(fs)
	slices.SortStableFunc(fs, func(a, b api.ForeignRoute) int {
		if c := a.Dst.Compare(b.Dst); c != 0 {
			return c
		}
		return a.Metric - b.Metric
	})
	return fs
}

var routeTypeNames = map[int]string{
	unix.RTN_LOCAL:       "local",
	unix.RTN_BROADCAST:   "broadcast",
	unix.RTN_ANYCAST:     "anycast",
	unix.RTN_MULTICAST:   "multicast",
	unix.RTN_BLACKHOLE:   "blackhole",
	unix.RTN_UNREACHABLE: "unreachable",
	unix.RTN_PROHIBIT:    "prohibit",
	unix.RTN_THROW:       "throw",
	unix.RTN_NAT:         "nat",
}
