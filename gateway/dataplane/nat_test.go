package dataplane

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/vgate-project/vgate/gateway/wgspec"
	"github.com/vgate-project/vgate/nat"
)

// The rules of these tests, on a's tunnel to b: b's network 10.1.0.0/16
// is seen here as 100.65.0.0/16 (ingress), and a's 10.9.0.0/16 is seen by
// b as 100.99.0.0/16 (egress); the same for IPv6 with fd01::/48 as
// fd65::/48 and fd09::/48 as fd99::/48.
var natRules = nat.Rules{
	Ingress: []nat.Rule{
		{Internal: netip.MustParsePrefix("10.1.0.0/16"), External: netip.MustParsePrefix("100.65.0.0/16")},
		{Internal: netip.MustParsePrefix("fd01::/48"), External: netip.MustParsePrefix("fd65::/48")},
	},
	Egress: []nat.Rule{
		{Internal: netip.MustParsePrefix("10.9.0.0/16"), External: netip.MustParsePrefix("100.99.0.0/16")},
		{Internal: netip.MustParsePrefix("fd09::/48"), External: netip.MustParsePrefix("fd99::/48")},
	},
}

// tcpSeg is a TCP segment built by gopacket (checksums computed there).
func tcpSeg(t testing.TB, src, dst string, size int) []byte {
	t.Helper()
	s, d := net.ParseIP(src), net.ParseIP(dst)
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: 7, Ack: 9, ACK: true, Window: 1000}
	var ls []gopacket.SerializableLayer
	if s.To4() != nil {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: s.To4(), DstIP: d.To4()}
		tcp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: s, DstIP: d}
		tcp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, ip)
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, append(ls, tcp, gopacket.Payload(payload))...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// recv waits for a packet out of a channel TUN.
func recv(t *testing.T, c chan []byte) []byte {
	t.Helper()
	select {
	case p := <-c:
		return p
	case <-time.After(2 * time.Second):
		t.Fatal("no packet")
	}
	return nil
}

func quiet(t *testing.T, c chan []byte) {
	t.Helper()
	select {
	case p := <-c:
		t.Fatalf("unexpected packet:\n%s", hex.Dump(p))
	case <-time.After(100 * time.Millisecond):
	}
}

