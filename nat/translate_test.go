package nat

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// The rules of the tests: a branch network 10.1.0.0/16 (fd01::/48) that
// this side sees as 100.65.0.0/16 (fd65::/48), and this side's
// 10.9.0.0/16 (fd09::/48), which the branch sees as 100.99.0.0/16
// (fd99::/48).
var testRules = Rules{
	Ingress: []Rule{
		{Internal: pfx("10.1.0.0/16"), External: pfx("100.65.0.0/16")},
		{Internal: pfx("fd01::/48"), External: pfx("fd65::/48")},
	},
	Egress: []Rule{
		{Internal: pfx("10.9.0.0/16"), External: pfx("100.99.0.0/16")},
		{Internal: pfx("fd09::/48"), External: pfx("fd99::/48")},
	},
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func mustCompile(t testing.TB, r Rules) *Translator {
	t.Helper()
	tr, err := Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// gopacket builds the packets of the table (checksums computed by
// gopacket, not by the code under test).
func build(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// ipLayer is the network layer from src to dst carrying proto.
func ipLayer(src, dst string, proto layers.IPProtocol) (gopacket.SerializableLayer, gopacket.NetworkLayer) {
	s, d := net.ParseIP(src), net.ParseIP(dst)
	if s.To4() != nil {
		ip := &layers.IPv4{Version: 4, TTL: 64, Id: 0x1234, Flags: layers.IPv4DontFragment, Protocol: proto, SrcIP: s.To4(), DstIP: d.To4()}
		return ip, ip
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: s, DstIP: d}
	return ip, ip
}

func tcpPkt(t testing.TB, src, dst string) []byte {
	ip, nl := ipLayer(src, dst, layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 0x01020304, Ack: 0x0a0b0c0d, ACK: true, PSH: true, Window: 501}
	tcp.SetNetworkLayerForChecksum(nl)
	return build(t, ip, tcp, gopacket.Payload(bytes.Repeat([]byte("payload!"), 20)))
}

func udpPkt(t testing.TB, src, dst string) []byte {
	ip, nl := ipLayer(src, dst, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: 33434, DstPort: 33435}
	udp.SetNetworkLayerForChecksum(nl)
	return build(t, ip, udp, gopacket.Payload([]byte("traceroute probe data")))
}

// udpNoCsum is an IPv4 UDP datagram without a checksum (zero).
func udpNoCsum(t testing.TB, src, dst string) []byte {
	p := udpPkt(t, src, dst)
	p[20+6], p[20+7] = 0, 0
	return p
}

func echoPkt(t testing.TB, src, dst string) []byte {
	if net.ParseIP(src).To4() != nil {
		ip, _ := ipLayer(src, dst, layers.IPProtocolICMPv4)
		return build(t, ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1}, gopacket.Payload([]byte("ping")))
	}
	ip, nl := ipLayer(src, dst, layers.IPProtocolICMPv6)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
	icmp.SetNetworkLayerForChecksum(nl)
	return build(t, ip, icmp, &layers.ICMPv6Echo{Identifier: 7, SeqNumber: 1}, gopacket.Payload([]byte("ping")))
}

// icmpErr is an ICMP error from src to dst quoting the first n bytes of
// inner: "fragmentation needed" (IPv4) or "packet too big" (IPv6), MTU 1400.
func icmpErr(t testing.TB, src, dst string, inner []byte, n int) []byte {
	inner = inner[:min(n, len(inner))]
	if net.ParseIP(src).To4() != nil {
		ip, _ := ipLayer(src, dst, layers.IPProtocolICMPv4)
		return build(t, ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded), Seq: 1400}, gopacket.Payload(inner))
	}
	ip, nl := ipLayer(src, dst, layers.IPProtocolICMPv6)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0)}
	icmp.SetNetworkLayerForChecksum(nl)
	mtu := make([]byte, 4)
	binary.BigEndian.PutUint32(mtu, 1400)
	return build(t, ip, icmp, gopacket.Payload(append(mtu, inner...)))
}

