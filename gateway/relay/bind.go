package relay

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/vgate-project/vgate/gateway/keys"
)

// Path names, as status and metrics show them.
const (
	PathDirect = "direct"
	PathRelay  = "relay"
)

const (
	// relayAfter: once UDP has carried something from the peer, an
	// initiation goes over the relay too only after this many went
	// unanswered over UDP (before that, every one goes both ways).
	relayAfter = 2
	// resendEvery, connectPoll and resendFor: an initiation for the relay
	// is sent once the relay connection is up (looked at every
	// connectPoll) and again every resendEvery until something comes back
	// from the peer, for at most resendFor (wireguard-go's RekeyTimeout,
	// after which it makes a new one). The relay drops datagrams for a
	// peer not connected yet, so when both ends start at once the first
	// copies are lost; the responder drops later copies as replays.
	resendEvery = 250 * time.Millisecond
	connectPoll = 50 * time.Millisecond
	resendFor   = 5 * time.Second
	// probeEvery: while on the relay, the device initiates a handshake
	// over UDP this often (wireguard-go sends at most one per 5 s), so that
	// the direct path is used again within 10 s of UDP working.
	probeEvery = time.Second
	// inboxLen and inboxBytes bound the datagrams from the relay waiting
	// for the device, in count and in buffer bytes (as many pooled buffers
	// fit: larger datagrams, which WireGuard does not send, fill it sooner).
	inboxLen   = 1024
	inboxBytes = inboxLen * poolBuf
	// udpFresh: while datagrams from the peer arrived over UDP this
	// recently, those still coming over the relay (sent before the peer
	// moved back) are handed to the device with the UDP endpoint, so they
	// do not move its endpoint back to the relay.
	udpFresh = 2 * time.Second
)

// WireGuard message types and the sizes of handshake messages.
const (
	wgInitiation     = 1
	wgInitiationSize = 148
	wgResponse       = 2
	wgResponseSize   = 92
)

// Endpoint is the conn.Endpoint of datagrams that came over a relay: a
// device whose peer's endpoint is one sends over that relay (to peer, on a
// device of many peers).
type Endpoint struct {
	s    string
	peer keys.PublicKey
}

func newEndpoint(url string, peer keys.PublicKey) *Endpoint {
	return &Endpoint{s: "relay:" + url, peer: peer}
}

func (e *Endpoint) ClearSrc()           {}
func (e *Endpoint) SrcToString() string { return "" }
func (e *Endpoint) DstToString() string { return e.s }
func (e *Endpoint) DstToBytes() []byte  { return []byte(e.s) }
func (e *Endpoint) DstIP() netip.Addr   { return netip.IPv6Unspecified() }
func (e *Endpoint) SrcIP() netip.Addr   { return netip.Addr{} }

// IsRelayEndpoint reports whether s (a device's endpoint as UAPI prints
// it) is a relay's.
func IsRelayEndpoint(s string) bool { return len(s) > 6 && s[:6] == "relay:" }

// Bind is one tunnel device's transport: a conn.Bind over the device's
// UDP bind (inner) that can also carry its datagrams over a relay. Without
// a relay (SetRelay with nil) it only counts what passes.
//
// The path follows the device's endpoint, which wireguard-go moves to the
// source of the last authenticated packet: datagrams for the relay's
// Endpoint go over the relay, others over UDP. What moves it (route):
//   - over UDP, a handshake initiation goes over the relay too while UDP
//     has carried nothing from the peer yet (a start: whichever path
//     answers first carries the tunnel) and after relayAfter unanswered
//     ones; the peer's answer over the relay moves the endpoint there;
//   - on the relay, every initiation is also sent over UDP, and every
//     probeEvery the device initiates one over UDP only; an answer over UDP
//     moves the endpoint back.
type Bind struct {
	inner conn.Bind
	learn func([]byte) // registers relay-sent handshake indices with the shared port

	path    atomic.Pointer[relayPath]
	cur     atomic.Pointer[inbox]
	lastUDP atomic.Pointer[epBox]
	probe   atomic.Pointer[func()]
	door    FrontDoor // SetFrontDoor, before SetRelay

	pending  atomic.Pointer[pendingInit] // the initiation the relay carries until answered
	lastInit atomic.Pointer[pendingInit] // the last initiation sent over UDP (SetRelay relays it)

	lastUDPRx  atomic.Int64 // unix ns of the last datagram received over UDP
	lastInitAt atomic.Int64 // unix ns of the last initiation sent over UDP
	unanswered atomic.Int32 // initiations over UDP since a datagram came back
	viaRelay   atomic.Bool  // the last datagram went over the relay
	probing    atomic.Bool

	mu        sync.Mutex // serializes SetRelay
	stopProbe chan struct{}

	// lazy: Open adds the relay's ReceiveFunc only while a relay is set
	// (NewLazyBind). wireguard-go gives every ReceiveFunc its own batch
	// of 64 KiB buffers, so a tunnel without a relay saves them; setting
	// one later needs a rebind (NeedsRebind).
	lazy      bool
	open      atomic.Bool // between Open and Close
	relayOpen atomic.Bool // the open session has the relay's ReceiveFunc

	txRelay, rxRelay, droppedInbox atomic.Uint64
}

