package bfd

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/vgate-project/vgate/api"
)

// Port is the single-hop BFD control port (RFC 5881 4).
const Port = 3784

// Source ports are taken from 49152–65535 (RFC 5881 4).
const (
	srcPortMin = 49152
	srcPortMax = 65535
)

// ttl is the TTL (hop limit) sent and required on receipt: a packet from
// further than one hop away arrives with less (RFC 5881 5, GTSM).
const ttl = 255

// redial bounds how often a session's socket is tried again after it
// could not be opened (the tunnel address not yet in place).
const redial = time.Second

// Target is one peering's BFD session: the neighbour's tunnel address,
// the tunnel's interface packets must arrive on, and the timing.
type Target struct {
	Address   netip.Addr
	Interface string
	Timing
}

// PeerEvent is a session of a peering changing state.
type PeerEvent struct {
	Peering string
	Event
	// EverUp: the session has been Up at least once. A session that was
	// never up (BFD not configured on the router) holds nothing.
	EverUp bool
}

// Drop reasons for received packets, counted (Dropped).
const (
	DropTTL = iota
	DropInterface
	DropUnknownSource
	DropMalformed
	DropDiscriminator
	nDrops
)

// DropNames names the drop reasons for metrics.
var DropNames = [nDrops]string{"ttl", "interface", "unknown_source", "malformed", "discriminator"}

type peer struct {
	name      string
	t         Target
	s         *Session
	conn      *net.UDPConn // bound to (tunnel address, a source port), connected to the peer
	dialAt    time.Time
	ifindex   int
	ifChecked time.Time
	rx, tx    uint64
}

// Runner runs the BFD sessions of one gateway: one listener on the tunnel
// address, port 3784, and one socket per session to send from.
type Runner struct {
	local   netip.Addr
	log     *slog.Logger
	conn    *net.UDPConn
	p4      *ipv4.PacketConn
	p6      *ipv6.PacketConn
	events  chan PeerEvent
	onEvent func(PeerEvent)
	wake    chan struct{}

	mu     sync.Mutex
	peers  map[string]*peer
	byDisc map[uint32]*peer
	closed bool
	buf    []byte

	dropped [nDrops]atomic.Uint64
	done    chan struct{}
}

// New opens the listener on local (the tunnel address), port 3784, and
// reads each packet's TTL and ingress interface. onEvent is called, in
// order and never concurrently, on a goroutine of its own.
func New(local netip.Addr, log *slog.Logger, onEvent func(PeerEvent)) (*Runner, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, Port)))
	if err != nil {
		return nil, err
	}
	r := &Runner{local: local, log: log, conn: c, events: make(chan PeerEvent, 1024), onEvent: onEvent,
		wake: make(chan struct{}, 1), peers: map[string]*peer{}, byDisc: map[uint32]*peer{}, done: make(chan struct{})}
	if local.Is4() {
		r.p4 = ipv4.NewPacketConn(c)
		err = r.p4.SetControlMessage(ipv4.FlagTTL|ipv4.FlagInterface, true)
	} else {
		r.p6 = ipv6.NewPacketConn(c)
		err = r.p6.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface, true)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return r, nil
}

// SetTargets makes the sessions match targets: new ones start Down,
// removed ones are taken administratively down and closed, and a changed
// timing is announced to the peer without a reset (poll sequence). A
// changed address or interface starts the session afresh.
func (r *Runner) SetTargets(targets map[string]Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for name, p := range r.peers {
		t, ok := targets[name]
		if ok && t.Address == p.t.Address && t.Interface == p.t.Interface {
			continue
		}
		r.sendAdminDown(p, now)
		r.drop(p)
	}
	for name, t := range targets {
		if p := r.peers[name]; p != nil {
			if p.t.Timing != t.Timing {
				p.t = t
				p.s.SetTiming(t.Timing, now)
			}
			continue
		}
		var disc uint32
		for disc == 0 || r.byDisc[disc] != nil {
			disc = rand.Uint32()
		}
		p := &peer{name: name, t: t, s: NewSession(disc, t.Timing, now, rand.Uint64())}
		r.peers[name] = p
		r.byDisc[disc] = p
	}
	r.kick()
}

