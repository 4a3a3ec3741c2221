package p2s

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/vgate-project/vgate/gateway/config"
	"go4.org/netipx"
)

// Group is a named set of clients with what its members may reach (the
// config's point_to_site.groups entry).
type Group struct {
	Name           string
	Allow          []netip.Prefix
	Interconnected bool
	// Services are the ports of the gateway itself the group opens
	// (gateway_services); see Policy.
	Services []config.Service
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
	// DenyGatewayService: the destination is the gateway itself and the
	// packet is for no service the client's groups open there.
	DenyGatewayService
	numVerdicts
)

var verdictNames = [numVerdicts]string{"allow", "malformed", "unknown_source", "destination", "client_to_client", "gateway_service"}

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
	svc    *services      // what its groups open on the gateway itself
	denied *atomic.Uint64 // packets of this client dropped
}

// IP protocol numbers and ICMP types the policy reads.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	icmpEcho    = 8   // ICMP echo request
	icmpv6Echo  = 128 // ICMPv6 echo request
	portDNS     = 53
)

// services is the union of the gateway_services of a set of groups.
type services struct {
	icmp  bool        // every ICMP message
	ports []portRange // TCP and UDP
}

type portRange struct {
	proto  uint8
	lo, hi uint16
}

func compileServices(groups []Group, idx map[string]int, names []string) *services {
	s := &services{}
	for _, n := range names {
		i, ok := idx[n]
		if !ok {
			continue
		}
		for _, svc := range groups[i].Services {
			switch svc.Proto {
			case config.ProtoICMP:
				s.icmp = true
			case config.ProtoTCP:
				s.ports = append(s.ports, portRange{protoTCP, svc.FirstPort, svc.LastPort})
			case config.ProtoUDP:
				s.ports = append(s.ports, portRange{protoUDP, svc.FirstPort, svc.LastPort})
			}
		}
	}
	return s
}

// opens reports whether s opens a packet of proto to port (TCP, UDP) or
// of ICMP type port (ICMP, ICMPv6; proto is the family's ICMP).
func (s *services) opens(proto uint8, port uint16) bool {
	if proto == protoICMP || proto == protoICMPv6 {
		return s.icmp
	}
	for _, r := range s.ports {
		if r.proto == proto && r.lo <= port && port <= r.hi {
			return true
		}
	}
	return false
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
//     client's groups (the union), or be a point_to_site.dns server;
//   - a destination that is the gateway itself (one of PolicyInput.Self:
//     its tunnel address and the addresses of the host, which the kernel
//     delivers locally instead of forwarding) and passed the rule above
//     is open only for ICMP echo requests (ping), DNS (UDP and TCP port
//     53) when it is a point_to_site.dns server, and the gateway_services
//     of the client's groups (the union). Everything else to the gateway
//     (BGP, metrics, SSH, …) is DenyGatewayService. A packet whose
//     transport header cannot be read (a non-first fragment, a truncated
//     header, an IPv6 extension chain too long to follow) matches no
//     service.
type Policy struct {
	members map[netip.Addr]*member
	pool    *netipx.IPSet
	self    []netip.Addr // sorted
	selfDNS []netip.Addr // self addresses that are DNS servers, sorted
}

// PolicyInput is everything a Policy is compiled from.
type PolicyInput struct {
	Groups  []Group
	Clients []Client
	Pool    []netip.Prefix
	DNS     []netip.Addr
	// Self are the gateway's own addresses: its tunnel address and every
	// local address of the host (see the Policy rules).
	Self []netip.Addr
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
	svcs := map[string]*services{}
	p := &Policy{members: make(map[netip.Addr]*member, len(in.Clients)*2), pool: pool}
	for _, a := range in.Self {
		if a.IsValid() {
			p.self = append(p.self, a.Unmap())
		}
	}
	slices.SortFunc(p.self, netip.Addr.Compare)
	p.self = slices.Compact(p.self)
	for _, a := range in.DNS {
		if a = a.Unmap(); p.isSelf(a) {
			p.selfDNS = append(p.selfDNS, a)
		}
	}
	slices.SortFunc(p.selfDNS, netip.Addr.Compare)
	p.selfDNS = slices.Compact(p.selfDNS)
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
			svcs[key] = compileServices(in.Groups, idx, names)
		}
		var ctr *atomic.Uint64
		if in.Counter != nil {
			ctr = in.Counter(c.Name)
		}
		if ctr == nil {
			ctr = new(atomic.Uint64)
		}
		m := &member{name: c.Name, groups: groups, ic: ic, allow: allow, svc: svcs[key], denied: ctr}
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
	v := p.decide(m, dst, pkt)
	if v != Allow {
		m.denied.Add(1)
	}
	return v
}

