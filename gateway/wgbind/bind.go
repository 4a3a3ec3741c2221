package wgbind

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

var errMuxClosed = errors.New("wgbind: shared port is not open")

// bind is one device's view of the Mux. Its identity (the pointer) is what
// the index table maps to, so learned indices survive Close and Open, which
// wireguard-go does on BindUpdate and on Down/Up.
type bind struct {
	m    *Mux
	name string
	cur  atomic.Pointer[session] // nil while closed

	recent []uint32 // its registered indices, oldest first; guarded by m.idxMu

	dispatched, droppedFull atomic.Uint64
	droppedCoDel            atomic.Uint64 // codel.go
	lastWarn                atomic.Int64  // since m.epoch, ns: warnFull

	initSent     atomic.Uint64 // handshake initiations sent (handshakes.go)
	pendingSince atomic.Int64  // since m.epoch, ns, of the oldest unanswered initiation; 0: none
	lastResponse atomic.Int64  // since m.epoch, ns, of the last handshake response sent (crossing.go)
	delayed      atomic.Uint64 // initiations held back as crossing (crossing.go)
	dropped      atomic.Uint64 // of those, dropped for a response sent meanwhile

	refused      atomic.Uint64          // datagrams this host refused to send (sendblock.go)
	blockedSince atomic.Int64           // since m.epoch, ns, of the first refusal since a send went out; 0: none
	blockedTo    atomic.Pointer[string] // where the refused sends went

	hs        hsGate        // one handshake message at a time (hsgate.go)
	hsWaiting atomic.Bool   // hs owes an answer: Send looks for it
	ownInit   atomic.Uint32 // sender index of the device's own handshake in flight; 0: none (hsgate.go)

	tsMu   sync.Mutex // guards tsPeer, tsLast (frontdoor.go freshTimestamp)
	tsPeer [keyLen]byte
	tsLast [12]byte
}

var _ conn.Bind = (*bind)(nil)

// session is one Open..Close of a bind: the queue its ReceiveFunc drains.
type session struct {
	m      *Mux
	b      *bind
	q      chan *packetBuf
	small  chan *packetBuf // the lane for small transport packets (codel.go)
	done   chan struct{}
	closed atomic.Bool
	cd     codel // the receive function's alone (codel.go)
}

// Open ignores port and reports the Mux's; it fails if the Mux is not open.
func (b *bind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) {
	m := b.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.open {
		return nil, 0, errMuxClosed
	}
	if b.cur.Load() != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	s := &session{
		m:     m,
		b:     b,
		q:     make(chan *packetBuf, queueLen),
		small: make(chan *packetBuf, smallLaneLen),
		done:  make(chan struct{}),
	}
	m.sessions[b] = s
	b.cur.Store(s)
	m.log.Debug("device joined shared port", "device", b.name, "port", m.port)
	return []conn.ReceiveFunc{s.receive}, m.port, nil
}

// Close detaches the device from dispatch; its ReceiveFunc returns
// net.ErrClosed. Learned indices stay: the device's keypairs outlive a rebind.
func (b *bind) Close() error {
	m := b.m
	m.mu.Lock()
	defer m.mu.Unlock()
	s := b.cur.Load()
	if s == nil {
		return nil
	}
	b.cur.Store(nil)
	delete(m.sessions, b)
	s.close()
	m.log.Debug("device left shared port", "device", b.name)
	return nil
}

// SetMark marks the shared socket, so it applies to every device.
func (b *bind) SetMark(mark uint32) error { return b.m.under.SetMark(mark) }

// ParseEndpoint parses with the underlying bind, whose Send gets it back.
func (b *bind) ParseEndpoint(s string) (conn.Endpoint, error) { return b.m.under.ParseEndpoint(s) }

// BatchSize is what the device reads per call: the underlying bind's,
// capped at deviceBatch (mux.go) to bound the device's receive buffers.
func (b *bind) BatchSize() int { return min(b.m.under.BatchSize(), deviceBatch) }

// Send learns the sender index of outgoing handshake initiations and
// responses, so that replies to them reach this device, then sends through
// the shared socket.
func (b *bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	if b.cur.Load() == nil {
		return net.ErrClosed
	}
	for _, buf := range bufs {
		typ := handshakeType(buf)
		switch typ {
		case msgInitiation:
			b.noteInitiation() // handshakes.go; before the index is registered
		case msgResponse:
			b.noteResponse() // crossing.go
		default:
			continue
		}
		b.learn(typ, buf)
		if typ == msgInitiation && len(bufs) == 1 && b.holdCrossing(buf, func(held []byte) { _ = b.m.under.Send([][]byte{held}, ep) }) { // crossing.go
			return nil
		}
	}
	if b.hsWaiting.Load() {
		b.noteSent(bufs) // hsgate.go; after ownInit is up to date
	}
	err := b.m.under.Send(bufs, ep)
	b.noteSend(len(bufs), ep, err) // sendblock.go
	return err
}

