// Package kernel owns vgate's effects on the Linux kernel's IP state inside
// the gateway's network namespace: routes to tunnels (tagged with vgate's own
// route protocol number so that they are found again after a crash), the
// gateway's tunnel address on the loopback interface, link state and MTU of
// tunnel interfaces, and the underlay MTU lookup.
//
// Which routes should exist is decided by the pure PlanRoutes; Routes.Set
// applies its result with netlink and nothing else.
package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/route"
	"github.com/vishvananda/netlink"
	"go4.org/netipx"
	"golang.org/x/sys/unix"
)

// RouteProtocol tags every route vgate installs (rtm_protocol). Add
// "76 vgate" to /etc/iproute2/rt_protos.d/vgate.conf to see it by name in
// `ip route`.
const RouteProtocol netlink.RouteProtocol = route.Protocol

// RoutePlan is what SetRoutes must do. Add installs a route to a
// destination vgate does not hold yet, and never replaces anything (the
// kernel refuses it if a route with the same key appeared meanwhile).
// Replace atomically changes a route vgate already holds. Delete removes
// a vgate route. Conflicts are wanted routes left out because the table
// has a route to the same destination that vgate did not install.
type RoutePlan struct {
	Add       []route.Route
	Replace   []route.Route
	Delete    []route.Route
	Conflicts []route.Conflict
}

// PlanRoutes compares the routes vgate has in the kernel (have) with those
// it wants, given the routes of other origins in the same table (foreign:
// connected, static, DHCP, other routing daemons). Routes are keyed by
// destination; a changed device, set of multipath devices or source is an
// atomic replace, never a delete and add.
//
// vgate never overwrites nor shadows a route it did not install: a wanted
// route whose destination has a foreign route (at any metric) is not
// installed and is reported in Conflicts; should vgate hold that
// destination already (the other route came later), its own route is
// deleted, so the outcome does not depend on which came first (nor on a
// restart). Deleting only ever touches vgate's protocol, so a withdrawal
// leaves the foreign route as it was.
func PlanRoutes(have, want []route.Route, foreign []api.ForeignRoute) RoutePlan {
	var p RoutePlan
	other := make(map[netip.Prefix]api.ForeignRoute, len(foreign))
	for _, f := range sortForeign(foreign) {
		if _, dup := other[f.Dst]; !dup {
			other[f.Dst] = f // the one the kernel prefers (lowest metric)
		}
	}
	h := make(map[netip.Prefix]route.Route, len(have))
	for _, r := range have {
		h[r.Dst] = r
	}
	w := make(map[netip.Prefix]bool, len(want))
	for _, r := range want {
		if f, ok := other[r.Dst]; ok {
			p.Conflicts = append(p.Conflicts, route.Conflict{Want: r, ForeignRoute: f})
			continue
		}
		w[r.Dst] = true
		old, ok := h[r.Dst]
		switch {
		case !ok:
			p.Add = append(p.Add, r)
		case !old.Equal(r):
			p.Replace = append(p.Replace, r)
		}
	}
	for _, r := range have {
		if !w[r.Dst] {
			p.Delete = append(p.Delete, r)
		}
	}
	sortRoutes(p.Add)
	sortRoutes(p.Replace)
	sortRoutes(p.Delete)
	slices.SortFunc(p.Conflicts, func(a, b route.Conflict) int { return a.Dst.Compare(b.Dst) })
	return p
}

func sortRoutes(rs []route.Route) {
	slices.SortFunc(rs, func(a, b route.Route) int { return a.Dst.Compare(b.Dst) })
}

// Kernel applies vgate's kernel state through one netlink handle.
type Kernel struct {
	h *netlink.Handle

	mu        sync.Mutex
	conflicts []route.Conflict // of the last SetRoutes
}

// New opens a netlink handle in the current network namespace.
func New() (*Kernel, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return &Kernel{h: h}, nil
}

// Close releases the netlink handle.
func (k *Kernel) Close() { k.h.Close() }

// Routes lists the routes in the main table tagged with RouteProtocol.
func (k *Kernel) Routes() ([]route.Route, error) {
	ours, _, err := k.table()
	return ours, err
}

// Conflicts are the wanted routes the last SetRoutes left out because a
// route vgate did not install has their destination, sorted by
// destination.
func (k *Kernel) Conflicts() []route.Conflict {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.conflicts)
}

