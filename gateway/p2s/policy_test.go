package p2s

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"golang.zx2c4.com/wireguard/tun/tuntest"
)

var (
	mp = netip.MustParsePrefix
	ma = netip.MustParseAddr
)

// testPolicyInput: devs (interconnected) reach net 1 and 2; ops (not
// interconnected) reach net 9; alice, bob in devs; carol, dave in ops;
// erin in devs and ops; frank in a group the config does not define.
func testPolicyInput() PolicyInput {
	return PolicyInput{
		Groups: []Group{
			{Name: "devs", Allow: []netip.Prefix{mp("10.1.0.0/16"), mp("10.2.0.0/16"), mp("fd00:1::/48")}, Interconnected: true},
			{Name: "ops", Allow: []netip.Prefix{mp("10.9.0.0/16")}},
		},
		Pool: []netip.Prefix{mp("172.16.201.0/24"), mp("fd00:cafe::/64")},
		DNS:  []netip.Addr{ma("10.53.0.53")},
		Clients: []Client{
			{Name: "alice", Groups: []string{"devs"}, Addresses: []netip.Addr{ma("172.16.201.1"), ma("fd00:cafe::1")}},
			{Name: "bob", Groups: []string{"devs"}, Addresses: []netip.Addr{ma("172.16.201.2"), ma("fd00:cafe::2")}},
			{Name: "carol", Groups: []string{"ops"}, Addresses: []netip.Addr{ma("172.16.201.3"), ma("fd00:cafe::3")}},
			{Name: "dave", Groups: []string{"ops"}, Addresses: []netip.Addr{ma("172.16.201.4"), ma("fd00:cafe::4")}},
			{Name: "erin", Groups: []string{"ops", "devs"}, Addresses: []netip.Addr{ma("172.16.201.5"), ma("fd00:cafe::5")}},
			{Name: "frank", Groups: []string{"nosuch"}, Addresses: []netip.Addr{ma("172.16.201.6"), ma("fd00:cafe::6")}},
		},
	}
}

func TestPolicyDecide(t *testing.T) {
	p := NewPolicy(testPolicyInput())
	for _, tc := range []struct {
		src, dst string
		want     Verdict
	}{
		{"172.16.201.1", "10.1.0.2", Allow},                  // alice -> net 1
		{"172.16.201.1", "10.2.200.9", Allow},                // alice -> net 2
		{"fd00:cafe::1", "fd00:1::2", Allow},                 // alice IPv6
		{"fd00:cafe::1", "fd00:2::2", DenyDestination},       // not allowed over IPv6
		{"172.16.201.1", "10.9.0.2", DenyDestination},        // ops only
		{"172.16.201.1", "10.53.0.53", Allow},                // DNS is always reachable
		{"172.16.201.1", "172.16.201.2", Allow},              // alice -> bob: devs is interconnected
		{"fd00:cafe::2", "fd00:cafe::1", Allow},              // bob -> alice IPv6
		{"172.16.201.3", "10.9.1.1", Allow},                  // carol -> net 9
		{"172.16.201.3", "10.1.0.2", DenyDestination},        // carol -> net 1
		{"172.16.201.3", "172.16.201.4", DenyClient},         // carol -> dave: ops is not interconnected
		{"172.16.201.3", "172.16.201.1", DenyClient},         // carol -> alice: no shared group
		{"172.16.201.1", "172.16.201.3", DenyClient},         // alice -> carol: carol is not in devs
		{"172.16.201.5", "10.9.0.1", Allow},                  // erin: union of ops ...
		{"172.16.201.5", "10.1.0.1", Allow},                  // ... and devs
		{"172.16.201.5", "172.16.201.1", Allow},              // erin -> alice via devs
		{"172.16.201.1", "172.16.201.5", Allow},              // alice -> erin via devs
		{"172.16.201.5", "172.16.201.3", DenyClient},         // erin -> carol: ops not interconnected
		{"172.16.201.1", "172.16.201.77", DenyClient},        // unassigned pool address
		{"172.16.201.6", "10.1.0.2", DenyDestination},        // unknown group gives nothing
		{"172.16.201.99", "10.1.0.2", DenySource},            // not a client
		{"10.1.0.2", "10.1.0.3", DenySource},                 // not a client
		{"fd00:cafe::1", "::ffff:10.1.0.2", DenyDestination}, // 4-in-6 never matches IPv4
	} {
		if got := p.Decide(ma(tc.src), ma(tc.dst)); got != tc.want {
			t.Errorf("%s -> %s = %v, want %v", tc.src, tc.dst, got, tc.want)
		}
		if got := p.Check(packet(ma(tc.src), ma(tc.dst))); got != tc.want {
			t.Errorf("packet %s -> %s = %v, want %v", tc.src, tc.dst, got, tc.want)
		}
	}
}

