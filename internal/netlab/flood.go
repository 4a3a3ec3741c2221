package netlab

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// labUnderlay is the only IPv4 range the lab's floods may target (RFC 2544
// benchmarking space, the underlay of every lab).
var labUnderlay = netip.MustParsePrefix("198.18.0.0/15")

// wgTransport is WireGuard's transport data message type; a transport
// message starts with the type (little-endian uint32), then the receiver
// index (uint32) and the counter (uint64), then ciphertext and a 16-byte tag
// (wireguard-go device/noise-protocol.go).
const (
	wgTransport    = 4
	wgTransportMin = 32
)

// CaptureTransportIndex reads IPv4 packets on interface ifname in namespace
// ns (an AF_PACKET socket, so it sees outgoing packets too) until it sees a
// WireGuard transport message to dst, and returns that message's receiver
// index: the index the receiving device at dst chose for the session. It
// gives up after timeout. The caller makes traffic flow meanwhile.
func (l *Lab) CaptureTransportIndex(ns, ifname string, dst netip.AddrPort, timeout time.Duration) (uint32, error) {
	if !dst.Addr().Is4() {
		return 0, fmt.Errorf("netlab: capture to %v: IPv4 only", dst)
	}
	var fd int
	if err := InNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		// ETH_P_ALL: protocol-specific packet sockets see only incoming
		// packets, and the interesting ones leave through ifname.
		proto := htons(unix.ETH_P_ALL)
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind AF_PACKET to %s: %w", ifname, err)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("netlab: capture in %s on %s: %w", ns, ifname, err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return 0, fmt.Errorf("netlab: capture SO_RCVTIMEO: %w", err)
	}
	buf := make([]byte, 1<<16)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("netlab: capture in %s on %s: %w", ns, ifname, err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Protocol != htons(unix.ETH_P_IP) {
			continue
		}
		if idx, ok := transportIndexTo(buf[:n], dst); ok {
			return idx, nil
		}
	}
	return 0, fmt.Errorf("netlab: no WireGuard transport message to %v on %s in %s within %v", dst, ifname, ns, timeout)
}

// transportIndexTo parses an IPv4 packet and, if it is a UDP datagram to dst
// carrying a WireGuard transport message (the first of a GSO batch), returns
// its receiver index.
func transportIndexTo(pkt []byte, dst netip.AddrPort) (uint32, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != unix.IPPROTO_UDP {
		return 0, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 || len(pkt) < ihl+8+wgTransportMin {
		return 0, false
	}
	if netip.AddrFrom4([4]byte(pkt[16:20])) != dst.Addr() ||
		binary.BigEndian.Uint16(pkt[ihl+2:]) != dst.Port() {
		return 0, false
	}
	msg := pkt[ihl+8:]
	if binary.LittleEndian.Uint32(msg) != wgTransport {
		return 0, false
	}
	return binary.LittleEndian.Uint32(msg[4:8]), true
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// GarbageTransport returns size bytes (at least 32) that look like a
// WireGuard transport message with receiver index idx and counter seq to
// the mux that routes it, and carry random bytes where the ciphertext and
// tag belong, so no device can authenticate them.
func GarbageTransport(idx uint32, seq uint64, size int) []byte {
	size = max(size, wgTransportMin)
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b[0:], wgTransport)
	binary.LittleEndian.PutUint32(b[4:], idx)
	binary.LittleEndian.PutUint64(b[8:], seq)
	_, _ = rand.Read(b[16:])
	return b
}

// Flood is a bounded stream of UDP datagrams from one lab namespace.
type Flood struct {
	// Dst is the target; it must lie in the lab underlay 198.18.0.0/15.
	Dst netip.AddrPort
	// Count and Duration bound the flood: it stops at whichever comes
	// first. Both must be positive.
	Count    int
	Duration time.Duration
	// Rate, when positive, paces the flood to that many datagrams per
	// second (in bursts of at most a millisecond's worth); 0 sends as fast
	// as one socket can.
	Rate int
	// Payload returns datagram number seq (from 0). The flood may send the
	// same slice again, so Payload must not keep it.
	Payload func(seq uint64) []byte
}

// FloodResult is what a flood did.
type FloodResult struct {
	Sent    int // datagrams the kernel accepted
	Errors  int // datagrams it refused (ENOBUFS, ECONNREFUSED)
	Elapsed time.Duration
}

// Flood sends f's datagrams from namespace ns, paced to f.Rate or as fast
// as one socket can, until f.Count are sent, f.Duration passes or ctx is done. Only transient
// send errors are tolerated (counted in Errors).
func (l *Lab) Flood(ctx context.Context, ns string, f Flood) (FloodResult, error) {
	dst := f.Dst.Addr().Unmap()
	if !labUnderlay.Contains(dst) || f.Dst.Port() == 0 {
		return FloodResult{}, fmt.Errorf("netlab: flood target %v outside the lab underlay %v", f.Dst, labUnderlay)
	}
	if f.Count <= 0 || f.Duration <= 0 || f.Payload == nil {
		return FloodResult{}, fmt.Errorf("netlab: flood to %v needs a positive Count (%d), Duration (%v) and a Payload", f.Dst, f.Count, f.Duration)
	}
	var c *net.UDPConn
	if err := InNS(ns, func() (err error) {
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, f.Dst.Port())))
		return err
	}); err != nil {
		return FloodResult{}, fmt.Errorf("netlab: flood socket in %s to %v: %w", ns, f.Dst, err)
	}
	defer c.Close()
	var r FloodResult
	begin := time.Now()
	end := begin.Add(f.Duration)
	for seq := 0; seq < f.Count; seq++ {
		if f.Rate > 0 {
			for float64(seq) >= float64(f.Rate)*time.Since(begin).Seconds() && time.Now().Before(end) {
				time.Sleep(time.Millisecond)
			}
		}
		if seq%256 == 0 || f.Rate > 0 {
			if time.Now().After(end) || ctx.Err() != nil {
				break
			}
		}
		if _, err := c.Write(f.Payload(uint64(seq))); err != nil {
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.EAGAIN) {
				r.Errors++
				continue
			}
			r.Elapsed = time.Since(begin)
			return r, fmt.Errorf("netlab: flood in %s to %v after %d datagrams: %w", ns, f.Dst, r.Sent, err)
		}
		r.Sent++
	}
	r.Elapsed = time.Since(begin)
	return r, nil
}
