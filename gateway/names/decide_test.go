package names

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/vgate-project/vgate/gateway/names/zone"
)

// fakeDir: clients by label; reach[src] lists what src may send to
// (prefixes).
type fakeDir struct {
	clients map[string][]netip.Addr
	reach   map[netip.Addr][]netip.Prefix
}

func (f fakeDir) Lookup(l string) []netip.Addr { return f.clients[l] }
func (f fakeDir) IsClient(a netip.Addr) bool {
	for _, as := range f.clients {
		if slices.Contains(as, a) {
			return true
		}
	}
	return false
}
func (f fakeDir) Reach(src, dst netip.Addr) bool { return inAny(dst, f.reach[src]) }

var (
	ip  = netip.MustParseAddr
	pfx = netip.MustParsePrefix
	// alice and bob share an interconnected group and reach net 1;
	// dave reaches net 1 only (not the pool).
	alice, alice6 = ip("172.16.201.1"), ip("fd00:c1::1")
	bob           = ip("172.16.201.2")
	dave          = ip("172.16.201.4")
	dir           = fakeDir{
		clients: map[string][]netip.Addr{"alice": {alice, alice6}, "bob": {bob}, "dave": {dave}, "lab.bob": {ip("172.16.201.9")}},
		reach: map[netip.Addr][]netip.Prefix{
			alice:  {pfx("10.1.0.0/16"), pfx("172.16.201.2/32"), pfx("172.16.201.9/32"), pfx("10.2.0.0/16"), pfx("172.16.202.0/24")},
			alice6: {},
			bob:    {pfx("10.1.0.0/16"), pfx("172.16.201.0/24")},
			dave:   {pfx("10.1.0.0/16")},
		},
	}
	eastZone = &zone.Zone{
		Zone: "east.internal.", Gateway: "net1", TunnelAddress: ip("10.1.255.254"),
		Local: []netip.Prefix{pfx("10.1.0.0/16")},
		Peers: []zone.Peer{
			{Name: "net2", Zone: "west.internal.", Addr: ip("10.2.255.254"), Spaces: []netip.Prefix{pfx("10.2.0.0/16"), pfx("172.16.202.0/24")}},
			{Name: "net2b", Zone: "west.internal.", Addr: ip("10.2.255.253"), Spaces: []netip.Prefix{pfx("10.2.0.0/16")}},
			{Name: "net3", Addr: ip("10.3.255.254"), Spaces: []netip.Prefix{pfx("10.3.0.0/16")}},
		},
		Upstream: []netip.AddrPort{netip.MustParseAddrPort("10.1.0.53:53")},
	}
)

// addrsOf lists the addresses of A/AAAA records.
func addrsOf(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch r := rr.(type) {
		case *dns.A:
			out = append(out, r.A.String())
		case *dns.AAAA:
			out = append(out, r.AAAA.String())
		default:
			out = append(out, dns.TypeToString[rr.Header().Rrtype])
		}
	}
	return out
}