type epBox struct{ ep conn.Endpoint }

// pendingInit is a handshake initiation sent over the relay (p) to dst
// until something comes back from the peer (resend).
type pendingInit struct {
	p    *relayPath
	dst  keys.PublicKey
	msg  []byte
	at   time.Time
	sent atomic.Bool // the relay connection took a copy
}

// FrontDoor makes a device on the shared UDP port (gateway/wgbind) treat
// the handshake messages that the relay carries as those over UDP.
type FrontDoor struct {
	// Receive takes a handshake initiation or response that came over the
	// relay from ep, instead of the relay's ReceiveFunc: the shared
	// port's checks (MAC1, the peer's key and timestamp, the handshake
	// gate) then apply to it. msg is valid only during the call.
	Receive func(msg []byte, ep conn.Endpoint)
	// Hold may hold back an initiation about to go over the relay (a
	// crossing, gateway/wgbind): it then calls send later, or never, and
	// reports true.
	Hold func(msg []byte, send func([]byte)) bool
}

// relayed is a datagram from the relay (a pooled buffer) and the endpoint
// it came from.
type relayed struct {
	d  *[]byte
	ep *Endpoint
}

type relayPath struct {
	c          *Client
	peer       keys.PublicKey // zero: a device of many peers (multi)
	ep         *Endpoint
	unregister func()
	eps        sync.Map // multi: keys.PublicKey → *Endpoint
}

// endpoint is the Endpoint datagrams from src arrive with.
func (p *relayPath) endpoint(src keys.PublicKey) *Endpoint {
	if !p.peer.IsZero() {
		return p.ep
	}
	if e, ok := p.eps.Load(src); ok {
		return e.(*Endpoint)
	}
	e, _ := p.eps.LoadOrStore(src, newEndpoint(p.c.URL(), src))
	return e.(*Endpoint)
}

type inbox struct {
	q      chan relayed
	bytes  budget
	done   chan struct{}
	closed atomic.Bool
}

var _ conn.Bind = (*Bind)(nil)

// NewBind wraps inner. learn, if not nil, is called with every handshake
// message sent over the relay only.
func NewBind(inner conn.Bind, learn func([]byte)) *Bind {
	return &Bind{inner: inner, learn: learn}
}

// NewLazyBind is NewBind for a device that gets a relay rarely: its Open
// adds the relay's ReceiveFunc only while a relay is set, so the owner
// must rebind the device (wireguard-go's BindUpdate) when NeedsRebind
// says so after SetRelay.
func NewLazyBind(inner conn.Bind, learn func([]byte)) *Bind {
	return &Bind{inner: inner, learn: learn, lazy: true}
}

// NeedsRebind reports that a relay is set but the open session cannot
// receive from it (a lazy bind opened without a relay).
func (b *Bind) NeedsRebind() bool {
	return b.lazy && b.open.Load() && !b.relayOpen.Load() && b.path.Load() != nil
}

// SetFrontDoor sets the checks of a device on the shared UDP port; call it
// before SetRelay.
func (b *Bind) SetFrontDoor(fd FrontDoor) { b.door = fd }