// Client configs route exactly what the policy allows.
func TestAllowedIPs(t *testing.T) {
	in := testPolicyInput()
	for _, tc := range []struct {
		groups []string
		want   []string
	}{
		{[]string{"devs"}, []string{"10.1.0.0/16", "10.2.0.0/16", "10.53.0.53/32", "172.16.201.0/24", "fd00:1::/48", "fd00:cafe::/64"}},
		{[]string{"ops"}, []string{"10.9.0.0/16", "10.53.0.53/32"}},
		{[]string{"nosuch"}, []string{"10.53.0.53/32"}},
	} {
		var got []string
		for _, p := range AllowedIPs(in.Groups, tc.groups, in.Pool, in.DNS) {
			got = append(got, p.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("AllowedIPs(%v) = %v, want %v", tc.groups, got, tc.want)
		}
	}
}

func TestPolicyMalformed(t *testing.T) {
	p := NewPolicy(testPolicyInput())
	good := packet(ma("172.16.201.1"), ma("10.1.0.2"))
	short := good[:19]
	badLen := slices.Clone(good)
	binary.BigEndian.PutUint16(badLen[2:4], uint16(len(good)+1))
	badIHL := slices.Clone(good)
	badIHL[0] = 0x44
	v6 := packet(ma("fd00:cafe::1"), ma("fd00:1::2"))
	v6short := slices.Clone(v6)
	binary.BigEndian.PutUint16(v6short[4:6], 1000)
	for name, pkt := range map[string][]byte{
		"empty": nil, "short": short, "total length beyond packet": badLen, "ihl < 5": badIHL,
		"version 5": {0x50, 0, 0, 0}, "ipv6 payload beyond packet": v6short, "ipv6 short": v6[:39],
	} {
		if got := p.Check(pkt); got != DenyMalformed {
			t.Errorf("%s: %v, want malformed", name, got)
		}
	}
	// Trailing bytes after the IP packet (padding) are fine.
	if got := p.Check(append(slices.Clone(good), 0, 0)); got != Allow {
		t.Errorf("padded packet: %v", got)
	}
}

// packet returns an ICMP echo from src to dst (IPv4 or IPv6).
func packet(src, dst netip.Addr) []byte {
	if src.Is4() {
		return tuntest.Ping(dst, src)
	}
	b := make([]byte, 48)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:6], 8)
	b[6], b[7] = 58, 64
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	b[40] = 128
	return b
}

// slowDecide is the reference: the rules written out with linear scans.
// pkt is the packet (nil: addresses only), read by refTransport.
func slowDecide(in PolicyInput, src, dst netip.Addr, pkt []byte) Verdict {
	var me *Client
	for i := range in.Clients {
		if slices.Contains(in.Clients[i].Addresses, src) {
			me = &in.Clients[i]
		}
	}
	if me == nil {
		return DenySource
	}
	inGroup := func(c *Client, g Group) bool { return slices.Contains(c.Groups, g.Name) }
	for _, q := range in.Pool {
		if !q.Contains(dst) {
			continue
		}
		for i := range in.Clients {
			o := &in.Clients[i]
			if !slices.Contains(o.Addresses, dst) {
				continue
			}
			for _, g := range in.Groups {
				if g.Interconnected && inGroup(me, g) && inGroup(o, g) {
					return Allow
				}
			}
		}
		return DenyClient
	}
	allowed := slices.Contains(in.DNS, dst)
	for _, g := range in.Groups {
		if inGroup(me, g) {
			for _, q := range g.Allow {
				if q.Contains(dst) {
					allowed = true
				}
			}
		}
	}
	if !allowed {
		return DenyDestination
	}
	if !slices.Contains(in.Self, dst) {
		return Allow
	}
	// The gateway itself: ping, DNS on a dns address, groups' services.
	proto, port, ok := refTransport(pkt)
	if !ok {
		return DenyGatewayService
	}
	icmp := (dst.Is4() && proto == 1) || (dst.Is6() && proto == 58)
	if icmp && ((dst.Is4() && port == 8) || (dst.Is6() && port == 128)) {
		return Allow
	}
	if (proto == 6 || proto == 17) && port == 53 && slices.Contains(in.DNS, dst) {
		return Allow
	}
	for _, g := range in.Groups {
		if !inGroup(me, g) {
			continue
		}
		for _, svc := range g.Services {
			switch {
			case svc.Proto == "icmp" && icmp,
				svc.Proto == "tcp" && proto == 6 && svc.FirstPort <= port && port <= svc.LastPort,
				svc.Proto == "udp" && proto == 17 && svc.FirstPort <= port && port <= svc.LastPort:
				return Allow
			}
		}
	}
	return DenyGatewayService
}

