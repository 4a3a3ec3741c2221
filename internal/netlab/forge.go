package netlab

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/sys/unix"

	"github.com/vgate-project/vgate/gateway/keys"
)

// WireGuard handshake messages (wireguard-go device/noise-protocol.go): an
// initiation is 148 bytes (type 1, sender index at 4:8), a response 92
// (type 2, sender 4:8, receiver 8:12, ephemeral 12:44, empty 44:60, mac1
// 60:76, mac2 76:92).
const (
	wgInitiation     = 1
	wgResponse       = 2
	wgInitiationSize = 148
	wgResponseSize   = 92
)

// ResponseForger is an on-path observer of the lab underlay: it sniffs the
// WireGuard handshake initiations crossing the WAN namespace and answers
// each, for Lifetime, with Rate forged handshake responses a second to the
// initiator's sender index. Every forgery alternates its source between
// the forger's own address (Own) and the address the initiation went to
// (the peer, spoofed), and carries a valid MAC1 when the initiator's
// public key is in Keys (a public key is public); the first forgery for an
// index also goes out once with a wrong MAC1. No forgery can complete a
// handshake (its ephemeral key and payload are random).
type ResponseForger struct {
	// Own is the forger's own underlay address, which ForgeResponses adds
	// to the WAN bridge (inside 198.18.0.0/15).
	Own netip.Prefix
	// Keys maps an underlay address to the public key of the gateway
	// there.
	Keys map[netip.Addr]keys.PublicKey
	// Rate is forgeries a second per sender index; Lifetime how long an
	// index is attacked after its initiation was seen.
	Rate     int
	Lifetime time.Duration

	mu      sync.Mutex
	indices int // sender indices seen
	sent    int // forgeries sent
}

// ForgeStats is what a ResponseForger did so far.
type ForgeStats struct {
	Indices int // initiations (sender indices) seen
	Sent    int // forged responses sent
}

// Stats returns the forger's counts.
func (f *ResponseForger) Stats() ForgeStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ForgeStats{Indices: f.indices, Sent: f.sent}
}