// SetRelay makes c (nil: none) the device's relay, carrying datagrams to and
// from peer. A zero peer is a device of many peers (point-to-site): it
// takes the datagrams of every peer nobody else registered on c, answers
// each over the relay while its endpoint is the relay, and leaves falling
// back and probing to the peers (which dial it). It may be called at any
// time; the same value is a no-op.
func (b *Bind) SetRelay(c *Client, peer keys.PublicKey) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.path.Load()
	if old != nil && old.c == c && old.peer == peer {
		return
	}
	if old != nil {
		old.unregister()
		close(b.stopProbe)
		b.stopProbe = nil
	}
	if c == nil {
		b.path.Store(nil)
		return
	}
	p := &relayPath{c: c, peer: peer, ep: newEndpoint(c.URL(), peer)}
	if peer.IsZero() {
		c.SetFallback(func(src keys.PublicKey, d []byte) { b.deliver(p.endpoint(src), d) })
		p.unregister = func() { c.SetFallback(nil) }
	} else {
		p.unregister = c.Register(peer, func(d []byte) { b.deliver(p.ep, d) })
	}
	b.path.Store(p)
	b.stopProbe = make(chan struct{})
	if !peer.IsZero() {
		go b.probeLoop(b.stopProbe)
		// The device's first initiation may have gone out before the relay
		// was set (over UDP only): unanswered, the relay carries it too.
		if li := b.lastInit.Load(); li != nil && time.Since(li.at) < resendFor && b.lastUDPRx.Load() < li.at.UnixNano() {
			b.relayInit(p, peer, li.msg)
		}
	}
}

// SetProbe sets what makes the device initiate a handshake now (a
// dataplane.Tunnel's SendInitiation).
func (b *Bind) SetProbe(fn func()) { b.probe.Store(&fn) }

// Path is where the device's datagrams go now: PathRelay or PathDirect.
func (b *Bind) Path() string {
	if b.viaRelay.Load() && b.path.Load() != nil {
		return PathRelay
	}
	return PathDirect
}

// Relay is the device's relay client, or nil.
func (b *Bind) Relay() *Client {
	if p := b.path.Load(); p != nil {
		return p.c
	}
	return nil
}

// BindStats counts the relay traffic of one device.
type BindStats struct {
	TxRelay, RxRelay, DroppedInbox uint64
}

// Stats reads the counters.
func (b *Bind) Stats() BindStats {
	return BindStats{TxRelay: b.txRelay.Load(), RxRelay: b.rxRelay.Load(), DroppedInbox: b.droppedInbox.Load()}
}

func (b *Bind) probeLoop(stop chan struct{}) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		fn := b.probe.Load()
		if fn == nil || !b.viaRelay.Load() || b.lastUDP.Load() == nil {
			continue
		}
		// The initiation is sent synchronously from within fn.
		b.probing.Store(true)
		(*fn)()
		b.probing.Store(false)
	}
}

// Open opens inner and adds a ReceiveFunc for the relay's datagrams.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.inner.Open(port)
	if err != nil {
		return nil, 0, err
	}
	out := make([]conn.ReceiveFunc, 0, len(fns)+1)
	for _, fn := range fns {
		out = append(out, b.udpReceive(fn))
	}
	b.open.Store(true)
	if b.lazy && b.path.Load() == nil {
		b.relayOpen.Store(false)
		return out, actual, nil
	}
	in := &inbox{q: make(chan relayed, inboxLen), bytes: budget{limit: inboxBytes}, done: make(chan struct{})}
	b.cur.Store(in)
	b.relayOpen.Store(true)
	return append(out, b.relayReceive(in)), actual, nil
}

// Close closes inner and ends the relay ReceiveFunc.
func (b *Bind) Close() error {
	b.open.Store(false)
	b.relayOpen.Store(false)
	if in := b.cur.Swap(nil); in != nil && !in.closed.Swap(true) {
		close(in.done)
	}
	return b.inner.Close()
}

func (b *Bind) SetMark(mark uint32) error                     { return b.inner.SetMark(mark) }
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) { return b.inner.ParseEndpoint(s) }
func (b *Bind) BatchSize() int                                { return b.inner.BatchSize() }

// udpReceive notes that datagrams come over UDP (one clock read per
// batch). The inner bind also returns the relay's handshake messages that
// passed its front door (SetFrontDoor): those are not UDP's.
func (b *Bind) udpReceive(fn conn.ReceiveFunc) conn.ReceiveFunc {
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, err := fn(bufs, sizes, eps)
		if n > 0 {
			var udp conn.Endpoint
			for _, ep := range eps[:n] {
				if _, relayed := ep.(*Endpoint); !relayed && ep != nil {
					udp = ep
					break
				}
			}
			b.answered(udp != nil)
			if udp != nil {
				b.lastUDPRx.Store(time.Now().UnixNano())
				if b.lastUDP.Load() == nil {
					b.lastUDP.Store(&epBox{udp})
				}
			}
		}
		return n, err
	}
}

