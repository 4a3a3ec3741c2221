// Package wgbind owns the gateway's one site-to-site UDP socket and shares it
// between the wireguard-go devices of up to ten tunnels.
//
// A Mux holds the underlying conn.Bind and hands each device a conn.Bind of
// its own (NewBind). One reader per underlying ReceiveFunc demultiplexes
// datagrams by WireGuard message type: initiations go through the front door
// (frontdoor.go: MAC1/MAC2 and cookies, the static key decrypted once, then
// delivered to the one device whose peer has that key); responses, cookie
// replies and transport data go by receiver index to the device that sent
// it; everything else is dropped and counted (Stats). A device never holds
// an initiation and a response that can change its handshake state at once
// (hsgate.go). The reader never waits: each device has a bounded queue of
// its own, so a slow or flooded device loses only its own packets.
// docs/architecture.md ("Data-plane choices") says why, and what it costs.
package wgbind

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ratelimiter"

	"github.com/vgate-project/vgate/gateway/keys"
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

	// queueLen bounds each device's queue of received packets (32 read
	// batches, about 20 ms of a TCP flow at 2.5 Gbit/s; a standalone
	// wireguard-go buffers about as much in its 7 MiB socket buffer). The
	// reader never waits, so the queue is what rides out a device
	// goroutine that is not scheduled for a while: with 1024 or 2048,
	// iperf3 through vgate saw thousands to tens of thousands of drops and
	// TCP retransmits per 5 s run on a busy 2-core machine, and with 4096
	// next to none, with more throughput and no worse ping under load
	// (bench/throughput -vgate0, same run). A queued packet normally pins
	// a midBuf buffer (8 MiB for a full queue). Every device has the same
	// bound: its fair share of the Mux's buffering.
	queueLen = 32 * conn.IdealBatchSize

	// midBuf holds any datagram of a tunnel over an underlay with an MTU up
	// to 2076 (standard Ethernet, PPPoE, most clouds): the reader's slots
	// are this size until a larger datagram arrives (slotSize).
	midBuf = 2 * 1024

	// smallBuf holds any datagram of a tunnel over a standard or jumbo
	// underlay (9000-byte MTU minus headers). A larger datagram arrives whole
	// only in the reader's GRO slots; elsewhere in a batch it is cut short
	// and dropped (an underlay MTU above 9216).
	smallBuf = 9 * 1024

	// deviceBatch caps the batch each device reads from its queue, and so
	// the buffers a wireguard-go device keeps for receiving: BatchSize()
	// message buffers of 64 KiB each per ReceiveFunc, held for the
	// device's life. The Mux reads the socket in full batches; a device
	// drains its queue in batches of this size.
	deviceBatch = 32

	// tinyBuf holds handshake messages and keepalives, so that a flood of
	// initiations pins 256 bytes per queued packet, not smallBuf.
	tinyBuf = 256

	// warnEvery rate-limits the warning about a device's full queue.
	warnEvery = 10 * time.Second

	// indicesPerDevice is how many registered sender indices a device keeps
	// in the table. A wireguard-go peer uses at most four at once (pending
	// handshake, next, current and previous keypair); older ones are dead.
	indicesPerDevice = 8

	// maxIndexAge drops entries nobody refreshed: a keypair is rejected 180 s
	// after it was made (wireguard-go RejectAfterTime), so an index older than
	// this is unusable. It also forgets the indices of deleted tunnels.
	maxIndexAge = 6 * time.Minute
)