func (r *Runner) drop(p *peer) {
	if p.conn != nil {
		p.conn.Close()
	}
	delete(r.peers, p.name)
	delete(r.byDisc, p.s.local)
}

func (r *Runner) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run sends, times and receives until ctx ends or Close.
func (r *Runner) Run(ctx context.Context) {
	defer close(r.done)
	go r.dispatch(ctx)
	go r.read()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		now := time.Now()
		next := now.Add(time.Hour)
		for _, p := range r.peers {
			if ev := p.s.Timer(now); ev != nil {
				r.emit(p, ev)
			}
			r.send(p, now)
			if n := p.s.Next(); n.Before(next) {
				next = n
			}
			if p.conn == nil && p.dialAt.Before(next) {
				next = p.dialAt
			}
		}
		r.mu.Unlock()
		t.Reset(max(time.Until(next), 0))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
	}
}

// dispatch delivers the events in order, outside the runner's lock.
func (r *Runner) dispatch(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.done:
			return
		case ev := <-r.events:
			if r.onEvent != nil {
				r.onEvent(ev)
			}
		}
	}
}

// emit queues ev. r.mu is held.
func (r *Runner) emit(p *peer, ev *Event) {
	r.log.Info("bfd: session "+ev.State.String(), "peering", p.name, "diagnostic", ev.Diag.String(), "peer_admin_down", ev.RemoteAdminDown)
	select {
	case r.events <- PeerEvent{Peering: p.name, Event: *ev, EverUp: p.s.everUp}:
	default:
		r.log.Error("bfd: event queue full; event lost", "peering", p.name)
	}
}

// send transmits what p's session has due. r.mu is held.
func (r *Runner) send(p *peer, now time.Time) {
	for {
		pkt, ok := p.s.Transmit(now)
		if !ok {
			return
		}
		if p.conn == nil && !r.dial(p, now) {
			continue
		}
		r.buf = pkt.Append(r.buf[:0])
		if _, err := p.conn.Write(r.buf); err == nil {
			p.tx++
		}
	}
}

// dial opens p's socket: bound to the tunnel address and a random port
// from 49152–65535, connected to the peer's port 3784, TTL 255.
func (r *Runner) dial(p *peer, now time.Time) bool {
	if now.Before(p.dialAt) {
		return false
	}
	p.dialAt = now.Add(redial)
	raddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.t.Address, Port))
	var err error
	for range 32 {
		port := srcPortMin + rand.IntN(srcPortMax-srcPortMin+1)
		var c *net.UDPConn
		c, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.local, uint16(port))), raddr)
		if errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		if err != nil {
			break
		}
		if r.local.Is4() {
			err = ipv4.NewConn(c).SetTTL(ttl)
		} else {
			err = ipv6.NewConn(c).SetHopLimit(ttl)
		}
		if err != nil {
			c.Close()
			break
		}
		p.conn = c
		return true
	}
	r.log.Warn("bfd: cannot open the session's socket", "peering", p.name, "error", err)
	return false
}