// ForgeResponses runs f in the lab's WAN namespace until ctx is done: it
// adds f.Own to br0 and opens a packet socket that sees every interface
// there (the bridge ports see both gateways' traffic) and a raw IPv4
// socket to send from any source. It returns when ctx is done or the
// sockets fail.
func (l *Lab) ForgeResponses(ctx context.Context, f *ResponseForger) error {
	if !labUnderlay.Contains(f.Own.Addr()) || f.Rate <= 0 || f.Lifetime <= 0 {
		return fmt.Errorf("netlab: forger at %v (rate %d, lifetime %v): want an address in %v and a positive rate and lifetime", f.Own, f.Rate, f.Lifetime, labUnderlay)
	}
	if err := l.AddWANAddress(f.Own); err != nil {
		return err
	}
	var sniff, raw int
	if err := InNS(l.WAN, func() (err error) {
		proto := htons(unix.ETH_P_ALL)
		sniff, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		raw, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			unix.Close(sniff)
			return fmt.Errorf("raw socket: %w", err)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("netlab: forger in %s: %w", l.WAN, err)
	}
	defer unix.Close(sniff)
	defer unix.Close(raw)
	tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(sniff, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("netlab: forger SO_RCVTIMEO: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	seen := map[uint32]bool{}
	buf := make([]byte, 1<<16)
	for ctx.Err() == nil {
		n, from, err := unix.Recvfrom(sniff, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlab: forger sniffing in %s: %w", l.WAN, err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Protocol != htons(unix.ETH_P_IP) {
			continue
		}
		src, dst, sender, ok := initiationIn(buf[:n])
		if !ok || seen[sender] || !labUnderlay.Contains(src.Addr()) {
			continue
		}
		seen[sender] = true
		f.mu.Lock()
		f.indices++
		f.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.attack(ctx, raw, src, dst, sender)
		}()
	}
	return nil
}

// attack sends forged responses to the initiation from initiator to peer
// with sender index sender.
func (f *ResponseForger) attack(ctx context.Context, raw int, initiator, peer netip.AddrPort, sender uint32) {
	pub, known := f.Keys[initiator.Addr()]
	var mac1Key [blake2s.Size]byte
	if known {
		h, _ := blake2s.New256(nil)
		h.Write([]byte("mac1----"))
		h.Write(pub[:])
		h.Sum(mac1Key[:0])
	}
	ownPort := uint16(40000 + sender%20000)
	tick := time.NewTicker(time.Second / time.Duration(f.Rate))
	defer tick.Stop()
	end := time.After(f.Lifetime)
	for i := 0; ; i++ {
		msg := make([]byte, wgResponseSize)
		binary.LittleEndian.PutUint32(msg[0:], wgResponse)
		_, _ = rand.Read(msg[4:8])
		binary.LittleEndian.PutUint32(msg[8:], sender)
		_, _ = rand.Read(msg[12:60])
		src := netip.AddrPortFrom(f.Own.Addr(), ownPort)
		if i%2 == 1 {
			src = peer
		}
		if i == 0 {
			_, _ = rand.Read(msg[60:76]) // a wrong MAC1, once
			f.send(raw, src, initiator, msg)
		}
		if known {
			mac, _ := blake2s.New128(mac1Key[:])
			mac.Write(msg[:60])
			mac.Sum(msg[60:60])
		}
		f.send(raw, src, initiator, msg)
		select {
		case <-ctx.Done():
			return
		case <-end:
			return
		case <-tick.C:
		}
	}
}

// send writes one UDP datagram with payload from src to dst through the
// raw socket (the UDP checksum is left out, as IPv4 allows).
func (f *ResponseForger) send(raw int, src, dst netip.AddrPort, payload []byte) {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	if sendIPv4(raw, src.Addr(), dst.Addr(), unix.IPPROTO_UDP, udp) == nil {
		f.mu.Lock()
		f.sent++
		f.mu.Unlock()
	}
}

// sendIPv4 writes one IPv4 packet from src (any address: the raw socket
// sends it as it is) to dst carrying payload of protocol proto; the
// kernel fills in the header checksum, length and id.
func sendIPv4(raw int, src, dst netip.Addr, proto byte, payload []byte) error {
	pkt := make([]byte, 20+len(payload))
	pkt[0] = 0x45
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[8] = 64
	pkt[9] = proto
	s4, d4 := src.As4(), dst.As4()
	copy(pkt[12:16], s4[:])
	copy(pkt[16:20], d4[:])
	copy(pkt[20:], payload)
	return unix.Sendto(raw, pkt, 0, &unix.SockaddrInet4{Addr: d4})
}

// WANSender sends IPv4 packets with any source address from the lab's WAN
// namespace (a raw socket there): the spoofing host of an attack test.
type WANSender struct {
	fd int
}

// WANSender opens a raw IPv4 socket in the WAN namespace; packets leave
// by its routes (AddWANAddress, and routes the test adds).
func (l *Lab) WANSender() (*WANSender, error) {
	var fd int
	if err := InNS(l.WAN, func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	}); err != nil {
		return nil, fmt.Errorf("netlab: raw socket in %s: %w", l.WAN, err)
	}
	return &WANSender{fd: fd}, nil
}

// Send sends one IPv4 packet of protocol proto from src to dst.
func (w *WANSender) Send(src, dst netip.Addr, proto byte, payload []byte) error {
	if !src.Is4() || !dst.Is4() {
		return fmt.Errorf("netlab: WAN sender: %v -> %v: IPv4 only", src, dst)
	}
	return sendIPv4(w.fd, src, dst, proto, payload)
}

// Close closes the socket.
func (w *WANSender) Close() error { return unix.Close(w.fd) }

// initiationIn parses an IPv4 packet and, if it is a UDP datagram carrying
// a WireGuard handshake initiation, returns its source, destination and
// sender index.
func initiationIn(pkt []byte) (src, dst netip.AddrPort, sender uint32, ok bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != unix.IPPROTO_UDP {
		return src, dst, 0, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 || len(pkt) != ihl+8+wgInitiationSize {
		return src, dst, 0, false
	}
	msg := pkt[ihl+8:]
	if binary.LittleEndian.Uint32(msg) != wgInitiation {
		return src, dst, 0, false
	}
	src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[12:16])), binary.BigEndian.Uint16(pkt[ihl:]))
	dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[16:20])), binary.BigEndian.Uint16(pkt[ihl+2:]))
	return src, dst, binary.LittleEndian.Uint32(msg[4:8]), true
}
