package dataplane

import (
	"encoding/binary"
	"math/bits"
)

// ClampMSS lowers the MSS option of a TCP SYN (or SYN-ACK) in the IP packet
// pkt to at most max4 (IPv4) or max6 (IPv6), fixing the TCP checksum
// incrementally (RFC 1624). It reports whether the packet was changed.
// Anything that is not an unfragmented TCP SYN with an MSS option is left
// alone; malformed packets are never touched and never cause a panic. It
// does not allocate.
func ClampMSS(pkt []byte, max4, max6 uint16) bool {
	if len(pkt) < 1 {
		return false
	}
	var tcp []byte
	var max uint16
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return false
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || pkt[9] != 6 {
			return false
		}
		// A non-first fragment carries no TCP header.
		if binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 {
			return false
		}
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if total > len(pkt) || total < ihl {
			return false
		}
		tcp, max = pkt[ihl:total], max4
	case 6:
		if len(pkt) < 40 || pkt[6] != 6 { // next header TCP, no extension headers
			return false
		}
		end := 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
		if end > len(pkt) {
			return false
		}
		tcp, max = pkt[40:end], max6
	default:
		return false
	}
	if len(tcp) < 20 || tcp[13]&0x02 == 0 { // SYN
		return false
	}
	dataOff := int(tcp[12]>>4) * 4
	if dataOff < 20 || dataOff > len(tcp) {
		return false
	}
	opts := tcp[20:dataOff]
	for i := 0; i < len(opts); {
		kind := opts[i]
		switch kind {
		case 0: // end of options
			return false
		case 1: // no-op
			i++
			continue
		}
		if i+1 >= len(opts) {
			return false
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return false
		}
		if kind == 2 && l == 4 {
			old := binary.BigEndian.Uint16(opts[i+2 : i+4])
			if old <= max {
				return false
			}
			binary.BigEndian.PutUint16(opts[i+2:i+4], max)
			// The checksum sums 16-bit words aligned to the TCP header;
			// a value at an odd offset (after a NOP, say) straddles two
			// words, which amounts to its bytes swapped.
			o, n := old, max
			if (20+i+2)%2 == 1 {
				o, n = bits.ReverseBytes16(o), bits.ReverseBytes16(n)
			}
			sum := binary.BigEndian.Uint16(tcp[16:18])
			binary.BigEndian.PutUint16(tcp[16:18], checksumUpdate(sum, o, n))
			return true
		}
		i += l
	}
	return false
}

// checksumUpdate returns the Internet checksum after a 16-bit word changed
// from old to new: HC' = ~(~HC + ~m + m') (RFC 1624, eqn. 3).
func checksumUpdate(sum, old, new uint16) uint16 {
	s := uint32(^sum) + uint32(^old) + uint32(new)
	s = (s & 0xffff) + (s >> 16)
	s = (s & 0xffff) + (s >> 16)
	return ^uint16(s)
}
