// Package names is the gateway's name server (config section dns): it
// answers <client>.<zone> with a point-to-site client's addresses and
// <gateway>.<zone> with the tunnel address, forwards a peered gateway's
// zone to that gateway's tunnel address through the tunnel, and every
// other name to the configured upstream resolvers, or refuses it. It
// serves UDP and TCP port 53 on the tunnel address.
//
// What it answers is decided by Decide and FilterForwarded, pure
// functions of the zone (from the config), the client directory (from
// the point-to-site registry and group policy) and the asker's address;
// Server only moves packets. A name answer never grants reachability the
// group policy denies: a client's name is answered only to askers that
// can talk to it under the policy (see visible).
package names

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/vgate-project/vgate/gateway/names/zone"
	"github.com/vgate-project/vgate/nat"
)

// TTL of every answer and of negative answers (the SOA minimum), in
// seconds: a revoked client's name leaves resolvers' caches within it.
const TTL = 1

// Directory is the point-to-site side: client names and the group policy
// (gateway/p2s.Directory implements it).
type Directory interface {
	// Lookup returns the addresses of the client with this DNS label.
	Lookup(label string) []netip.Addr
	// IsClient reports whether a is a registered client's address.
	IsClient(a netip.Addr) bool
	// Reach reports whether the client at src may send to dst.
	Reach(src, dst netip.Addr) bool
}

// NoClients is the Directory of a gateway without point-to-site.
var NoClients Directory = noClients{}

type noClients struct{}

func (noClients) Lookup(string) []netip.Addr     { return nil }
func (noClients) IsClient(netip.Addr) bool       { return false }
func (noClients) Reach(src, dst netip.Addr) bool { return false }

// AskerKind is who sent a query, by its source address.
type AskerKind uint8

const (
	// Outside: none of the below; every query is dropped unanswered.
	Outside AskerKind = iota
	// Client: a registered point-to-site client.
	Client
	// Local: the gateway's own network (address_spaces, tunnel address).
	Local
	// FromPeer: a peered network (a peering's AllowedIPs), usually the
	// remote gateway forwarding its clients' queries for our zone.
	FromPeer
)

var askerNames = [...]string{"outside", "client", "local", "peer"}

func (k AskerKind) String() string { return askerNames[k] }

// RecursionAvailable is the RA bit of z's answers to an asker of kind: set
// where the server forwards for it (clients and the local network, when
// an upstream or a peer's zone is configured), so that resolvers and dig
// do not take it for an authority-only server. Peered networks get no
// transit, hence no RA.
func RecursionAvailable(z *zone.Zone, kind AskerKind) bool {
	if kind != Client && kind != Local {
		return false
	}
	if len(z.Upstream) > 0 {
		return true
	}
	for _, p := range z.Peers {
		if p.Zone != "" {
			return true
		}
	}
	return false
}