// timeExceeded is traceroute's answer: TTL exceeded in transit, quoting
// the first n bytes of inner.
func timeExceeded(t testing.TB, src, dst string, inner []byte, n int) []byte {
	inner = inner[:min(n, len(inner))]
	if net.ParseIP(src).To4() != nil {
		ip, _ := ipLayer(src, dst, layers.IPProtocolICMPv4)
		return build(t, ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeTimeExceeded, 0)}, gopacket.Payload(inner))
	}
	ip, nl := ipLayer(src, dst, layers.IPProtocolICMPv6)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeTimeExceeded, 0)}
	icmp.SetNetworkLayerForChecksum(nl)
	return build(t, ip, icmp, gopacket.Payload(append(make([]byte, 4), inner...)))
}

// Each case translates a packet built by gopacket and compares it with the
// packet gopacket builds with the expected addresses: every checksum of
// the result was computed from scratch by gopacket, none incrementally.
func TestTranslateTable(t *testing.T) {
	tr := mustCompile(t, testRules)
	ingressOnly := mustCompile(t, Rules{Ingress: testRules.Ingress})
	type tc struct {
		name     string
		tr       *Translator
		out      bool // Outbound, else Inbound
		in, want []byte
		verdict  Verdict
		src, dst int32 // rule IDs
	}
	// IDs: ingress 0 (v4), 1 (v6); egress 2 (v4), 3 (v6).
	cases := []tc{
		{"tcp4 into the tunnel", tr, true, tcpPkt(t, "10.9.0.5", "100.65.0.2"), tcpPkt(t, "100.99.0.5", "10.1.0.2"), Translated, 2, 0},
		{"tcp4 out of the tunnel", tr, false, tcpPkt(t, "10.1.0.2", "100.99.0.5"), tcpPkt(t, "100.65.0.2", "10.9.0.5"), Translated, 0, 2},
		{"tcp6 into the tunnel", tr, true, tcpPkt(t, "fd09::5", "fd65::2"), tcpPkt(t, "fd99::5", "fd01::2"), Translated, 3, 1},
		{"tcp6 out of the tunnel", tr, false, tcpPkt(t, "fd01:0:0:7::2", "fd99::5"), tcpPkt(t, "fd65:0:0:7::2", "fd09::5"), Translated, 1, 3},
		{"udp4", tr, true, udpPkt(t, "10.9.3.4", "100.65.200.1"), udpPkt(t, "100.99.3.4", "10.1.200.1"), Translated, 2, 0},
		{"udp6", tr, false, udpPkt(t, "fd01::1:2", "fd99::ffff"), udpPkt(t, "fd65::1:2", "fd09::ffff"), Translated, 1, 3},
		{"udp4 without checksum stays without", tr, true, udpNoCsum(t, "10.9.0.5", "100.65.0.2"), udpNoCsum(t, "100.99.0.5", "10.1.0.2"), Translated, 2, 0},
		{"icmp4 echo", tr, true, echoPkt(t, "10.9.0.5", "100.65.0.2"), echoPkt(t, "100.99.0.5", "10.1.0.2"), Translated, 2, 0},
		{"icmp6 echo (pseudo-header)", tr, true, echoPkt(t, "fd09::5", "fd65::2"), echoPkt(t, "fd99::5", "fd01::2"), Translated, 3, 1},
		{"only the destination maps", ingressOnly, true, tcpPkt(t, "10.9.0.5", "100.65.0.2"), tcpPkt(t, "10.9.0.5", "10.1.0.2"), Translated, -1, 0},
		{"only the source maps", ingressOnly, false, tcpPkt(t, "10.1.0.2", "10.9.0.5"), tcpPkt(t, "100.65.0.2", "10.9.0.5"), Translated, 0, -1},

		// PMTU discovery: a router on the branch side tells this side's
		// host its packet was too big. Outer and quote are translated
		// (the quote the opposite way: it is this side's packet).
		{"frag needed from the branch", tr, false,
			icmpErr(t, "10.1.0.1", "100.99.0.5", tcpPkt(t, "100.99.0.5", "10.1.0.2"), 28),
			icmpErr(t, "100.65.0.1", "10.9.0.5", tcpPkt(t, "10.9.0.5", "100.65.0.2"), 28), Translated, 0, 2},
		{"frag needed quoting the whole tcp header", tr, false,
			icmpErr(t, "10.1.0.1", "100.99.0.5", tcpPkt(t, "100.99.0.5", "10.1.0.2"), 548),
			icmpErr(t, "100.65.0.1", "10.9.0.5", tcpPkt(t, "10.9.0.5", "100.65.0.2"), 548), Translated, 0, 2},
		// From the remote gateway's own address, which no rule maps:
		// only the quote is translated.
		{"frag needed from an unmapped router", ingressOnly, false,
			icmpErr(t, "169.254.0.2", "10.9.0.5", tcpPkt(t, "10.9.0.5", "10.1.0.2"), 60),
			icmpErr(t, "169.254.0.2", "10.9.0.5", tcpPkt(t, "10.9.0.5", "100.65.0.2"), 60), Translated, 0, -1},
		{"packet too big from the branch", tr, false,
			icmpErr(t, "fd01::1", "fd99::5", tcpPkt(t, "fd99::5", "fd01::2"), 1232),
			icmpErr(t, "fd65::1", "fd09::5", tcpPkt(t, "fd09::5", "fd65::2"), 1232), Translated, 1, 3},
		{"packet too big from an unmapped router", ingressOnly, false,
			icmpErr(t, "fe80::1", "fd09::5", tcpPkt(t, "fd09::5", "fd01::2"), 100),
			icmpErr(t, "fe80::1", "fd09::5", tcpPkt(t, "fd09::5", "fd65::2"), 100), Translated, 1, -1},
		// traceroute: TTL exceeded quoting the UDP probe (its checksum
		// is in the 8 quoted bytes).
		{"time exceeded udp4", tr, false,
			timeExceeded(t, "10.1.7.1", "100.99.0.5", udpPkt(t, "100.99.0.5", "10.1.0.2"), 28),
			timeExceeded(t, "100.65.7.1", "10.9.0.5", udpPkt(t, "10.9.0.5", "100.65.0.2"), 28), Translated, 0, 2},
		{"time exceeded udp6", tr, false,
			timeExceeded(t, "fd01::7:1", "fd99::5", udpPkt(t, "fd99::5", "fd01::2"), 48),
			timeExceeded(t, "fd65::7:1", "fd09::5", udpPkt(t, "fd09::5", "fd65::2"), 48), Translated, 1, 3},
		{"time exceeded quoting icmp6 echo", tr, false,
			timeExceeded(t, "fd01::7:1", "fd99::5", echoPkt(t, "fd99::5", "fd01::2"), 200),
			timeExceeded(t, "fd65::7:1", "fd09::5", echoPkt(t, "fd09::5", "fd65::2"), 200), Translated, 1, 3},
		// This side's router answers the branch's packet (into the tunnel).
		{"time exceeded into the tunnel", tr, true,
			timeExceeded(t, "10.9.0.1", "100.65.0.2", udpPkt(t, "100.65.0.2", "10.9.8.8"), 28),
			timeExceeded(t, "100.99.0.1", "10.1.0.2", udpPkt(t, "10.1.0.2", "100.99.8.8"), 28), Translated, 2, 0},

		{"unmapped packet", tr, true, tcpPkt(t, "10.8.0.5", "10.7.0.2"), nil, Unchanged, -1, -1},
		{"unmapped family", ingressOnly, true, tcpPkt(t, "fd09::5", "fd07::2"), nil, Unchanged, -1, -1},
		{"not ip", tr, true, []byte{0x00, 1, 2, 3}, nil, Unchanged, -1, -1},
		{"empty", tr, true, []byte{}, nil, Unchanged, -1, -1},
		{"short ipv4", tr, true, tcpPkt(t, "10.9.0.5", "100.65.0.2")[:19], nil, Unchanged, -1, -1},
		// The branch sends from an address in the range its own addresses
		// are shown as: translated, it would pass for 10.1.0.7.
		{"ambiguous source", tr, false, tcpPkt(t, "100.65.0.7", "100.99.0.5"), nil, Ambiguous, -1, -1},
		{"ambiguous destination", tr, true, tcpPkt(t, "100.99.0.5", "10.1.0.2"), nil, Ambiguous, -1, -1},
		{"ambiguous quote", tr, false, icmpErr(t, "169.254.0.2", "100.99.0.5", tcpPkt(t, "100.99.0.5", "100.65.0.2"), 28), nil, Ambiguous, -1, -1},
		{"truncated with a match", tr, true, tcpPkt(t, "10.9.0.5", "100.65.0.2")[:100], nil, Malformed, -1, -1},
		{"truncated without a match", tr, true, tcpPkt(t, "10.8.0.5", "10.7.0.2")[:100], nil, Unchanged, -1, -1},
		{"truncated ipv6 with a match", tr, true, tcpPkt(t, "fd09::5", "fd65::2")[:100], nil, Malformed, -1, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := append([]byte(nil), c.in...)
			var r Result
			if c.out {
				r = c.tr.Outbound(p)
			} else {
				r = c.tr.Inbound(p)
			}
			if r.Verdict != c.verdict || r.SrcRule != c.src || r.DstRule != c.dst {
				t.Errorf("result %v src %d dst %d, want %v src %d dst %d", r.Verdict, r.SrcRule, r.DstRule, c.verdict, c.src, c.dst)
			}
			want := c.want
			if want == nil {
				want = c.in // unchanged or dropped: untouched
			}
			if !bytes.Equal(p, want) {
				t.Errorf("got\n%s\nwant\n%s", hex.Dump(p), hex.Dump(want))
			}
			if c.verdict == Translated {
				ck := verify(p)
				if (ck.hasL4 && !ck.l4) || (ck.version == 4 && !ck.ip) || (ck.hasQuoteIP && !ck.quoteIP) {
					t.Errorf("checksums after translation: %+v", ck)
				}
			}
		})
	}
}

