package p2s

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync/atomic"

	"go4.org/netipx"
)

// Group is a named set of clients with what its members may reach (the
// config's point_to_site.groups entry).
type Group struct {
	Name           string
	Allow          []netip.Prefix
	Interconnected bool
}

// Verdict is what the policy decides for one packet a client sent.
type Verdict uint8

const (
	// Allow: the packet may enter the gateway's network.
	Allow Verdict = iota
	// DenyMalformed: not a parseable IPv4 or IPv6 packet.
	DenyMalformed
	// DenySource: the source is no registered client (e.g. just revoked).
	DenySource
	// DenyDestination: no group of the client allows the destination.
	DenyDestination
	// DenyClient: the destination is another client that shares no
	// interconnected group with the sender (or an unassigned pool address).
	DenyClient
	numVerdicts
)

var verdictNames = [numVerdicts]string{"allow", "malformed", "unknown_source", "destination", "client_to_client"}

func (v Verdict) String() string {
	if v < numVerdicts {
		return verdictNames[v]
	}
	return "unknown"
}

// bitset is a set of group indexes.
type bitset []uint64

func (b bitset) set(i int) bitset {
	for len(b) <= i/64 {
		b = append(b, 0)
	}
	b[i/64] |= 1 << (i % 64)
	return b
}

func (b bitset) intersects(o bitset) bool {
	n := min(len(b), len(o))
	for i := 0; i < n; i++ {
		if b[i]&o[i] != 0 {
			return true
		}
	}
	return false
}

// member is one client address in a Policy.
type member struct {
	name   string
	groups bitset // every group the client is in
	ic     bitset // the interconnected ones
	allow  *netipx.IPSet
	denied *atomic.Uint64 // packets of this client dropped
}

// Policy is an immutable compiled group policy: who may send to what. It
// is built whole by NewPolicy and published atomically to the Filter;
// Check never allocates.
//
// The rules, for a packet a client sends:
//   - its source must be a registered client's address;
//   - a destination inside the pool is another client: allowed only when
//     both share an interconnected group (groups' allow lists do not
//     open the pool);
//   - any other destination must lie in the allow list of one of the
//     client's groups (the union), or be a point_to_site.dns server.
type Policy struct {
	members map[netip.Addr]*member
	pool    *netipx.IPSet
}

// PolicyInput is everything a Policy is compiled from.
type PolicyInput struct {
	Groups  []Group
	Clients []Client
	Pool    []netip.Prefix
	DNS     []netip.Addr
	// Counter returns the drop counter of a client, kept across policy
	// swaps; nil gives each client a fresh counter.
	Counter func(name string) *atomic.Uint64
}

// NewPolicy compiles a policy. Clients in groups the config does not
// define get nothing from those groups (fail closed).
func NewPolicy(in PolicyInput) *Policy {
	idx := make(map[string]int, len(in.Groups))
	for i, g := range in.Groups {
		idx[g.Name] = i
	}
	var pb netipx.IPSetBuilder
	for _, p := range in.Pool {
		pb.AddPrefix(p.Masked())
	}
	pool, _ := pb.IPSet()

	// Clients with the same groups share one compiled allow set.
	sets := map[string]*netipx.IPSet{}
	p := &Policy{members: make(map[netip.Addr]*member, len(in.Clients)*2), pool: pool}
	for _, c := range in.Clients {
		var groups, ic bitset
		names := slices.Clone(c.Groups)
		slices.Sort(names)
		names = slices.Compact(names)
		key := ""
		for _, n := range names {
			i, ok := idx[n]
			if !ok {
				continue
			}
			groups = groups.set(i)
			if in.Groups[i].Interconnected {
				ic = ic.set(i)
			}
			key += n + "\x00"
		}
		allow, ok := sets[key]
		if !ok {
			allow = allowSet(in.Groups, idx, names, in.DNS)
			sets[key] = allow
		}
		var ctr *atomic.Uint64
		if in.Counter != nil {
			ctr = in.Counter(c.Name)
		}
		if ctr == nil {
			ctr = new(atomic.Uint64)
		}
		m := &member{name: c.Name, groups: groups, ic: ic, allow: allow, denied: ctr}
		for _, a := range c.Addresses {
			p.members[a.Unmap()] = m
		}
	}
	return p
}

func allowSet(groups []Group, idx map[string]int, names []string, dns []netip.Addr) *netipx.IPSet {
	var b netipx.IPSetBuilder
	for _, n := range names {
		if i, ok := idx[n]; ok {
			for _, q := range groups[i].Allow {
				b.AddPrefix(q.Masked())
			}
		}
	}
	for _, a := range dns {
		b.Add(a.Unmap())
	}
	s, _ := b.IPSet()
	return s
}

// AllowedIPs is what a client in groups should route to the gateway: the
// union of its groups' allow lists, the DNS servers, and the pool when one
// of the groups is interconnected. Overlapping and adjacent prefixes are
// merged.
func AllowedIPs(groups []Group, clientGroups []string, pool []netip.Prefix, dns []netip.Addr) []netip.Prefix {
	var b netipx.IPSetBuilder
	for _, g := range groups {
		if !slices.Contains(clientGroups, g.Name) {
			continue
		}
		for _, q := range g.Allow {
			b.AddPrefix(q.Masked())
		}
		if g.Interconnected {
			for _, q := range pool {
				b.AddPrefix(q.Masked())
			}
		}
	}
	for _, a := range dns {
		b.Add(a.Unmap())
	}
	s, _ := b.IPSet()
	return s.Prefixes()
}

// Check decides one packet a client sent (its IP header first). It does
// not allocate.
func (p *Policy) Check(pkt []byte) Verdict {
	src, dst, ok := addrs(pkt)
	if !ok {
		return DenyMalformed
	}
	m := p.members[src]
	if m == nil {
		return DenySource
	}
	v := p.decide(m, dst)
	if v != Allow {
		m.denied.Add(1)
	}
	return v
}

func (p *Policy) decide(m *member, dst netip.Addr) Verdict {
	if p.pool.Contains(dst) {
		if o := p.members[dst]; o != nil && m.ic.intersects(o.groups) {
			return Allow
		}
		return DenyClient
	}
	if m.allow.Contains(dst) {
		return Allow
	}
	return DenyDestination
}

// Decide is Check on addresses instead of a packet (counting nothing).
// Like a packet header, a 4-in-6 mapped address is IPv6.
func (p *Policy) Decide(src, dst netip.Addr) Verdict {
	m := p.members[src]
	if m == nil {
		return DenySource
	}
	return p.decide(m, dst)
}

// addrs extracts source and destination of an IPv4 or IPv6 packet.
func addrs(pkt []byte) (src, dst netip.Addr, ok bool) {
	if len(pkt) < 1 {
		return src, dst, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 || pkt[0]&0x0f < 5 {
			return src, dst, false
		}
		if total := int(binary.BigEndian.Uint16(pkt[2:4])); total < int(pkt[0]&0x0f)*4 || total > len(pkt) {
			return src, dst, false
		}
		return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])), true
	case 6:
		if len(pkt) < 40 || 40+int(binary.BigEndian.Uint16(pkt[4:6])) > len(pkt) {
			return src, dst, false
		}
		// 4-in-6 mapped addresses are kept as IPv6: they never match an
		// IPv4 member or allow prefix.
		return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40])), true
	}
	return src, dst, false
}
