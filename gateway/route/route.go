// Package route holds the values of vgate's kernel routing, without
// touching the system: the routes vgate wants (Route), a wanted route the
// table holds a foreign route for (Conflict), and the host's connected
// subnets (Connected). The planner computes with them; gateway/kernel
// reads and writes them with netlink.
package route

import (
	"net/netip"
	"slices"
)

// Route is one kernel route vgate wants: Dst through interface Dev, with
// the gateway's tunnel address as preferred source when it is of the same
// family. An equal-cost multipath route has Devs instead (two or more,
// sorted, Dev empty): one nexthop per device, without gateway (the
// devices are point-to-point tunnels). Peering is the plan's owner of the
// route: the one peering whose tunnel carries it, "" for the
// point-to-site pool and a multipath route. The kernel does not hold it
// (a route read back has none) and Equal ignores it.
type Route struct {
	Dst     netip.Prefix
	Dev     string
	Devs    []string
	Src     netip.Addr
	Peering string
}

// Devices is the route's devices: Devs, or Dev alone.
func (r Route) Devices() []string {
	if len(r.Devs) > 0 {
		return r.Devs
	}
	if r.Dev == "" {
		return nil
	}
	return []string{r.Dev}
}

// Equal reports whether r and o are the same route in the kernel. A source
// of the other family than Dst is not installed (see kernel.Kernel.SetRoutes), so it
// does not count: an IPv6 route wanted with the IPv4 tunnel address equals
// the same route read back without source.
func (r Route) Equal(o Route) bool {
	return r.Dst == o.Dst && r.InstalledSrc() == o.InstalledSrc() && slices.Equal(r.Devices(), o.Devices())
}

// InstalledSrc is the source address installed with the route, if any:
// Src when it is of Dst's family.
func (r Route) InstalledSrc() netip.Addr {
	if r.Src.IsValid() && r.Src.Is4() == r.Dst.Addr().Is4() {
		return r.Src
	}
	return netip.Addr{}
}

// WithDevs is r through devs: Dev for one device, sorted Devs for more.
func (r Route) WithDevs(devs []string) Route {
	devs = slices.Compact(slices.Sorted(slices.Values(devs)))
	r.Dev, r.Devs = "", nil
	switch len(devs) {
	case 0:
	case 1:
		r.Dev = devs[0]
	default:
		r.Devs = devs
	}
	return r
}

func (r Route) String() string {
	s := r.Dst.String()
	for _, d := range r.Devices() {
		if len(r.Devs) > 0 {
			s += " nexthop"
		}
		s += " dev " + d
	}
	if r.InstalledSrc().IsValid() {
		s += " src " + r.InstalledSrc().String()
	}
	return s
}

// Connected is a subnet of an address on an interface of the host: a
// route learned from a peer that overlaps it would take the host's own
// neighbours (the underlay, a LAN) into a tunnel.
type Connected struct {
	Prefix netip.Prefix `json:"prefix"`
	Dev    string       `json:"dev"`
}
