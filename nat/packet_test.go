package nat

import (
	"encoding/binary"
	"net/netip"
)

// This file is the tests' own packet model, written apart from the
// translator: a description of a packet (spec) serialized with every
// checksum computed from scratch, a checker that verifies the checksums of
// any packet, and a slow reference of the address mapping. The reference
// translation of a packet is: map the addresses of its description, then
// serialize it again.

// spec describes an IP packet.
type spec struct {
	src, dst netip.Addr // the family follows src
	proto    byte
	// l4 is the transport header and data; its checksum field is filled
	// in by serialize (UDP: unless udpNoCsum).
	l4        []byte
	udpNoCsum bool
	// icmpErr, when set, makes this an ICMP(v6) error quoting the first
	// quoteLen bytes of the packet icmpErr describes (l4 is then ignored).
	icmpErr  *spec
	icmpType byte
	quoteLen int
	// quoteFix, when set, patches the quote before the ICMP checksum is
	// computed (the reference's way to keep a half-quoted field).
	quoteFix func(q []byte)
	// ext are IPv4 options or IPv6 extension headers (raw, each IPv6 one
	// with its next-header byte left to serialize) before the transport.
	ext     []byte
	extType byte // IPv6: the type of ext (0 hop-by-hop, 60 destination options, 43 routing)
	// A fragment: the bytes [fragOff, fragOff+fragLen) of the datagram's
	// payload, more fragments following when mf. fragLen 0: whole.
	fragOff, fragLen int
	mf               bool
	id               uint32
	ttl              byte
}

func (s spec) v6() bool { return s.src.Is6() }

// sum16 is the ones' complement sum of b (big-endian words, an odd last
// byte padded with zero), folded, plus initial.
func sum16(b []byte, initial uint32) uint32 {
	s := initial
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return s
}

func pseudo(src, dst netip.Addr, proto byte, n int) uint32 {
	var b []byte
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	if src.Is4() {
		b = append(b, 0, proto, byte(n>>8), byte(n))
	} else {
		b = append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, proto)
	}
	return sum16(b, 0)
}

// csumOffset is where the transport checksum is, and whether the
// pseudo-header is in it.
func csumOffset(proto byte, v6 bool) (int, bool, bool) {
	switch proto {
	case 6:
		return 16, true, true
	case 17, 33, 136:
		return 6, true, true
	case 1:
		return 2, false, true
	case 58:
		return 2, v6, true
	}
	return 0, false, false
}

// transport returns the transport bytes of s with their checksum.
func (s spec) transport() []byte {
	var l4 []byte
	proto := s.proto
	if s.icmpErr != nil {
		in := s.icmpErr.serialize()
		if s.quoteLen < len(in) {
			in = in[:s.quoteLen]
		}
		if s.quoteFix != nil {
			s.quoteFix(in)
		}
		proto = 1
		if s.v6() {
			proto = 58
		}
		l4 = append([]byte{s.icmpType, 0, 0, 0, 0, 0, 0x05, 0x78}, in...)
	} else {
		l4 = append([]byte(nil), s.l4...)
	}
	off, ps, ok := csumOffset(proto, s.v6())
	if !ok || off+2 > len(l4) {
		return l4
	}
	l4[off], l4[off+1] = 0, 0
	if (proto == 17 || proto == 136) && s.udpNoCsum {
		return l4
	}
	var init uint32
	if ps {
		init = pseudo(s.src, s.dst, proto, len(l4))
	}
	c := ^uint16(sum16(l4, init))
	if c == 0 && (proto == 17 || proto == 136) {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[off:], c)
	return l4
}

func (s spec) protocol() byte {
	if s.icmpErr != nil {
		if s.v6() {
			return 58
		}
		return 1
	}
	return s.proto
}

