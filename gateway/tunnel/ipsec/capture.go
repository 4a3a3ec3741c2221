package ipsec

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/ipsec"
)

// ipsecCapture taps an IPsec peering's inner packets: charon owns the
// libipsec TUN, so vgate reads a copy of its traffic with a packet socket
// bound to it (AF_PACKET, SOCK_DGRAM: the IP packet without a link
// header) and keeps the packets from or to the peering's remote traffic
// selectors. Outgoing packets (PACKET_OUTGOING) are the ones the kernel
// routed into the tunnel; the others were decrypted from the peer.
type ipsecCapture struct {
	fd   int
	c    *dataplane.Capture
	done chan struct{}
}

// StartCapture starts tapping the peering's packets into c; one capture
// per peering at a time, as for WireGuard tunnels.
func (t *ipsecTunnel) StartCapture(c *dataplane.Capture) error {
	k := t.k
	k.capMu.Lock()
	defer k.capMu.Unlock()
	if k.captures[t.name] != nil {
		return api.WithCode(api.CodeConflict, dataplane.ErrCaptureBusy)
	}
	ifi, err := net.InterfaceByName(ipsec.IfName)
	if err != nil {
		return fmt.Errorf("capture on IPsec peering %q: %w", t.name, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return fmt.Errorf("capture on IPsec peering %q: packet socket on %s: %w", t.name, ipsec.IfName, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("capture on IPsec peering %q: bind to %s: %w", t.name, ipsec.IfName, err)
	}
	// A receive timeout lets the reader notice StopCapture.
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	cp := &ipsecCapture{fd: fd, c: c, done: make(chan struct{})}
	k.captures[t.name] = cp
	go cp.read(c, t.remote)
	return nil
}

// StopCapture stops c (if it is still the peering's capture).
func (t *ipsecTunnel) StopCapture(c *dataplane.Capture) {
	k := t.k
	k.capMu.Lock()
	cp := k.captures[t.name]
	if cp == nil || cp.c != c {
		k.capMu.Unlock()
		return
	}
	delete(k.captures, t.name)
	k.capMu.Unlock()
	close(cp.done)
}

func (cp *ipsecCapture) read(c *dataplane.Capture, remote []netip.Prefix) {
	defer unix.Close(cp.fd)
	buf := make([]byte, 65536)
	for {
		select {
		case <-cp.done:
			return
		default:
		}
		n, from, err := unix.Recvfrom(cp.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || !ofPeering(buf[:n], remote) {
			continue
		}
		dir := dataplane.Inbound
		if ll.Pkttype == unix.PACKET_OUTGOING {
			dir = dataplane.Outbound
		}
		c.Tap(dir, buf[:n], time.Now())
	}
}

// ofPeering reports whether an IP packet's source or destination is in
// the peering's remote traffic selectors (every IPsec peering shares the
// TUN; the selectors tell them apart).
func ofPeering(pkt []byte, remote []netip.Prefix) bool {
	src, dst, ok := ipAddrs(pkt)
	if !ok {
		return false
	}
	for _, q := range remote {
		if q.Contains(src) || q.Contains(dst) {
			return true
		}
	}
	return false
}

// ipAddrs are an IPv4 or IPv6 packet's source and destination.
func ipAddrs(pkt []byte) (src, dst netip.Addr, ok bool) {
	if len(pkt) < 1 {
		return src, dst, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return src, dst, false
		}
		return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])), true
	case 6:
		if len(pkt) < 40 {
			return src, dst, false
		}
		return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40])), true
	}
	return src, dst, false
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
