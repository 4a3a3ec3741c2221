package spec

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// ProbeTarget is one peering to probe and its timing.
type ProbeTarget struct {
	Address    netip.Addr
	Interval   time.Duration
	Multiplier int
	// LocalASN and PeerASN are this gateway's AS and the one configured
	// for the peer; requests carry both, so that two vgate gateways see a
	// mismatch on both sides (GoBGP reports a bad peer AS only on some
	// connections).
	LocalASN, PeerASN uint32
	// Demand counts the tunnel's TUN reads with user traffic (only
	// whether it moves matters). nil: always probed every Interval.
	Demand *atomic.Uint64
	// Interface is the tunnel's interface: the peer's requests and its
	// replies count only when they arrive through it, from the peer's
	// tunnel address. Anyone else who can send to the tunnel address (a
	// host on the underlay link or the local network) could otherwise
	// declare the tunnel dead, or keep a dead one alive.
	Interface string
	// PeerWire and LocalWire are the peer's and this gateway's tunnel
	// addresses as they cross the tunnel, when NAT rules of the peering
	// translate them (zero: Address and the prober's source). Requests
	// carry them in their payload, which NAT does not translate: this end
	// writes them so, and maps them back in the peer's requests and in
	// the replies (which echo this end's).
	PeerWire, LocalWire netip.Addr
}

// Detect is how long without a reply declares the tunnel dead.
func (t ProbeTarget) Detect() time.Duration { return t.Interval * time.Duration(t.Multiplier) }
