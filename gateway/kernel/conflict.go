package kernel

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/vishvananda/netlink"
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
// such a wanted route is skipped and reported as a RouteConflict (see
// PlanRoutes). Overlaps that are not the same destination (a learned
// prefix covering an underlay endpoint or a connected subnet) are the
// business of the BGP import filter, fed by ConnectedPrefixes.

// ForeignRoute is a route in the main table that vgate did not install
// (its protocol is not RouteProtocol).
type ForeignRoute struct {
	Dst netip.Prefix `json:"dst"`
	// Dev is its outgoing interface (the first nexthop's for a multipath
	// route); empty for routes without one (blackhole, unreachable).
	Dev     string     `json:"dev,omitempty"`
	Gateway netip.Addr `json:"gateway,omitzero"`
	// Type is the route type when not unicast: "blackhole",
	// "unreachable", "prohibit", "throw"...
	Type     string `json:"type,omitempty"`
	Protocol int    `json:"protocol"`
	Metric   int    `json:"metric"`
}

// ProtocolName is the name iproute2 gives the route's protocol ("kernel"
// for connected routes, "static", "dhcp", "bird"...), or its number.
func (f ForeignRoute) ProtocolName() string {
	return protocolName(f.Protocol)
}

func protocolName(p int) string {
	if p == int(RouteProtocol) {
		return "vgate"
	}
	s := netlink.RouteProtocol(p).String()
	if s == "" || s == strconv.Itoa(p) {
		return strconv.Itoa(p)
	}
	return s
}

// String is the route as `ip route` would show it, e.g.
// "10.2.0.0/16 via 198.18.0.9 dev eth0 proto static metric 100".
func (f ForeignRoute) String() string {
	s := f.Dst.String()
	if f.Type != "" {
		s = f.Type + " " + s
	}
	if f.Gateway.IsValid() {
		s += " via " + f.Gateway.String()
	}
	if f.Dev != "" {
		s += " dev " + f.Dev
	}
	return s + " proto " + f.ProtocolName() + " metric " + strconv.Itoa(f.Metric)
}

// RouteConflict is a route vgate wants but did not install: the table
// already has a route to the same destination that vgate did not install,
// and vgate never overwrites nor shadows one. The embedded ForeignRoute is
// that route.
type RouteConflict struct {
	// Want is the route vgate left out.
	Want Route `json:"-"`
	ForeignRoute
}

// Reason says why the route is not installed, for `vgate routes`:
// "conflicts with 10.2.0.0/16 dev eth0 proto static metric 0 (not vgate's)".
func (c RouteConflict) Reason() string {
	return fmt.Sprintf("conflicts with %s (not vgate's)", c.ForeignRoute)
}

func (c RouteConflict) String() string {
	return fmt.Sprintf("route %s not installed: %s", c.Want, c.Reason())
}

// sortForeign orders foreign routes by destination, then as the kernel
// prefers them (lowest metric first).
func sortForeign(fs []ForeignRoute) []ForeignRoute {
	fs = slices.Clone(fs)
	slices.SortStableFunc(fs, func(a, b ForeignRoute) int {
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
