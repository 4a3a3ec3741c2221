package dataplane

import "golang.zx2c4.com/wireguard/device"

// SendInitiation makes the device initiate a handshake to its peer now,
// even with a session up (wireguard-go sends at most one per 5 s). The
// relay transport uses it to probe whether UDP works again
// (gateway/relay, Bind.SetProbe).
func (t *Tunnel) SendInitiation() {
	t.mu.Lock()
	pub := t.peer.PublicKey
	t.mu.Unlock()
	if p := t.dev.LookupPeer(device.NoisePublicKey(pub)); p != nil {
		_ = p.SendHandshakeInitiation(false)
	}
}
