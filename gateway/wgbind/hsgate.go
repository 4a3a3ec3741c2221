package wgbind

import (
	"encoding/binary"
	"sync"
	"time"
)

// One kind of handshake message at a time per device.
//
// wireguard-go hands every handshake message to a pool of workers, one per
// CPU, and a response and an initiation for the same peer taken at once can
// corrupt its handshake state: ConsumeMessageResponse checks the state
// under a read lock, computes, and writes its result under the write lock
// without checking again (device/noise-protocol.go). When the worker
// answering the peer's initiation runs in between — a crossing: both ends
// initiated at once — the device derives a keypair from the response's keys
// under the index of its own new response, and the index the peer's keypair
// sends to is gone. The tunnel then carries one direction only, and the
// peer's keepalives keep arriving, so neither end handshakes again before
// the two-minute rekey (seen in internal/e2e TestSimultaneousStart: both
// ends "up", one direction's packets dispatched to the device and dropped by
// it).
//
// The gate therefore never lets a device hold an initiation and a response
// at once. It sees the initiations the front door admitted (authenticated,
// replays dropped: frontdoor.go) and the responses to the one handshake the
// device has in flight (bind.ownInit; the reader checked their MAC1; a
// response to any other index finds no handshake in wireguard-go and
// passes). Responses need no order among themselves: a response that does
// not authenticate changes no state (the check fails before any write), and
// the peer sends one response per initiation, so at most one of them is
// genuine; a copy of one the device holds (same ephemeral key) is dropped.
// So a forged response never holds back the genuine one: both go to the
// device at once.
//
// What the device holds is done when it answered — a handshake response to
// the initiation's sender, or transport data to a response's sender (the
// keepalive or the staged packets that follow a completed handshake) — or
// hsSettle after it was handed over: wireguard-go gives no sign of a message
// it rejected, not even a failed response's, so time is the only bound
// there. Of what waits, the message that came first goes first, and while an
// initiation waits no response passes it: an admitted initiation waits at
// most for what the device holds and for one response that came before it,
// never for a stream of them. One message of each kind waits: a newer
// initiation replaces the waiting one (the peer's latest is the one it waits
// on), while a response waiting for the device's current handshake is kept
// and later ones are dropped (the first one is as likely genuine as any, and
// a flood of forgeries must not push it out). Handshakes are rare — one per
// tunnel per two minutes — so the gate is closed almost never; the send path
// reads one atomic, and looks at what it sends only while the gate is
// closed.
//
// Cookie replies pass: wireguard-go takes them into the cookie generator
// only, not the handshake state.

// hsSettle bounds how long a handshake message the device does not answer
// holds back a message of the other kind (Mux.hsSettle, which tests
// shorten). It is long beside a handshake's processing (under a
// millisecond) so that a starved device still never holds both kinds at
// once; its cost falls only on a message that waits behind a rejected one.
const hsSettle = 500 * time.Millisecond

// respTracked bounds the responses the gate remembers as held by the
// device. Beyond it the oldest is forgotten: its answer then goes unseen,
// and only hsSettle ends the hold.
const respTracked = 8

// heldResp is a response the device holds: its sender index (a consumed
// response makes the device send transport data to it), its ephemeral key
// (a copy has the same), and the index it answers.
type heldResp struct {
	sender, to uint32
	eph        [keyLen]byte
}

// hsGate is a device's handshake gate; the zero value is open.
type hsGate struct {
	mu       sync.Mutex
	gen      uint64     // counts hand-overs: a settle timer acts only for the latest
	initWith bool       // the device holds an initiation
	initWant uint32     // its sender index: the answer is a response to it
	resps    []heldResp // responses the device holds, oldest first
	timer    *time.Timer

	seq            uint64     // arrival order of waiting messages
	resp, init     *packetBuf // waiting, if any
	respAt, initAt uint64     // their seq

	held       uint64 // messages that waited
	superseded uint64 // waiting initiations replaced by a newer one
}

// busyLocked reports whether the device holds a handshake message.
func (g *hsGate) busyLocked() bool { return g.initWith || len(g.resps) > 0 }

// responseEph is a response's ephemeral key (after type, sender and
// receiver).
func responseEph(msg []byte) (e [keyLen]byte) {
	copy(e[:], msg[12:12+keyLen])
	return e
}

