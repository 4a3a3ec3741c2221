package nat

import (
	"encoding/binary"
)

// Verdict is what a Translator did with a packet.
type Verdict uint8

const (
	// Unchanged: no rule applies; the packet is left as it is, whatever
	// it holds (not ours to judge).
	Unchanged Verdict = iota
	// Translated: addresses and checksums were rewritten.
	Translated
	// Malformed: a rule applies, but the packet's headers contradict its
	// length (or each other), so it cannot be rewritten consistently.
	Malformed
	// Ambiguous: an address that no rule maps lies in a prefix some rule
	// maps to, so after translation it would read as the image of another
	// address (and the reverse translation would not give it back).
	Ambiguous
	// SourceRouted: a rule applies to a packet with an IPv4 source route
	// option or an IPv6 routing header with segments left; its final
	// destination (which the transport checksum covers) is not in the
	// fixed header.
	SourceRouted
)

// Drop reports whether the packet must be dropped: it matched a rule but
// cannot be translated. Such a packet is left exactly as it was.
func (v Verdict) Drop() bool { return v >= Malformed }

func (v Verdict) String() string {
	switch v {
	case Unchanged:
		return "unchanged"
	case Translated:
		return "translated"
	case Malformed:
		return "malformed"
	case Ambiguous:
		return "ambiguous"
	case SourceRouted:
		return "source-routed"
	}
	return "unknown"
}

// Result is a Verdict and the rules that translated the packet: SrcRule
// is the rule that mapped its source (or, in an ICMP error, the quoted
// packet's destination), DstRule the one that mapped its destination (or
// the quoted source); -1 when none did. IDs are as in Rules.ByID.
type Result struct {
	Verdict          Verdict
	SrcRule, DstRule int32
}

var (
	unchanged = Result{Verdict: Unchanged, SrcRule: none, DstRule: none}
	malformed = Result{Verdict: Malformed, SrcRule: none, DstRule: none}
	ambig     = Result{Verdict: Ambiguous, SrcRule: none, DstRule: none}
	routed    = Result{Verdict: SourceRouted, SrcRule: none, DstRule: none}
)

// Translator is the compiled translation of one peering's rules. It keeps
// no state between packets, allocates nothing, and may be used by any
// number of goroutines at once. A nil *Translator leaves every packet
// unchanged.
type Translator struct {
	rules   Rules
	out, in dir
}

// dir translates the packets of one direction: src maps source
// addresses, dst destination addresses. The packet quoted by an ICMP
// error travelled the other way, so its source maps with dst and its
// destination with src.
type dir struct{ src, dst side }

// Compile checks r (Rules.Check) and compiles it.
func Compile(r Rules) (*Translator, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	inExt, inInt := tables(r.Ingress, 0)
	egExt, egInt := tables(r.Egress, len(r.Ingress))
	return &Translator{
		rules: Rules{Ingress: append([]Rule(nil), r.Ingress...), Egress: append([]Rule(nil), r.Egress...)},
		// Into the tunnel: this side's sources as the peer sees them
		// (egress), destinations as the peer numbers them (ingress).
		out: dir{src: egExt, dst: inInt},
		// Out of the tunnel: the peer's sources as this side sees them
		// (ingress), destinations as this side numbers them (egress).
		in: dir{src: inExt, dst: egInt},
	}, nil
}

// Rules returns the rules t was compiled from.
func (t *Translator) Rules() Rules {
	if t == nil {
		return Rules{}
	}
	return t.rules
}

// Outbound translates pkt, an IP packet about to enter the tunnel, in
// place: from this side's view of addresses to the peer's.
func (t *Translator) Outbound(pkt []byte) Result {
	if t == nil {
		return unchanged
	}
	return t.out.translate(pkt)
}

// Inbound translates pkt, an IP packet that came out of the tunnel, in
// place: from the peer's view of addresses to this side's.
func (t *Translator) Inbound(pkt []byte) Result {
	if t == nil {
		return unchanged
	}
	return t.in.translate(pkt)
}

// IP protocol numbers this file knows.
const (
	protoICMP    = 1
	protoTCP     = 6
	protoUDP     = 17
	protoDCCP    = 33
	protoICMP6   = 58
	protoUDPLite = 136
)