// handshakeType is msgInitiation or msgResponse for a well-formed message
// of that type, else 0.
func handshakeType(buf []byte) uint32 {
	if len(buf) < 8 {
		return 0
	}
	switch typ := binary.LittleEndian.Uint32(buf[0:4]); {
	case typ == msgInitiation && len(buf) == initiationSize,
		typ == msgResponse && len(buf) == responseSize:
		return typ
	}
	return 0
}

// learn takes note of the handshake message buf of type typ that the
// device sends (on the shared port or the relay): it registers its sender
// index, so that replies reach the device, and keeps ownInit (hsgate.go),
// the initiation's index, or none once the device answers the peer, which
// abandons its own handshake.
func (b *bind) learn(typ uint32, buf []byte) {
	if typ == msgInitiation {
		b.ownInit.Store(binary.LittleEndian.Uint32(buf[4:8]))
	} else {
		b.ownInit.Store(0)
	}
	b.m.register(binary.LittleEndian.Uint32(buf[4:8]), b)
}

func (s *session) close() {
	if s.closed.Swap(true) {
		return
	}
	close(s.done)
	// Return what is queued to the pool; a packet the reader enqueues after
	// this is left to the garbage collector.
	for {
		select {
		case pb := <-s.q:
			s.m.release(pb)
		case pb := <-s.small:
			s.m.release(pb)
		default:
			return
		}
	}
}

// enqueue offers pb without blocking; false if the queue is full or closed.
func (s *session) enqueue(pb *packetBuf) bool {
	if s.closed.Load() || s.depth() >= queueLen { // both lanes share the bound
		return false
	}
	if smallTransport(pb) {
		select {
		case s.small <- pb:
			return true
		default: // the lane is full: in line with the rest
		}
	}
	select {
	case s.q <- pb:
		return true
	default:
		return false
	}
}

// depth is how many packets wait for the device.
func (s *session) depth() int { return len(s.q) + len(s.small) }

// stale is CoDel's verdict on pb, taken from the head of the queue at now:
// only transport packets with a payload are ever dropped.
func (s *session) stale(pb *packetBuf, now time.Duration) bool {
	if pb.n <= transportMin || binary.LittleEndian.Uint32(pb.data[0:4]) != msgTransport {
		return false
	}
	return s.cd.drop(now-pb.at, now, len(s.q))
}

// next takes the next queued packet without waiting, nil when none: from
// the small lane first while smallFirst (its share of a batch), then from
// the main queue, then from the small lane again.
func (s *session) next(smallFirst bool) (*packetBuf, bool) {
	if smallFirst {
		select {
		case pb := <-s.small:
			return pb, true
		default:
		}
	}
	select {
	case pb := <-s.q:
		return pb, false
	default:
	}
	select {
	case pb := <-s.small:
		return pb, true
	default:
	}
	return nil, false
}

// receive is the device's ReceiveFunc: it waits for one packet, then takes
// whatever else is queued, up to len(packets), copying each into the device's
// buffers.
func (s *session) receive(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	for {
		select {
		case <-s.done:
			return 0, net.ErrClosed
		default:
		}
		var pb *packetBuf
		fromSmall := false
		select {
		case pb = <-s.small:
			fromSmall = true
		case pb = <-s.q:
		case <-s.done:
			return 0, net.ErrClosed
		}
		n, smalls := 0, 0
		now := time.Since(s.m.epoch)
		for pb != nil {
			if fromSmall {
				smalls++
			}
			if !fromSmall && s.stale(pb, now) {
				s.b.droppedCoDel.Add(1)
			} else if pb.n <= len(packets[n]) { // else no device buffer could hold it
				sizes[n] = copy(packets[n], pb.data[:pb.n])
				eps[n] = pb.ep
				n++
			}
			s.m.release(pb)
			if n < len(packets) {
				pb, fromSmall = s.next(smalls < len(packets)/2)
			} else {
				pb = nil
			}
		}
		if n > 0 {
			return n, nil
		}
	}
}