// decide rules on a packet from m to dst; pkt is the whole (valid) IP
// packet, or nil when only the addresses are known.
func (p *Policy) decide(m *member, dst netip.Addr, pkt []byte) Verdict {
	if p.pool.Contains(dst) {
		if o := p.members[dst]; o != nil && m.ic.intersects(o.groups) {
			return Allow
		}
		return DenyClient
	}
	if !m.allow.Contains(dst) {
		return DenyDestination
	}
	if !p.isSelf(dst) {
		return Allow
	}
	proto, port, ok := transport(pkt)
	switch {
	case !ok:
		return DenyGatewayService
	case proto == protoICMP && dst.Is4() && port == icmpEcho,
		proto == protoICMPv6 && dst.Is6() && port == icmpv6Echo:
		return Allow
	case (proto == protoTCP || proto == protoUDP) && port == portDNS && contains(p.selfDNS, dst):
		return Allow
	case proto == protoICMP && dst.Is6(), proto == protoICMPv6 && dst.Is4():
		return DenyGatewayService // ICMP of the wrong family
	case m.svc.opens(proto, port):
		return Allow
	}
	return DenyGatewayService
}

func (p *Policy) isSelf(a netip.Addr) bool { return contains(p.self, a) }

// contains is a binary search of sorted.
func contains(sorted []netip.Addr, a netip.Addr) bool {
	_, ok := slices.BinarySearchFunc(sorted, a, netip.Addr.Compare)
	return ok
}

// Decide is Check on addresses instead of a packet (counting nothing).
// Like a packet header, a 4-in-6 mapped address is IPv6. Without a
// transport header, no service of the gateway itself matches.
func (p *Policy) Decide(src, dst netip.Addr) Verdict {
	m := p.members[src]
	if m == nil {
		return DenySource
	}
	return p.decide(m, dst, nil)
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

// transport reads the transport protocol of a packet addrs accepted and
// its destination port (TCP, UDP) or message type (ICMP, ICMPv6; other
// protocols: 0). ok is false when that header is not in the packet: a
// non-first fragment, a header cut short, an IPv6 extension header chain
// longer than maxExtHeaders or cut short.
func transport(pkt []byte) (proto uint8, port uint16, ok bool) {
	var body []byte
	switch {
	case len(pkt) == 0:
		return 0, 0, false
	case pkt[0]>>4 == 4:
		if binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 {
			return pkt[9], 0, false // a later fragment: no transport header
		}
		proto = pkt[9]
		body = pkt[int(pkt[0]&0x0f)*4 : binary.BigEndian.Uint16(pkt[2:4])]
	default:
		end := 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
		proto = pkt[6]
		off := 40
		for range maxExtHeaders + 1 {
			switch proto {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if off+2 > end {
					return proto, 0, false
				}
				proto, off = pkt[off], off+(int(pkt[off+1])+1)*8
				continue
			case 44: // fragment
				if off+8 > end || binary.BigEndian.Uint16(pkt[off+2:off+4])>>3 != 0 {
					return proto, 0, false
				}
				proto, off = pkt[off], off+8
				continue
			case 51: // authentication header
				if off+2 > end {
					return proto, 0, false
				}
				proto, off = pkt[off], off+(int(pkt[off+1])+2)*4
				continue
			}
			if off > end {
				return proto, 0, false
			}
			body = pkt[off:end]
			break
		}
		if body == nil {
			return proto, 0, false // chain too long or cut short
		}
	}
	switch proto {
	case protoTCP, protoUDP:
		if len(body) < 4 {
			return proto, 0, false
		}
		return proto, binary.BigEndian.Uint16(body[2:4]), true
	case protoICMP, protoICMPv6:
		if len(body) < 1 {
			return proto, 0, false
		}
		return proto, uint16(body[0]), true
	}
	return proto, 0, true
}

// maxExtHeaders is how many IPv6 extension headers transport follows.
const maxExtHeaders = 8

// LocalAddrs lists the addresses the host (this network namespace)
// delivers locally: every interface address and, for IPv4 subnets wider
// than /31, the subnet's broadcast address. With the tunnel address they
// are what Options.Self should hold.
func LocalAddrs() ([]netip.Addr, error) {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ifa := range ifas {
		n, ok := ifa.(*net.IPNet)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		out = append(out, a)
		ones, bits := n.Mask.Size()
		if a.Is4() && bits == 32 && ones < 31 {
			b := a.As4()
			m := binary.BigEndian.Uint32(b[:]) | (1<<(32-ones) - 1)
			binary.BigEndian.PutUint32(b[:], m)
			out = append(out, netip.AddrFrom4(b))
		}
	}
	return out, nil
}