// Two gateways over in-memory TUNs and binds; a's tunnel to b has NAT
// rules, b has none (it sees a under a's egress prefix). What b's hosts
// receive and what a's hosts receive are exactly the packets gopacket
// builds with the translated addresses; the planned AllowedIPs (and so
// the source check) are in a's view; a capture records the packets as
// they crossed the tunnel; each rule counts its packets; a rule change is
// an update of the same tunnel.
func TestNATThroughTunnel(t *testing.T) {
	binds := bindtest.NewChannelBinds()
	a, b := newSide(t, binds[0]), newSide(t, binds[1])
	specA := TunnelSpec{Name: "b", IfName: "vg-b", MTU: 1420, Peer: wgspec.PeerSpec{
		PublicKey: b.key.Public(), Endpoint: netip.MustParseAddrPort("127.0.0.1:1"),
		AllowedIPs: pfx("100.65.0.0/16", "fd65::/48"), NAT: natRules}}
	specB := TunnelSpec{Name: "a", IfName: "vg-a", MTU: 1420, Peer: wgspec.PeerSpec{
		PublicKey: a.key.Public(), Endpoint: netip.MustParseAddrPort("127.0.0.1:2"),
		AllowedIPs: pfx("100.99.0.0/16", "fd99::/48")}}
	if _, err := a.plane.Set([]TunnelSpec{specA}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.plane.Set([]TunnelSpec{specB}); err != nil {
		t.Fatal(err)
	}
	ta, tb := a.tuns["vg-b"], b.tuns["vg-a"]
	tun := a.plane.Tunnel("b")
	c := NewCapture(0, 16)
	if err := tun.StartCapture(c); err != nil {
		t.Fatal(err)
	}

	// a's host 10.9.0.5 reaches b's 10.1.0.2 at 100.65.0.2; b sees it
	// come from 100.99.0.5 and answers there.
	ta.Outbound <- tcpSeg(t, "10.9.0.5", "100.65.0.2", 100)
	if got, want := recv(t, tb.Inbound), tcpSeg(t, "100.99.0.5", "10.1.0.2", 100); !bytes.Equal(got, want) {
		t.Fatalf("b got\n%s\nwant\n%s", hex.Dump(got), hex.Dump(want))
	}
	tb.Outbound <- tcpSeg(t, "10.1.0.2", "100.99.0.5", 200)
	if got, want := recv(t, ta.Inbound), tcpSeg(t, "100.65.0.2", "10.9.0.5", 200); !bytes.Equal(got, want) {
		t.Fatalf("a got\n%s\nwant\n%s", hex.Dump(got), hex.Dump(want))
	}
	tb.Outbound <- tcpSeg(t, "fd01::2", "fd99::5", 300)
	if got, want := recv(t, ta.Inbound), tcpSeg(t, "fd65::2", "fd09::5", 300); !bytes.Equal(got, want) {
		t.Fatalf("a got\n%s\nwant\n%s", hex.Dump(got), hex.Dump(want))
	}
	// From b's address range as a shows it (ambiguous): dropped by the
	// translation. From an address no rule maps and outside the planned
	// AllowedIPs: translated (its destination), then dropped by the
	// source check, which judges what a sees.
	tb.Outbound <- tcpSeg(t, "100.65.0.9", "100.99.0.5", 10)
	tb.Outbound <- tcpSeg(t, "10.2.0.1", "100.99.0.5", 10)
	quiet(t, ta.Inbound)

	tun.StopCapture(c)
	for i, want := range [][]byte{
		tcpSeg(t, "100.99.0.5", "10.1.0.2", 100), // outbound, as sent
		tcpSeg(t, "10.1.0.2", "100.99.0.5", 200), // inbound, as received
		tcpSeg(t, "fd01::2", "fd99::5", 300),
	} {
		select {
		case p := <-c.Packets():
			if !bytes.Equal(p.Data, want) {
				t.Errorf("capture %d:\n%s\nwant\n%s", i, hex.Dump(p.Data), hex.Dump(want))
			}
		default:
			t.Fatalf("capture has %d packets, want 3", i)
		}
	}
	if len(c.Packets()) != 0 {
		t.Errorf("capture holds %d more packets (dropped ones must not be recorded)", len(c.Packets()))
	}

	st := tun.NATStats()
	ck := func(what string, got, want NATCounts) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %+v, want %+v", what, got, want)
		}
	}
	n4, n4b, n6 := uint64(len(tcpSeg(t, "10.9.0.5", "100.65.0.2", 100))), uint64(len(tcpSeg(t, "10.1.0.2", "100.99.0.5", 200))), uint64(len(tcpSeg(t, "fd01::2", "fd99::5", 300)))
	n4c := uint64(len(tcpSeg(t, "10.2.0.1", "100.99.0.5", 10)))
	ck("total out", st.Outbound, NATCounts{1, n4})
	ck("total in", st.Inbound, NATCounts{3, n4b + n6 + n4c})
	if len(st.Rules) != 4 {
		t.Fatalf("rules: %+v", st.Rules)
	}
	ck("ingress[0] out", st.Rules[0].Outbound, NATCounts{1, n4})
	ck("ingress[0] in", st.Rules[0].Inbound, NATCounts{1, n4b})
	ck("ingress[1] in", st.Rules[1].Inbound, NATCounts{1, n6})
	ck("egress[0] out", st.Rules[2].Outbound, NATCounts{1, n4})
	ck("egress[0] in", st.Rules[2].Inbound, NATCounts{2, n4b + n4c})
	if r := st.Rules[3]; r.List != nat.Egress || r.Index != 1 || r.Rule != natRules.Egress[1] {
		t.Errorf("rule 3 is %+v", r)
	}
	if st.DroppedInbound != (NATDrops{Ambiguous: 1}) || st.DroppedOutbound != (NATDrops{}) {
		t.Errorf("drops: in %+v out %+v", st.DroppedInbound, st.DroppedOutbound)
	}
	if ps, _ := tun.Stats(); ps.DroppedSource != 1 {
		t.Errorf("source check dropped %d, want 1", ps.DroppedSource)
	}

	// A changed ingress rule: the same tunnel, updated in place; the
	// unchanged egress rules keep their counters.
	changed := natRules
	changed.Ingress = []nat.Rule{{Internal: netip.MustParsePrefix("10.1.0.0/16"), External: netip.MustParsePrefix("100.66.0.0/16")}}
	specA.Peer.NAT, specA.Peer.AllowedIPs = changed, pfx("100.66.0.0/16")
	plan, err := a.plane.Set([]TunnelSpec{specA})
	if err != nil || len(plan.Update) != 1 || len(plan.Recreate) != 0 || a.plane.Tunnel("b") != tun {
		t.Fatalf("rule change: plan %+v, err %v", plan, err)
	}
	ta.Outbound <- tcpSeg(t, "10.9.0.5", "100.66.0.2", 100)
	if got, want := recv(t, tb.Inbound), tcpSeg(t, "100.99.0.5", "10.1.0.2", 100); !bytes.Equal(got, want) {
		t.Fatalf("after the change b got\n%s", hex.Dump(got))
	}
	st = tun.NATStats()
	ck("new ingress[0] out", st.Rules[0].Outbound, NATCounts{1, n4})
	ck("kept egress[0] out", st.Rules[1].Outbound, NATCounts{2, 2 * n4})
	ck("total out", st.Outbound, NATCounts{2, 2 * n4})

	// Without rules packets cross as they are.
	specA.Peer.NAT, specA.Peer.AllowedIPs = nat.Rules{}, pfx("10.1.0.0/16")
	if plan, err := a.plane.Set([]TunnelSpec{specA}); err != nil || len(plan.Update) != 1 {
		t.Fatalf("rules removed: plan %+v, err %v", plan, err)
	}
	p := tcpSeg(t, "100.99.0.5", "10.1.0.2", 100) // b's source check allows 100.99.0.0/16
	if !send(t, ta, tb, p) {
		t.Fatal("untranslated packet not delivered as it was")
	}
	if st := tun.NATStats(); st.Rules != nil || st.Outbound.Packets != 2 {
		t.Errorf("after removing the rules: %+v", st)
	}
}

