package wgbind

import (
	"time"

	"github.com/vgate-project/vgate/api"
)

// Unanswered handshakes: per device, how many handshake initiations it
// sent and since when the oldest one still waits for an answer. An answer
// is a handshake response or cookie reply to the device (the peer got an
// initiation), or transport data to an index the device registered after
// that initiation (a session made since, e.g. with the peer as initiator).
// Transport data of an older session is no answer: after a key change on
// the other side it keeps arriving while no handshake can complete. The
// gateway turns a long wait into the peering's "handshake unanswered"
// state (peering.Evaluate).

// noteInitiation records an initiation the device sends; called before
// its index is registered, so the index's session counts as an answer.
func (b *bind) noteInitiation() {
	b.initSent.Add(1)
	now := max(int64(time.Since(b.m.epoch)), 1) // 0 means none pending
	b.pendingSince.CompareAndSwap(0, now)
}

// noteAnswer records a packet of type typ from the peer to one of the
// device's indices, registered at registered (since the Mux's epoch). It
// runs for every received packet, so it only reads unless an initiation
// is pending.
func (b *bind) noteAnswer(typ byte, registered time.Duration) {
	p := b.pendingSince.Load()
	if p == 0 || typ == msgTransport && int64(registered) < p {
		return
	}
	b.pendingSince.CompareAndSwap(p, 0)
}

// handshakeStats fills d's initiation figures.
func (b *bind) handshakeStats(d *api.PortDevice) {
	d.InitiationsSent = b.initSent.Load()
	if p := b.pendingSince.Load(); p != 0 {
		d.UnansweredSince = b.m.epoch.Add(time.Duration(p))
	}
}