// table reads the main table: vgate's routes (merged per destination) and
// every other route (foreign), IPv4 and IPv6.
func (k *Kernel) table() (ours []route.Route, foreign []api.ForeignRoute, err error) {
	rs, err := k.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, nil, fmt.Errorf("list routes of the main table: %w", err)
	}
	names := map[int]string{}
	name := func(i int) string {
		if i == 0 {
			return ""
		}
		n, ok := names[i]
		if !ok {
			if l, err := k.h.LinkByIndex(i); err == nil {
				n = l.Attrs().Name
			}
			names[i] = n
		}
		return n
	}
	// Multipath routes come back with their nexthops; should a kernel
	// list device-only IPv6 nexthops as separate routes of the same
	// destination instead, they are merged into one.
	at := map[netip.Prefix]int{}
	for _, r := range rs {
		if r.Flags&unix.RTM_F_CLONED != 0 {
			continue
		}
		dst, ok := routeDst(r)
		if !ok {
			continue
		}
		if r.Protocol != RouteProtocol {
			foreign = append(foreign, foreignRoute(r, dst, name))
			continue
		}
		var devs []string
		if len(r.MultiPath) > 0 {
			for _, nh := range r.MultiPath {
				devs = append(devs, name(nh.LinkIndex))
			}
		} else {
			devs = []string{name(r.LinkIndex)}
		}
		if i, dup := at[dst]; dup {
			ours[i] = ours[i].WithDevs(append(slices.Clone(ours[i].Devices()), devs...))
			continue
		}
		src, _ := netip.AddrFromSlice(r.Src)
		at[dst] = len(ours)
		ours = append(ours, route.Route{Dst: dst, Src: src.Unmap()}.WithDevs(devs))
	}
	return ours, foreign, nil
}

// routeDst is a listed route's destination; a default route comes back
// without one.
func routeDst(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		switch r.Family {
		case netlink.FAMILY_V4:
			return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
		case netlink.FAMILY_V6:
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0), true
		}
		return netip.Prefix{}, false
	}
	dst, ok := netipx.FromStdIPNet(r.Dst)
	if !ok {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(dst.Addr().Unmap(), dst.Bits()).Masked(), true
}

func foreignRoute(r netlink.Route, dst netip.Prefix, name func(int) string) api.ForeignRoute {
	f := api.ForeignRoute{Dst: dst, Protocol: int(r.Protocol), Metric: r.Priority, Type: routeTypeNames[r.Type]}
	idx, gw := r.LinkIndex, r.Gw
	if len(r.MultiPath) > 0 {
		idx, gw = r.MultiPath[0].LinkIndex, r.MultiPath[0].Gw
	}
	f.Dev = name(idx)
	if a, ok := netip.AddrFromSlice(gw); ok {
		f.Gateway = a.Unmap()
	}
	return f
}

// SetRoutes makes vgate's routes exactly want, as far as they do not
// conflict with routes vgate did not install (see PlanRoutes): it adds
// what is missing, replaces what differs and deletes vgate routes that are
// no longer wanted (including stale ones left by a crashed run). Wanted
// routes left out are recorded for Conflicts; they are not errors. It
// tries every operation and returns all failures joined.
func (k *Kernel) SetRoutes(want []route.Route) error {
	have, foreign, err := k.table()
	if err != nil {
		return err
	}
	return k.apply(PlanRoutes(have, want, foreign))
}

// apply carries out plan and records its conflicts, with those the kernel
// reported for routes that appeared after the plan was made.
func (k *Kernel) apply(plan RoutePlan) error {
	conflicts := slices.Clone(plan.Conflicts)
	var errs []error
	for _, r := range plan.Add {
		nr, err := k.netlinkRoute(r)
		if err == nil {
			// NLM_F_EXCL: a route with the same key that appeared since
			// the listing is left alone.
			err = k.h.RouteAdd(nr)
		}
		if errors.Is(err, unix.EEXIST) {
			if c, ok := k.conflictFor(r); ok {
				conflicts = append(conflicts, c)
				continue
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("add route %s: %w", r, err))
		}
	}
	for _, r := range plan.Replace {
		nr, err := k.netlinkRoute(r)
		if err == nil {
			err = k.h.RouteReplace(nr)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("replace route %s: %w", r, err))
		}
	}
	for _, r := range plan.Delete {
		// Protocol: only vgate's route goes, never another route to the
		// same destination. Scope NOWHERE matches any scope: netlink
		// would send 0 (universe), which the kernel compares with the
		// route's (link) and answers ESRCH, leaving the route in place.
		// A route listed as several (see table) takes one delete each.
		for range max(1, len(r.Devs)) {
			nr := &netlink.Route{Dst: netipx.PrefixIPNet(r.Dst), Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN, Scope: netlink.SCOPE_NOWHERE}
			if err := k.h.RouteDel(nr); err != nil {
				if !errors.Is(err, unix.ESRCH) {
					errs = append(errs, fmt.Errorf("delete route %s: %w", r, err))
				}
				break
			}
		}
	}
	slices.SortFunc(conflicts, func(a, b route.Conflict) int { return a.Dst.Compare(b.Dst) })
	k.mu.Lock()
	k.conflicts = conflicts
	k.mu.Unlock()
	return errors.Join(errs...)
}