// serialize builds the packet with every checksum computed from scratch.
func (s spec) serialize() []byte {
	l4 := s.transport()
	data := l4
	if s.fragLen > 0 {
		end := min(s.fragOff+s.fragLen, len(l4))
		data = l4[s.fragOff:end]
	}
	ttl := s.ttl
	if ttl == 0 {
		ttl = 64
	}
	if !s.v6() {
		ihl := 20 + len(s.ext)
		h := make([]byte, ihl, ihl+len(data))
		h[0] = 0x40 | byte(ihl/4)
		binary.BigEndian.PutUint16(h[2:], uint16(ihl+len(data)))
		binary.BigEndian.PutUint16(h[4:], uint16(s.id))
		var frag uint16
		if s.fragLen > 0 {
			frag = uint16(s.fragOff / 8)
			if s.mf {
				frag |= 0x2000
			}
		}
		binary.BigEndian.PutUint16(h[6:], frag)
		h[8], h[9] = ttl, s.protocol()
		copy(h[12:], s.src.AsSlice())
		copy(h[16:], s.dst.AsSlice())
		copy(h[20:], s.ext)
		binary.BigEndian.PutUint16(h[10:], ^uint16(sum16(h, 0)))
		return append(h, data...)
	}
	h := make([]byte, 40)
	h[0] = 0x60
	h[7] = ttl
	copy(h[8:], s.src.AsSlice())
	copy(h[24:], s.dst.AsSlice())
	next := &h[6]
	if len(s.ext) > 0 {
		e := append([]byte(nil), s.ext...)
		*next = s.extType
		h = append(h, e...)
		next = &h[len(h)-len(e)]
	}
	if s.fragLen > 0 {
		*next = 44
		f := make([]byte, 8)
		fo := uint16(s.fragOff)
		if s.mf {
			fo |= 1
		}
		binary.BigEndian.PutUint16(f[2:], fo)
		binary.BigEndian.PutUint32(f[4:], s.id)
		h = append(h, f...)
		next = &h[len(h)-8]
	}
	*next = s.protocol()
	h = append(h, data...)
	binary.BigEndian.PutUint16(h[4:], uint16(len(h)-40))
	return h
}

// checks is what verify found: for each checksum it could judge, whether
// it holds.
type checks struct {
	ip, l4, quoteIP  bool // valid
	hasIP, hasL4     bool // judged
	hasQuoteIP       bool
	l4Proto, version byte
}