// The packets the spec model builds: IPv4 options and IPv6 extension
// headers, fragments, UDP-Lite and DCCP, compared with the reference
// translation (addresses mapped, everything serialized from scratch).
func TestTranslateModel(t *testing.T) {
	tr := mustCompile(t, testRules)
	a := netip.MustParseAddr
	tcp := make([]byte, 20+64)
	tcp[12] = 5 << 4
	for i := 20; i < len(tcp); i++ {
		tcp[i] = byte(i * 7)
	}
	hbh := []byte{0, 0, 1, 4, 0, 0, 0, 0}             // hop-by-hop: PadN
	rr := []byte{7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1} // record route + NOP padding
	lsrr := []byte{131, 7, 4, 10, 1, 0, 9, 0}
	routing := []byte{0, 2, 0, 1, 0, 0, 0, 0, 0xfd, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9} // type 0, 1 segment left
	routingDone := append([]byte(nil), routing...)
	routingDone[3] = 0
	base4 := spec{src: a("10.9.0.5"), dst: a("100.65.0.2"), proto: 6, l4: tcp, id: 77}
	base6 := spec{src: a("fd09::5"), dst: a("fd65::2"), proto: 6, l4: tcp, id: 77}
	with := func(s spec, f func(*spec)) spec { f(&s); return s }
	cases := []struct {
		name    string
		s       spec
		verdict Verdict
	}{
		{"ipv4 record route option", with(base4, func(s *spec) { s.ext = rr }), Translated},
		{"ipv4 loose source route", with(base4, func(s *spec) { s.ext = lsrr }), SourceRouted},
		{"ipv4 bad option length", with(base4, func(s *spec) { s.ext = []byte{7, 40, 4, 0} }), Malformed},
		{"ipv4 first fragment", with(base4, func(s *spec) { s.fragLen, s.mf = 32, true }), Translated},
		{"ipv4 later fragment", with(base4, func(s *spec) { s.fragOff, s.fragLen = 32, 100 }), Translated},
		{"ipv4 tiny first fragment", with(base4, func(s *spec) { s.fragLen, s.mf = 8, true }), Translated},
		{"ipv4 checksum in the second fragment", with(base4, func(s *spec) { s.fragOff, s.fragLen, s.mf = 8, 8, true }), Translated},
		{"udp4 fragment without checksum", with(base4, func(s *spec) { s.proto, s.udpNoCsum, s.fragLen, s.mf = 17, true, 16, true }), Translated},
		{"udp-lite", with(base4, func(s *spec) { s.proto = 136 }), Translated},
		{"dccp", with(base6, func(s *spec) { s.proto = 33 }), Translated},
		{"ipv6 hop-by-hop", with(base6, func(s *spec) { s.ext, s.extType = hbh, 0 }), Translated},
		{"ipv6 destination options", with(base6, func(s *spec) { s.ext, s.extType = hbh, 60 }), Translated},
		{"ipv6 routing header, segments left", with(base6, func(s *spec) { s.ext, s.extType = routing, 43 }), SourceRouted},
		{"ipv6 routing header, done", with(base6, func(s *spec) { s.ext, s.extType = routingDone, 43 }), Translated},
		{"ipv6 first fragment", with(base6, func(s *spec) { s.fragLen, s.mf = 48, true }), Translated},
		{"ipv6 later fragment", with(base6, func(s *spec) { s.fragOff, s.fragLen = 48, 100 }), Translated},
		{"ipv6 checksum in the second fragment", with(base6, func(s *spec) { s.fragOff, s.fragLen, s.mf = 8, 8, true }), Translated},
		{"ipv6 fragment after hop-by-hop", with(base6, func(s *spec) { s.ext, s.extType, s.fragOff, s.fragLen = hbh, 0, 16, 100 }), Translated},
		{"icmp error in fragments: quote untouched", with(base4, func(s *spec) {
			in := base4
			in.src, in.dst = a("100.99.0.5"), a("10.1.0.2")
			s.src, s.dst = a("10.9.0.1"), a("100.65.0.2")
			s.icmpErr, s.icmpType, s.quoteLen, s.fragLen, s.mf = &in, 11, 64, 24, true
		}), Translated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.s.serialize()
			orig := append([]byte(nil), p...)
			r := tr.Outbound(p)
			if r.Verdict != c.verdict {
				t.Fatalf("verdict %v, want %v", r.Verdict, c.verdict)
			}
			want := orig
			if c.verdict == Translated {
				ref, v := refTranslate(testRules, c.s, true)
				if v != Translated {
					t.Fatalf("reference verdict %v", v)
				}
				want = ref.serialize()
			}
			if !bytes.Equal(p, want) {
				t.Errorf("got\n%s\nwant\n%s", hex.Dump(p), hex.Dump(want))
			}
		})
	}
}

