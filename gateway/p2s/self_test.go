package p2s

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/vgate-project/vgate/gateway/config"
)

// testSelfInput is testPolicyInput on a gateway whose own addresses are
// its tunnel address 10.1.255.254, its LAN addresses 10.1.0.1 and
// fd00:1::1 (inside devs' allow), its underlay 198.18.0.1 (allowed to
// no group) and the DNS server 10.53.0.53 (it serves DNS itself). devs
// open tcp/22; ops open udp/161-162 and icmp.
func testSelfInput() PolicyInput {
	in := testPolicyInput()
	in.Self = []netip.Addr{ma("10.1.255.254"), ma("10.1.0.1"), ma("fd00:1::1"), ma("198.18.0.1"), ma("10.53.0.53"), ma("10.1.0.1")}
	in.Groups[0].Services = []config.Service{{Proto: config.ProtoTCP, FirstPort: 22, LastPort: 22}}
	in.Groups[1].Services = []config.Service{{Proto: config.ProtoUDP, FirstPort: 161, LastPort: 162}, {Proto: config.ProtoICMP}}
	return in
}

// ipPacket builds an IPv4 or IPv6 packet from src to dst carrying
// payload as protocol proto. IPv6 extension headers, if any, come first:
// each is {next-header type, header bytes}.
func ipPacket(src, dst netip.Addr, proto uint8, payload []byte, ext ...[]byte) []byte {
	if src.Is4() {
		b := make([]byte, 20, 20+len(payload))
		b[0] = 0x45
		binary.BigEndian.PutUint16(b[2:4], uint16(20+len(payload)))
		b[8], b[9] = 64, proto
		s, d := src.As4(), dst.As4()
		copy(b[12:16], s[:])
		copy(b[16:20], d[:])
		return append(b, payload...)
	}
	b := make([]byte, 40)
	b[0] = 0x60
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	next := &b[6]
	for _, e := range ext {
		*next = e[0]
		b = append(b, e[1:]...)
		next = &b[len(b)-len(e)+1]
	}
	*next = proto
	b = append(b, payload...)
	binary.BigEndian.PutUint16(b[4:6], uint16(len(b)-40))
	return b
}

func tcpTo(port uint16) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:2], 40000)
	binary.BigEndian.PutUint16(h[2:4], port)
	h[12] = 5 << 4
	h[13] = 0x02 // SYN
	return h
}

func udpTo(port uint16) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[0:2], 40000)
	binary.BigEndian.PutUint16(h[2:4], port)
	binary.BigEndian.PutUint16(h[4:6], 8)
	return h
}

func icmpType(typ byte) []byte { return []byte{typ, 0, 0, 0, 0, 1, 0, 1} }

// v6 extension headers: {type, header} with the header's next-header
// byte first (filled in by ipPacket).
var (
	hopByHop  = []byte{0, 0, 0, 1, 4, 0, 0, 0, 0} // 8 bytes: PadN
	destOpts  = []byte{60, 0, 0, 1, 4, 0, 0, 0, 0}
	firstFrag = []byte{44, 0, 0, 0, 1, 0, 0, 0, 7} // offset 0, M=1
	laterFrag = []byte{44, 0, 0, 0x05, 0x01, 0, 0, 0, 7}
)

