package wgbind

import "time"

// Unanswered handshakes: per device, how many handshake initiations it
// sent and since when the oldest one still waits for an answer. An answer
// is anything the peer sends to one of the device's indices (a handshake
// response, a cookie reply, transport data): it proves the peer got an
// initiation or holds a session with us. The gateway turns a long wait
// into the peering's "handshake unanswered" state (peering.Evaluate).

// noteInitiation records an initiation the device sends.
func (b *bind) noteInitiation() {
	b.initSent.Add(1)
	now := max(int64(time.Since(b.m.epoch)), 1) // 0 means none pending
	b.pendingSince.CompareAndSwap(0, now)
}

// noteAnswer records a packet from the peer to this device. It runs for
// every received packet, so it only reads unless an initiation is pending.
func (b *bind) noteAnswer() {
	if b.pendingSince.Load() != 0 {
		b.pendingSince.Store(0)
	}
}

// handshakeStats fills d's initiation figures.
func (b *bind) handshakeStats(d *DeviceStats) {
	d.InitiationsSent = b.initSent.Load()
	if p := b.pendingSince.Load(); p != 0 {
		d.UnansweredSince = b.m.epoch.Add(time.Duration(p))
	}
}