// Rules that do not compile change nothing: a tunnel is not created, and
// an update keeps the running rules.
func TestNATBadRules(t *testing.T) {
	binds := bindtest.NewChannelBinds()
	a, b := newSide(t, binds[0]), newSide(t, binds[1])
	bad := nat.Rules{Ingress: []nat.Rule{{Internal: netip.MustParsePrefix("10.1.0.0/16"), External: netip.MustParsePrefix("100.65.0.0/24")}}}
	spec := TunnelSpec{Name: "b", IfName: "vg-b", MTU: 1420, Peer: wgspec.PeerSpec{PublicKey: b.key.Public(), AllowedIPs: pfx("100.65.0.0/16"), NAT: bad}}
	if _, err := a.plane.Set([]TunnelSpec{spec}); err == nil || a.plane.Tunnel("b") != nil {
		t.Fatalf("bad rules: err %v, tunnel %v", err, a.plane.Tunnel("b"))
	}
	spec.Peer.NAT = natRules
	if _, err := a.plane.Set([]TunnelSpec{spec}); err != nil {
		t.Fatal(err)
	}
	spec.Peer.NAT = bad
	if _, err := a.plane.Set([]TunnelSpec{spec}); err == nil {
		t.Fatal("update to bad rules accepted")
	}
	if got := a.plane.Tunnel("b").Peer().NAT; !got.Equal(natRules) || len(a.plane.Tunnel("b").NATStats().Rules) != 4 {
		t.Errorf("after a refused update the tunnel has %+v", got)
	}
}