// Stats counts what the Mux did with received datagrams.
type Stats struct {
	Dispatched          uint64 `json:"dispatched"`            // handed to a device queue
	DroppedUnknownIndex uint64 `json:"dropped_unknown_index"` // response, cookie or transport with an index no device registered
	DroppedMalformed    uint64 `json:"dropped_malformed"`     // too short, wrong size for its type, or unknown type
	DroppedQueueFull    uint64 `json:"dropped_queue_full"`    // a device's queue was full (the sum over Devices)
	DroppedNotOpen      uint64 `json:"dropped_not_open"`      // the packet's device is closed

	// Handshake responses (hsgate.go).
	DroppedResponseBadMAC uint64 `json:"dropped_response_bad_mac"` // MAC1 wrong
	DroppedResponseLater  uint64 `json:"dropped_response_later"`   // another response to the same handshake waits, or a copy of one the device holds

	// The front door: handshake initiations.
	Initiations          uint64 `json:"initiations"`            // received, of the right size
	DroppedHandshakeBusy uint64 `json:"dropped_handshake_busy"` // the front door's queue was full
	DroppedBadMAC        uint64 `json:"dropped_bad_mac"`        // MAC1 wrong
	DroppedRateLimited   uint64 `json:"dropped_rate_limited"`   // under load, valid MAC2, source over its rate
	DroppedBadHandshake  uint64 `json:"dropped_bad_handshake"`  // static key or timestamp did not decrypt
	DroppedReplay        uint64 `json:"dropped_replay"`         // timestamp not after the last admitted from that peer
	DroppedUnknownPeer   uint64 `json:"dropped_unknown_peer"`   // static key is no tunnel's peer, or no private key set
	CookieReplies        uint64 `json:"cookie_replies"`         // sent under load to initiations without a valid MAC2
	X25519               uint64 `json:"x25519"`                 // X25519 operations on received initiations
	UnderLoad            bool   `json:"under_load"`             // MAC2 is required now

	Devices []DeviceStats `json:"devices,omitempty"` // by name
}

// DeviceStats is one device's share of the Mux.
type DeviceStats struct {
	Name             string `json:"name"`
	Open             bool   `json:"open"`
	QueueDepth       int    `json:"queue_depth"` // packets waiting for the device now
	QueueCap         int    `json:"queue_cap"`
	Dispatched       uint64 `json:"dispatched"`
	DroppedQueueFull uint64 `json:"dropped_queue_full"`
	// InitiationsSent counts the handshake initiations the device sent;
	// UnansweredSince is when the oldest one the peer has not answered
	// yet was sent (zero when none waits). See handshakes.go.
	InitiationsSent uint64    `json:"initiations_sent"`
	UnansweredSince time.Time `json:"unanswered_since,omitzero"`
	// SendRefused counts the datagrams this host refused to send (EPERM:
	// a local firewall); SendBlockedSince is when the refusals began, zero
	// once a send went out, and SendBlockedTo where they went. See
	// sendblock.go.
	SendRefused      uint64    `json:"send_refused"`
	SendBlockedSince time.Time `json:"send_blocked_since,omitzero"`
	SendBlockedTo    string    `json:"send_blocked_to,omitempty"`
	// DroppedCoDel counts transport packets dropped for their time in
	// the queue (codel.go).
	DroppedCoDel uint64 `json:"dropped_codel"`
}

// Mux shares one conn.Bind between several wireguard-go devices.
type Mux struct {
	under conn.Bind
	log   *slog.Logger
	epoch time.Time // monotonic base for index ages and warnings

	hsSettle time.Duration // hsgate.go; set before any device opens

	mu       sync.Mutex // guards open, port, sessions, binds, peers, priv, stop
	open     bool
	port     uint16
	sessions map[*bind]*session // open per-device binds
	binds    map[string]*bind   // by name, the latest NewBind of each
	peers    map[string]keys.PublicKey
	priv     keys.PrivateKey
	stop     chan struct{}            // closed by Close: the handshake workers end
	rate     *ratelimiter.Ratelimiter // per source IP, under load; one per Open
	readers  sync.WaitGroup
	workers  sync.WaitGroup

	idxMu sync.Mutex                        // serializes writers of idx
	idx   atomic.Pointer[map[uint32]idxEnt] // copy-on-write: readers never lock

	// The front door (frontdoor.go).
	door           atomic.Pointer[frontDoor]
	hq             chan *packetBuf // initiations waiting for a handshake worker
	cookies        device.CookieChecker
	underLoadUntil atomic.Int64 // since epoch, ns

	// slotSize is the size of the readers' hand-over slots: midBuf, or
	// smallBuf once a datagram filled a midBuf slot (a jumbo underlay).
	slotSize atomic.Int32

	bufs  sync.Pool // *packetBuf of maxDatagram bytes
	small sync.Pool // *packetBuf of smallBuf bytes
	mid   sync.Pool // *packetBuf of midBuf bytes
	tiny  sync.Pool // *packetBuf of tinyBuf bytes

	dispatched, droppedUnknown, droppedMalformed, droppedFull, droppedNotOpen atomic.Uint64

	initiations, droppedBusy, droppedBadMAC, droppedRate   atomic.Uint64
	droppedBadHS, droppedUnknownPeer, cookieReplies, dhOps atomic.Uint64
	droppedReplay                                          atomic.Uint64
	droppedRespBadMAC, droppedLaterResp                    atomic.Uint64
	doorDone                                               atomic.Uint64 // initiations the workers finished (tests wait on it)
}

