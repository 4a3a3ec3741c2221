package dataplane

import (
	"net/netip"
	"sync/atomic"

	"go4.org/netipx"

	"github.com/vgate-project/vgate/gateway/wgspec"
)

// The source check of a site-to-site tunnel is ours, in the TUN seam, so
// that its drops are counted. Each device has exactly one peer, so
// wireguard-go's own AllowedIPs are not needed to pick a peer: the device
// gets 0.0.0.0/0 and ::/0 (cryptokey routing sends whatever the kernel
// routed into this TUN to the one peer), and a decrypted packet the peer
// sends from a source outside its planned AllowedIPs (wgspec.PeerSpec.AllowedIPs:
// its static routes, tunnel address and the routes accepted from it over
// BGP) is dropped and counted here, before the kernel sees it. A
// decision never depends on wireguard-go's log lines.

// deviceAllowedIPs is what the wireguard-go device is told the peer may
// send from and receive at: everything (see above).
var deviceAllowedIPs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// devicePeer is spec as the wireguard-go device gets it.
func devicePeer(spec wgspec.PeerSpec) wgspec.PeerSpec {
	spec.AllowedIPs = deviceAllowedIPs
	return spec
}

// srcCheck holds the peer's allowed sources and counts the packets it
// drops. The set is replaced whole (one atomic store), so a packet is
// checked against either the old set or the new one, never a mix.
type srcCheck struct {
	allowed atomic.Pointer[netipx.IPSet]
	dropped atomic.Uint64
}

// setAllowed makes ps the allowed sources.
func (s *srcCheck) setAllowed(ps []netip.Prefix) {
	var b netipx.IPSetBuilder
	for _, p := range ps {
		b.AddPrefix(p.Masked())
	}
	set, err := b.IPSet()
	if err != nil { // only for invalid prefixes, which the planner never emits
		set = &netipx.IPSet{}
	}
	s.allowed.Store(set)
}

// filter drops (and counts) the packets of bufs, each starting at offset,
// whose IPv4 or IPv6 source is not allowed; it keeps the others in order,
// compacting bufs in place. Before setAllowed it keeps everything.
func (s *srcCheck) filter(bufs [][]byte, offset int) [][]byte {
	set := s.allowed.Load()
	if set == nil {
		return bufs
	}
	kept := bufs[:0]
	for _, b := range bufs {
		if src, ok := packetSource(b[min(offset, len(b)):]); ok && !set.Contains(src) {
			s.dropped.Add(1)
			continue
		}
		kept = append(kept, b)
	}
	return kept
}

// filterOut drops the packets read from the TUN (bufs[i][offset:][:sizes[i]],
// i < n) whose destination is not allowed, by setting their size to 0
// (which wireguard-go skips): what wireguard-go's AllowedIPs did before
// the device allowed everything, e.g. for the IPv6 link-local and
// multicast packets the kernel sends on the interface. Not counted: the
// kernel routes only the peer's prefixes here.
func (s *srcCheck) filterOut(bufs [][]byte, sizes []int, offset, n int) {
	set := s.allowed.Load()
	if set == nil {
		return
	}
	for i := range n {
		if sizes[i] <= 0 {
			continue
		}
		if dst, ok := packetDestination(bufs[i][offset : offset+sizes[i]]); ok && !set.Contains(dst) {
			sizes[i] = 0
		}
	}
}

// packetDestination is the destination address of an IPv4 or IPv6 packet.
func packetDestination(p []byte) (netip.Addr, bool) {
	if len(p) == 0 {
		return netip.Addr{}, false
	}
	switch p[0] >> 4 {
	case 4:
		if len(p) >= 20 {
			return netip.AddrFrom4([4]byte(p[16:20])), true
		}
	case 6:
		if len(p) >= 40 {
			return netip.AddrFrom16([16]byte(p[24:40])), true
		}
	}
	return netip.Addr{}, false
}

// packetSource is the source address of an IPv4 or IPv6 packet; ok is
// false for anything else (wireguard-go has already dropped those).
func packetSource(p []byte) (netip.Addr, bool) {
	if len(p) == 0 {
		return netip.Addr{}, false
	}
	switch p[0] >> 4 {
	case 4:
		if len(p) >= 20 {
			return netip.AddrFrom4([4]byte(p[12:16])), true
		}
	case 6:
		if len(p) >= 40 {
			return netip.AddrFrom16([16]byte(p[8:24])), true
		}
	}
	return netip.Addr{}, false
}
