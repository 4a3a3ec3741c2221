package dataplane

import (
	"fmt"

	"golang.zx2c4.com/wireguard/device"
)

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

// Rebind closes and reopens the device's bind (wireguard-go's
// BindUpdate), so that it takes the ReceiveFuncs its bind offers now: a
// relay bind set up after the device opened it (relay.Transport).
func (t *Tunnel) Rebind() error {
	if err := t.dev.BindUpdate(); err != nil {
		return fmt.Errorf("tunnel %s: rebind: %w", t.name, err)
	}
	return nil
}