// conflictFor looks up the foreign route that made adding r fail.
func (k *Kernel) conflictFor(r route.Route) (route.Conflict, bool) {
	_, foreign, err := k.table()
	if err != nil {
		return route.Conflict{}, false
	}
	for _, f := range sortForeign(foreign) {
		if f.Dst == r.Dst {
			return route.Conflict{Want: r, ForeignRoute: f}, true
		}
	}
	return route.Conflict{}, false
}

func (k *Kernel) netlinkRoute(r route.Route) (*netlink.Route, error) {
	var idx []int
	for _, d := range r.Devices() {
		l, err := k.h.LinkByName(d)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", d, err)
		}
		idx = append(idx, l.Attrs().Index)
	}
	if len(idx) == 0 {
		return nil, errors.New("no device")
	}
	nr := &netlink.Route{
		Dst:      netipx.PrefixIPNet(r.Dst.Masked()),
		Protocol: RouteProtocol,
		Scope:    netlink.SCOPE_LINK,
		Table:    unix.RT_TABLE_MAIN,
	}
	if len(r.Devs) > 0 {
		for _, i := range idx {
			nh := &netlink.NexthopInfo{LinkIndex: i}
			if r.Dst.Addr().Is6() {
				// Linux refuses device-only IPv6 nexthops in a
				// multipath route ("Device only routes can not be
				// added for IPv6 using the multipath API"). On a TUN
				// (no link layer, NOARP) a link-local gateway is never
				// resolved: packets go out of the device unchanged.
				nh.Gw = ecmp6Gateway
			}
			nr.MultiPath = append(nr.MultiPath, nh)
		}
	} else {
		nr.LinkIndex = idx[0]
	}
	if src := r.InstalledSrc(); src.IsValid() {
		nr.Src = net.IP(src.AsSlice())
	}
	return nr, nil
}

// ecmp6Gateway is the placeholder gateway of IPv6 multipath nexthops.
var ecmp6Gateway = net.ParseIP("fe80::1")

// LinkUp sets an interface up with the given MTU (0 leaves the MTU alone).
func (k *Kernel) LinkUp(name string, mtu int) error {
	l, err := k.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("interface %s: %w", name, err)
	}
	if mtu > 0 && l.Attrs().MTU != mtu {
		if err := k.h.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("interface %s: set mtu %d: %w", name, mtu, err)
		}
	}
	if err := k.h.LinkSetUp(l); err != nil {
		return fmt.Errorf("interface %s: set up: %w", name, err)
	}
	return nil
}

// UnderlayMTU is the MTU of the link the kernel would use to reach dst, or
// 0 when it cannot tell (no route, no endpoint).
func (k *Kernel) UnderlayMTU(dst netip.Addr) int {
	var ifindex int
	if dst.IsValid() {
		rs, err := k.h.RouteGet(net.IP(dst.Unmap().AsSlice()))
		if err != nil || len(rs) == 0 {
			return 0
		}
		ifindex = rs[0].LinkIndex
	} else {
		// No endpoint: the default route's link, if any.
		rs, err := k.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return 0
		}
		for _, r := range rs {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() {
				ifindex = r.LinkIndex
				break
			}
		}
	}
	if ifindex == 0 {
		return 0
	}
	l, err := k.h.LinkByIndex(ifindex)
	if err != nil {
		return 0
	}
	return l.Attrs().MTU
}

// loLabel marks IPv4 addresses vgate adds to lo, so `ip addr` shows them.
const loLabel = "lo:vgate"

// SetLocalAddress makes addr (the tunnel address) local on the loopback
// interface as a host prefix and removes old, if valid and different (the
// tunnel address of a previous run or config). It is idempotent.
func (k *Kernel) SetLocalAddress(addr, old netip.Addr) error {
	lo, err := k.h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if old.IsValid() && old != addr {
		if err := k.delAddr(lo, old); err != nil {
			return err
		}
	}
	if !addr.IsValid() {
		return nil
	}
	a := hostAddr(addr)
	if err := k.h.AddrReplace(lo, a); err != nil {
		return fmt.Errorf("add tunnel address %s to lo: %w", addr, err)
	}
	return nil
}

// RemoveLocalAddress removes addr from lo; a missing address is not an error.
func (k *Kernel) RemoveLocalAddress(addr netip.Addr) error {
	if !addr.IsValid() {
		return nil
	}
	lo, err := k.h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	return k.delAddr(lo, addr)
}

func (k *Kernel) delAddr(lo netlink.Link, addr netip.Addr) error {
	if err := k.h.AddrDel(lo, hostAddr(addr)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove tunnel address %s from lo: %w", addr, err)
	}
	return nil
}

func hostAddr(addr netip.Addr) *netlink.Addr {
	addr = addr.Unmap()
	a := &netlink.Addr{IPNet: netipx.PrefixIPNet(netip.PrefixFrom(addr, addr.BitLen()))}
	if addr.Is4() {
		a.Label = loLabel
	}
	return a
}