// Fragments translated one by one reassemble into a datagram whose
// transport checksum verifies, wherever the cut falls.
func TestFragmentsReassemble(t *testing.T) {
	tr := mustCompile(t, testRules)
	tcp := make([]byte, 20+200)
	tcp[12] = 5 << 4
	for i := range tcp[20:] {
		tcp[20+i] = byte(i)
	}
	for _, src := range []string{"10.9.0.5", "fd09::5"} {
		dst := "100.65.0.2"
		if src != "10.9.0.5" {
			dst = "fd65::2"
		}
		for _, cut := range []int{8, 16, 24, 64} {
			full := spec{src: netip.MustParseAddr(src), dst: netip.MustParseAddr(dst), proto: 6, l4: tcp}
			var data []byte
			var hdr []byte
			for off := 0; off < len(tcp); off += cut {
				f := full
				f.fragOff, f.fragLen, f.mf = off, min(cut, len(tcp)-off), off+cut < len(tcp)
				p := f.serialize()
				if r := tr.Outbound(p); r.Verdict != Translated {
					t.Fatalf("%s cut %d off %d: %v", src, cut, off, r.Verdict)
				}
				if ck := verify(p); ck.version == 4 && !ck.ip {
					t.Fatalf("%s cut %d off %d: IPv4 header checksum", src, cut, off)
				}
				hl := 20
				if full.v6() {
					hl = 48
				}
				hdr = p[:hl]
				data = append(data, p[hl:]...)
			}
			// Reassembled: the translated addresses and the data.
			var s, d netip.Addr
			if full.v6() {
				s, d = netip.AddrFrom16([16]byte(hdr[8:24])), netip.AddrFrom16([16]byte(hdr[24:40]))
			} else {
				s, d = netip.AddrFrom4([4]byte(hdr[12:16])), netip.AddrFrom4([4]byte(hdr[16:20]))
			}
			if sum16(data, pseudo(s, d, 6, len(data))) != 0xffff {
				t.Errorf("%s cut %d: reassembled TCP checksum does not verify (%s → %s)", src, cut, s, d)
			}
		}
	}
}