// Classify says who the asker at a is. A client address wins over the
// prefixes it lies in.
func Classify(z *zone.Zone, d Directory, a netip.Addr) AskerKind {
	a = a.Unmap()
	switch {
	case d.IsClient(a):
		return Client
	case a == z.TunnelAddress || inAny(a, z.Local):
		return Local
	}
	for _, p := range z.Peers {
		if a == p.Addr || inAny(a, p.Spaces) {
			return FromPeer
		}
	}
	return Outside
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Action is what to do with a query.
type Action uint8

const (
	// Refuse: rcode REFUSED.
	Refuse Action = iota
	// Answer: an authoritative answer, Records (maybe empty: NODATA).
	Answer
	// NXDomain: the name does not exist (or the asker may not see it).
	NXDomain
	// Forward the query to Targets, in order until one answers.
	Forward
	// Drop: no answer at all. An asker outside the tunnels, the
	// point-to-site clients and the local network gets nothing back: no
	// reflection or amplification towards a spoofed source, and no oracle
	// of what the server knows.
	Drop
)

var actionNames = [...]string{"refuse", "answer", "nxdomain", "forward", "drop"}

func (a Action) String() string { return actionNames[a] }

// Decision is the answer to one question.
type Decision struct {
	Action Action
	// Records answer the question (Answer).
	Records []dns.RR
	// Authority holds the zone's SOA for negative answers.
	Authority []dns.RR
	// Targets are where to forward (Forward); Via is the source address
	// to send from ("" invalid: the kernel chooses).
	Targets []netip.AddrPort
	Via     netip.Addr
	// Filter: a forwarded answer must pass FilterForwarded for the asker
	// (the asker is a client and the answer names a peer's clients).
	Filter bool
	// Ingress: a forwarded answer from a peer with NAT rules passes
	// MapForwarded first, so the filter and the asker see this side's
	// addresses.
	Ingress []nat.Rule
	// Why explains a refusal or NXDOMAIN for the debug log.
	Why string
}

// Decide answers a question for name (any case, with or without the
// root's dot) of type qtype (class IN) from the asker at asker.
//
// Rules:
//   - Outside askers get no answer (Drop).
//   - In the gateway's own zone: the apex has SOA and NS; Gateway.Zone has
//     the tunnel address; <client>.zone has the addresses of that client
//     visible to the asker; a client none of whose addresses are visible
//     does not exist (NXDOMAIN, as for an unknown name).
//   - In a peer's zone: clients and the local network are forwarded to
//     that peer's tunnel address, from our tunnel address (through the
//     tunnel); the answer is filtered for a client asker. Other askers are
//     refused (no transit: a chain of gateways never loops).
//   - Any other name: clients and the local network are forwarded to the
//     upstream resolvers, if any; otherwise, and for other askers, refused.
func Decide(z *zone.Zone, d Directory, asker netip.Addr, name string, qtype uint16) Decision {
	asker = asker.Unmap()
	kind := Classify(z, d, asker)
	if kind == Outside {
		return Decision{Action: Drop, Why: "asker is neither a client nor in a local or peered network"}
	}
	name = dns.CanonicalName(name)
	if label, ok := under(name, z.Zone); ok {
		return own(z, d, kind, asker, name, label, qtype)
	}
	local := kind == Client || kind == Local
	if p := peerFor(z, name); p != nil {
		if !local {
			return Decision{Action: Refuse, Why: "a peered network's query for another peer's zone (no transit)"}
		}
		dec := Decision{Action: Forward, Via: z.TunnelAddress, Filter: kind == Client, Ingress: p.Ingress}
		for _, q := range z.Peers {
			if q.Zone == p.Zone {
				dec.Targets = append(dec.Targets, netip.AddrPortFrom(q.Addr, 53))
			}
		}
		return dec
	}
	if !local || len(z.Upstream) == 0 {
		return Decision{Action: Refuse, Why: "not in a served zone and no upstream for this asker"}
	}
	return Decision{Action: Forward, Targets: slices.Clone(z.Upstream)}
}

// under reports whether name lies in zone (both canonical) and returns
// its label relative to the zone ("" for the apex).
func under(name, zone string) (string, bool) {
	if zone == "" {
		return "", false
	}
	if name == zone {
		return "", true
	}
	l, ok := strings.CutSuffix(name, "."+zone)
	return l, ok
}

// peerFor returns the peer of z whose zone holds name (the longest match).
func peerFor(z *zone.Zone, name string) *zone.Peer {
	var best *zone.Peer
	for i := range z.Peers {
		p := &z.Peers[i]
		if _, ok := under(name, p.Zone); ok && (best == nil || len(p.Zone) > len(best.Zone)) {
			best = p
		}
	}
	return best
}

func own(z *zone.Zone, d Directory, kind AskerKind, asker netip.Addr, name, label string, qtype uint16) Decision {
	neg := []dns.RR{soa(z)}
	switch {
	case label == "":
		var rrs []dns.RR
		if qtype == dns.TypeSOA || qtype == dns.TypeANY {
			rrs = append(rrs, soa(z))
		}
		if qtype == dns.TypeNS || qtype == dns.TypeANY {
			rrs = append(rrs, &dns.NS{Hdr: hdr(z.Zone, dns.TypeNS), Ns: z.Gateway + "." + z.Zone})
		}
		return answer(rrs, neg)
	case label == z.Gateway:
		return answer(addrRecords(name, qtype, []netip.Addr{z.TunnelAddress}), neg)
	}
	addrs := d.Lookup(label)
	var vis []netip.Addr
	self := slices.Contains(addrs, asker)
	gateway := asker == z.TunnelAddress // the gateway itself reaches every client
	for _, a := range addrs {
		if self || gateway || visible(d, kind, asker, a) {
			vis = append(vis, a)
		}
	}
	if len(vis) == 0 {
		why := "no such client"
		if len(addrs) > 0 {
			why = "the group policy keeps the asker and this client apart"
		}
		return Decision{Action: NXDomain, Authority: neg, Why: why}
	}
	return answer(addrRecords(name, qtype, vis), neg)
}

// visible says whether a client address target may be told to the asker:
// a client asker sees the addresses its groups let it send to; the local
// or a peered network sees the clients whose groups let them send to the
// asker (so that a connection could be answered). A client always sees
// its own name and the gateway itself (its tunnel address) every name
// (see own).
func visible(d Directory, kind AskerKind, asker, target netip.Addr) bool {
	switch kind {
	case Client:
		return d.Reach(asker, target)
	case Local, FromPeer:
		return d.Reach(target, asker)
	}
	return false
}

func answer(rrs, neg []dns.RR) Decision {
	d := Decision{Action: Answer, Records: rrs}
	if len(rrs) == 0 {
		d.Authority = neg // NODATA
	}
	return d
}

func hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: TTL}
}

