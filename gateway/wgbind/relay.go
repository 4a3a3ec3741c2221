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

// Receive takes msg, a handshake initiation or response the device's peer
// sent over another path (the relay transport), as the Mux takes one from
// the shared port: an initiation through the front door (frontdoor.go),
// where it must prove to be from this device's peer; a response to one of
// the device's indices, with a valid MAC1, through the handshake gate
// (hsgate.go). ep is what the device sees as its source. Anything else is
// dropped and counted as the Mux counts it. cb is a Bind from NewBind; any
// other Bind is ignored.
func Receive(cb conn.Bind, msg []byte, ep conn.Endpoint) {
	b, ok := cb.(*bind)
	if !ok {
		return
	}
	m := b.m
	if b.cur.Load() == nil {
		m.droppedNotOpen.Add(1)
		return
	}
	switch handshakeType(msg) {
	case msgInitiation:
		m.initiations.Add(1)
		pb := m.copyPacket(msg, ep)
		pb.via = b
		select {
		case m.hq <- pb:
		default:
			m.droppedBusy.Add(1)
			m.release(pb)
		}
	case msgResponse:
		receiver := binary.LittleEndian.Uint32(msg[8:12])
		e, ok := (*m.idx.Load())[receiver]
		if !ok || e.b != b {
			m.droppedUnknown.Add(1)
			return
		}
		if !m.cookies.CheckMAC1(msg) {
			m.droppedRespBadMAC.Add(1)
			return
		}
		b.noteAnswer(msgResponse, e.at) // handshakes.go
		pb := m.copyPacket(msg, ep)
		if receiver == b.ownInit.Load() {
			m.deliverHandshake(b, pb)
			return
		}
		m.deliver(b, pb)
	default:
		m.droppedMalformed.Add(1)
	}
}

// HoldCrossing holds back msg, an initiation the device sends on another
// path, as the device's Send holds one for the shared port when it looks
// like a crossing (crossing.go), and reports whether it did: send then gets
// a copy later, or never. cb is a Bind from NewBind; any other Bind holds
// nothing.
func HoldCrossing(cb conn.Bind, msg []byte, send func([]byte)) bool {
	b, ok := cb.(*bind)
	return ok && handshakeType(msg) == msgInitiation && b.holdCrossing(msg, send)
}
