package wgbind

import (
	"encoding/binary"
	"sync"
	"time"
)

// One handshake message at a time per device.
//
// wireguard-go hands every handshake message to a pool of workers, one per
// CPU, and two messages for the same peer taken at once can corrupt its
// handshake state: ConsumeMessageResponse checks the state under a read
// lock, computes, and writes its result under the write lock without
// checking again (device/noise-protocol.go). When the worker answering the
// peer's initiation runs in between — a crossing: both ends initiated at
// once — the device derives a keypair from the response's keys under the
// index of its own new response, and the index the peer's keypair sends to
// is gone. The tunnel then carries one direction only, and the peer's
// keepalives keep arriving, so neither end handshakes again before the
// two-minute rekey (seen in internal/e2e TestSimultaneousStart: both ends
// "up", one direction's packets dispatched to the device and dropped by it).
//
// The gate hands a device the handshake messages that can change its
// handshake state one at a time: initiations the front door admitted (it
// drops replays: frontdoor.go freshTimestamp) and responses to the one
// handshake the device has in flight (bind.ownInit; a response to any other
// index finds no handshake in wireguard-go and passes). The next waits
// until the device has answered the last — sent a handshake response to
// the initiation's sender, or transport data to the response's sender (the
// keepalive or the staged packets that follow a completed handshake) — or
// until hsSettle has passed (the device rejected it, which leaves no
// trace). Of what waits, a response goes first: it completes the device's
// own handshake, where the initiation first would make the device reject
// it as a crossing. At most one message of each kind waits; a newer one
// replaces it (the peer's latest initiation is the one it waits on, and a
// device has one handshake of its own in flight). Handshakes are rare —
// one per tunnel per two minutes — so the gate is closed almost never; the
// send path reads one atomic, and looks at what it sends only while the
// gate is closed.
//
// Cookie replies pass: wireguard-go takes them into the cookie generator
// only, not the handshake state.

// hsSettle bounds how long a handshake message the device does not answer
// holds back the next (Mux.hsSettle, which tests shorten). It is long
// beside a handshake's processing (under a millisecond) so that a starved
// device still takes its messages one at a time; its cost falls only on a
// message that follows a rejected one.
const hsSettle = 500 * time.Millisecond

// hsGate is a device's handshake gate; the zero value is open.
type hsGate struct {
	mu       sync.Mutex
	gen      uint64 // counts messages handed to the device
	wantType uint32 // the answer the device owes: msgResponse or msgTransport; 0: none
	want     uint32 // the receiver index that answer carries
	respTo   uint32 // for a response with the device: the index it answers
	timer    *time.Timer
	resp     *packetBuf // waiting response, if any
	init     *packetBuf // waiting initiation, if any

	held       uint64 // messages that waited
	superseded uint64 // waiting messages replaced by a newer one of their kind
}

// deliverHandshake hands the initiation or response pb to b through its
// gate: now if the device owes no answer, else when it has answered.
func (m *Mux) deliverHandshake(b *bind, pb *packetBuf) {
	g := &b.hs
	g.mu.Lock()
	if g.wantType != 0 {
		slot := &g.init
		if binary.LittleEndian.Uint32(pb.data[0:4]) == msgResponse {
			slot = &g.resp
		}
		if *slot != nil {
			m.release(*slot)
			g.superseded++
		}
		*slot = pb
		g.held++
		g.mu.Unlock()
		return
	}
	g.passLocked(m, b, pb)
}

// passLocked hands pb to the device and closes the gate until it answers;
// it unlocks g.
func (g *hsGate) passLocked(m *Mux, b *bind, pb *packetBuf) {
	msg := pb.data[:pb.n]
	g.gen++
	gen := g.gen
	g.want = binary.LittleEndian.Uint32(msg[4:8]) // the sender's index
	if binary.LittleEndian.Uint32(msg[0:4]) == msgResponse {
		g.wantType, g.respTo = msgTransport, binary.LittleEndian.Uint32(msg[8:12])
	} else {
		g.wantType, g.respTo = msgResponse, 0
	}
	b.hsWaiting.Store(true)
	if g.timer != nil {
		g.timer.Stop()
	}
	g.timer = time.AfterFunc(m.hsSettle, func() { m.hsAnswered(b, gen) })
	g.mu.Unlock()
	m.deliver(b, pb)
}

// hsAnswered opens b's gate if the message with the device is still the
// one numbered gen, and passes the next waiting one.
func (m *Mux) hsAnswered(b *bind, gen uint64) {
	g := &b.hs
	g.mu.Lock()
	if g.wantType == 0 || gen != g.gen {
		g.mu.Unlock()
		return
	}
	g.wantType, g.want, g.respTo = 0, 0, 0
	// A waiting response whose handshake the device has given up since
	// (it answered the peer, or started another) cannot touch its state:
	// wireguard-go finds no handshake under that index and drops it.
	var stale *packetBuf
	if g.resp != nil && binary.LittleEndian.Uint32(g.resp.data[8:12]) != b.ownInit.Load() {
		stale, g.resp = g.resp, nil
	}
	next := g.resp
	if next != nil {
		g.resp = nil
	} else if next = g.init; next != nil {
		g.init = nil
	}
	if next == nil {
		b.hsWaiting.Store(false)
		if g.timer != nil {
			g.timer.Stop()
			g.timer = nil
		}
		g.mu.Unlock()
	} else {
		g.passLocked(m, b, next)
	}
	if stale != nil {
		m.deliver(b, stale)
	}
}

// noteSent opens the gate if bufs, which the device sends, hold the answer
// it owes. Only called while the gate is closed.
func (b *bind) noteSent(bufs [][]byte) {
	g := &b.hs
	g.mu.Lock()
	typ, want, gen, respTo := g.wantType, g.want, g.gen, g.respTo
	g.mu.Unlock()
	if typ == 0 {
		return
	}
	for _, buf := range bufs {
		if len(buf) < transportMin {
			continue
		}
		var receiver uint32
		switch t := binary.LittleEndian.Uint32(buf[0:4]); {
		case t != typ:
			continue
		case t == msgResponse && len(buf) == responseSize:
			receiver = binary.LittleEndian.Uint32(buf[8:12])
		case t == msgTransport:
			receiver = binary.LittleEndian.Uint32(buf[4:8])
		default:
			continue
		}
		if receiver == want {
			if typ == msgTransport {
				// The device's own handshake is complete: a replay of
				// the response to it can no longer touch its state.
				b.ownInit.CompareAndSwap(respTo, 0)
			}
			b.m.hsAnswered(b, gen)
			return
		}
	}
}