// addrRecords are the A (IPv4) or AAAA (IPv6) records of addrs that
// answer qtype (ANY: both).
func addrRecords(name string, qtype uint16, addrs []netip.Addr) []dns.RR {
	var rrs []dns.RR
	for _, a := range addrs {
		switch {
		case a.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
			rrs = append(rrs, &dns.A{Hdr: hdr(name, dns.TypeA), A: a.AsSlice()})
		case a.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
			rrs = append(rrs, &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA), AAAA: a.AsSlice()})
		}
	}
	return rrs
}

// soa is z's SOA record.
func soa(z *zone.Zone) dns.RR {
	return &dns.SOA{
		Hdr: hdr(z.Zone, dns.TypeSOA),
		Ns:  z.Gateway + "." + z.Zone, Mbox: "hostmaster." + z.Zone,
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: TTL,
	}
}

// FilterForwarded removes from a forwarded answer m the A and AAAA
// records a client asker may not reach under the group policy; when that
// removes every address record, the name does not exist for the asker
// (NXDOMAIN, answer section emptied). It reports whether it changed m.
func FilterForwarded(m *dns.Msg, d Directory, asker netip.Addr) bool {
	var kept []dns.RR
	had, removed := false, false
	for _, rr := range m.Answer {
		a, ok := rrAddr(rr)
		if !ok {
			kept = append(kept, rr)
			continue
		}
		had = true
		if a.IsValid() && d.Reach(asker.Unmap(), a.Unmap()) {
			kept = append(kept, rr)
		} else {
			removed = true
		}
	}
	if !removed {
		return false
	}
	setAnswer(m, had, kept)
	return true
}

// setAnswer makes kept m's answer; a name that had address records and
// keeps none answers NXDOMAIN, as if it did not exist.
func setAnswer(m *dns.Msg, had bool, kept []dns.RR) {
	if had && !slices.ContainsFunc(kept, isAddr) {
		m.Rcode = dns.RcodeNameError
		m.Answer = nil
		return
	}
	m.Answer = kept
}

// rrAddr is the address of an A or AAAA record (invalid if the record
// holds none); false for other records.
func rrAddr(rr dns.RR) (netip.Addr, bool) {
	var a netip.Addr
	switch r := rr.(type) {
	case *dns.A:
		a, _ = netip.AddrFromSlice(r.A.To4())
	case *dns.AAAA:
		a, _ = netip.AddrFromSlice(r.AAAA)
	default:
		return a, false
	}
	return a, true
}

func isAddr(rr dns.RR) bool {
	t := rr.Header().Rrtype
	return t == dns.TypeA || t == dns.TypeAAAA
}
