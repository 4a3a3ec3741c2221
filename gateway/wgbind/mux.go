// Package wgbind owns the gateway's one site-to-site UDP socket and shares it
// between the wireguard-go devices of up to ten tunnels.
//
// A Mux holds the underlying conn.Bind (conn.NewStdNetBind in production, for
// its recvmmsg/sendmmsg batching and UDP GSO/GRO) and hands each device a
// conn.Bind of its own from NewBind. One reader goroutine per underlying
// ReceiveFunc demultiplexes datagrams by WireGuard message type:
//
//   - handshake initiations are offered to every open device; all devices share
//     the gateway's private key and only the one whose peer sent it answers;
//   - handshake responses, cookie replies and transport data carry a receiver
//     index (bytes 8:12 of a response, after the responder's own sender index;
//     bytes 4:8 of the others), which is the sender index (bytes 4:8) one of
//     our devices put in an initiation or response it sent: the per-device
//     Bind learns it in Send;
//   - everything else is dropped and counted (Stats).
//
// Each device has a bounded queue; a slow device loses its own packets, never
// stalls the others. A packet is copied once, from the reader's pooled buffer
// into the device's buffer in the device's ReceiveFunc, and the underlying
// Endpoint is passed through unchanged.
package wgbind

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// WireGuard message types and sizes (wireguard-go device/noise-protocol.go).
const (
	msgInitiation  = 1
	msgResponse    = 2
	msgCookieReply = 3
	msgTransport   = 4

	initiationSize  = 148
	responseSize    = 92
	cookieReplySize = 64
	transportMin    = 32 // header 16 + poly1305 tag 16: a keepalive
)

const (
	// maxDatagram is the largest UDP payload; with UDP GRO the underlying
	// bind reads coalesced datagrams of this size into the batch buffers.
	maxDatagram = 1<<16 - 1

	// queueLen bounds each device's queue of received packets (8 read
	// batches); a queued packet normally pins a smallBuf buffer.
	queueLen = 8 * conn.IdealBatchSize

	// smallBuf holds any datagram of a tunnel over a standard or jumbo
	// underlay (9000-byte MTU minus headers).
	smallBuf = 9 * 1024

	// stallWait is how long the reader waits for a device whose queue is
	// full before it gives up on it (see reader.enqueue).
	stallWait = 100 * time.Millisecond

	// indicesPerDevice is how many registered sender indices a device keeps
	// in the table. A wireguard-go peer uses at most four at once (pending
	// handshake, next, current and previous keypair); older ones are dead.
	indicesPerDevice = 8

	// maxIndexAge drops entries nobody refreshed: a keypair is rejected 180 s
	// after it was made (wireguard-go RejectAfterTime), so an index older than
	// this is unusable. It also forgets the indices of deleted tunnels.
	maxIndexAge = 6 * time.Minute
)

// Stats counts what the readers did with received datagrams.
type Stats struct {
	Dispatched          uint64 `json:"dispatched"`            // handed to a device queue; an initiation counts once per device
	DroppedUnknownIndex uint64 `json:"dropped_unknown_index"` // response, cookie or transport with an index no device registered
	DroppedMalformed    uint64 `json:"dropped_malformed"`     // too short, wrong size for its type, or unknown type
	DroppedQueueFull    uint64 `json:"dropped_queue_full"`    // the device's queue was full (device too slow)
	DroppedNotOpen      uint64 `json:"dropped_not_open"`      // the index's device (or, for an initiation, every device) is closed
}

// Mux shares one conn.Bind between several wireguard-go devices.
type Mux struct {
	under conn.Bind
	log   *slog.Logger
	epoch time.Time // monotonic base for index ages

	mu       sync.Mutex // guards open, port, sessions
	open     bool
	port     uint16
	sessions map[*bind]*session // open per-device binds
	readers  sync.WaitGroup

	// openSessions is the snapshot of sessions that initiations go to.
	openSessions atomic.Pointer[[]*session]

	idxMu sync.Mutex                        // serializes writers of idx
	idx   atomic.Pointer[map[uint32]idxEnt] // copy-on-write: readers never lock

	bufs  sync.Pool // *packetBuf of maxDatagram bytes
	small sync.Pool // *packetBuf of smallBuf bytes

	dispatched, droppedUnknown, droppedMalformed, droppedFull, droppedNotOpen atomic.Uint64
}

type idxEnt struct {
	b  *bind
	at time.Duration // since Mux.epoch
}

// packetBuf is one received datagram. Buffers move from a reader's batch to
// device queues and back to the pool when every recipient has copied them.
type packetBuf struct {
	data []byte // len is the size class: smallBuf or maxDatagram
	n    int
	ep   conn.Endpoint
	refs atomic.Int32
}