type idxEnt struct {
	b  *bind
	at time.Duration // since Mux.epoch
}

// packetBuf is one received datagram. Buffers move from a reader's batch to
// a device queue and back to the pool when the device has copied them.
type packetBuf struct {
	data []byte // len is the size class: tinyBuf, smallBuf or maxDatagram
	n    int
	ep   conn.Endpoint
	via  *bind         // an initiation from another path (relay.go): the one device it may go to
	at   time.Duration // since Mux.epoch: when it was queued (codel.go)
}

// NewMux returns a Mux over under, which it owns from now on. log may be nil.
// Initiations are dropped until SetPrivateKey and SetPeers have been called.
func NewMux(under conn.Bind, log *slog.Logger) *Mux {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Mux{
		under:    under,
		log:      log,
		epoch:    time.Now(),
		sessions: make(map[*bind]*session),
		binds:    make(map[string]*bind),
		hq:       make(chan *packetBuf, handshakeQueueLen),
		hsSettle: hsSettle,
	}
	m.bufs.New = func() any { return &packetBuf{data: make([]byte, maxDatagram)} }
	m.small.New = func() any { return &packetBuf{data: make([]byte, smallBuf)} }
	m.mid.New = func() any { return &packetBuf{data: make([]byte, midBuf)} }
	m.slotSize.Store(midBuf)
	m.tiny.New = func() any { return &packetBuf{data: make([]byte, tinyBuf)} }
	empty := map[uint32]idxEnt{}
	m.idx.Store(&empty)
	m.door.Store(&frontDoor{})
	return m
}

// Open opens the underlying bind on port (0 picks one) and starts one reader
// goroutine per ReceiveFunc it returns, and the handshake workers. A closed
// Mux may be opened again; its devices then need a BindUpdate to rejoin.
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
	// A Ratelimiter cannot be initialized again after Close: one per Open.
	rate := new(ratelimiter.Ratelimiter)
	rate.Init()
	m.rate = rate
	m.stop = make(chan struct{})
	for range handshakeWorkers() {
		w := m.newWorker(rate)
		m.workers.Add(1)
		go func() {
			defer m.workers.Done()
			w.run(m.stop)
		}()
	}
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

// Close closes the underlying bind, waits for the readers and handshake
// workers, and makes the ReceiveFunc of every open device return
// net.ErrClosed.
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
	err := m.under.Close()
	close(m.stop)
	rate := m.rate
	m.rate = nil
	m.mu.Unlock()
	m.readers.Wait()
	m.workers.Wait()
	rate.Close()
	for drained := false; !drained; { // initiations nobody will handle
		select {
		case pb := <-m.hq:
			m.release(pb)
		default:
			drained = true
		}
	}
	m.log.Info("shared wireguard port closed")
	return err
}

// Stats returns the counters, with one DeviceStats per device that is open
// or named in SetPeers, sorted by name.
func (m *Mux) Stats() Stats {
	st := Stats{
		Dispatched:          m.dispatched.Load(),
		DroppedUnknownIndex: m.droppedUnknown.Load(),
		DroppedMalformed:    m.droppedMalformed.Load(),
		DroppedQueueFull:    m.droppedFull.Load(),
		DroppedNotOpen:      m.droppedNotOpen.Load(),

		DroppedResponseBadMAC: m.droppedRespBadMAC.Load(),
		DroppedResponseLater:  m.droppedLaterResp.Load(),

		Initiations:          m.initiations.Load(),
		DroppedHandshakeBusy: m.droppedBusy.Load(),
		DroppedBadMAC:        m.droppedBadMAC.Load(),
		DroppedRateLimited:   m.droppedRate.Load(),
		DroppedBadHandshake:  m.droppedBadHS.Load(),
		DroppedReplay:        m.droppedReplay.Load(),
		DroppedUnknownPeer:   m.droppedUnknownPeer.Load(),
		CookieReplies:        m.cookieReplies.Load(),
		X25519:               m.dhOps.Load(),
		UnderLoad:            m.underLoadUntil.Load() > int64(time.Since(m.epoch)),
	}
	m.mu.Lock()
	for name, b := range m.binds {
		s := b.cur.Load()
		if _, named := m.peers[name]; s == nil && !named {
			continue
		}
		d := DeviceStats{
			Name:             name,
			Open:             s != nil,
			QueueCap:         queueLen,
			Dispatched:       b.dispatched.Load(),
			DroppedQueueFull: b.droppedFull.Load(),
			DroppedCoDel:     b.droppedCoDel.Load(),
		}
		if s != nil {
			d.QueueDepth = s.depth()
		}
		b.handshakeStats(&d)
		b.sendStats(&d) // sendblock.go
		st.Devices = append(st.Devices, d)
	}
	m.mu.Unlock()
	slices.SortFunc(st.Devices, func(a, b DeviceStats) int { return strings.Compare(a.Name, b.Name) })
	return st
}

