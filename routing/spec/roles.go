package spec

import "net/netip"

// Which end of a session dials. GoBGP v4.8.0 mishandles a connection
// collision (both ends dialing at once): when its own outgoing connection
// completes while it waits for the OPEN on the peer's incoming one, it
// drops the incoming connection without closing it, and blocks until
// something arrives on it. The peer's end of that connection then sits
// in OpenConfirm waiting for a KEEPALIVE nobody will send, and the socket
// (and, once the peer gives up, a CLOSE-WAIT socket) stays open for the
// speaker's life. vgate keeps collisions from happening between vgate
// gateways: exactly one end ever dials, decided from the two tunnel
// addresses alone, so both ends agree without talking.

// PeerKind is what the tunnel probe has learned of a BGP peer.
type PeerKind int

const (
	// PeerUnknown: the probe has not decided yet (the tunnel has not
	// answered long enough, or has never answered).
	PeerUnknown PeerKind = iota
	// PeerVgate: the peer's own probes arrive: it runs vgate.
	PeerVgate
	// PeerPlain: the peer has sent no probe of its own while answering
	// for the prober's plainAfter, or never answering for its
	// silentPlainAfter (or it cannot be probed, or is an IPsec device):
	// another router, which may itself only listen.
	PeerPlain
)

// Passive reports whether this end of the session between tunnel
// addresses local and peer only listens. The higher address always dials.
// The lower one listens unless the peer is known not to run vgate (it may
// itself only listen), so two vgate gateways never dial each other, also
// before either has learned what the other runs, and never both wait:
// the higher end's decision depends on nothing it must learn.
func Passive(local, peer netip.Addr, kind PeerKind) bool {
	return local.IsValid() && local.Less(peer) && kind != PeerPlain
}
