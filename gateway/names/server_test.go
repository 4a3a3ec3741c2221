package names

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// listen starts a server on addr at a free port.
func listen(t *testing.T, addr netip.Addr, z *Zone, d func() Directory) (*Server, netip.AddrPort) {
	t.Helper()
	for port := uint16(20053); port < 20153; port++ {
		s, err := Listen(addr, port, z, d, slog.New(slog.DiscardHandler))
		if err == nil {
			t.Cleanup(func() { s.Close() })
			return s, netip.AddrPortFrom(addr, port)
		}
	}
	t.Fatal("no free port")
	return nil, netip.AddrPort{}
}

func query(t *testing.T, net string, server netip.AddrPort, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: net}
	in, _, err := c.Exchange(m, server.String())
	if err != nil {
		t.Fatalf("%s %s: %v", net, name, err)
	}
	return in
}

// One server answers its zone, forwards a peer's zone to a second server
// (which sees it as that peer and answers), forwards other names to an
// upstream, and stops answering a client the directory no longer has.
func TestServer(t *testing.T) {
	lo1, lo2 := ip("127.0.0.1"), ip("127.0.0.2")
	var cur atomic.Pointer[fakeDir]
	cur.Store(&fakeDir{clients: map[string][]netip.Addr{"carol": {ip("172.16.202.1")}}, reach: map[netip.Addr][]netip.Prefix{ip("172.16.202.1"): {pfx("127.0.0.0/8")}}})
	west := &Zone{Zone: "west.internal.", Gateway: "net2", TunnelAddress: lo2, Peers: []Peer{{Name: "net1", Addr: lo1}}}
	_, westAddr := listen(t, lo2, west, func() Directory { return *cur.Load() })

	up := &Zone{Zone: "example.com.", Gateway: "www", TunnelAddress: ip("127.0.0.3"), Local: []netip.Prefix{pfx("127.0.0.0/8")}}
	_, upAddr := listen(t, ip("127.0.0.3"), up, func() Directory { return NoClients })

	east := &Zone{Zone: "east.internal.", Gateway: "net1", TunnelAddress: lo1, Local: []netip.Prefix{pfx("127.0.0.1/32")},
		Peers:    []Peer{{Name: "net2", Zone: "west.internal.", Addr: lo2}},
		Upstream: []netip.AddrPort{upAddr}}
	s, eastAddr := listen(t, lo1, east, func() Directory { return NoClients })
	s.exchange = func(ctx context.Context, m *dns.Msg, target netip.AddrPort, via netip.Addr) (*dns.Msg, error) {
		if target.Addr() == lo2 {
			target = westAddr // the test's port, not 53
		}
		return exchange(ctx, m, target, via)
	}

	for _, net := range []string{"udp", "tcp"} {
		in := query(t, net, eastAddr, "net1.east.internal.", dns.TypeA)
		if in.Rcode != dns.RcodeSuccess || !in.Authoritative || len(in.Answer) != 1 || in.Answer[0].(*dns.A).A.String() != "127.0.0.1" {
			t.Errorf("%s own name: %v", net, in)
		}
	}
	in := query(t, "udp", eastAddr, "carol.west.internal.", dns.TypeA)
	if in.Rcode != dns.RcodeSuccess || len(in.Answer) != 1 || in.Answer[0].(*dns.A).A.String() != "172.16.202.1" {
		t.Fatalf("peer zone through the forwarder: %v", in)
	}
	in = query(t, "udp", eastAddr, "www.example.com.", dns.TypeA)
	if in.Rcode != dns.RcodeSuccess || len(in.Answer) != 1 || in.Answer[0].(*dns.A).A.String() != "127.0.0.3" {
		t.Fatalf("upstream: %v", in)
	}
	// carol is revoked: the next query does not find her.
	cur.Store(&fakeDir{})
	if in = query(t, "udp", eastAddr, "carol.west.internal.", dns.TypeA); in.Rcode != dns.RcodeNameError {
		t.Fatalf("revoked client: rcode %s, want NXDOMAIN", dns.RcodeToString[in.Rcode])
	}
	// A zone change applies at once: no upstream, refused.
	z2 := *east
	z2.Upstream = nil
	s.SetZone(&z2)
	if in = query(t, "udp", eastAddr, "www.example.com.", dns.TypeA); in.Rcode != dns.RcodeRefused {
		t.Fatalf("without upstream: rcode %s, want REFUSED", dns.RcodeToString[in.Rcode])
	}
	want := map[string]uint64{"answer": 2, "nxdomain": 0, "refused": 1, "forwarded": 3, "servfail": 0, "malformed": 0}
	if got := s.Counts(); !maps.Equal(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
}