// NewBind returns the conn.Bind for one device; name identifies the device
// in SetPeers, Stats and logs. A later NewBind with the same name (a
// recreated device) takes the name over.
func (m *Mux) NewBind(name string) conn.Bind {
	b := &bind{m: m, name: name}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.binds[name] = b
	m.publishDoorLocked()
	return b
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
	switch {
	case n <= tinyBuf:
		return m.tiny.Get().(*packetBuf)
	case n <= midBuf:
		return m.mid.Get().(*packetBuf)
	case n <= smallBuf:
		return m.small.Get().(*packetBuf)
	}
	return m.bufs.Get().(*packetBuf)
}

// copyPacket copies data into a pooled buffer. A packetBuf has one owner
// at a time (reader, queue, device or handshake worker), who releases it.
func (m *Mux) copyPacket(data []byte, ep conn.Endpoint) *packetBuf {
	pb := m.getBuf(len(data))
	pb.n = copy(pb.data, data)
	pb.ep = ep
	return pb
}

// release returns pb to its pool.
func (m *Mux) release(pb *packetBuf) {
	pb.ep = nil
	pb.via = nil
	pb.n = 0
	switch len(pb.data) {
	case tinyBuf:
		m.tiny.Put(pb)
	case midBuf:
		m.mid.Put(pb)
	case smallBuf:
		m.small.Put(pb)
	default:
		m.bufs.Put(pb)
	}
}

// deliver hands pb to b's open session without waiting, or drops it and
// counts why. It never blocks: a full queue costs only its own device.
func (m *Mux) deliver(b *bind, pb *packetBuf) {
	s := b.cur.Load()
	switch {
	case s == nil || s.closed.Load():
		m.droppedNotOpen.Add(1)
		m.release(pb)
		return
	case s.enqueue(pb):
		m.dispatched.Add(1)
		b.dispatched.Add(1)
		return
	case s.closed.Load(): // closed meanwhile
		m.droppedNotOpen.Add(1)
	default:
		m.droppedFull.Add(1)
		b.droppedFull.Add(1)
		m.warnFull(b)
	}
	m.release(pb)
}

// warnFull logs a device's full queue at most once per warnEvery.
func (m *Mux) warnFull(b *bind) {
	now := int64(time.Since(m.epoch))
	last := b.lastWarn.Load()
	if last != 0 && now-last < int64(warnEvery) {
		return
	}
	if !b.lastWarn.CompareAndSwap(last, now) {
		return
	}
	m.log.Warn("shared wireguard port: a tunnel device is not keeping up; dropping its packets",
		"device", b.name, "dropped_total", b.droppedFull.Load(), "queue", queueLen)
}

// reader demultiplexes one underlying ReceiveFunc. Its batch is mostly
// pooled packetBufs of Mux.slotSize that are handed to the device queues as
// they are (the slot then takes a fresh one), so a datagram is not copied
// on its way to the device queue. A datagram that fills a slot may have
// been cut short: it is dropped (counted malformed) and the Mux switches
// to smallBuf slots for good, so a jumbo underlay loses one packet. The last slots hold 64 KiB: the underlying bind
// reads UDP GRO super-datagrams into them and splits the segments into the
// slots before them (conn.StdNetBind); a datagram left in one of them, or
// one small enough for a tinyBuf, is copied into a right-sized buffer.
type reader struct {
	m     *Mux
	fn    conn.ReceiveFunc
	bufs  [][]byte
	slots []*packetBuf // bufs[i] is slots[i].data for i < len(slots)
	sizes []int
	eps   []conn.Endpoint
}

// groSlots is how many of the last batch slots the underlying bind reads
// coalesced datagrams into (conn.IdealBatchSize / udpSegmentMaxDatagrams
// in wireguard-go's conn/bind_std.go).
const groSlots = 2

