package spec

import (
	"net/netip"

	vapi "github.com/vgate-project/vgate/api"
)

// Translation is one ingress rule of a neighbor's peering (docs/nat.md):
// the neighbor numbers its addresses in Internal, this side sees them in
// External (same family and length, host bits kept). Routes from such a
// neighbor arrive in its numbering and are imported translated.
type Translation struct {
	Internal, External netip.Prefix
}

// translate maps p (the neighbor's view) through ts: inside one rule's
// internal it becomes the prefix of the same length in its external; one
// no rule touches stays as it is. A prefix that only contains internals
// (not one route after translation), or that lies in an external without
// being translated (it would read as another of the neighbor's addresses)
// is refused with a reason.
func translate(ts []Translation, p netip.Prefix) (seen netip.Prefix, translated bool, rej vapi.RouteRejection) {
	p = p.Masked()
	for _, t := range ts {
		in := t.Internal.Masked()
		if in.Addr().Is4() != p.Addr().Is4() || !in.Overlaps(p) {
			continue
		}
		if in.Bits() > p.Bits() {
			return p, false, vapi.RouteRejection{Code: vapi.RejectNATInternal, Conflict: in}
		}
		return netip.PrefixFrom(graftAddr(t.External.Masked(), p.Addr()), p.Bits()), true, vapi.RouteRejection{}
	}
	for _, t := range ts {
		if t.External.Overlaps(p) {
			return p, false, vapi.RouteRejection{Code: vapi.RejectNATExternal, Conflict: t.External.Masked()}
		}
	}
	return p, false, vapi.RouteRejection{}
}

// graftAddr is a with its first to.Bits() bits replaced by to's.
func graftAddr(to netip.Prefix, a netip.Addr) netip.Addr {
	x, y := to.Addr().As16(), a.As16()
	off := 0
	if to.Addr().Is4() {
		off = 12
	}
	n := to.Bits()
	for i := off; i < 16; i++ {
		k := n - 8*(i-off)
		switch {
		case k <= 0:
			x[i] = y[i]
		case k < 8:
			m := byte(0xff) << (8 - k)
			x[i] = x[i]&m | y[i]&^m
		}
	}
	if to.Addr().Is4() {
		return netip.AddrFrom4([4]byte(x[12:]))
	}
	return netip.AddrFrom16(x)
}
