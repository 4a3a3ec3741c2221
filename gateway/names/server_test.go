package names

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vgate-project/vgate/gateway/names/zone"
)

// listen starts a server on addr at a free port.
func listen(t *testing.T, addr netip.Addr, z *zone.Zone, d func() Directory) (*Server, netip.AddrPort) {
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
	west := &zone.Zone{Zone: "west.internal.", Gateway: "net2", TunnelAddress: lo2, Peers: []zone.Peer{{Name: "net1", Addr: lo1}}}
	_, westAddr := listen(t, lo2, west, func() Directory { return *cur.Load() })

	up := &zone.Zone{Zone: "example.com.", Gateway: "www", TunnelAddress: ip("127.0.0.3"), Local: []netip.Prefix{pfx("127.0.0.0/8")}}
	_, upAddr := listen(t, ip("127.0.0.3"), up, func() Directory { return NoClients })

	east := &zone.Zone{Zone: "east.internal.", Gateway: "net1", TunnelAddress: lo1, Local: []netip.Prefix{pfx("127.0.0.1/32")},
		Peers:    []zone.Peer{{Name: "net2", Zone: "west.internal.", Addr: lo2}},
		Upstream: []netip.AddrPort{upAddr}}
	s, eastAddr := listen(t, lo1, east, func() Directory { return NoClients })
	s.setExchange(func(ctx context.Context, m *dns.Msg, target netip.AddrPort, via netip.Addr) (*dns.Msg, error) {
		if target.Addr() == lo2 {
			target = westAddr // the test's port, not 53
		}
		return exchange(ctx, m, target, via)
	})

	for _, net := range []string{"udp", "tcp"} {
		in := query(t, net, eastAddr, "net1.east.internal.", dns.TypeA)
		if in.Rcode != dns.RcodeSuccess || !in.Authoritative || len(in.Answer) != 1 || in.Answer[0].(*dns.A).A.String() != "127.0.0.1" {
			t.Errorf("%s own name: %v", net, in)
		}
		if !in.RecursionAvailable {
			t.Errorf("%s own name: no RA from a server that forwards for this asker", net)
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
	want := map[string]uint64{"answer": 2, "nxdomain": 0, "refused": 1, "forwarded": 3, "servfail": 0, "malformed": 0, "dropped": 0}
	if got := s.Counts(); !maps.Equal(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
}

// A query from outside — neither a client nor in the local or a peered
// network — gets nothing back, over UDP or TCP, not even for a malformed
// message (no reflection, no oracle); an inside asker is answered, and
// its TCP connections are bounded.
func TestServerOutsideDropped(t *testing.T) {
	lo1 := ip("127.0.0.1")
	z := &zone.Zone{Zone: "east.internal.", Gateway: "net1", TunnelAddress: lo1, Local: []netip.Prefix{pfx("127.0.0.1/32")},
		Peers: []zone.Peer{{Name: "net2", Addr: ip("127.0.0.2"), Spaces: []netip.Prefix{pfx("127.0.2.0/24")}}}}
	s, addr := listen(t, lo1, z, func() Directory { return NoClients })
	ask := func(network string, from netip.Addr, m *dns.Msg) (*dns.Msg, error) {
		d := &net.Dialer{Timeout: time.Second}
		if network == "udp" {
			d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0))
		} else {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))
		}
		c := &dns.Client{Net: network, Dialer: d, Timeout: 300 * time.Millisecond}
		in, _, err := c.Exchange(m, addr.String())
		return in, err
	}
	q := new(dns.Msg).SetQuestion("net1.east.internal.", dns.TypeA)
	bad := new(dns.Msg).SetQuestion("net1.east.internal.", dns.TypeA)
	bad.Question = append(bad.Question, bad.Question[0]) // two questions: FORMERR for an insider
	for _, network := range []string{"udp", "tcp"} {
		for _, from := range []netip.Addr{lo1, ip("127.0.2.9")} { // local, a peered network
			if in, err := ask(network, from, q); err != nil || in.Rcode != dns.RcodeSuccess {
				t.Errorf("%s from %v (inside): %v %v", network, from, in, err)
			}
		}
		if in, err := ask(network, lo1, bad); err != nil || in.Rcode != dns.RcodeFormatError {
			t.Errorf("%s malformed from inside: %v %v, want FORMERR", network, in, err)
		}
		for _, m := range []*dns.Msg{q, bad} {
			if in, err := ask(network, ip("127.0.0.9"), m); err == nil {
				t.Errorf("%s from outside answered: %v", network, in)
			}
		}
	}
	if got := s.Counts()["dropped"]; got != 4 {
		t.Errorf("dropped %d, want 4 (two UDP queries, two TCP connections)", got)
	}

	// TCP: one asker holds at most maxTCPPerAsker idle connections; the
	// next is closed at once, another asker still gets in.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	dial := func(from netip.Addr) net.Conn {
		d := &net.Dialer{Timeout: time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))}
		c, err := d.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for range maxTCPPerAsker {
		held = append(held, dial(lo1))
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.tcpLn.Open() < maxTCPPerAsker && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	over := dial(lo1)
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := over.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("connection %d of one asker not closed at once: %d bytes, %v", maxTCPPerAsker+1, n, err)
	}
	if in, err := ask("tcp", ip("127.0.2.9"), q); err != nil || in.Rcode != dns.RcodeSuccess {
		t.Errorf("another asker while the first holds its limit: %v %v", in, err)
	}
}

// One asker holds at most maxForwardsPerAsker forwarded queries: the next
// gets SERVFAIL at once, and another asker is still forwarded.
func TestServerForwardsPerAsker(t *testing.T) {
	lo1 := ip("127.0.0.1")
	z := &zone.Zone{Zone: "east.internal.", Gateway: "net1", TunnelAddress: lo1, Local: []netip.Prefix{pfx("127.0.0.0/8")},
		Upstream: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.53:53")}}
	s, addr := listen(t, lo1, z, func() Directory { return NoClients })
	release := make(chan struct{})
	var waiting atomic.Int32
	s.setExchange(func(ctx context.Context, m *dns.Msg, target netip.AddrPort, via netip.Addr) (*dns.Msg, error) {
		waiting.Add(1)
		select {
		case <-release: // the upstream answers
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return new(dns.Msg).SetReply(m), nil
	})
	ask := func(from netip.Addr) (*dns.Msg, error) {
		d := &net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0))}
		c := &dns.Client{Net: "udp", Dialer: d, Timeout: 3 * time.Second}
		in, _, err := c.Exchange(new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA), addr.String())
		return in, err
	}
	busy := ip("127.0.0.7")
	results := make(chan *dns.Msg, maxForwardsPerAsker)
	for range maxForwardsPerAsker {
		go func() {
			in, _ := ask(busy)
			results <- in
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for waiting.Load() < maxForwardsPerAsker && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if in, err := ask(busy); err != nil || in.Rcode != dns.RcodeServerFailure {
		t.Fatalf("query %d of one asker: %v %v, want SERVFAIL at once", maxForwardsPerAsker+1, in, err)
	}
	go func() {
		deadline := time.Now().Add(5 * time.Second)
		for waiting.Load() < maxForwardsPerAsker+1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		close(release)
	}()
	if in, err := ask(ip("127.0.0.8")); err != nil || in.Rcode != dns.RcodeSuccess {
		t.Fatalf("another asker while the first holds its forwards: %v %v", in, err)
	}
	for range maxForwardsPerAsker {
		if in := <-results; in == nil || in.Rcode != dns.RcodeSuccess {
			t.Errorf("a held forward: %v", in)
		}
	}
}