// answered ends the resending of the pending initiation: something came
// back from the peer, over UDP (which works: the relay is not needed) or
// over the relay after the initiation went out (before, it may be the
// peer's traffic of an older session).
func (b *Bind) answered(udp bool) {
	if pi := b.pending.Load(); pi != nil && (udp || pi.sent.Load()) {
		b.pending.CompareAndSwap(pi, nil)
	}
}

// srcEndpoint is the endpoint a datagram from the relay's ep is handed to
// the device with (udpFresh).
func (b *Bind) srcEndpoint(ep *Endpoint) conn.Endpoint {
	if box := b.lastUDP.Load(); box != nil && !ep.peer.IsZero() {
		if p := b.path.Load(); p != nil && !p.peer.IsZero() && time.Now().UnixNano()-b.lastUDPRx.Load() < int64(udpFresh) {
			return box.ep
		}
	}
	return ep
}

// deliver queues a datagram from the relay for the device, never waiting;
// handshake messages go through the front door, if one is set.
func (b *Bind) deliver(ep *Endpoint, d []byte) {
	b.answered(false)
	if b.door.Receive != nil && isHandshake(d) {
		b.rxRelay.Add(1)
		b.door.Receive(d, b.srcEndpoint(ep))
		return
	}
	in := b.cur.Load()
	if in == nil || in.closed.Load() {
		return
	}
	buf := getBuf(len(d))
	*buf = append(*buf, d...)
	if in.bytes.take(cap(*buf)) {
		select {
		case in.q <- relayed{buf, ep}:
			b.rxRelay.Add(1)
			return
		default:
			in.bytes.give(cap(*buf))
		}
	}
	putBuf(buf)
	b.droppedInbox.Add(1)
}

func (b *Bind) relayReceive(in *inbox) conn.ReceiveFunc {
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		var r relayed
		select {
		case r = <-in.q:
		case <-in.done:
			return 0, net.ErrClosed
		}
		n := 0
		var udp conn.Endpoint // once per batch: a device of one peer
		if src := b.srcEndpoint(r.ep); src != conn.Endpoint(r.ep) {
			udp = src
		}
		for r.d != nil {
			if len(*r.d) <= len(bufs[n]) {
				sizes[n] = copy(bufs[n], *r.d)
				eps[n] = r.ep
				if udp != nil {
					eps[n] = udp
				}
				n++
			}
			in.bytes.give(cap(*r.d))
			putBuf(r.d)
			r = relayed{}
			if n < len(bufs) {
				select {
				case r = <-in.q:
				default:
				}
			}
		}
		return n, nil
	}
}

// route decides where one outgoing datagram goes. toRelay: the device
// sends it to the relay's Endpoint; init: it is a handshake initiation;
// unanswered: initiations over UDP without an answer, this one included;
// fresh: nothing came over UDP yet; probing: the device initiates for a
// UDP probe.
func route(toRelay, init, probing bool, unanswered int32, fresh, haveRelay, haveUDP bool) (udp, relay bool) {
	switch {
	case toRelay && !haveRelay: // the relay was removed: UDP if we know where
		return haveUDP, false
	case toRelay && init && probing:
		return haveUDP, !haveUDP
	case toRelay && init:
		return haveUDP, true
	case toRelay:
		return false, true
	case init:
		return true, haveRelay && (fresh || unanswered > relayAfter)
	}
	return true, false
}

var errNoPath = errors.New("relay endpoint without a relay")