// A translated packet translated back with the reverse rules is the
// original again, for each table packet.
func TestReverse(t *testing.T) {
	tr, back := mustCompile(t, testRules), mustCompile(t, testRules.Reverse())
	for _, p := range [][]byte{
		tcpPkt(t, "10.9.0.5", "100.65.0.2"),
		udpPkt(t, "fd09::5", "fd65::2"),
		icmpErr(t, "10.9.0.1", "100.65.0.2", udpPkt(t, "100.65.0.2", "10.9.8.8"), 28),
	} {
		orig := append([]byte(nil), p...)
		if r := tr.Outbound(p); r.Verdict != Translated {
			t.Fatalf("outbound %v", r.Verdict)
		}
		if r := back.Outbound(p); r.Verdict != Translated || !bytes.Equal(p, orig) {
			t.Errorf("reverse %v:\n%s\nwant\n%s", r.Verdict, hex.Dump(p), hex.Dump(orig))
		}
	}
}

// A nil Translator leaves everything alone.
func TestNilTranslator(t *testing.T) {
	var tr *Translator
	p := tcpPkt(t, "10.9.0.5", "100.65.0.2")
	if r := tr.Outbound(p); r.Verdict != Unchanged || !tr.Rules().Empty() {
		t.Errorf("nil translator: %v", r.Verdict)
	}
}