// pseudoCsum is the offset of the checksum field of a transport header
// whose checksum covers the IP pseudo-header (so changes with the
// addresses). ICMP for IPv4 has none; ICMPv6 does.
func pseudoCsum(proto byte, v6 bool) (int, bool) {
	switch proto {
	case protoTCP:
		return 16, true
	case protoUDP, protoUDPLite, protoDCCP:
		return 6, true
	case protoICMP6:
		return 2, v6
	}
	return 0, false
}

// The ICMP error types that quote the packet they are about.
func isICMP4Error(typ byte) bool { return typ == 3 || typ == 11 || typ == 12 }
func isICMP6Error(typ byte) bool { return typ >= 1 && typ <= 4 }

func (d *dir) translate(p []byte) Result {
	if len(p) == 0 {
		return unchanged
	}
	switch p[0] >> 4 {
	case 4:
		return d.v4(p)
	case 6:
		return d.v6(p)
	}
	return unchanged
}

// v4 translates an IPv4 packet. Nothing is written before every check
// has passed, so a dropped packet is left as it came.
func (d *dir) v4(p []byte) Result {
	if len(p) < 20 {
		return unchanged
	}
	src, dst := be32(p[12:]), be32(p[16:])
	nsrc, sid := d.src.map4(src)
	ndst, did := d.dst.map4(dst)
	matched := sid != none || did != none
	if !matched && (p[9] != protoICMP || !maybeICMP4Error(p)) {
		return unchanged
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(be16(p[2:]))
	if ihl < 20 || total < ihl || total > len(p) {
		return orUnchanged(matched, malformed)
	}
	p = p[:total]
	frag := be16(p[6:])
	off := int(frag&0x1fff) * 8
	l4 := p[ihl:]
	var q quote
	if p[9] == protoICMP && frag&0x3fff == 0 && len(l4) >= 8 && isICMP4Error(l4[0]) {
		q = d.lookQuote4(l4[8:])
	}
	if !matched && !q.matched() {
		return unchanged
	}
	if ihl > 20 {
		switch options4(p[20:ihl]) {
		case optBad:
			return malformed
		case optSourceRoute:
			return routed
		}
	}
	if sid == ambiguous || did == ambiguous || q.sid == ambiguous || q.did == ambiguous {
		return ambig
	}

	var sum uint32
	if sid >= 0 {
		sum += delta32(src, nsrc)
		binary.BigEndian.PutUint32(p[12:], nsrc)
	}
	if did >= 0 {
		sum += delta32(dst, ndst)
		binary.BigEndian.PutUint32(p[16:], ndst)
	}
	if matched {
		put16(p[10:], update(be16(p[10:]), sum))
		if c, ok := pseudoCsum(p[9], false); ok {
			// The fragment holding the checksum field (the first one,
			// unless the first was cut within the transport header).
			if i := c - off; i >= 0 && i+2 <= len(l4) {
				fixL4(l4[i:], p[9], sum)
			}
		}
	}
	if q.matched() {
		qd := writeQuote4(l4[8:], q)
		put16(l4[2:], update(be16(l4[2:]), qd))
	}
	return q.result(sid, did)
}

// maybeICMP4Error is a quick look at an unvalidated ICMP packet: is it
// an unfragmented error?
func maybeICMP4Error(p []byte) bool {
	ihl := int(p[0]&0x0f) * 4
	return ihl >= 20 && len(p) > ihl && be16(p[6:])&0x3fff == 0 && isICMP4Error(p[ihl])
}

func orUnchanged(matched bool, r Result) Result {
	if !matched {
		return unchanged
	}
	return r
}

const (
	optOK = iota
	optBad
	optSourceRoute
)

// options4 checks IPv4 options: well formed, and no loose or strict
// source route.
func options4(o []byte) int {
	for i := 0; i < len(o); {
		switch o[i] {
		case 0: // end of options
			return optOK
		case 1: // no-op
			i++
			continue
		}
		if i+1 >= len(o) {
			return optBad
		}
		l := int(o[i+1])
		if l < 2 || i+l > len(o) {
			return optBad
		}
		if o[i] == 131 || o[i] == 137 { // LSRR, SSRR
			return optSourceRoute
		}
		i += l
	}
	return optOK
}

// v6 translates an IPv6 packet, following its extension headers to the
// transport header.
func (d *dir) v6(p []byte) Result {
	if len(p) < 40 {
		return unchanged
	}
	src, dst := load128(p[8:]), load128(p[24:])
	nsrc, sid := d.src.map6(src)
	ndst, did := d.dst.map6(dst)
	matched := sid != none || did != none
	nh := p[6]
	if !matched && !isExt6(nh) && !(nh == protoICMP6 && len(p) > 40 && isICMP6Error(p[40])) {
		return unchanged
	}
	end := 40 + int(be16(p[4:]))
	if end > len(p) {
		return orUnchanged(matched, malformed)
	}
	p = p[:end]
	c := walk6(p)
	var q quote
	if c.ok && c.proto == protoICMP6 && !c.frag && c.off+8 <= len(p) && isICMP6Error(p[c.off]) {
		q = d.lookQuote6(p[c.off+8:])
	}
	if !matched && !q.matched() {
		return unchanged
	}
	switch {
	case !c.ok:
		return malformed
	case c.routed:
		return routed
	case sid == ambiguous || did == ambiguous || q.sid == ambiguous || q.did == ambiguous:
		return ambig
	}

	var sum uint32
	if sid >= 0 {
		sum += delta128(src, nsrc)
		nsrc.put(p[8:])
	}
	if did >= 0 {
		sum += delta128(dst, ndst)
		ndst.put(p[24:])
	}
	switch co, ok := pseudoCsum(c.proto, true); {
	case q.matched():
		// An ICMPv6 error: its checksum covers the pseudo-header and
		// the quote.
		qd := writeQuote6(p[c.off+8:], q)
		if matched {
			qd += sum
		}
		put16(p[c.off+2:], update(be16(p[c.off+2:]), qd))
	case matched && ok:
		// In a later fragment that starts with the transport header's
		// remainder, byte k of the header is at c.off+k-c.fragOff.
		if i := c.off + co - c.fragOff; i >= c.off && i+2 <= len(p) {
			fixL4(p[i:], c.proto, sum)
		}
	}
	return q.result(sid, did)
}

// isExt6 reports whether nh is an IPv6 extension header walk6 follows.
func isExt6(nh byte) bool { return nh == 0 || nh == 43 || nh == 44 || nh == 51 || nh == 60 }

// chain6 is what walk6 found.
type chain6 struct {
	proto   byte // the upper-layer protocol (or the first header of a later fragment's data)
	off     int  // where it starts
	fragOff int  // the fragment's offset in bytes; 0 unless a later fragment
	frag    bool // a fragment, first or later (not an atomic fragment)
	routed  bool // a routing header with segments left
	ok      bool // false: the chain runs past the end of p
}

// walk6 follows the extension headers of p (hop-by-hop, routing,
// fragment, destination options, AH) to the upper-layer header. A later
// fragment's data is not headers, so the walk stops at its fragment
// header.
func walk6(p []byte) chain6 {
	c := chain6{proto: p[6], off: 40}
	for {
		switch c.proto {
		case 0, 43, 60, 51:
			if c.off+8 > len(p) {
				return c
			}
			n := (int(p[c.off+1]) + 1) * 8
			if c.proto == 51 {
				n = (int(p[c.off+1]) + 2) * 4
			}
			if c.off+n > len(p) {
				return c
			}
			if c.proto == 43 && p[c.off+3] != 0 {
				c.routed = true
			}
			c.proto = p[c.off]
			c.off += n
		case 44:
			if c.off+8 > len(p) {
				return c
			}
			fo := be16(p[c.off+2:])
			c.fragOff = int(fo &^ 7)
			c.frag = c.fragOff != 0 || fo&1 != 0
			c.proto = p[c.off]
			c.off += 8
			if c.fragOff != 0 {
				c.ok = true
				return c
			}
		default:
			c.ok = true
			return c
		}
	}
}

// quote is the translation of the packet an ICMP error quotes: its new
// addresses and the rules that map them (sid: the quoted destination,
// which maps with the source side; did: the quoted source). present is
// false when there is no quote to translate.
type quote struct {
	present    bool
	src4, dst4 uint32
	src6, dst6 u128
	sid, did   int32
}

func (q *quote) matched() bool { return q.present && (q.sid != none || q.did != none) }

// result is the Result of a translated packet whose outer addresses
// mapped with sid and did.
func (q *quote) result(sid, did int32) Result {
	r := Result{Verdict: Translated, SrcRule: sid, DstRule: did}
	if r.SrcRule < 0 && q.present {
		r.SrcRule = q.sid
	}
	if r.DstRule < 0 && q.present {
		r.DstRule = q.did
	}
	return r
}

// lookQuote4 looks up the addresses of the IPv4 packet quoted in b (at
// least its fixed header, else there is nothing to translate).
func (d *dir) lookQuote4(b []byte) quote {
	q := quote{sid: none, did: none}
	if len(b) < 20 || b[0]>>4 != 4 || b[0]&0x0f < 5 {
		return q
	}
	q.present = true
	q.src4, q.did = d.dst.map4(be32(b[12:]))
	q.dst4, q.sid = d.src.map4(be32(b[16:]))
	return q
}

// writeQuote4 rewrites the quoted IPv4 packet: addresses, header checksum
// and, when its header is quoted, the transport checksum. It returns the
// checksum delta of everything it changed, for the ICMP checksum.
func writeQuote4(b []byte, q quote) uint32 {
	var sum uint32
	if q.did >= 0 {
		sum += delta32(be32(b[12:]), q.src4)
		binary.BigEndian.PutUint32(b[12:], q.src4)
	}
	if q.sid >= 0 {
		sum += delta32(be32(b[16:]), q.dst4)
		binary.BigEndian.PutUint32(b[16:], q.dst4)
	}
	outer := sum // the addresses are part of the ICMP message too
	old := be16(b[10:])
	nw := update(old, sum)
	put16(b[10:], nw)
	outer += delta16(old, nw)
	ihl := int(b[0]&0x0f) * 4
	if ihl <= len(b) && be16(b[6:])&0x1fff == 0 {
		if c, ok := pseudoCsum(b[9], false); ok && ihl+c+2 <= len(b) {
			f := b[ihl+c:]
			old := be16(f)
			fixL4(f, b[9], sum)
			outer += delta16(old, be16(f))
		}
	}
	return outer
}

// lookQuote6 looks up the addresses of the IPv6 packet quoted in b.
func (d *dir) lookQuote6(b []byte) quote {
	q := quote{sid: none, did: none}
	if len(b) < 40 || b[0]>>4 != 6 {
		return q
	}
	q.present = true
	q.src6, q.did = d.dst.map6(load128(b[8:]))
	q.dst6, q.sid = d.src.map6(load128(b[24:]))
	return q
}

// writeQuote6 is writeQuote4 for a quoted IPv6 packet, whose transport
// checksum is updated when the quote reaches it through a plain chain of
// extension headers.
func writeQuote6(b []byte, q quote) uint32 {
	var sum uint32
	if q.did >= 0 {
		sum += delta128(load128(b[8:]), q.src6)
		q.src6.put(b[8:])
	}
	if q.sid >= 0 {
		sum += delta128(load128(b[24:]), q.dst6)
		q.dst6.put(b[24:])
	}
	outer := sum
	if c := walk6(b); c.ok && !c.routed && c.fragOff == 0 {
		if co, ok := pseudoCsum(c.proto, true); ok && c.off+co+2 <= len(b) {
			f := b[c.off+co:]
			old := be16(f)
			fixL4(f, c.proto, sum)
			outer += delta16(old, be16(f))
		}
	}
	return outer
}

// fixL4 applies sum to the transport checksum field f of protocol proto.
// A UDP checksum of zero means "none" (IPv4; over IPv6 it is invalid
// either way) and stays zero; a computed zero is sent as 0xffff.
func fixL4(f []byte, proto byte, sum uint32) {
	old := be16(f)
	if proto == protoUDP || proto == protoUDPLite {
		if old == 0 {
			return
		}
		if nw := update(old, sum); nw != 0 {
			put16(f, nw)
		} else {
			put16(f, 0xffff)
		}
		return
	}
	put16(f, update(old, sum))
}

// update returns the Internet checksum sum after data changed by delta,
// the ones' complement sum of ^old + new over the changed 16-bit words:
// HC' = ~(~HC + delta) (RFC 1624, eqn. 3).
func update(sum uint16, delta uint32) uint16 {
	s := uint32(^sum) + delta
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	return ^uint16(s)
}

func delta16(old, new uint16) uint32 { return uint32(^old) + uint32(new) }

func delta32(old, new uint32) uint32 {
	return delta16(uint16(old>>16), uint16(new>>16)) + delta16(uint16(old), uint16(new))
}

func delta64(old, new uint64) uint32 {
	return delta32(uint32(old>>32), uint32(new>>32)) + delta32(uint32(old), uint32(new))
}

func delta128(old, new u128) uint32 { return delta64(old.hi, new.hi) + delta64(old.lo, new.lo) }

func be16(b []byte) uint16     { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32     { return binary.BigEndian.Uint32(b) }
func put16(b []byte, v uint16) { binary.BigEndian.PutUint16(b, v) }