// deliverHandshake hands the initiation or response pb to b through its
// gate: now, later, or never (a response after the first waiting, or a copy
// of one the device holds; counted).
func (m *Mux) deliverHandshake(b *bind, pb *packetBuf) {
	g := &b.hs
	msg := pb.data[:pb.n]
	g.mu.Lock()
	if binary.LittleEndian.Uint32(msg[0:4]) == msgInitiation {
		if !g.busyLocked() {
			g.passLocked(m, b, pb)
			return
		}
		if g.init != nil {
			m.release(g.init)
			g.superseded++
		}
		g.seq++
		g.init, g.initAt = pb, g.seq
		g.held++
		g.mu.Unlock()
		return
	}
	if g.initWith || g.init != nil { // behind an initiation
		var stale *packetBuf
		if g.resp != nil {
			if binary.LittleEndian.Uint32(g.resp.data[8:12]) == b.ownInit.Load() {
				g.mu.Unlock()
				m.droppedLaterResp.Add(1)
				m.release(pb)
				return
			}
			stale = g.resp // its handshake is gone: see releaseLocked
		}
		g.seq++
		g.resp, g.respAt = pb, g.seq
		g.held++
		g.mu.Unlock()
		if stale != nil {
			m.deliver(b, stale)
		}
		return
	}
	eph := responseEph(msg)
	for _, h := range g.resps {
		if h.eph == eph {
			g.mu.Unlock()
			m.droppedLaterResp.Add(1)
			m.release(pb)
			return
		}
	}
	g.passLocked(m, b, pb)
}

// passLocked hands pb to the device and notes what answer to expect; it
// unlocks g.
func (g *hsGate) passLocked(m *Mux, b *bind, pb *packetBuf) {
	msg := pb.data[:pb.n]
	g.gen++
	gen := g.gen
	sender := binary.LittleEndian.Uint32(msg[4:8])
	if binary.LittleEndian.Uint32(msg[0:4]) == msgResponse {
		if len(g.resps) == respTracked {
			g.resps = append(g.resps[:0], g.resps[1:]...)
		}
		g.resps = append(g.resps, heldResp{sender: sender, to: binary.LittleEndian.Uint32(msg[8:12]), eph: responseEph(msg)})
	} else {
		g.initWith, g.initWant = true, sender
	}
	b.hsWaiting.Store(true)
	if g.timer != nil {
		g.timer.Stop()
	}
	g.timer = time.AfterFunc(m.hsSettle, func() { m.hsSettled(b, gen) })
	g.mu.Unlock()
	m.deliver(b, pb)
}

// hsSettled ends the hold of whatever the device got up to hand-over gen,
// if nothing was handed over since, and passes what waits.
func (m *Mux) hsSettled(b *bind, gen uint64) {
	g := &b.hs
	g.mu.Lock()
	if gen != g.gen || !g.busyLocked() {
		g.mu.Unlock()
		return
	}
	g.initWith, g.initWant, g.resps = false, 0, g.resps[:0]
	g.releaseLocked(m, b)
}

// releaseLocked passes the message that waited longest, now that the
// device holds none; it unlocks g.
func (g *hsGate) releaseLocked(m *Mux, b *bind) {
	// A waiting response whose handshake the device has given up since
	// (it answered the peer, or started another) cannot touch its state:
	// wireguard-go finds no handshake under that index and drops it.
	var stale *packetBuf
	if g.resp != nil && binary.LittleEndian.Uint32(g.resp.data[8:12]) != b.ownInit.Load() {
		stale, g.resp = g.resp, nil
	}
	var next *packetBuf
	switch {
	case g.resp != nil && (g.init == nil || g.respAt < g.initAt):
		next, g.resp = g.resp, nil
	case g.init != nil:
		next, g.init = g.init, nil
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

// noteSent ends the hold of what the device holds if bufs, which it sends,
// hold the answer, and then passes what waits. Only called while the gate
// is closed.
func (b *bind) noteSent(bufs [][]byte) {
	g := &b.hs
	g.mu.Lock()
	for _, buf := range bufs {
		if len(buf) < transportMin {
			continue
		}
		switch t := binary.LittleEndian.Uint32(buf[0:4]); {
		case t == msgResponse && len(buf) == responseSize:
			if g.initWith && binary.LittleEndian.Uint32(buf[8:12]) == g.initWant {
				g.initWith, g.initWant = false, 0
				g.releaseLocked(b.m, b)
				return
			}
		case t == msgTransport && len(g.resps) > 0:
			receiver := binary.LittleEndian.Uint32(buf[4:8])
			for _, h := range g.resps {
				if h.sender == receiver {
					// The device's own handshake is complete: the other
					// responses it holds, and later copies, can no longer
					// touch its state.
					b.ownInit.CompareAndSwap(h.to, 0)
					g.resps = g.resps[:0]
					g.releaseLocked(b.m, b)
					return
				}
			}
		}
	}
	g.mu.Unlock()
}
