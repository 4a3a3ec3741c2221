package route

import (
	"fmt"
	"strconv"

	"github.com/vgate-project/vgate/api"
)

// Protocol is the route protocol number (rtm_protocol) that tags every
// route vgate installs.
const Protocol = 76

// Conflict is a route vgate wants but did not install: the table already
// has a route to the same destination that vgate did not install, and
// vgate never overwrites nor shadows one. The embedded api.ForeignRoute is
// that route.
type Conflict struct {
	// Want is the route vgate left out.
	Want Route `json:"-"`
	api.ForeignRoute
}

// Reason says why the route is not installed, for `vgate routes`:
// "conflicts with 10.2.0.0/16 dev eth0 proto static metric 0 (not vgate's)".
func (c Conflict) Reason() string {
	return fmt.Sprintf("conflicts with %s (not vgate's)", Foreign(c.ForeignRoute))
}

func (c Conflict) String() string {
	return fmt.Sprintf("route %s not installed: %s", c.Want, c.Reason())
}

// Foreign is a route vgate did not install as `ip route` would show it,
// e.g. "10.2.0.0/16 via 198.18.0.9 dev eth0 proto static metric 100".
func Foreign(f api.ForeignRoute) string {
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
	return s + " proto " + ProtocolName(f.Protocol) + " metric " + strconv.Itoa(f.Metric)
}

// ProtocolName is the name iproute2 gives a route protocol ("kernel" for
// connected routes, "static", "dhcp", "bird"...; "vgate" for Protocol),
// or its number.
func ProtocolName(p int) string {
	if p == Protocol {
		return "vgate"
	}
	if s, ok := protocolNames[p]; ok {
		return s
	}
	return strconv.Itoa(p)
}

// protocolNames are the kernel's RTPROT_* numbers (linux/rtnetlink.h),
// named as netlink names them; kernel's tests hold the two equal.
var protocolNames = map[int]string{
	0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static",
	8: "gated", 9: "ra", 10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted",
	14: "xorp", 15: "ntk", 16: "dhcp", 17: "mrouted", 42: "babel",
	186: "bgp", 187: "isis", 188: "ospf", 189: "rip", 192: "eigrp",
}