// MSS clamping and translation both edit a SYN into the tunnel; the
// result carries the clamped MSS, the translated addresses and a valid
// checksum.
func TestNATWithMSSClamp(t *testing.T) {
	ch := tuntest.NewChannelTUN()
	ct := newClampTUN(ch.TUN(), 1420)
	if err := ct.nat.set(natRules); err != nil {
		t.Fatal(err)
	}
	syn := synPacket(t, false, true, false, 1460, true) // 10.1.0.2 → 10.2.0.2
	// As a's host sends it: from 10.9.0.5 to b's 10.1.0.2 seen as 100.65.0.2.
	copy(syn[12:16], []byte{10, 9, 0, 5})
	copy(syn[16:20], []byte{100, 65, 0, 2})
	fixSums(t, syn)
	go func() { ch.Outbound <- syn }()
	bufs, sizes := [][]byte{make([]byte, 16+2000)}, []int{0}
	n, err := ct.Read(bufs, sizes, 16)
	if err != nil || n != 1 {
		t.Fatal(n, err)
	}
	p := bufs[0][16 : 16+sizes[0]]
	if mss, _ := mssOf(t, p); mss != 1380 || !bytes.Equal(p[12:20], []byte{100, 99, 0, 5, 10, 1, 0, 2}) || !checksumOK(t, p) {
		t.Errorf("mss %d, addresses % x, checksum ok %v", mss, p[12:20], checksumOK(t, p))
	}
}

// fixSums recomputes the checksums of a TCP packet with gopacket.
func fixSums(t *testing.T, p []byte) {
	t.Helper()
	pk := gopacket.NewPacket(p, layers.LayerTypeIPv4, gopacket.Default)
	ip, tcp := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4), pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ip, tcp, gopacket.Payload(tcp.Payload)); err != nil {
		t.Fatal(err)
	}
	copy(p, buf.Bytes())
}

// Rules are swapped while packets cross both ways (run with -race); every
// packet is translated by one set or the other, never dropped.
func TestNATSwapConcurrent(t *testing.T) {
	ct := newClampTUN(&fakeTUN{pkt: tcpSeg(t, "10.9.0.5", "100.65.0.2", 1000)}, 1420)
	other := natRules
	other.Egress = natRules.Egress[1:]
	if err := ct.nat.set(natRules); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			rs := natRules
			if i%2 == 1 {
				rs = other
			}
			if err := ct.nat.set(rs); err != nil {
				t.Error(err)
				return
			}
			ct.nat.stats()
		}
	}()
	in := tcpSeg(t, "10.1.0.2", "100.99.0.5", 1000)
	bufs, sizes := batch(16, 16, nil)
	for i := range bufs {
		bufs[i] = make([]byte, 16+len(in)+100)
	}
	for range 200 {
		if n, _ := ct.Read(bufs, sizes, 16); n != len(bufs) {
			t.Fatal(n)
		}
		for i := range sizes {
			if sizes[i] == 0 {
				t.Fatal("a packet was dropped during a rule swap")
			}
		}
		wb := make([][]byte, 4)
		for i := range wb {
			wb[i] = append(make([]byte, 16), in...)
		}
		if n, err := ct.Write(wb, 16); n != 4 || err != nil {
			t.Fatal(n, err)
		}
	}
	cancel()
	wg.Wait()
	// The totals count every packet; the ingress rule, in both sets,
	// kept its counter throughout.
	st := ct.nat.stats()
	if st.Outbound.Packets != 200*16 || st.Inbound.Packets != 200*4 || st.Rules[0].Outbound.Packets != 200*16 || st.Rules[0].Inbound.Packets != 200*4 {
		t.Errorf("counters %+v", st)
	}
}

