package dataplane

import (
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/vgate-project/vgate/gateway/wgspec"
)

// ipPacket is a minimal IPv4 or IPv6 header from src, after offset bytes
// of room (as wireguard-go writes to a TUN).
func ipPacket(offset int, src string) []byte {
	a := netip.MustParseAddr(src)
	if a.Is4() {
		b := make([]byte, offset+20)
		b[offset] = 0x45
		s := a.As4()
		copy(b[offset+12:], s[:])
		return b
	}
	b := make([]byte, offset+40)
	b[offset] = 0x60
	s := a.As16()
	copy(b[offset+8:], s[:])
	return b
}

func TestSourceCheck(t *testing.T) {
	const off = 16
	var s srcCheck
	ok4, bad4 := ipPacket(off, "10.2.3.4"), ipPacket(off, "10.9.0.1")
	ok6, bad6 := ipPacket(off, "fd00:2::5"), ipPacket(off, "fd00:9::1")
	tunAddr := ipPacket(off, "169.254.0.2")
	garbage := make([]byte, off+3) // not IP: not ours to judge

	// Before the allowed set is known, nothing is dropped.
	if got := s.filter([][]byte{bad4, bad6}, off); len(got) != 2 || s.dropped.Load() != 0 {
		t.Fatalf("before setAllowed: kept %d, dropped %d", len(got), s.dropped.Load())
	}
	s.setAllowed([]netip.Prefix{netip.MustParsePrefix("10.2.0.0/16"), netip.MustParsePrefix("fd00:2::/48"), netip.MustParsePrefix("169.254.0.2/32")})
	in := [][]byte{ok4, bad4, ok6, bad6, tunAddr, garbage}
	got := s.filter(slices.Clone(in), off)
	want := [][]byte{ok4, ok6, tunAddr, garbage}
	if len(got) != len(want) {
		t.Fatalf("kept %d packets, want %d", len(got), len(want))
	}
	for i := range want {
		if &got[i][0] != &want[i][0] {
			t.Errorf("packet %d is not the expected one (order must be kept)", i)
		}
	}
	if n := s.dropped.Load(); n != 2 {
		t.Errorf("dropped = %d, want 2", n)
	}
	// A new set takes effect whole: 10.9.0.0/16 (e.g. accepted over BGP
	// since) is allowed now, 10.2.0.0/16 no longer.
	s.setAllowed([]netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")})
	got = s.filter([][]byte{ok4, bad4}, off)
	if len(got) != 1 || &got[0][0] != &bad4[0] || s.dropped.Load() != 3 {
		t.Errorf("after a new set: kept %d, dropped %d", len(got), s.dropped.Load())
	}
	// The device itself allows everything.
	if p := devicePeer(wgspec.PeerSpec{AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}}); !slices.Equal(p.AllowedIPs, deviceAllowedIPs) {
		t.Errorf("devicePeer AllowedIPs = %v", p.AllowedIPs)
	}
}

// Sets are swapped while packets are checked (run with -race).
func TestSourceCheckConcurrent(t *testing.T) {
	var s srcCheck
	pkt := ipPacket(0, "10.2.3.4")
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 200 {
			if i%2 == 0 {
				s.setAllowed([]netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")})
			} else {
				s.setAllowed(nil)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 2000 {
			s.filter([][]byte{pkt}, 0)
		}
	}()
	wg.Wait()
}

func BenchmarkSourceCheck(b *testing.B) {
	var s srcCheck
	var ps []netip.Prefix
	for i := range 1000 { // a peering with 1000 accepted BGP routes
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	s.setAllowed(ps)
	bufs := make([][]byte, 128)
	for i := range bufs {
		bufs[i] = ipPacket(16, "10.3.200.9")
	}
	b.ResetTimer()
	for range b.N {
		s.filter(bufs, 16)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bufs)), "ns/packet")
}

// Packets read from the TUN toward a destination outside the peer's
// AllowedIPs (the kernel's own IPv6 link-local and multicast traffic on
// the interface) are not sent: their size becomes 0, which wireguard-go
// skips, as its own AllowedIPs did.
func TestSourceCheckOutbound(t *testing.T) {
	const off = 16
	var s srcCheck
	dst := func(a string) []byte { // a packet to a
		p := ipPacket(off, "10.1.0.2")
		addr := netip.MustParseAddr(a)
		if addr.Is4() {
			d := addr.As4()
			copy(p[off+16:], d[:])
			return p
		}
		p = ipPacket(off, "fe80::1")
		d := addr.As16()
		copy(p[off+24:], d[:])
		return p
	}
	bufs := [][]byte{dst("10.2.0.9"), dst("ff02::16"), dst("fd00:2::1"), dst("10.7.0.1")}
	sizes := []int{20, 40, 40, 20}
	s.filterOut(bufs, sizes, off, 4) // no set yet: all pass
	if !slices.Equal(sizes, []int{20, 40, 40, 20}) {
		t.Fatalf("before setAllowed sizes = %v", sizes)
	}
	s.setAllowed([]netip.Prefix{netip.MustParsePrefix("10.2.0.0/16"), netip.MustParsePrefix("fd00:2::/48")})
	s.filterOut(bufs, sizes, off, 3) // the 4th is beyond n
	if want := []int{20, 0, 40, 20}; !slices.Equal(sizes, want) {
		t.Errorf("sizes = %v, want %v", sizes, want)
	}
	if s.dropped.Load() != 0 {
		t.Errorf("outbound drops counted as source drops")
	}
}
