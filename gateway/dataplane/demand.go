package dataplane

import (
	"encoding/binary"
	"sync/atomic"
)

// Demand: the tunnel probe (routing/probe.go) echoes every interval only
// while someone needs a fast failover, i.e. while the kernel routes user
// traffic into the tunnel; an idle tunnel is probed once a second. The
// TUN seam counts the reads that carried user traffic: anything but the
// control traffic between the two gateways themselves (the probe's
// echoes, which carry routing/probe_wire.go's mark, and BGP on TCP port 179),
// which has liveness of its own. One atomic add per TUN read that has
// user traffic in it, whatever the batch size; the probe only looks
// whether the count moved.

// probeMarkPrefix starts the data of every vgate probe echo request and
// reply (routing/probe_wire.go, probeMark "vgP2" and its successors).
const probeMarkPrefix = "vgP"

// bgpPort is BGP's TCP port.
const bgpPort = 179

// Demand returns the counter of TUN reads with user traffic of the
// peering name's tunnel. It belongs to the name, not to one tunnel: a
// tunnel recreated for the name counts into the same counter, so a holder
// (the probe) never watches a closed tunnel's.
func (p *Plane) Demand(name string) *atomic.Uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.demandLocked(name)
}

func (p *Plane) demandLocked(name string) *atomic.Uint64 {
	if p.demand == nil {
		p.demand = map[string]*atomic.Uint64{}
	}
	c := p.demand[name]
	if c == nil {
		c = new(atomic.Uint64)
		p.demand[name] = c
	}
	return c
}

// countDemand adds one to c if any packet of the read (bufs[i][offset:]
// [:sizes[i]], i < n) is user traffic.
func countDemand(c *atomic.Uint64, bufs [][]byte, sizes []int, offset, n int) {
	if c == nil {
		return
	}
	for i := range n {
		if sizes[i] > 0 && !IsControl(bufs[i][offset:offset+sizes[i]]) {
			c.Add(1)
			return
		}
	}
}

// IsControl reports whether pkt is traffic between two gateways' own
// control planes: a vgate probe echo (ICMP or ICMPv6 echo request or
// reply whose data starts with the probe mark) or BGP (TCP to or from
// port 179). Anything it cannot parse is user traffic: the cost of a
// mistake is one fast probe second, not a missed failover.
func IsControl(pkt []byte) bool {
	proto, l4, ok := ipPayload(pkt)
	if !ok {
		return false
	}
	switch proto {
	case 1, 58: // ICMP, ICMPv6
		if len(l4) < 8+len(probeMarkPrefix) || string(l4[8:8+len(probeMarkPrefix)]) != probeMarkPrefix {
			return false
		}
		switch l4[0] {
		case 0, 8, 128, 129: // echo reply and request, v4 and v6
			return true
		}
		return false
	case 6: // TCP
		if len(l4) < 4 {
			return false
		}
		return binary.BigEndian.Uint16(l4[0:]) == bgpPort || binary.BigEndian.Uint16(l4[2:]) == bgpPort
	}
	return false
}

// ipPayload splits an IPv4 or IPv6 packet into its protocol (for IPv6
// the first next header: extension headers are not followed) and the
// payload its length fields declare. ok is false for anything else, and
// for an IPv4 fragment other than the first (it carries no transport
// header). ClampMSS (mss.go) parses the same headers inline: it runs on
// every packet both ways, and calling this there cost 1.2 ns a packet
// (BenchmarkClampTUNRead +45 %); this runs at most once per TUN read.
func ipPayload(pkt []byte) (proto byte, payload []byte, ok bool) {
	if len(pkt) < 1 {
		return 0, nil, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return 0, nil, false
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 {
			return 0, nil, false
		}
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if total > len(pkt) || total < ihl {
			return 0, nil, false
		}
		return pkt[9], pkt[ihl:total], true
	case 6:
		if len(pkt) < 40 {
			return 0, nil, false
		}
		end := 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
		if end > len(pkt) {
			return 0, nil, false
		}
		return pkt[6], pkt[40:end], true
	}
	return 0, nil, false
}