// verify checks the checksums of an IPv4 or IPv6 packet (its IPv4 header;
// its transport checksum when the packet is whole; for an ICMP error the
// ICMP checksum over the quote and the quoted IPv4 header's checksum).
// IPv6 extension headers are followed as far as hop-by-hop, destination
// options and fragment; routing headers are not judged.
func verify(p []byte) checks {
	var c checks
	if len(p) < 1 {
		return c
	}
	c.version = p[0] >> 4
	var src, dst netip.Addr
	var l4 []byte
	var proto byte
	switch c.version {
	case 4:
		if len(p) < 20 {
			return c
		}
		ihl := int(p[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(p[2:]))
		if ihl < 20 || ihl > len(p) {
			return c
		}
		c.hasIP, c.ip = true, sum16(p[:ihl], 0) == 0xffff
		if total < ihl || total > len(p) || binary.BigEndian.Uint16(p[6:])&0x3fff != 0 {
			return c
		}
		src, dst = netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
		proto, l4 = p[9], p[ihl:total]
	case 6:
		if len(p) < 40 {
			return c
		}
		end := 40 + int(binary.BigEndian.Uint16(p[4:]))
		if end > len(p) {
			return c
		}
		src, dst = netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
		proto, l4 = p[6], p[40:end]
		for proto == 0 || proto == 60 || proto == 44 {
			if len(l4) < 8 {
				return c
			}
			n := (int(l4[1]) + 1) * 8
			if proto == 44 {
				if binary.BigEndian.Uint16(l4[2:])&^6 != 0 { // a real fragment
					return c
				}
				n = 8
			}
			if n > len(l4) {
				return c
			}
			proto, l4 = l4[0], l4[n:]
		}
	default:
		return c
	}
	c.l4Proto = proto
	off, ps, ok := csumOffset(proto, c.version == 6)
	if !ok || off+2 > len(l4) {
		return c
	}
	if (proto == 17 || proto == 136) && binary.BigEndian.Uint16(l4[off:]) == 0 {
		return c // no checksum
	}
	var init uint32
	if ps {
		init = pseudo(src, dst, proto, len(l4))
	}
	c.hasL4, c.l4 = true, sum16(l4, init) == 0xffff
	if (proto == 1 || proto == 58) && len(l4) >= 28 && l4[8]>>4 == 4 {
		ihl := int(l4[8]&0x0f) * 4
		if ihl >= 20 && 8+ihl <= len(l4) {
			c.hasQuoteIP, c.quoteIP = true, sum16(l4[8:8+ihl], 0) == 0xffff
		}
	}
	return c
}

// refMap is the slow reference of one address position: the first rule
// whose from-side contains a maps it, bit by bit; an address in a to-side
// that no from-side contains is ambiguous.
func refMap(rules []Rule, a netip.Addr, toExternal bool) (netip.Addr, int) {
	for i, r := range rules {
		from, to := r.Internal, r.External
		if !toExternal {
			from, to = to, from
		}
		if from.Contains(a) {
			x, y := a.As16(), to.Addr().As16()
			n := to.Bits()
			if a.Is4() {
				n += 96
			}
			for bit := 0; bit < n; bit++ {
				m := byte(0x80) >> (bit % 8)
				x[bit/8] = x[bit/8]&^m | y[bit/8]&m
			}
			out := netip.AddrFrom16(x)
			if a.Is4() {
				out = out.Unmap()
			}
			return out, i
		}
	}
	for _, r := range rules {
		to := r.External
		if !toExternal {
			to = r.Internal
		}
		if to.Contains(a) {
			return a, ambiguous
		}
	}
	return a, none
}

// refTranslate is the reference translation of s in one direction
// (outbound when out): it returns the translated description, and the
// verdict (Unchanged, Translated or Ambiguous).
func refTranslate(r Rules, s spec, out bool) (spec, Verdict) {
	// Outbound: sources by egress internal→external, destinations by
	// ingress external→internal. Inbound: sources by ingress
	// internal→external, destinations by egress external→internal.
	srcRules, srcToExt, dstRules, dstToExt := r.Egress, true, r.Ingress, false
	if !out {
		srcRules, srcToExt, dstRules, dstToExt = r.Ingress, true, r.Egress, false
	}
	changed, amb := false, false
	mapSrc := func(a netip.Addr) netip.Addr {
		n, i := refMap(srcRules, a, srcToExt)
		changed, amb = changed || i >= 0, amb || i == ambiguous
		return n
	}
	mapDst := func(a netip.Addr) netip.Addr {
		n, i := refMap(dstRules, a, dstToExt)
		changed, amb = changed || i >= 0, amb || i == ambiguous
		return n
	}
	t := s
	t.src, t.dst = mapSrc(s.src), mapDst(s.dst)
	whole := s.fragLen == 0 || (s.fragOff == 0 && !s.mf) // an atomic fragment is whole
	if s.icmpErr != nil && whole && s.quoteLen >= 20 && (!s.v6() || s.quoteLen >= 40) {
		q := *s.icmpErr
		q.src, q.dst = mapDst(q.src), mapSrc(q.dst)
		t.icmpErr = &q
		// A quote that ends within the quoted transport checksum keeps
		// its half: the other half is needed to compute it.
		hl := 20
		if q.v6() {
			hl = 40
		}
		if off, _, ok := csumOffset(q.proto, q.v6()); ok && s.quoteLen == hl+off+1 {
			orig := s.icmpErr.serialize()[hl+off]
			t.quoteFix = func(b []byte) { b[hl+off] = orig }
		}
	}
	switch {
	case amb:
		return s, Ambiguous
	case changed:
		return t, Translated
	}
	return s, Unchanged
}