// refTransport finds the transport header the RFCs' way (IPv4: after
// IHL words unless the fragment offset is set; IPv6: following at most
// 8 extension headers by their length fields, RFC 8200 §4 and RFC 4302),
// independently of transport.
func refTransport(pkt []byte) (proto uint8, port uint16, ok bool) {
	if len(pkt) == 0 {
		return 0, 0, false
	}
	var l4 []byte
	if pkt[0]>>4 == 4 {
		fragOffset := (int(pkt[6])<<8 | int(pkt[7])) & 0x1fff
		if fragOffset > 0 {
			return 0, 0, false
		}
		proto = pkt[9]
		l4 = pkt[int(pkt[0]&15)*4 : int(pkt[2])<<8|int(pkt[3])]
	} else {
		rest := pkt[40 : 40+(int(pkt[4])<<8|int(pkt[5]))]
		proto = pkt[6]
		n := 0
		for proto == 0 || proto == 43 || proto == 60 || proto == 44 || proto == 51 {
			n++
			if n > 8 || len(rest) < 2 {
				return 0, 0, false
			}
			var size int
			switch proto {
			case 44:
				if len(rest) < 8 || (int(rest[2])<<8|int(rest[3]))>>3 > 0 {
					return 0, 0, false
				}
				size = 8
			case 51:
				size = 4 * (int(rest[1]) + 2)
			default:
				size = 8 * (int(rest[1]) + 1)
			}
			if size > len(rest) {
				return 0, 0, false
			}
			proto, rest = rest[0], rest[size:]
		}
		l4 = rest
	}
	switch proto {
	case 6, 17:
		if len(l4) < 4 {
			return 0, 0, false
		}
		return proto, uint16(l4[2])<<8 | uint16(l4[3]), true
	case 1, 58:
		if len(l4) == 0 {
			return 0, 0, false
		}
		return proto, uint16(l4[0]), true
	}
	return proto, 0, true
}

// refAddrs parses the addresses the way the RFCs lay them out, without
// sharing code with addrs.
func refAddrs(pkt []byte) (netip.Addr, netip.Addr, bool) {
	if len(pkt) >= 20 && pkt[0]>>4 == 4 {
		ihl, total := int(pkt[0]&15)*4, int(pkt[2])<<8|int(pkt[3])
		if ihl >= 20 && total >= ihl && total <= len(pkt) {
			s, _ := netip.AddrFromSlice(pkt[12:16])
			d, _ := netip.AddrFromSlice(pkt[16:20])
			return s, d, true
		}
	}
	if len(pkt) >= 40 && pkt[0]>>4 == 6 && 40+(int(pkt[4])<<8|int(pkt[5])) <= len(pkt) {
		s, _ := netip.AddrFromSlice(pkt[8:24])
		d, _ := netip.AddrFromSlice(pkt[24:40])
		return s, d, true
	}
	return netip.Addr{}, netip.Addr{}, false
}

// FuzzPolicyCheck: any byte string gets a verdict without panicking, and
// that verdict is the reference's for the header's addresses.
func FuzzPolicyCheck(f *testing.F) {
	for _, pair := range [][2]string{
		{"172.16.201.1", "10.1.0.2"}, {"172.16.201.3", "172.16.201.4"}, {"172.16.201.5", "172.16.201.1"},
		{"fd00:cafe::1", "fd00:1::2"}, {"fd00:cafe::3", "fd00:cafe::1"}, {"172.16.201.99", "10.1.0.2"},
		{"172.16.201.1", "10.53.0.53"}, {"172.16.201.3", "10.1.0.2"},
	} {
		f.Add(packet(ma(pair[0]), ma(pair[1])))
	}
	f.Add([]byte{0x45})
	f.Add([]byte{})
	// The gateway itself: services, DNS, fragments, extension headers.
	for _, pkt := range [][]byte{
		ipPacket(ma("172.16.201.1"), ma("10.1.255.254"), protoTCP, tcpTo(179)),
		ipPacket(ma("172.16.201.1"), ma("10.1.255.254"), protoTCP, tcpTo(22)),
		ipPacket(ma("172.16.201.5"), ma("10.1.0.1"), protoUDP, udpTo(161)),
		ipPacket(ma("172.16.201.3"), ma("10.53.0.53"), protoUDP, udpTo(53)),
		ipPacket(ma("172.16.201.5"), ma("10.1.255.254"), protoICMP, icmpType(13)),
		ipPacket(ma("fd00:cafe::1"), ma("fd00:1::1"), protoICMPv6, icmpType(icmpv6Echo), hopByHop, destOpts),
		ipPacket(ma("fd00:cafe::1"), ma("fd00:1::1"), protoTCP, tcpTo(22), firstFrag),
		ipPacket(ma("fd00:cafe::1"), ma("fd00:1::1"), protoTCP, tcpTo(22), laterFrag),
		ipPacket(ma("fd00:cafe::5"), ma("fd00:1::1"), protoTCP, tcpTo(22), []byte{51, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
	} {
		f.Add(pkt)
	}
	in := testSelfInput()
	p := NewPolicy(in)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		got := p.Check(pkt)
		src, dst, ok := refAddrs(pkt)
		if !ok {
			if got != DenyMalformed {
				t.Fatalf("unparseable packet % x got %v", pkt, got)
			}
			return
		}
		if want := slowDecide(in, src, dst, pkt); got != want {
			t.Fatalf("%s -> %s: %v, reference says %v", src, dst, got, want)
		}
	})
}