func TestDecide(t *testing.T) {
	noUp := *eastZone
	noUp.Upstream = nil
	tests := []struct {
		name   string
		z      *zone.Zone
		asker  netip.Addr
		qname  string
		qtype  uint16
		action Action
		want   string // answer addresses, or forward targets, comma-separated
		filter bool
	}{
		{"client sees a client of an interconnected group", eastZone, alice, "bob.east.internal.", dns.TypeA, Answer, "172.16.201.2", false},
		{"case and missing dot", eastZone, alice, "BOB.East.Internal", dns.TypeA, Answer, "172.16.201.2", false},
		{"dotted client name", eastZone, alice, "lab.bob.east.internal.", dns.TypeA, Answer, "172.16.201.9", false},
		{"client may not reach dave: no such name", eastZone, alice, "dave.east.internal.", dns.TypeA, NXDomain, "", false},
		{"dave may not reach alice", eastZone, dave, "alice.east.internal.", dns.TypeA, NXDomain, "", false},
		{"unknown client", eastZone, alice, "nobody.east.internal.", dns.TypeA, NXDomain, "", false},
		{"a client always sees itself, both families", eastZone, alice, "alice.east.internal.", dns.TypeANY, Answer, "172.16.201.1,fd00:c1::1", false},
		{"AAAA of an IPv4-only visible client: NODATA", eastZone, alice, "bob.east.internal.", dns.TypeAAAA, Answer, "SOA", false},
		{"bob sees alice's IPv4 only (alice6 not in bob's reach)", eastZone, bob, "alice.east.internal.", dns.TypeANY, Answer, "172.16.201.1", false},
		{"local host sees clients that may send to it", eastZone, ip("10.1.0.2"), "dave.east.internal.", dns.TypeA, Answer, "172.16.201.4", false},
		{"local host sees only addresses that may send to it", eastZone, ip("10.1.0.2"), "alice.east.internal.", dns.TypeAAAA, Answer, "SOA", false},
		{"peer gateway: dave may not send to net 2", eastZone, ip("10.2.255.254"), "dave.east.internal.", dns.TypeA, NXDomain, "", false},
		{"peer gateway sees alice", eastZone, ip("10.2.255.254"), "alice.east.internal.", dns.TypeA, Answer, "172.16.201.1", false},
		{"the gateway itself sees every client", eastZone, ip("10.1.255.254"), "dave.east.internal.", dns.TypeA, Answer, "172.16.201.4", false},
		{"the gateway itself sees both families", eastZone, ip("10.1.255.254"), "alice.east.internal.", dns.TypeANY, Answer, "172.16.201.1,fd00:c1::1", false},
		{"gateway name", eastZone, dave, "net1.east.internal.", dns.TypeA, Answer, "10.1.255.254", false},
		{"gateway name AAAA: NODATA", eastZone, dave, "net1.east.internal.", dns.TypeAAAA, Answer, "SOA", false},
		{"apex SOA", eastZone, ip("10.1.0.2"), "east.internal.", dns.TypeSOA, Answer, "SOA", false},
		{"apex A: NODATA", eastZone, ip("10.1.0.2"), "east.internal.", dns.TypeA, Answer, "SOA", false},
		{"outside asker dropped even in the zone", eastZone, ip("198.18.0.9"), "net1.east.internal.", dns.TypeA, Drop, "", false},
		{"revoked client's old address is outside", eastZone, ip("172.16.201.7"), "net1.east.internal.", dns.TypeA, Drop, "", false},
		{"client: peer zone forwarded to both gateways of that network, filtered", eastZone, alice, "carol.west.internal.", dns.TypeA, Forward, "10.2.255.254:53,10.2.255.253:53", true},
		{"local: peer zone forwarded unfiltered", eastZone, ip("10.1.0.2"), "carol.west.internal.", dns.TypeA, Forward, "10.2.255.254:53,10.2.255.253:53", false},
		{"peer asking for a peer zone: no transit", eastZone, ip("10.3.0.5"), "carol.west.internal.", dns.TypeA, Refuse, "", false},
		{"peer asking for its own zone: no loop", eastZone, ip("10.2.255.254"), "carol.west.internal.", dns.TypeA, Refuse, "", false},
		{"client: other names upstream", eastZone, alice, "example.com.", dns.TypeA, Forward, "10.1.0.53:53", false},
		{"peer: no upstream recursion", eastZone, ip("10.2.0.9"), "example.com.", dns.TypeA, Refuse, "", false},
		{"no upstream: refused", &noUp, alice, "example.com.", dns.TypeA, Refuse, "", false},
		{"a name that only ends like the zone", eastZone, alice, "xeast.internal.", dns.TypeA, Forward, "10.1.0.53:53", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.z, dir, tt.asker, tt.qname, tt.qtype)
			if d.Action != tt.action {
				t.Fatalf("action %v (%s), want %v", d.Action, d.Why, tt.action)
			}
			var got []string
			switch d.Action {
			case Answer:
				got = addrsOf(d.Records)
				if len(got) == 0 {
					got = addrsOf(d.Authority)
				}
			case Forward:
				for _, ap := range d.Targets {
					got = append(got, ap.String())
				}
				if d.Filter != tt.filter {
					t.Errorf("filter %v, want %v", d.Filter, tt.filter)
				}
				if d.Targets[0].Addr() != eastZone.Upstream[0].Addr() && d.Via != eastZone.TunnelAddress {
					t.Errorf("forwarding to a peer from %v, want the tunnel address", d.Via)
				}
			case NXDomain:
				if len(d.Authority) != 1 || d.Authority[0].Header().Ttl != TTL {
					t.Errorf("NXDOMAIN without the SOA (TTL %d): %v", TTL, d.Authority)
				}
			}
			if s := strings.Join(got, ","); s != tt.want {
				t.Errorf("got %q, want %q", s, tt.want)
			}
			for _, rr := range d.Records {
				if rr.Header().Ttl != TTL {
					t.Errorf("record TTL %d, want %d", rr.Header().Ttl, TTL)
				}
			}
		})
	}
}

