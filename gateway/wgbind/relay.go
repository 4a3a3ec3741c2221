package wgbind

import "golang.zx2c4.com/wireguard/conn"

// Learn does for one message a device sent on another path (the relay
// transport, gateway/relay) what the device's Send does for the shared
// port: it registers the sender index of a handshake initiation or
// response, so that the peer's answer over UDP still reaches the device,
// and tells the device's handshake gate (hsgate.go) what it sent.
// cb is a Bind from NewBind; any other Bind is ignored.
func Learn(cb conn.Bind, msg []byte) {
	b, ok := cb.(*bind)
	if !ok {
		return
	}
	if typ := handshakeType(msg); typ != 0 {
		b.learn(typ, msg) // bind.go
	}
	if b.hsWaiting.Load() {
		b.noteSent([][]byte{msg})
	}
}
