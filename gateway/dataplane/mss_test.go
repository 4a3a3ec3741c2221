package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vgate-project/vgate/gateway/wgspec"
)

// synPacket builds a TCP packet with valid checksums using gopacket, an
// independent implementation of the headers ClampMSS edits.
func synPacket(t testing.TB, v6 bool, syn, ack bool, mss uint16, withMSS bool) []byte {
	return synPacketNop(t, v6, syn, ack, mss, withMSS, true)
}

func synPacketNop(t testing.TB, v6 bool, syn, ack bool, mss uint16, withMSS, nop bool) []byte {
	t.Helper()
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 443, SYN: syn, ACK: ack, Seq: 1, Window: 64240}
	if nop {
		tcp.Options = append(tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindNop, OptionLength: 1})
	}
	if withMSS {
		b := make([]byte, 2)
		binary.BigEndian.PutUint16(b, mss)
		tcp.Options = append(tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: b})
	}
	tcp.Options = append(tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}})
	var net4 gopacket.NetworkLayer
	var ls []gopacket.SerializableLayer
	if v6 {
		ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolTCP, HopLimit: 64, SrcIP: net.ParseIP("fd00:1::2"), DstIP: net.ParseIP("fd00:2::2")}
		net4 = ip
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IPv4(10, 1, 0, 2), DstIP: net.IPv4(10, 2, 0, 2)}
		net4 = ip
		ls = append(ls, ip)
	}
	if err := tcp.SetNetworkLayerForChecksum(net4); err != nil {
		t.Fatal(err)
	}
	ls = append(ls, tcp, gopacket.Payload([]byte("hello")))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mssOf(t *testing.T, pkt []byte) (uint16, bool) {
	t.Helper()
	first := layers.LayerTypeIPv4
	if pkt[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	tl, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tl == nil {
		t.Fatal("no TCP layer")
	}
	for _, o := range tl.Options {
		if o.OptionType == layers.TCPOptionKindMSS {
			return binary.BigEndian.Uint16(o.OptionData), true
		}
	}
	return 0, false
}

// checksumOK recomputes the TCP checksum with gopacket and compares.
func checksumOK(t *testing.T, pkt []byte) bool {
	t.Helper()
	first := layers.LayerTypeIPv4
	if pkt[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	tl := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	got := tl.Checksum
	nl := p.NetworkLayer()
	if err := tl.SetNetworkLayerForChecksum(nl); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, tl, gopacket.Payload(tl.Payload)); err != nil {
		t.Fatal(err)
	}
	want := binary.BigEndian.Uint16(buf.Bytes()[16:18])
	return got == want
}

func TestClampMSS(t *testing.T) {
	tests := []struct {
		name        string
		v6, syn     bool
		ack         bool
		mss         uint16
		withMSS     bool
		wantChanged bool
		wantMSS     uint16
	}{
		{"v4 syn above limit", false, true, false, 1460, true, true, 1380},
		{"v4 syn-ack above limit", false, true, true, 8960, true, true, 1380},
		{"v4 syn below limit", false, true, false, 1200, true, false, 1200},
		{"v4 syn at limit", false, true, false, 1380, true, false, 1380},
		{"v4 not syn", false, false, true, 1460, true, false, 1460},
		{"v4 syn without mss", false, true, false, 0, false, false, 0},
		{"v6 syn above limit", true, true, false, 1440, true, true, 1360},
		{"v6 syn below limit", true, true, false, 1220, true, false, 1220},
	}
	max4, max6 := wgspec.MaxMSS(1420)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := synPacket(t, tt.v6, tt.syn, tt.ack, tt.mss, tt.withMSS)
			orig := bytes.Clone(pkt)
			changed := ClampMSS(pkt, max4, max6)
			if changed != tt.wantChanged {
				t.Fatalf("changed = %v, want %v", changed, tt.wantChanged)
			}
			if !changed && !bytes.Equal(pkt, orig) {
				t.Fatal("packet modified although ClampMSS reported no change")
			}
			if got, ok := mssOf(t, pkt); ok != tt.withMSS || got != tt.wantMSS {
				t.Fatalf("mss = %d (present %v), want %d", got, ok, tt.wantMSS)
			}
			if !checksumOK(t, pkt) {
				t.Fatal("TCP checksum wrong after clamping")
			}
		})
	}
}

func TestClampMSSEvenOffset(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		pkt := synPacketNop(t, v6, true, false, 9000, true, false)
		if !ClampMSS(pkt, 1380, 1360) {
			t.Fatal("not clamped")
		}
		if !checksumOK(t, pkt) {
			t.Fatalf("v6=%v: TCP checksum wrong after clamping an even-offset MSS", v6)
		}
	}
}

func TestClampMSSMalformed(t *testing.T) {
	good := synPacket(t, false, true, false, 1460, true)
	max4, max6 := wgspec.MaxMSS(1420)
	for n := 0; n < len(good); n++ {
		pkt := bytes.Clone(good[:n])
		ClampMSS(pkt, max4, max6) // must not panic
	}
	// A length field that lies must not make ClampMSS read past the slice.
	pkt := bytes.Clone(good)
	binary.BigEndian.PutUint16(pkt[2:4], 9000)
	if ClampMSS(pkt, max4, max6) {
		t.Fatal("clamped a packet whose IPv4 total length exceeds the buffer")
	}
	// Non-first fragment.
	pkt = bytes.Clone(good)
	binary.BigEndian.PutUint16(pkt[6:8], 10)
	if ClampMSS(pkt, max4, max6) {
		t.Fatal("clamped a non-first fragment")
	}
}

func FuzzClampMSS(f *testing.F) {
	f.Add(synPacket(f, false, true, false, 1460, true))
	f.Add(synPacket(f, true, true, true, 9000, true))
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		orig := bytes.Clone(pkt)
		if !ClampMSS(pkt, 1380, 1360) {
			if !bytes.Equal(orig, pkt) {
				t.Fatal("unchanged packet was modified")
			}
			return
		}
		if len(pkt) != len(orig) {
			t.Fatal("length changed")
		}
		// Clamping is idempotent.
		if ClampMSS(pkt, 1380, 1360) {
			t.Fatal("second clamp changed the packet again")
		}
	})
}

func BenchmarkClampMSS(b *testing.B) {
	syn := synPacket(b, false, true, false, 1460, true)
	data := make([]byte, 1400)
	data[0] = 0x45
	data[9] = 6
	binary.BigEndian.PutUint16(data[2:4], 1400)
	data[20+12] = 5 << 4
	data[20+13] = 0x10 // ACK
	b.Run("data", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			ClampMSS(data, 1380, 1360)
		}
	})
	b.Run("syn", func(b *testing.B) {
		b.ReportAllocs()
		pkt := bytes.Clone(syn)
		for i := 0; i < b.N; i++ {
			copy(pkt, syn)
			ClampMSS(pkt, 1380, 1360)
		}
	})
}