// NewMux returns a Mux over under, which it owns from now on. log may be nil.
func NewMux(under conn.Bind, log *slog.Logger) *Mux {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Mux{
		under:    under,
		log:      log,
		epoch:    time.Now(),
		sessions: make(map[*bind]*session),
	}
	m.bufs.New = func() any { return &packetBuf{data: make([]byte, maxDatagram)} }
	m.small.New = func() any { return &packetBuf{data: make([]byte, smallBuf)} }
	empty := map[uint32]idxEnt{}
	m.idx.Store(&empty)
	m.openSessions.Store(&[]*session{})
	return m
}

// Open opens the underlying bind on port (0 picks one) and starts one reader
// goroutine per ReceiveFunc it returns. A closed Mux may be opened again; its
// devices then need a BindUpdate to rejoin.
func (m *Mux) Open(port uint16) (uint16, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open {
		return 0, conn.ErrBindAlreadyOpen
	}
	fns, actual, err := m.under.Open(port)
	if err != nil {
		return 0, err
	}
	m.open, m.port = true, actual
	for _, fn := range fns {
		r := m.newReader(fn)
		m.readers.Add(1)
		go func() {
			defer m.readers.Done()
			r.run()
		}()
	}
	m.log.Info("shared wireguard port open", "port", actual, "sockets", len(fns))
	return actual, nil
}

// Port is the port the Mux listens on, 0 when closed.
func (m *Mux) Port() uint16 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.port
}

// Close closes the underlying bind, waits for the readers, and makes the
// ReceiveFunc of every open device return net.ErrClosed.
func (m *Mux) Close() error {
	m.mu.Lock()
	if !m.open {
		m.mu.Unlock()
		return nil
	}
	m.open, m.port = false, 0
	for b, s := range m.sessions {
		b.cur.Store(nil)
		s.close()
	}
	clear(m.sessions)
	m.publishSessionsLocked()
	err := m.under.Close()
	m.mu.Unlock()
	m.readers.Wait()
	m.log.Info("shared wireguard port closed")
	return err
}

// Stats returns the dispatch counters.
func (m *Mux) Stats() Stats {
	return Stats{
		Dispatched:          m.dispatched.Load(),
		DroppedUnknownIndex: m.droppedUnknown.Load(),
		DroppedMalformed:    m.droppedMalformed.Load(),
		DroppedQueueFull:    m.droppedFull.Load(),
		DroppedNotOpen:      m.droppedNotOpen.Load(),
	}
}

// NewBind returns the conn.Bind for one device; name is used in logs.
func (m *Mux) NewBind(name string) conn.Bind {
	return &bind{m: m, name: name}
}

func (m *Mux) publishSessionsLocked() {
	list := make([]*session, 0, len(m.sessions))
	for _, s := range m.sessions {
		list = append(list, s)
	}
	m.openSessions.Store(&list)
}

// register points index at b: last registration wins. It forgets b's oldest
// index beyond indicesPerDevice and any entry older than maxIndexAge.
func (m *Mux) register(index uint32, b *bind) {
	now := time.Since(m.epoch)
	m.idxMu.Lock()
	defer m.idxMu.Unlock()
	old := *m.idx.Load()
	next := make(map[uint32]idxEnt, len(old)+1)
	for k, e := range old {
		if now-e.at <= maxIndexAge {
			next[k] = e
		}
	}
	// b.recent is guarded by idxMu.
	if len(b.recent) == indicesPerDevice {
		evict := b.recent[0]
		if e, ok := next[evict]; ok && e.b == b {
			delete(next, evict)
		}
		b.recent = append(b.recent[:0], b.recent[1:]...)
	}
	b.recent = append(b.recent, index)
	next[index] = idxEnt{b: b, at: now}
	m.idx.Store(&next)
}

// indexCount is the size of the index table (for tests).
func (m *Mux) indexCount() int { return len(*m.idx.Load()) }

// indexSnapshot copies the index table (for tests).
func (m *Mux) indexSnapshot() map[uint32]*bind {
	out := make(map[uint32]*bind)
	for k, e := range *m.idx.Load() {
		out[k] = e.b
	}
	return out
}

// getBuf returns a pooled buffer that holds n bytes: almost every packet
// fits the small class; only oversize datagrams take a 64 KiB one.
func (m *Mux) getBuf(n int) *packetBuf {
	if n <= smallBuf {
		return m.small.Get().(*packetBuf)
	}
	return m.bufs.Get().(*packetBuf)
}

// release drops one reference to pb, returning it to the pool on the last.
func (m *Mux) release(pb *packetBuf) {
	if pb.refs.Add(-1) == 0 {
		pb.ep = nil
		pb.n = 0
		if len(pb.data) == smallBuf {
			m.small.Put(pb)
		} else {
			m.bufs.Put(pb)
		}
	}
}

// reader demultiplexes one underlying ReceiveFunc. Its batch buffers are
// its own (64 KiB each, as UDP GRO needs); each datagram is copied into a
// right-sized pooled packetBuf for the device queues.
type reader struct {
	m     *Mux
	fn    conn.ReceiveFunc
	bufs  [][]byte
	sizes []int
	eps   []conn.Endpoint
	timer *time.Timer // reused for back-pressure waits
}