func TestFilterForwarded(t *testing.T) {
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name    string
		asker   netip.Addr
		answer  []dns.RR
		changed bool
		rcode   int
		want    string
	}{
		{"reachable kept", alice, []dns.RR{rr("carol.west.internal. 1 IN A 172.16.202.1")}, false, dns.RcodeSuccess, "172.16.202.1"},
		{"unreachable: NXDOMAIN", dave, []dns.RR{rr("carol.west.internal. 1 IN A 172.16.202.1")}, true, dns.RcodeNameError, ""},
		{"mixed: unreachable dropped", bob, []dns.RR{rr("x.west.internal. 1 IN A 10.1.0.9"), rr("x.west.internal. 1 IN A 172.16.202.1")}, true, dns.RcodeSuccess, "10.1.0.9"},
		{"no address records untouched", dave, []dns.RR{rr("west.internal. 1 IN TXT \"hi\"")}, false, dns.RcodeSuccess, "TXT"},
		{"CNAME to an unreachable address: NXDOMAIN", dave, []dns.RR{rr("a.west.internal. 1 IN CNAME b.west.internal."), rr("b.west.internal. 1 IN AAAA fd00:c2::1")}, true, dns.RcodeNameError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.Answer = tt.answer
			if got := FilterForwarded(m, dir, tt.asker); got != tt.changed {
				t.Errorf("changed %v, want %v", got, tt.changed)
			}
			if m.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode])
			}
			if s := strings.Join(addrsOf(m.Answer), ","); s != tt.want {
				t.Errorf("answer %q, want %q", s, tt.want)
			}
		})
	}
}

// FuzzDecide: any name from any asker gets a decision that keeps the
// rules: outside askers, and only they, get no answer; names of the own zone are never
// forwarded; an answer holds only the tunnel address or addresses of the
// named client; forwards of a peer zone go from the tunnel address.
func FuzzDecide(f *testing.F) {
	f.Add("bob.east.internal.", uint16(dns.TypeA), []byte{172, 16, 201, 1})
	f.Add("carol.west.internal", uint16(dns.TypeAAAA), []byte{10, 1, 0, 2})
	f.Add("EAST.internal", uint16(dns.TypeANY), []byte{10, 2, 255, 254})
	f.Add("..", uint16(0), []byte{198, 18, 0, 1})
	f.Add("a.b.c.lab.bob.east.internal.", uint16(dns.TypeA), []byte{0xfd, 0, 0xc1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, name string, qtype uint16, raw []byte) {
		asker, ok := netip.AddrFromSlice(raw)
		if !ok {
			return
		}
		d := Decide(eastZone, dir, asker, name, qtype)
		kind := Classify(eastZone, dir, asker)
		canon := dns.CanonicalName(name)
		label, own := under(canon, eastZone.Zone)
		switch {
		case (kind == Outside) != (d.Action == Drop):
			t.Fatalf("outside asker %v got %v", asker, d.Action)
		case own && d.Action == Forward:
			t.Fatalf("own-zone name %q forwarded", name)
		case d.Action == Forward && d.Filter && kind != Client:
			t.Fatalf("filter set for a %v asker", kind)
		}
		for _, rr := range d.Records {
			a, ok := rrAddr(rr)
			if !ok {
				continue
			}
			if a != eastZone.TunnelAddress && !slices.Contains(dir.Lookup(label), a) {
				t.Fatalf("%q answered with %v, which is neither the gateway nor that client", name, a)
			}
		}
	})
}

func TestRecursionAvailable(t *testing.T) {
	up := []netip.AddrPort{netip.MustParseAddrPort("10.1.0.53:53")}
	withPeerZone := []zone.Peer{{Name: "west", Zone: "west.internal."}}
	plainPeer := []zone.Peer{{Name: "west"}}
	for _, tc := range []struct {
		name string
		z    zone.Zone
		kind AskerKind
		want bool
	}{
		{"client, upstream", zone.Zone{Upstream: up}, Client, true},
		{"local, peer zone", zone.Zone{Peers: withPeerZone}, Local, true},
		{"client, nothing to forward", zone.Zone{Peers: plainPeer}, Client, false},
		{"peer, upstream: no transit", zone.Zone{Upstream: up, Peers: withPeerZone}, FromPeer, false},
		{"outside", zone.Zone{Upstream: up}, Outside, false},
	} {
		if got := RecursionAvailable(&tc.z, tc.kind); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