func (m *Mux) newReader(fn conn.ReceiveFunc) *reader {
	n := m.under.BatchSize()
	r := &reader{
		m:     m,
		fn:    fn,
		bufs:  make([][]byte, n),
		sizes: make([]int, n),
		eps:   make([]conn.Endpoint, n),
	}
	handover := max(0, n-groSlots)
	r.slots = make([]*packetBuf, handover)
	for i := range r.bufs {
		if i < handover {
			r.slots[i] = m.slotBuf()
			r.bufs[i] = r.slots[i].data
		} else {
			r.bufs[i] = make([]byte, maxDatagram)
		}
	}
	return r
}

// slotBuf is a fresh buffer for a reader's hand-over slot.
func (m *Mux) slotBuf() *packetBuf {
	if m.slotSize.Load() == midBuf {
		return m.mid.Get().(*packetBuf)
	}
	return m.small.Get().(*packetBuf)
}

// truncated reports whether datagram i of size bytes may have been cut
// short by its slot; the first time, the Mux switches to larger slots.
func (r *reader) truncated(i, size int) bool {
	if i >= len(r.slots) || size < len(r.bufs[i]) {
		return false
	}
	if size < smallBuf && r.m.slotSize.CompareAndSwap(midBuf, smallBuf) {
		r.m.log.Info("shared wireguard port: datagrams over 2 KiB (jumbo underlay): receiving into 9 KiB buffers from now on", "size", size)
	}
	r.resize()
	return true
}

// resize replaces slot buffers that are not of the Mux's slot size.
func (r *reader) resize() {
	want := int(r.m.slotSize.Load())
	for i, pb := range r.slots {
		if len(pb.data) != want {
			r.m.release(pb)
			r.slots[i] = r.m.slotBuf()
			r.bufs[i] = r.slots[i].data
		}
	}
}

// take returns datagram i of the batch as a packetBuf with one reference:
// the slot's own buffer when it can be handed over, else a copy.
func (r *reader) take(i int, data []byte, ep conn.Endpoint) *packetBuf {
	if i >= len(r.slots) || len(data) <= tinyBuf {
		return r.m.copyPacket(data, ep)
	}
	pb := r.slots[i]
	pb.n, pb.ep = len(data), ep
	next := r.m.slotBuf()
	r.slots[i], r.bufs[i] = next, next.data
	return pb
}

// close returns the slot buffers to the pool.
func (r *reader) close() {
	for i, pb := range r.slots {
		r.m.release(pb)
		r.slots[i], r.bufs[i] = nil, nil
	}
}

func (r *reader) run() {
	defer r.close()
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

// dispatch hands the first n datagrams of the batch on: initiations to the
// front door, the others to their devices by receiver index. It never waits.
func (r *reader) dispatch(n int) {
	m := r.m
	var idx map[uint32]idxEnt  // loaded lazily, once per batch
	now := time.Since(m.epoch) // the queueing time of the batch (codel.go)
	for i := range n {
		size := r.sizes[i]
		ep := r.eps[i]
		r.eps[i] = nil
		if size == 0 {
			continue
		}
		if size < 8 || r.truncated(i, size) {
			m.droppedMalformed.Add(1)
			continue
		}
		data := r.bufs[i][:size]
		var receiver uint32
		switch typ := binary.LittleEndian.Uint32(data[0:4]); {
		case typ == msgInitiation && size == initiationSize:
			m.initiations.Add(1)
			pb := m.copyPacket(data, ep) // tiny: a flood pins little
			select {
			case m.hq <- pb:
			default:
				m.droppedBusy.Add(1)
				m.release(pb)
			}
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
		if e.b.cur.Load() == nil {
			m.droppedNotOpen.Add(1)
			continue
		}
		if data[0] == msgResponse && !m.cookies.CheckMAC1(data) {
			// Keyed by our public key, which the peer knows: anyone who
			// does not know it cannot make a device work on a response.
			m.droppedRespBadMAC.Add(1)
			continue
		}
		e.b.noteAnswer(data[0], e.at) // handshakes.go
		if data[0] == msgResponse && receiver == e.b.ownInit.Load() {
			m.deliverHandshake(e.b, r.take(i, data, ep)) // hsgate.go
			continue
		}
		pb := r.take(i, data, ep)
		pb.at = now
		m.deliver(e.b, pb)
	}
}
