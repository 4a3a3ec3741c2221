package routing

// The probe's wire format: the ICMP echo request it sends (sendTo), its
// data (mark, time, both tunnel addresses, AS numbers, flags) and the
// parse of a received one.

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Probe packet: an ICMP echo (8 bytes of header) whose data is the mark,
// the send time, both tunnel addresses, the sender's AS, the AS it
// expects of the receiver and flags (probeHears: the sender hears the
// receiver).
const (
	probeMark    = "vgP2"
	probeHdr     = 8
	probeDataLen = 4 + 8 + 16 + 16 + 4 + 4 + 4 // mark, unix nanoseconds, from, to, AS, expected AS, flags
	probeLen     = probeHdr + probeDataLen

	probeHears = 1 << 0
	// probeDraining: the sender drains (vgate drain) and asks the
	// receiver to move its traffic to another path where it has one.
	probeDraining = 1 << 1
	// probeAvoids: the receiver said it drains and the sender's routes
	// no longer go through it.
	probeAvoids = 1 << 2
)

// sendTo writes one echo request to t. p.mu is held (by the run loop).
func (p *Prober) sendTo(t *probeTarget, now time.Time) {
	var flags uint32
	if t.alive {
		flags |= probeHears
	}
	if p.draining {
		flags |= probeDraining
	}
	if t.avoid {
		flags |= probeAvoids
	}
	from, to := p.srcBytes, t.Address.As16()
	if t.LocalWire.IsValid() { // NAT: the payload names what crosses the tunnel
		from = t.LocalWire.As16()
	}
	if t.PeerWire.IsValid() {
		to = t.PeerWire.As16()
	}
	putProbeFlags(p.sendBuf[:], p.isV6, p.id, p.seq, now, from, to, t.LocalASN, t.PeerASN, flags)
	p.sent++
	p.sendSA = t.sa
	if p.raw != nil { // nil: a test's prober without a socket
		_ = p.raw.Write(p.sendFn)
	}
}

// putProbe writes an echo request into b (probeLen bytes). The ICMPv6
// checksum is the kernel's; the ICMPv4 one is computed here.
func putProbe(b []byte, v6 bool, id, seq uint16, now time.Time, from, to [16]byte, asn, expects uint32, hears bool) {
	var flags uint32
	if hears {
		flags = probeHears
	}
	putProbeFlags(b, v6, id, seq, now, from, to, asn, expects, flags)
}

// putProbeFlags is putProbe with every flag.
func putProbeFlags(b []byte, v6 bool, id, seq uint16, now time.Time, from, to [16]byte, asn, expects, flags uint32) {
	b[0], b[1] = 8, 0 // echo request
	if v6 {
		b[0] = 128
	}
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[8:12], probeMark)
	binary.BigEndian.PutUint64(b[12:], uint64(now.UnixNano()))
	copy(b[20:36], from[:])
	copy(b[36:52], to[:])
	binary.BigEndian.PutUint32(b[52:], asn)
	binary.BigEndian.PutUint32(b[56:], expects)
	binary.BigEndian.PutUint32(b[60:], flags)
	if !v6 {
		binary.BigEndian.PutUint16(b[2:], icmpChecksum(b[:probeLen]))
	}
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// probeMsg is a parsed probe packet.
type probeMsg struct {
	reply    bool
	id       uint16
	sent     int64 // unix nanoseconds
	from, to netip.Addr
	asn      uint32 // the sender's AS
	expects  uint32 // the AS the sender expects of the receiver
	hears    bool   // the sender hears the receiver
	draining bool   // the sender drains
	avoids   bool   // the sender's routes avoid the receiver
}

// parseProbe reads a vgate probe from what a raw ICMP socket returns (for
// IPv4 the packet with its IP header, for IPv6 the ICMPv6 message). ok is
// false for anything else.
func parseProbe(b []byte, v6 bool) (m probeMsg, ok bool) {
	if !v6 {
		if len(b) < 20 || b[0]>>4 != 4 {
			return m, false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return m, false
		}
		b = b[ihl:]
	}
	if len(b) < probeLen || string(b[8:12]) != probeMark {
		return m, false
	}
	switch {
	case !v6 && b[0] == 0, v6 && b[0] == 129:
		m.reply = true
	case !v6 && b[0] == 8, v6 && b[0] == 128:
	default:
		return m, false
	}
	m.id = binary.BigEndian.Uint16(b[4:])
	m.sent = int64(binary.BigEndian.Uint64(b[12:]))
	m.from = netip.AddrFrom16([16]byte(b[20:36])).Unmap()
	m.to = netip.AddrFrom16([16]byte(b[36:52])).Unmap()
	m.asn = binary.BigEndian.Uint32(b[52:])
	m.expects = binary.BigEndian.Uint32(b[56:])
	flags := binary.BigEndian.Uint32(b[60:])
	m.hears = flags&probeHears != 0
	m.draining = flags&probeDraining != 0
	m.avoids = flags&probeAvoids != 0
	return m, true
}
