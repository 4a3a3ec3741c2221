package names

import (
	"net"
	"net/netip"
	"slices"

	"github.com/miekg/dns"

	"github.com/vgate-project/vgate/nat"
)

// MapForwarded shows a forwarded answer from a peer with NAT ingress
// rules (docs/nat.md) as this side sees it: an A or AAAA record inside a
// rule's internal gets the matching external address; one inside an
// external but no internal is dropped (it would read as another of the
// peer's addresses); others stay. When that drops every address record,
// the name does not exist for this side (NXDOMAIN, answer emptied). It
// reports whether it changed m. PTR and other records are left as they
// are.
func MapForwarded(m *dns.Msg, ingress []nat.Rule) bool {
	if len(ingress) == 0 {
		return false
	}
	var kept []dns.RR
	had, changed := false, false
	for _, rr := range m.Answer {
		a, ok := rrAddr(rr)
		if !ok {
			kept = append(kept, rr)
			continue
		}
		had = true
		a = a.Unmap()
		if b, mapped := nat.MapAddr(ingress, a, true); mapped {
			kept = append(kept, withAddr(rr, b))
			changed = true
			continue
		}
		if a.IsValid() && slices.ContainsFunc(ingress, func(r nat.Rule) bool { return r.External.Contains(a) }) {
			changed = true // ambiguous: dropped
			continue
		}
		kept = append(kept, rr)
	}
	if !changed {
		return false
	}
	setAnswer(m, had, kept)
	return true
}

// withAddr is a copy of the A or AAAA record rr holding a.
func withAddr(rr dns.RR, a netip.Addr) dns.RR {
	c := dns.Copy(rr)
	switch r := c.(type) {
	case *dns.A:
		r.A = net.IP(a.AsSlice())
	case *dns.AAAA:
		r.AAAA = net.IP(a.AsSlice())
	}
	return c
}