func (m *Mux) newReader(fn conn.ReceiveFunc) *reader {
	n := m.under.BatchSize()
	r := &reader{
		m:     m,
		fn:    fn,
		bufs:  make([][]byte, n),
		sizes: make([]int, n),
		eps:   make([]conn.Endpoint, n),
		timer: time.NewTimer(time.Hour),
	}
	r.timer.Stop()
	for i := range r.bufs {
		r.bufs[i] = make([]byte, maxDatagram)
	}
	return r
}

func (r *reader) run() {
	backoff := time.Duration(0)
	for {
		n, err := r.fn(r.bufs, r.sizes, r.eps)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A reader that gave up would leave every tunnel deaf, so
			// retry (with a capped backoff) until the Mux is closed.
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			r.m.log.Warn("shared wireguard port: receive failed", "socket", r.fn.PrettyName(), "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			r.m.mu.Lock()
			open := r.m.open
			r.m.mu.Unlock()
			if !open {
				return
			}
			continue
		}
		backoff = 0
		r.dispatch(n)
	}
}

// dispatch hands the first n datagrams of the batch to their devices.
func (r *reader) dispatch(n int) {
	m := r.m
	var idx map[uint32]idxEnt // loaded lazily, once per batch
	for i := range n {
		size := r.sizes[i]
		ep := r.eps[i]
		r.eps[i] = nil
		if size == 0 {
			continue
		}
		data := r.bufs[i][:size]
		if size < 8 {
			m.droppedMalformed.Add(1)
			continue
		}
		var receiver uint32
		switch typ := binary.LittleEndian.Uint32(data[0:4]); {
		case typ == msgInitiation && size == initiationSize:
			r.offerAll(data, ep)
			continue
		case typ == msgResponse && size == responseSize:
			receiver = binary.LittleEndian.Uint32(data[8:12]) // after the responder's sender index
		case typ == msgCookieReply && size == cookieReplySize,
			typ == msgTransport && size >= transportMin:
			receiver = binary.LittleEndian.Uint32(data[4:8])
		default:
			m.droppedMalformed.Add(1)
			continue
		}
		if idx == nil {
			idx = *m.idx.Load()
		}
		e, ok := idx[receiver]
		if !ok {
			m.droppedUnknown.Add(1)
			continue
		}
		s := e.b.cur.Load()
		if s == nil {
			m.droppedNotOpen.Add(1)
			continue
		}
		pb := m.getBuf(size)
		pb.n = copy(pb.data, data)
		pb.ep = ep
		pb.refs.Store(1)
		switch r.enqueue(s, pb) {
		case enqueued:
			m.dispatched.Add(1)
		case queueFull:
			m.droppedFull.Add(1)
			m.release(pb)
		case sessionClosed:
			m.droppedNotOpen.Add(1)
			m.release(pb)
		}
	}
}

type enqueueResult int

const (
	enqueued enqueueResult = iota
	queueFull
	sessionClosed
)

// enqueue hands pb to s. When the queue is full the reader waits for the
// device, up to stallWait: that is back-pressure into the kernel socket
// buffer, as a standalone wireguard-go device has when it reads its own
// socket. A device that lets stallWait pass is marked stalled, and packets
// for it are dropped without waiting until it reads again, so one stuck
// tunnel cannot stall the others for more than one stallWait.
func (r *reader) enqueue(s *session, pb *packetBuf) enqueueResult {
	if s.closed.Load() {
		return sessionClosed
	}
	select {
	case s.q <- pb:
		return enqueued
	default:
	}
	if s.stalled.Load() {
		return queueFull
	}
	r.timer.Reset(stallWait)
	defer r.timer.Stop()
	select {
	case s.q <- pb:
		return enqueued
	case <-s.done:
		return sessionClosed
	case <-r.timer.C:
		s.stalled.Store(true)
		r.m.log.Warn("shared wireguard port: a tunnel device is not reading; dropping its packets until it does", "wait", stallWait)
		return queueFull
	}
}

// offerAll offers an initiation to every open device. Each gets its own
// reference to one shared copy.
func (r *reader) offerAll(data []byte, ep conn.Endpoint) {
	m := r.m
	targets := *m.openSessions.Load()
	if len(targets) == 0 {
		m.droppedNotOpen.Add(1)
		return
	}
	pb := m.getBuf(len(data))
	pb.n = copy(pb.data, data)
	pb.ep = ep
	// One reference per target plus the reader's own until it is done.
	pb.refs.Store(int32(len(targets)) + 1)
	for _, s := range targets {
		// Initiations never wait: a busy device will get the retry.
		switch {
		case s.enqueueNoWait(pb):
			m.dispatched.Add(1)
		case s.closed.Load(): // closed since the snapshot
			m.droppedNotOpen.Add(1)
			m.release(pb)
		default:
			m.droppedFull.Add(1)
			m.release(pb)
		}
	}
	m.release(pb)
}