// A UDP checksum that computes to zero after translation is sent as
// 0xffff (zero means "no checksum"), and one that was 0xffff translates
// like any other.
func TestUDPChecksumComputesToZero(t *testing.T) {
	tr, back := mustCompile(t, testRules), mustCompile(t, testRules.Reverse())
	for _, addrs := range [][4]string{{"10.9.0.5", "100.65.0.2", "100.99.0.5", "10.1.0.2"}, {"fd09::5", "fd65::2", "fd99::5", "fd01::2"}} {
		a := netip.MustParseAddr
		in := spec{src: a(addrs[0]), dst: a(addrs[1]), proto: 17, l4: make([]byte, 8+16)}
		out := in
		out.src, out.dst = a(addrs[2]), a(addrs[3])
		// Pick two data bytes so that the translated datagram's sum is
		// 0xffff: its checksum computes to zero.
		l4 := out.transport()
		l4[6], l4[7] = 0, 0
		w := ^uint16(sum16(l4, pseudo(out.src, out.dst, 17, len(l4))))
		binary.BigEndian.PutUint16(in.l4[8:], w)
		out.l4 = in.l4
		p, want := in.serialize(), out.serialize()
		hl := len(p) - len(l4)
		if got := binary.BigEndian.Uint16(want[hl+6:]); got != 0xffff {
			t.Fatalf("setup: the translated checksum is %#04x, not a computed zero", got)
		}
		if r := tr.Outbound(p); r.Verdict != Translated || !bytes.Equal(p, want) {
			t.Errorf("%s: %v\n%s\nwant\n%s", addrs[0], r.Verdict, hex.Dump(p), hex.Dump(want))
		}
		if r := back.Outbound(p); r.Verdict != Translated || !bytes.Equal(p, in.serialize()) {
			t.Errorf("%s: back from 0xffff: %v\n%s", addrs[0], r.Verdict, hex.Dump(p))
		}
	}
}
