package dataplane

import (
	"fmt"
	"net/netip"

	"github.com/vgate-project/vgate/gateway/keys"
)

// InitiateUAPI is the pair of UAPI "set" texts that make a running device
// initiate a handshake to the peer pub now, even with nothing to send:
// wireguard-go sends a keepalive — and so, without a session, a handshake
// initiation, retried on its timers — when persistent_keepalive_interval
// turns on from 0 (device/uapi.go, handlePostConfig). on turns it on (and
// sets endpoint ep first, if valid); off turns it off again. They must be
// two IpcSet calls: within one, the second line would cancel the first.
// Only for a peer whose keepalive is 0.
func InitiateUAPI(pub keys.PublicKey, ep netip.AddrPort) (on, off string) {
	on = fmt.Sprintf("public_key=%s\nupdate_only=true\n", pub.Hex())
	if ep.IsValid() {
		on += fmt.Sprintf("endpoint=%s\n", ep)
	}
	on += "persistent_keepalive_interval=1\n"
	off = fmt.Sprintf("public_key=%s\nupdate_only=true\npersistent_keepalive_interval=0\n", pub.Hex())
	return on, off
}

// InitiateHandshake makes the tunnel's device initiate a handshake to its
// peer now, so that a peer which still holds a session with a previous run
// of this gateway learns of the new one at once instead of after its own
// timers (15 s or more). It does nothing without an endpoint, or with a
// persistent keepalive (the device initiated when it came up).
func (t *Tunnel) InitiateHandshake() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.peer.Endpoint.IsValid() || t.peer.Keepalive > 0 {
		return nil
	}
	on, off := InitiateUAPI(t.peer.PublicKey, netip.AddrPort{})
	for _, text := range []string{on, off} {
		if err := t.dev.IpcSet(text); err != nil {
			return fmt.Errorf("tunnel %s: initiate handshake: %w", t.name, IPCErr(err))
		}
	}
	return nil
}