// Send sends bufs on the path route decides for each.
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	p := b.path.Load()
	rep, toRelay := ep.(*Endpoint)
	if !toRelay {
		if cur := b.lastUDP.Load(); cur == nil || cur.ep != ep {
			b.lastUDP.Store(&epBox{ep})
		}
	}
	if b.viaRelay.Load() != toRelay {
		b.viaRelay.Store(toRelay)
	}
	if !toRelay && p == nil { // the common case: no relay (yet)
		for _, buf := range bufs {
			if isInitiation(buf) {
				b.noteUDPInitiation() // counts once a relay is set
				b.lastInit.Store(&pendingInit{msg: slices.Clone(buf), at: time.Now()})
			}
		}
		return b.inner.Send(bufs, ep)
	}
	var udpEP conn.Endpoint
	multi := p != nil && p.peer.IsZero()
	if box := b.lastUDP.Load(); box != nil && !multi { // multi: whose UDP endpoint is unknown
		udpEP = box.ep
	}
	dst := keys.PublicKey{}
	if p != nil {
		dst = p.peer
		if toRelay && !rep.peer.IsZero() {
			dst = rep.peer
		}
	}
	var udpBufs [][]byte
	var err error
	udpOnly := 0 // datagrams only UDP carries: its error is theirs
	fresh := b.lastUDPRx.Load() == 0
	for _, buf := range bufs {
		init := isInitiation(buf)
		var n int32
		if init && !toRelay {
			n = b.noteUDPInitiation()
		}
		udp, relay := route(toRelay, init, b.probing.Load(), n, fresh, p != nil && (toRelay || !multi), udpEP != nil)
		if udp && !toRelay {
			udpEP = ep
		}
		relayed := false
		switch {
		case relay && init:
			// Registered before any answer can come back.
			if !udp && b.learn != nil {
				b.learn(buf)
			}
			to := dst // captured by value: dst stays on the stack
			send := func(msg []byte) { b.relayInit(p, to, msg) }
			if b.door.Hold == nil || !b.door.Hold(buf, send) {
				send(buf)
			}
			relayed = true
		case relay:
			if !udp && b.learn != nil {
				b.learn(buf)
			}
			if e := p.c.Send(dst, buf); e != nil {
				if err == nil {
					err = e
				}
			} else {
				relayed = true
			}
			b.txRelay.Add(1)
		}
		if udp {
			udpBufs = append(udpBufs, buf)
			if !relayed {
				udpOnly++
			}
		}
	}
	if len(udpBufs) > 0 {
		if udpEP == nil {
			return errNoPath
		}
		// A copy that the relay carried too is not lost when UDP fails
		// (blocked: EPERM from a firewall).
		if e := b.inner.Send(udpBufs, udpEP); e != nil && udpOnly > 0 {
			err = e
		}
	}
	if toRelay && p == nil && udpEP == nil {
		return errNoPath
	}
	return err
}

// relayInit sends the initiation msg to dst over p's relay now, if it is
// connected, and again every resendEvery (resend).
func (b *Bind) relayInit(p *relayPath, dst keys.PublicKey, msg []byte) {
	pi := &pendingInit{p: p, dst: dst, msg: slices.Clone(msg), at: time.Now()}
	b.pending.Store(pi)
	b.resend(pi)
}

// resend sends pi while it is pending: until something comes back from
// the peer (answered), the device makes another, the relay changes or
// resendFor passes.
func (b *Bind) resend(pi *pendingInit) {
	if b.pending.Load() != pi || b.path.Load() != pi.p || time.Since(pi.at) > resendFor {
		b.pending.CompareAndSwap(pi, nil)
		return
	}
	next := connectPoll
	if pi.p.c.Connected() && pi.p.c.Send(pi.dst, pi.msg) == nil {
		b.txRelay.Add(1)
		pi.sent.Store(true)
		next = resendEvery
	}
	time.AfterFunc(next, func() { b.resend(pi) })
}

// isInitiation reports whether d is a WireGuard handshake initiation.
func isInitiation(d []byte) bool {
	return len(d) == wgInitiationSize && binary.LittleEndian.Uint32(d[0:4]) == wgInitiation
}

// isHandshake reports whether d is a handshake initiation or response.
func isHandshake(d []byte) bool {
	return isInitiation(d) || len(d) == wgResponseSize && binary.LittleEndian.Uint32(d[0:4]) == wgResponse
}

// noteUDPInitiation counts an initiation sent over UDP: how many have gone
// unanswered, this one included.
func (b *Bind) noteUDPInitiation() int32 {
	now := time.Now().UnixNano()
	if b.lastUDPRx.Load() > b.lastInitAt.Load() {
		b.unanswered.Store(0) // something came back since the last one
	}
	b.lastInitAt.Store(now)
	return b.unanswered.Add(1)
}