func TestPolicyGatewayServices(t *testing.T) {
	p := NewPolicy(testSelfInput())
	alice, carol, erin := ma("172.16.201.1"), ma("172.16.201.3"), ma("172.16.201.5")
	alice6, carol6 := ma("fd00:cafe::1"), ma("fd00:cafe::3")
	tun, lan, lan6, under, dns := ma("10.1.255.254"), ma("10.1.0.1"), ma("fd00:1::1"), ma("198.18.0.1"), ma("10.53.0.53")
	v4frag := func(pkt []byte, offset uint16) []byte {
		binary.BigEndian.PutUint16(pkt[6:8], offset)
		return pkt
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		want Verdict
	}{
		{"ping tunnel address", ipPacket(alice, tun, protoICMP, icmpType(icmpEcho)), Allow},
		{"ping LAN address", ipPacket(alice, lan, protoICMP, icmpType(icmpEcho)), Allow},
		{"ping LAN IPv6", ipPacket(alice6, lan6, protoICMPv6, icmpType(icmpv6Echo)), Allow},
		{"ping IPv6 behind extension headers", ipPacket(alice6, lan6, protoICMPv6, icmpType(icmpv6Echo), hopByHop, destOpts), Allow},
		{"ICMP timestamp", ipPacket(alice, tun, protoICMP, icmpType(13)), DenyGatewayService},
		{"ICMPv6 echo reply", ipPacket(alice6, lan6, protoICMPv6, icmpType(129)), DenyGatewayService},
		{"ICMPv4 inside IPv6", ipPacket(alice6, lan6, protoICMP, icmpType(icmpEcho)), DenyGatewayService},
		{"ICMPv6 inside IPv4", ipPacket(alice, lan, protoICMPv6, icmpType(icmpv6Echo)), DenyGatewayService},
		{"BGP on the tunnel address", ipPacket(alice, tun, protoTCP, tcpTo(179)), DenyGatewayService},
		{"metrics on the tunnel address", ipPacket(alice, tun, protoTCP, tcpTo(9475)), DenyGatewayService},
		{"metrics on the LAN address", ipPacket(alice, lan, protoTCP, tcpTo(9475)), DenyGatewayService},
		{"BGP over IPv6", ipPacket(alice6, lan6, protoTCP, tcpTo(179)), DenyGatewayService},
		{"SSH opened to devs", ipPacket(alice, tun, protoTCP, tcpTo(22)), Allow},
		{"SSH opened to devs, IPv6", ipPacket(alice6, lan6, protoTCP, tcpTo(22), hopByHop), Allow},
		{"UDP 22 not opened", ipPacket(alice, tun, protoUDP, udpTo(22)), DenyGatewayService},
		{"DNS on the tunnel address (not a dns server)", ipPacket(alice, tun, protoUDP, udpTo(53)), DenyGatewayService},
		{"DNS over UDP on the gateway's dns address", ipPacket(carol, dns, protoUDP, udpTo(53)), Allow},
		{"DNS over TCP on the gateway's dns address", ipPacket(carol, dns, protoTCP, tcpTo(53)), Allow},
		{"other port on the dns address", ipPacket(carol, dns, protoTCP, tcpTo(179)), DenyGatewayService},
		{"ping the dns address", ipPacket(carol, dns, protoICMP, icmpType(icmpEcho)), Allow},
		{"ops outside its allow: tunnel address", ipPacket(carol, tun, protoUDP, udpTo(161)), DenyDestination},
		{"ops outside its allow: ping", ipPacket(carol, lan, protoICMP, icmpType(icmpEcho)), DenyDestination},
		{"underlay allowed to nobody", ipPacket(erin, under, protoICMP, icmpType(icmpEcho)), DenyDestination},
		{"erin: devs' SSH", ipPacket(erin, lan, protoTCP, tcpTo(22)), Allow},
		{"erin: ops' SNMP on a devs address", ipPacket(erin, lan, protoUDP, udpTo(162)), Allow},
		{"erin: ops' icmp", ipPacket(erin, tun, protoICMP, icmpType(13)), Allow},
		{"erin: SNMP range ends", ipPacket(erin, lan, protoUDP, udpTo(163)), DenyGatewayService},
		{"erin: SNMP over TCP", ipPacket(erin, lan, protoTCP, tcpTo(161)), DenyGatewayService},
		{"SCTP", ipPacket(alice, tun, 132, make([]byte, 12)), DenyGatewayService},
		{"TCP header cut short", ipPacket(alice, tun, protoTCP, []byte{0, 22, 0}), DenyGatewayService},
		{"empty ICMP", ipPacket(alice, tun, protoICMP, nil), DenyGatewayService},
		{"first IPv4 fragment", v4frag(ipPacket(alice, tun, protoTCP, tcpTo(22)), 0x2000), Allow},
		{"later IPv4 fragment", v4frag(ipPacket(alice, tun, protoTCP, tcpTo(22)), 0x2001), DenyGatewayService},
		{"later IPv4 fragment, forwarded", v4frag(ipPacket(alice, ma("10.1.0.2"), protoTCP, tcpTo(179)), 0x0010), Allow},
		{"first IPv6 fragment", ipPacket(alice6, lan6, protoTCP, tcpTo(22), firstFrag), Allow},
		{"later IPv6 fragment", ipPacket(alice6, lan6, protoTCP, tcpTo(22), laterFrag), DenyGatewayService},
		{"IPv6 extension cut short", ipPacket(alice6, lan6, 0, []byte{6, 0}), DenyGatewayService},
		{"IPv6 extension chain too long", ipPacket(alice6, lan6, protoTCP, tcpTo(22), slices.Repeat([][]byte{destOpts}, maxExtHeaders+1)...), DenyGatewayService},
		{"forwarded traffic keeps every port", ipPacket(alice, ma("10.1.0.2"), protoTCP, tcpTo(179)), Allow},
		{"forwarded IPv6 traffic", ipPacket(carol6, ma("fd00:1::2"), protoTCP, tcpTo(179)), DenyDestination},
	} {
		if got := p.Check(tc.pkt); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// Addresses alone open no gateway service.
	if got := p.Decide(alice, tun); got != DenyGatewayService {
		t.Errorf("Decide(alice, tunnel address) = %v", got)
	}
}

// Denials of the gateway's services count against the client and under
// their own verdict.
func TestFilterCountsGatewayService(t *testing.T) {
	f := NewFilterTUN(&recTUN{}, 1420)
	f.SetPolicy(NewPolicy(testSelfInput()))
	bufs := [][]byte{
		withOffset(ipPacket(ma("172.16.201.1"), ma("10.1.255.254"), protoTCP, tcpTo(179))),
		withOffset(ipPacket(ma("172.16.201.1"), ma("10.1.255.254"), protoTCP, tcpTo(22))),
	}
	if _, err := f.Write(bufs, off); err != nil {
		t.Fatal(err)
	}
	if c := f.Counts(); c["gateway_service"] != 1 || c["allow"] != 1 || f.Denied() != 1 {
		t.Fatalf("counts %v", c)
	}
	if DenyGatewayService.String() != "gateway_service" {
		t.Fatal(DenyGatewayService.String())
	}
}

func TestPolicySelfChecksDoNotAllocate(t *testing.T) {
	p := NewPolicy(testSelfInput())
	pkts := [][]byte{
		ipPacket(ma("172.16.201.1"), ma("10.1.255.254"), protoTCP, tcpTo(179)),
		ipPacket(ma("172.16.201.5"), ma("10.1.0.1"), protoUDP, udpTo(162)),
		ipPacket(ma("fd00:cafe::1"), ma("fd00:1::1"), protoICMPv6, icmpType(icmpv6Echo), hopByHop, firstFrag),
	}
	if n := testing.AllocsPerRun(1000, func() {
		for _, b := range pkts {
			p.Check(b)
		}
	}); n != 0 {
		t.Fatalf("Check allocates %v times per run", n)
	}
}

func TestLocalAddrs(t *testing.T) {
	addrs, err := LocalAddrs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(addrs, ma("127.0.0.1")) {
		t.Fatalf("LocalAddrs() = %v lacks 127.0.0.1", addrs)
	}
	if !slices.Contains(addrs, ma("127.255.255.255")) {
		t.Fatalf("LocalAddrs() = %v lacks lo's broadcast 127.255.255.255", addrs)
	}
}