// BenchmarkNATSeam: the TUN seam's cost per packet with NAT rules and
// without, over batches of 64 full-size TCP segments (what one GSO read
// yields, and what wireguard-go writes after decrypting a batch), each
// step of the seam on (source check, MSS clamp, demand count). The two
// tunnels are measured alternately in the same loop, so the ratio
// (throughput with rules ÷ without) compares like with like on a busy
// machine.
func BenchmarkNATSeam(b *testing.B) {
	const n, off = 64, 16
	type variant struct {
		ct      *clampTUN
		out, in []byte
	}
	mk := func(out, in []byte, allowed []netip.Prefix, rules nat.Rules) variant {
		ct := newClampTUN(&fakeTUN{pkt: out}, 1420)
		ct.src.setAllowed(allowed)
		ct.demand = new(atomic.Uint64)
		if err := ct.nat.set(rules); err != nil {
			b.Fatal(err)
		}
		return variant{ct, out, in}
	}
	plain := mk(tcpSeg(b, "10.9.0.5", "10.1.0.2", 1380), tcpSeg(b, "10.1.0.2", "10.9.0.5", 1380), pfx("10.1.0.0/16"), nat.Rules{})
	withNAT := mk(tcpSeg(b, "10.9.0.5", "100.65.0.2", 1380), tcpSeg(b, "10.1.0.2", "100.99.0.5", 1380), pfx("100.65.0.0/16"), natRules)
	run := func(b *testing.B, step func(v variant, bufs [][]byte, sizes []int)) {
		bufs, sizes := batch(n, off, make([]byte, 1500))
		var spent [2]time.Duration
		vs := [2]variant{plain, withNAT}
		for i := 0; b.Loop(); i++ {
			for k := range 2 {
				j := (i + k) % 2 // alternate which goes first
				t0 := time.Now()
				step(vs[j], bufs, sizes)
				spent[j] += time.Since(t0)
			}
		}
		per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) / n }
		b.ReportMetric(per(spent[0]), "ns/pkt-plain")
		b.ReportMetric(per(spent[1]), "ns/pkt-nat")
		b.ReportMetric(float64(spent[0])/float64(spent[1]), "ratio")
	}
	b.Run("read", func(b *testing.B) {
		run(b, func(v variant, bufs [][]byte, sizes []int) {
			if k, _ := v.ct.Read(bufs, sizes, off); k != n || sizes[n-1] != len(v.out) {
				b.Fatal("read", k)
			}
		})
	})
	// The seam in proportion: each packet read is also sealed with
	// ChaCha20-Poly1305, the work wireguard-go does on every packet it
	// sends (no goroutines, no sockets: a lower bound of a packet's cost).
	b.Run("read+seal", func(b *testing.B) {
		aead, err := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
		if err != nil {
			b.Fatal(err)
		}
		nonce, sealed := make([]byte, chacha20poly1305.NonceSize), make([]byte, 0, 2048)
		run(b, func(v variant, bufs [][]byte, sizes []int) {
			k, _ := v.ct.Read(bufs, sizes, off)
			for i := range k {
				sealed = aead.Seal(sealed[:0], nonce, bufs[i][off:off+sizes[i]], nil)
			}
		})
	})
	b.Run("write", func(b *testing.B) {
		wb := make([][]byte, n)
		run(b, func(v variant, bufs [][]byte, _ []int) {
			// As wireguard-go hands them over: decrypted into the buffers.
			for i := range wb {
				wb[i] = bufs[i][:off+copy(bufs[i][off:], v.in)]
			}
			if k, _ := v.ct.Write(wb, off); k != n {
				b.Fatal("write", k)
			}
		})
	})
}