// read receives control packets until the listener closes.
func (r *Runner) read() {
	buf := make([]byte, 1500)
	for {
		var (
			n, ttlIn, ifIn int
			src            net.Addr
			err            error
		)
		if r.p4 != nil {
			var cm *ipv4.ControlMessage
			n, cm, src, err = r.p4.ReadFrom(buf)
			if cm != nil {
				ttlIn, ifIn = cm.TTL, cm.IfIndex
			}
		} else {
			var cm *ipv6.ControlMessage
			n, cm, src, err = r.p6.ReadFrom(buf)
			if cm != nil {
				ttlIn, ifIn = cm.HopLimit, cm.IfIndex
			}
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ua, _ := src.(*net.UDPAddr)
		if ua == nil {
			continue
		}
		r.receive(buf[:n], ua.AddrPort().Addr().Unmap(), ttlIn, ifIn, time.Now())
	}
}

// receive checks and processes one packet: TTL 255, a session's peer as
// source, the session's tunnel as ingress interface.
func (r *Runner) receive(b []byte, src netip.Addr, ttlIn, ifIn int, now time.Time) {
	if ttlIn != ttl {
		r.dropped[DropTTL].Add(1)
		return
	}
	pkt, err := Parse(b)
	if err != nil {
		r.dropped[DropMalformed].Add(1)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var p *peer
	if pkt.YourDisc != 0 {
		p = r.byDisc[pkt.YourDisc]
		if p == nil {
			r.dropped[DropDiscriminator].Add(1)
			return
		}
	} else {
		for _, q := range r.peers {
			if q.t.Address.Unmap() == src {
				p = q
				break
			}
		}
	}
	if p == nil || p.t.Address.Unmap() != src {
		r.dropped[DropUnknownSource].Add(1)
		return
	}
	if !r.onInterface(p, ifIn, now) {
		r.dropped[DropInterface].Add(1)
		return
	}
	ev, ok := p.s.Receive(pkt, now)
	if !ok {
		r.dropped[DropDiscriminator].Add(1)
		return
	}
	p.rx++
	if ev != nil {
		r.emit(p, ev)
	}
	r.send(p, now)
	r.kick()
}

// onInterface reports whether ifIn is p's tunnel interface; the index is
// looked up again (at most once a second) on a mismatch, since the tunnel
// may have been made anew.
func (r *Runner) onInterface(p *peer, ifIn int, now time.Time) bool {
	if p.t.Interface == "" {
		return true
	}
	if p.ifindex != 0 && p.ifindex == ifIn {
		return true
	}
	if !p.ifChecked.IsZero() && now.Sub(p.ifChecked) < time.Second {
		return false // a lookup per second at most, whatever arrives
	}
	p.ifChecked = now
	p.ifindex = 0
	if ifi, err := net.InterfaceByName(p.t.Interface); err == nil {
		p.ifindex = ifi.Index
	}
	return p.ifindex != 0 && p.ifindex == ifIn
}

// sendAdminDown tells p's peer the session goes administratively down
// (diagnostic 7), so it does not take the stop for a failure. r.mu is held.
func (r *Runner) sendAdminDown(p *peer, now time.Time) {
	if st, _ := p.s.State(); st == Down && !p.s.everUp {
		return
	}
	p.s.SetAdminDown(now)
	// Sent twice: a single lost packet would leave the peer to time out.
	for range 2 {
		p.s.nextTx = now
		r.send(p, now)
	}
}

// Close ends the sessions: with adminDown, each peer is told first that
// the session goes administratively down (a planned stop).
func (r *Runner) Close(adminDown bool) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	now := time.Now()
	for _, p := range r.peers {
		if adminDown {
			r.sendAdminDown(p, now)
		}
		r.drop(p)
	}
	r.mu.Unlock()
	r.conn.Close()
	r.kick()
}

// Status reports the sessions in the control API's terms, sorted by
// peering; never nil.
func (r *Runner) Status() []api.BFDStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]api.BFDStatus, 0, len(r.peers))
	for _, p := range r.peers {
		s := p.s.Snapshot()
		out = append(out, api.BFDStatus{Peering: p.name, Address: p.t.Address, Interface: p.t.Interface,
			State: s.State.String(), RemoteState: s.RemoteState.String(), LocalDiag: s.LocalDiag.String(), RemoteDiag: s.RemoteDiag.String(),
			Interval: p.t.Interval, Multiplier: p.t.Multiplier, TxInterval: s.TxInterval, Detect: s.Detect,
			RemoteMultiplier: s.RemoteMultiplier, RemoteMinRx: s.RemoteMinRx, RemoteDesiredTx: s.RemoteDesiredTx,
			EverUp: s.EverUp, UpSince: s.UpSince, LastDown: s.LastDown, Downs: s.Downs,
			PeerAdminDown: s.RemoteAdminDown, Received: p.rx, Sent: p.tx})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peering < out[j].Peering })
	return out
}

// Dropped reports the received packets dropped, by reason: each of
// DropNames with its count.
func (r *Runner) Dropped() map[string]uint64 {
	out := make(map[string]uint64, nDrops)
	for i, n := range DropNames {
		out[n] = r.dropped[i].Load()
	}
	return out
}
