package wgbind

import (
	"math/rand/v2"
	"time"
)

// Crossed handshakes. When both ends of a tunnel initiate at the same
// moment (two gateways booting together), each takes the other's
// initiation as responder, which replaces its own handshake state, so both
// responses are rejected ("Received invalid response message") and no
// session forms. wireguard-go retries after 5 s plus up to 333 ms of
// jitter, which usually breaks the tie — but a persistent keepalive of 5 s
// or less restarts the handshake first, at exactly 5 s after the last
// handshake message sent, on both ends alike: the two initiations cross
// again, every 5 s, until scheduling noise breaks the symmetry (seen in
// the lab: no session for 15 s).
//
// The bind breaks the tie. An initiation sent within crossWindow of this
// device's last handshake response — the signature of a crossing: a
// device that answered and still has no session — is held back for a
// random 0..crossJitter and dropped if the device answers an initiation
// of the peer meanwhile (then the peer's handshake, which that response
// completes, is the one to keep; sending ours would cross it again).
// A first initiation, a rekey and every other packet go out at once.
// A tunnel device has one peer (a point-to-site device does not use this
// bind), so "a response meanwhile" is a response to that peer.

var (
	crossWindow = 6 * time.Second // wireguard-go's RekeyTimeout and a margin
	crossJitter = time.Second
)

// noteResponse records that the device sent a handshake response now.
func (b *bind) noteResponse() {
	b.lastResponse.Store(max(int64(time.Since(b.m.epoch)), 1))
}

// holdCrossing holds back the initiation msg if it looks like a crossing,
// and reports whether it did: it then calls send with a copy later, or
// never (msg is copied: the device reuses its buffer).
func (b *bind) holdCrossing(msg []byte, send func([]byte)) bool {
	last := b.lastResponse.Load()
	now := int64(time.Since(b.m.epoch))
	if last == 0 || now-last > int64(crossWindow) {
		return false
	}
	b.delayed.Add(1)
	held := append([]byte(nil), msg...)
	time.AfterFunc(rand.N(crossJitter), func() {
		if b.lastResponse.Load() != last {
			b.dropped.Add(1) // the peer's initiation came first: keep its handshake
			return
		}
		if b.cur.Load() == nil {
			return // closed meanwhile
		}
		send(held)
	})
	return true
}