// Randomized differential test over the pool and allow edges.
func TestPolicyMatchesReference(t *testing.T) {
	in := testSelfInput()
	p := NewPolicy(in)
	var addrs []netip.Addr
	for _, c := range in.Clients {
		addrs = append(addrs, c.Addresses...)
	}
	addrs = append(addrs, in.Self...)
	for _, s := range []string{"10.0.255.255", "10.1.0.0", "10.2.255.255", "10.3.0.0", "10.9.0.0", "10.53.0.52", "10.53.0.53",
		"10.53.0.54", "172.16.200.255", "172.16.201.0", "172.16.201.255", "172.16.202.0", "fd00:1::", "fd00:1:ffff:ffff:ffff:ffff:ffff:ffff",
		"fd00:2::", "fd00:cafe::", "fd00:cafe:0:1::", "::ffff:10.1.0.1"} {
		addrs = append(addrs, ma(s))
	}
	for _, s := range addrs {
		for _, d := range addrs {
			if got, want := p.Decide(s, d), slowDecide(in, s, d, nil); got != want {
				t.Errorf("%s -> %s: %v, reference %v", s, d, got, want)
			}
			if s.Is4() != d.Is4() {
				continue
			}
			for _, pkt := range [][]byte{
				ipPacket(s, d, protoTCP, tcpTo(22)), ipPacket(s, d, protoTCP, tcpTo(179)), ipPacket(s, d, protoUDP, udpTo(53)),
				ipPacket(s, d, protoUDP, udpTo(162)), ipPacket(s, d, protoICMP, icmpType(8)), ipPacket(s, d, protoICMPv6, icmpType(128)),
				ipPacket(s, d, protoICMP, icmpType(13)),
			} {
				if got, want := p.Check(pkt), slowDecide(in, s, d, pkt); got != want {
					t.Errorf("packet % x: %v, reference %v", pkt, got, want)
				}
			}
		}
	}
}

func TestCheckDoesNotAllocate(t *testing.T) {
	p := NewPolicy(testPolicyInput())
	pkts := [][]byte{
		packet(ma("172.16.201.1"), ma("10.1.0.2")), packet(ma("172.16.201.3"), ma("172.16.201.4")),
		packet(ma("fd00:cafe::1"), ma("fd00:1::2")), packet(ma("fd00:cafe::9"), ma("fd00:1::2")),
	}
	if n := testing.AllocsPerRun(1000, func() {
		for _, b := range pkts {
			p.Check(b)
		}
	}); n != 0 {
		t.Fatalf("Check allocates %v times per run", n)
	}
}

func BenchmarkPolicyCheck(b *testing.B) {
	in := testSelfInput()
	// A realistic policy: 1,000 clients in 4 groups.
	for i := 0; i < 1000; i++ {
		a := netip.AddrFrom4([4]byte{172, 16, 200 + byte(i/250), 10 + byte(i%250)})
		in.Clients = append(in.Clients, Client{Name: "c" + a.String(), Groups: []string{"devs"}, Addresses: []netip.Addr{a}})
	}
	in.Pool = append(in.Pool, mp("172.16.200.0/22"))
	p := NewPolicy(in)
	for _, tc := range []struct {
		name     string
		src, dst string
	}{
		{"v4-allow", "172.16.201.1", "10.2.3.4"},
		{"v4-deny", "172.16.201.3", "10.1.0.2"},
		{"v4-client", "172.16.201.1", "172.16.201.2"},
		{"v6-allow", "fd00:cafe::1", "fd00:1::2"},
		{"v4-gateway-bgp", "172.16.201.1", "10.1.255.254"},
		{"v6-gateway-ping", "fd00:cafe::1", "fd00:1::1"},
	} {
		pkt := packet(ma(tc.src), ma(tc.dst))
		if tc.name == "v4-gateway-bgp" {
			pkt = ipPacket(ma(tc.src), ma(tc.dst), protoTCP, tcpTo(179))
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			for b.Loop() {
				p.Check(pkt)
			}
		})
	}
}
