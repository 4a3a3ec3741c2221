package wgbind

import (
	"encoding/binary"

	"golang.zx2c4.com/wireguard/conn"
)

// Learn does for one message a device sent on another path (the relay
// transport, gateway/relay) what the device's Send does for the shared
// port: it registers the sender index of a handshake initiation or
// response, so that the peer's answer over UDP still reaches the device,
// and tells the device's handshake gate (hsgate.go) what it sent.
// cb is a Bind from NewBind; any other Bind is ignored.
func Learn(cb conn.Bind, msg []byte) {
	b, ok := cb.(*bind)
	if !ok || len(msg) < 8 {
		return
	}
	switch typ := binary.LittleEndian.Uint32(msg[0:4]); {
	case typ == msgInitiation && len(msg) == initiationSize:
		b.m.register(binary.LittleEndian.Uint32(msg[4:8]), b)
		b.ownInit.Store(binary.LittleEndian.Uint32(msg[4:8]))
	case typ == msgResponse && len(msg) == responseSize:
		b.m.register(binary.LittleEndian.Uint32(msg[4:8]), b)
		b.ownInit.Store(0)
	}
	if b.hsWaiting.Load() {
		b.noteSent([][]byte{msg})
	}
}
