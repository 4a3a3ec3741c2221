package routing

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/vgate-project/vgate/api"
)

// The tunnel probe lives beside the speaker because it drives it: a dead
// tunnel holds its BGP session down (Speaker.SetDown with HoldProbe), which
// withdraws the routes through it, and the gateway re-plans at once
// without that peering's routes (gateway/bgp.go).
//
// It is BFD-like: an ICMP echo to each BGP peer's tunnel address every
// Interval, through its tunnel; Multiplier intervals without a reply mark
// the tunnel dead, decided at that deadline (not on a polling tick); the
// first reply marks it alive again. Each target has exactly one request in
// flight per interval, so the probe traffic is bounded: at most
// 1/MinProbeInterval packets a second per tunnel each way (the config's
// bounds, gateway/config). Sending and receiving allocate nothing per
// packet: one buffer each, a socket address per target, the raw socket
// read and written through syscall closures made once.
//
// Requests carry a vgate mark and both tunnel addresses in their data, so
// a prober also learns, from the requests it receives, which peers run
// vgate (ProbeStatus.Vgate; the gateway makes vgate-to-vgate sessions
// deterministic with it).
//
// Demand: a tunnel is echoed every Interval only while a fast verdict
// matters, so that an idle gateway spends next to nothing on probing
// (docs/routing.md): while user traffic goes into it (ProbeTarget.Demand, counted in the TUN
// seam, gateway/dataplane/demand.go), while it is dead or not yet known,
// and for a while after it came alive. Otherwise it is idle: one request
// a second (IdleInterval), and Multiplier of those without a reply declare
// it dead. Traffic that starts on an idle tunnel is seen within
// demandCheck and makes the next request go at once, so a tunnel that
// died while idle is declared dead about Detect after traffic starts,
// plus at most demandCheck: the failover time of a tunnel in use stays
// the configured one.
//
// Each request also says whether its sender hears the receiver (its
// verdict on that tunnel): a request that says "I no longer hear you"
// after one that said it did (the peer restarted, or lost this end's
// replies) marks the tunnel dead at once on this end too, so both ends
// withdraw together. Only echo requests and replies cross the tunnel:
// what host firewalls allow.

// ProbeTarget is one peering to probe and its timing.
type ProbeTarget struct {
	Address    netip.Addr
	Interval   time.Duration
	Multiplier int
	// LocalASN and PeerASN are this gateway's AS and the one configured
	// for the peer; requests carry both, so that two vgate gateways see a
	// mismatch on both sides (GoBGP reports a bad peer AS only on some
	// connections).
	LocalASN, PeerASN uint32
	// Demand counts the tunnel's TUN reads with user traffic (only
	// whether it moves matters). nil: always probed every Interval.
	Demand *atomic.Uint64
	// Interface is the tunnel's interface: the peer's requests and its
	// replies count only when they arrive through it, from the peer's
	// tunnel address. Anyone else who can send to the tunnel address (a
	// host on the underlay link or the local network) could otherwise
	// declare the tunnel dead, or keep a dead one alive.
	Interface string
	// PeerWire and LocalWire are the peer's and this gateway's tunnel
	// addresses as they cross the tunnel, when NAT rules of the peering
	// translate them (zero: Address and the prober's source). Requests
	// carry them in their payload, which NAT does not translate: this end
	// writes them so, and maps them back in the peer's requests and in
	// the replies (which echo this end's).
	PeerWire, LocalWire netip.Addr
}

// Detect is how long without a reply declares the tunnel dead.
func (t ProbeTarget) Detect() time.Duration { return t.Interval * time.Duration(t.Multiplier) }

// ProbeStatus is one probed peering, the control API's type: Vgate says
// probes from this peer's tunnel address have been received (the peer
// runs vgate); PeerASN and PeerExpects are what the peer's last probe
// said, its own AS and the AS it expects of this gateway (0: not known).
type ProbeStatus = api.ProbeStatus

// ProbeEvent is a target turning alive or dead, or learned to run vgate.
type ProbeEvent struct {
	Peering string
	Alive   bool
	Why     string // why it is dead
	// Vgate: the event is only that the peer was learned to run vgate.
	Vgate bool
	// Never: dead, and it has never answered since probing began (a
	// gateway starting, or a peering just added).
	Never bool
	// Plain: the event is only that the peer was learned not to run
	// vgate: it has answered for plainAfter, or never answered for
	// silentPlainAfter, without sending a probe of its own
	// (routing.Passive: this end dials then).
	Plain bool
	// Drain: the event is only that the peer started (Draining) or
	// stopped draining, as its requests say.
	Drain, Draining bool
}

type probeTarget struct {
	name string
	ProbeTarget
	// ifindex is Interface's index, looked up when the target is set and
	// again (at most once per ifRecheck) when a packet from the peer
	// arrives on another one: the tunnel's interface may have been made
	// anew.
	ifindex   int32
	ifChecked time.Time
	sa        unix.Sockaddr // made once: sending allocates nothing
	since     time.Time     // when probing began
	nextSend  time.Time
	lastReply time.Time
	rtt       time.Duration
	// unanswered counts the requests sent since the last reply: a
	// tunnel is dead only when Multiplier-1 of them went unanswered as
	// well as Detect passed, so a stall of this process (no requests sent)
	// never reads as a dead tunnel.
	unanswered int
	// demandSeen is Demand's count at the last step, lastDemand when it
	// last moved; fast is whether the last step probed every Interval.
	demandSeen uint64
	lastDemand time.Time
	fast       bool
	// peerHears is what the peer's last request said: it hears this end.
	// peerLost is set when a request says it no longer does (after one
	// that said it did); it holds the tunnel dead until new evidence.
	peerHears bool
	peerLost  bool
	// aliveSince is when t last came alive; damp is the flap dampening
	// level (detection time × 2^damp).
	aliveSince time.Time
	damp       int
	flapped    bool // it went dead within flapWindow of coming alive
	alive      bool
	known      bool // alive has been decided at least once
	vgate      bool
	plain      bool   // no request of its own: see plainAfter
	peerASN    uint32 // what the peer's requests say (peerSays)
	peerExpect uint32
	// peerDraining and peerAvoids are what the peer's last request said
	// (probeDraining, probeAvoids); avoid is what this end's requests say.
	peerDraining bool
	peerAvoids   bool
	avoid        bool
}

// Probe packet: an ICMP echo (8 bytes of header) whose data is the mark,
// the send time, both tunnel addresses, the sender's AS, the AS it
// expects of the receiver and flags (probeHears: the sender hears the
// receiver).
const (
	probeMark    = "vgP2"
	probeHdr     = 8
	probeDataLen = 4 + 8 + 16 + 16 + 4 + 4 + 4 // mark, unix nanoseconds, from, to, AS, expected AS, flags
	probeLen     = probeHdr + probeDataLen

	probeHears = 1 << 0
	// probeDraining: the sender drains (vgate drain) and asks the
	// receiver to move its traffic to another path where it has one.
	probeDraining = 1 << 1
	// probeAvoids: the receiver said it drains and the sender's routes
	// no longer go through it.
	probeAvoids = 1 << 2
)

// ifRecheck bounds how often a target's interface index is looked up
// again for a packet that arrived on another interface.
const ifRecheck = time.Second

// plainAfter is how long a tunnel answers without a single request from
// the peer before the peer is taken not to run vgate. A vgate peer probes
// every tunnel at least once a second (fast for 2 s after it comes
// alive), so this is dozens of requests lost in a row. silentPlainAfter
// is how long a tunnel that has never answered, nor sent a request, takes
// to make the same verdict (a router that drops pings, or a vgate peer
// down since before this gateway started: its first request makes it
// vgate again).
const (
	plainAfter       = 5 * time.Second
	silentPlainAfter = 30 * time.Second
)

// IdleInterval is the request interval of an idle tunnel (see Demand
// above); a configured Interval longer than it is kept.
const IdleInterval = time.Second

// demandCheck is how often an idle tunnel's demand counter is read;
// demandHold how long after its last user traffic, or after it came
// alive, a tunnel stays fast (at least; twice its detection time if that
// is longer, so that a verdict due is never postponed by going idle).
const (
	demandCheck = 100 * time.Millisecond
	demandHold  = 2 * time.Second
)

// Flap dampening: a tunnel that goes dead less than flapWindow after it
// came alive gets 2^maxDamp times the configured detection time (at once:
// one step per flap still reset every session of a starved host several
// times over); flapCalm alive in one go restores it. A host too busy
// to answer within the detection time otherwise flaps every tunnel over
// and over, and each flap re-plans and resets BGP sessions, which makes
// it busier still (docs/routing.md).
// A steady tunnel keeps the configured timing.
const (
	flapWindow = 10 * time.Second
	flapCalm   = 30 * time.Second
	maxDamp    = 3
)

// interval is the request interval now: Interval while fast, else
// IdleInterval (or Interval if that is longer).
func (t *probeTarget) interval() time.Duration {
	if t.fast {
		return t.Interval
	}
	return max(t.Interval, IdleInterval)
}

// detect is the detection time now: interval × Multiplier, lengthened
// while flapping.
func (t *probeTarget) detect() time.Duration {
	return t.interval() * time.Duration(t.Multiplier) << t.damp
}

// wantFast says whether t needs the fast timing at now (see Demand in
// the package comment), noting new demand first.
func (t *probeTarget) wantFast(now time.Time) bool {
	if t.Demand == nil {
		return true
	}
	if c := t.Demand.Load(); c != t.demandSeen {
		t.demandSeen, t.lastDemand = c, now
	}
	hold := max(demandHold, 2*t.Detect()<<t.damp)
	return !t.alive || t.peerLost || now.Sub(t.lastDemand) < hold || now.Sub(t.aliveSince) < hold
}

// multiplier is Multiplier, scaled as detect is.
func (t *probeTarget) multiplier() int { return t.Multiplier << t.damp }

// goDead marks t dead at now and notes a flap if it came alive within
// flapWindow. The longer detection applies from the next time it comes
// alive: lengthening it now would move the deadline just passed and
// bring the tunnel back without a reply.
func (t *probeTarget) goDead(now time.Time) {
	t.flapped = t.alive && now.Sub(t.aliveSince) < flapWindow
	t.alive, t.known = false, true
}

// goAlive marks t alive at now, lengthening its detection if it flapped.
func (t *probeTarget) goAlive(now time.Time) {
	if t.flapped {
		t.damp = maxDamp
	}
	t.flapped = false
	t.alive, t.known = true, true
	t.aliveSince = now
}

// Prober sends echo requests from the gateway's tunnel address and watches
// the replies. OnEvent is called (from the prober's goroutine, never with
// its lock held) when a target turns alive or dead or is learned to run
// vgate.
type Prober struct {
	log     *slog.Logger
	src     netip.Addr
	id      uint16
	conn    *net.IPConn
	raw     syscall.RawConn
	onEvent func(ProbeEvent)
	wake    chan struct{}

	mu      sync.Mutex
	targets map[netip.Addr]*probeTarget
	seq     uint16
	sent    uint64 // requests sent (tests count them)
	// draining is what every request says (probeDraining).
	draining bool

	// The run loop's own (never shared) send state and event buffer.
	sendBuf  [probeLen]byte
	sendSA   unix.Sockaddr
	sendFn   func(fd uintptr) bool
	events   []ProbeEvent
	timer    *time.Timer
	recvBuf  [1500]byte
	recvN    int
	recvIn   probeIn
	recvErr  error
	recvMsg  recvMsg
	recvFn   func(fd uintptr) bool
	isV6     bool
	srcBytes [16]byte
	// The run loop's own non-blocking read: replies queued in the socket
	// are taken before any tunnel is declared dead.
	drainBuf [1500]byte
	drainMsg recvMsg
	drainFn  func(fd uintptr)
	// ifIndex looks up an interface's index (0: none); a seam for tests.
	ifIndex func(name string) int32
}

// NewProber opens the probe socket on src (a raw ICMP socket: the
// gateway needs CAP_NET_RAW, which deploy/vgate.service grants).
func NewProber(src netip.Addr, log *slog.Logger, onEvent func(ProbeEvent)) (*Prober, error) {
	network := "ip4:icmp"
	if src.Is6() {
		network = "ip6:ipv6-icmp"
	}
	c, err := net.ListenIP(network, &net.IPAddr{IP: src.AsSlice()})
	if err != nil {
		return nil, err
	}
	raw, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	p := &Prober{log: log, src: src, id: uint16(rand.Uint32()), conn: c, raw: raw, onEvent: onEvent,
		wake: make(chan struct{}, 1), targets: map[netip.Addr]*probeTarget{}, isV6: src.Is6(), srcBytes: src.As16(),
		ifIndex: interfaceIndex}
	if err := p.filter(); err != nil {
		c.Close()
		return nil, fmt.Errorf("probe socket filter: %w", err)
	}
	if err := p.pktinfo(); err != nil {
		c.Close()
		return nil, fmt.Errorf("probe socket: receiving the arrival interface: %w", err)
	}
	p.sendFn = func(fd uintptr) bool {
		// Errors (no route yet, tunnel without handshake) are what the
		// probe detects: no reply.
		err := unix.Sendto(int(fd), p.sendBuf[:], unix.MSG_DONTWAIT, p.sendSA)
		return !errors.Is(err, unix.EAGAIN)
	}
	p.drainFn = func(fd uintptr) {
		for {
			n, in, errno := p.drainMsg.recv(fd, p.drainBuf[:])
			if errno != 0 {
				return
			}
			p.handle(p.drainBuf[:n], in, time.Now())
		}
	}
	p.recvFn = func(fd uintptr) bool {
		n, in, errno := p.recvMsg.recv(fd, p.recvBuf[:])
		if errno == unix.EAGAIN || errno == unix.EINTR {
			return false
		}
		p.recvN, p.recvIn, p.recvErr = n, in, nil
		if errno != 0 {
			p.recvErr = errno
		}
		return true
	}
	return p, nil
}

// filter lets only echo requests and replies reach the socket (a raw ICMP
// socket otherwise gets every ICMP packet the host receives).
func (p *Prober) filter() error {
	if p.isV6 {
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeEchoRequest)
		f.Accept(ipv6.ICMPTypeEchoReply)
		return ipv6.NewPacketConn(p.conn).SetICMPFilter(&f)
	}
	var serr error
	err := p.raw.Control(func(fd uintptr) {
		// ICMP_FILTER (linux/icmp.h): a bit set blocks that type.
		serr = unix.SetsockoptInt(int(fd), unix.SOL_RAW, 1, ^(1<<0 | 1<<8))
	})
	return errors.Join(err, serr)
}

// pktinfo makes the socket say which interface each packet arrived on.
func (p *Prober) pktinfo() error {
	var serr error
	err := p.raw.Control(func(fd uintptr) {
		if p.isV6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
	})
	return errors.Join(err, serr)
}

// interfaceIndex is the index of the interface called name, 0 when there
// is none.
func interfaceIndex(name string) int32 {
	if name == "" {
		return 0
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0
	}
	return int32(ifi.Index)
}

// probeIn is where a received packet came from: its source address and
// the interface it arrived on.
type probeIn struct {
	src     netip.Addr
	ifindex int32
}

// recvMsg is one reader's recvmsg(2) state, made once: receiving
// allocates nothing.
type recvMsg struct {
	name unix.RawSockaddrInet6 // large enough for either family
	oob  [128]byte
	iov  unix.Iovec
	hdr  unix.Msghdr
}

// recv reads one packet into buf without waiting and says where it came
// from.
func (m *recvMsg) recv(fd uintptr, buf []byte) (int, probeIn, syscall.Errno) {
	m.iov.Base = &buf[0]
	m.iov.SetLen(len(buf))
	m.hdr.Name = (*byte)(unsafe.Pointer(&m.name))
	m.hdr.Namelen = uint32(unsafe.Sizeof(m.name))
	m.hdr.Iov = &m.iov
	m.hdr.SetIovlen(1)
	m.hdr.Control = &m.oob[0]
	m.hdr.SetControllen(len(m.oob))
	m.hdr.Flags = 0
	n, _, errno := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&m.hdr)), unix.MSG_DONTWAIT)
	if errno != 0 {
		return 0, probeIn{}, errno
	}
	var in probeIn
	switch m.name.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&m.name))
		in.src = netip.AddrFrom4(sa.Addr)
	case unix.AF_INET6:
		in.src = netip.AddrFrom16(m.name.Addr).Unmap()
	}
	oob := m.oob[:m.hdr.Controllen]
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			break
		}
		data := oob[unix.SizeofCmsghdr:l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			in.ifindex = (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0])).Ifindex
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			in.ifindex = int32((*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0])).Ifindex)
		}
		sp := unix.CmsgSpace(l - unix.SizeofCmsghdr)
		if sp > len(oob) {
			break
		}
		oob = oob[sp:]
	}
	return int(n), in, 0
}

// arrivedVia reports whether a packet that arrived on interface ifindex
// came through t's tunnel. Called with p.mu held.
func (p *Prober) arrivedVia(t *probeTarget, ifindex int32, now time.Time) bool {
	if ifindex != 0 && ifindex == t.ifindex {
		return true
	}
	if now.Sub(t.ifChecked) < ifRecheck || p.ifIndex == nil {
		return false
	}
	t.ifindex, t.ifChecked = p.ifIndex(t.Interface), now
	return ifindex != 0 && ifindex == t.ifindex
}

// SetTargets replaces the probed peerings (name -> target), keeping the
// state of those that stay.
func (p *Prober) SetTargets(want map[string]ProbeTarget) {
	p.mu.Lock()
	next := map[netip.Addr]*probeTarget{}
	now := time.Now()
	for name, w := range want {
		a := w.Address.Unmap()
		if a.Is4() != p.src.Is4() || w.Interval <= 0 || w.Multiplier <= 0 {
			continue
		}
		var ifindex int32
		if p.ifIndex != nil {
			ifindex = p.ifIndex(w.Interface)
		}
		if t, ok := p.targets[a]; ok && t.name == name {
			t.ProbeTarget = w
			t.ifindex, t.ifChecked = ifindex, now
			next[a] = t
			continue
		}
		var sa unix.Sockaddr
		if a.Is4() {
			sa = &unix.SockaddrInet4{Addr: a.As4()}
		} else {
			sa = &unix.SockaddrInet6{Addr: a.As16()}
		}
		next[a] = &probeTarget{name: name, ProbeTarget: w, ifindex: ifindex, ifChecked: now, sa: sa, since: now, nextSend: now}
	}
	p.targets = next
	p.mu.Unlock()
	p.poke()
}

// SetDraining makes every request say that this gateway drains (or no
// longer does); the next ones go at once, so that peers learn it within a
// round trip rather than an idle interval.
func (p *Prober) SetDraining(on bool) {
	p.mu.Lock()
	changed := p.draining != on
	if changed {
		p.draining = on
		p.sendNowLocked(func(*probeTarget) bool { return true })
	}
	p.mu.Unlock()
	if changed {
		p.poke()
	}
}

// SetAvoiding makes the requests to the peerings in avoid say that this
// gateway's routes no longer go through them (they drain); to the others,
// that they may. Changed targets get a request at once.
func (p *Prober) SetAvoiding(avoid map[string]bool) {
	p.mu.Lock()
	changed := false
	p.sendNowLocked(func(t *probeTarget) bool {
		if t.avoid == avoid[t.name] {
			return false
		}
		t.avoid, changed = avoid[t.name], true
		return true
	})
	p.mu.Unlock()
	if changed {
		p.poke()
	}
}

// sendNowLocked moves the next request of the targets f picks to now.
// p.mu is held.
func (p *Prober) sendNowLocked(f func(*probeTarget) bool) {
	now := time.Now()
	for _, t := range p.targets {
		if f(t) && t.nextSend.After(now) {
			t.nextSend = now
		}
	}
}

func (p *Prober) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Close closes the probe socket; Run returns once its context ends.
func (p *Prober) Close() { p.conn.Close() }

// Run probes until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	go p.receive()
	p.timer = time.NewTimer(time.Hour)
	defer p.timer.Stop()
	for {
		// Replies the receiving goroutine has not taken yet (this
		// process was not scheduled) count before any verdict.
		_ = p.raw.Control(p.drainFn)
		next := p.step(time.Now())
		for _, ev := range p.events {
			p.report(ev)
		}
		p.timer.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-p.timer.C:
		case <-p.wake:
		}
	}
}

// idleWait is how long the loop sleeps with no target.
const idleWait = time.Second

// step sends the requests that are due, decides the targets whose
// deadline passed or that answered, fills p.events with the transitions,
// and returns how long until the next thing is due.
func (p *Prober) step(now time.Time) time.Duration {
	p.events = p.events[:0]
	p.mu.Lock()
	defer p.mu.Unlock()
	next := now.Add(idleWait)
	for _, t := range p.targets {
		if fast := t.wantFast(now); fast != t.fast {
			t.fast = fast
			if fast && t.nextSend.After(now) {
				t.nextSend = now // demand: the next request goes now
			}
		}
		if !t.fast && now.Add(demandCheck).Before(next) {
			next = now.Add(demandCheck)
		}
		send := !now.Before(t.nextSend)
		ref := t.lastReply
		if ref.IsZero() {
			ref = t.since
		}
		if t.alive && t.damp > 0 && now.Sub(t.aliveSince) >= flapCalm {
			t.damp = 0 // calm again: back to the configured timing
		}
		deadline := ref.Add(t.detect())
		switch {
		case t.peerLost:
			if !t.known || t.alive {
				t.goDead(now)
				p.events = append(p.events, ProbeEvent{Peering: t.name,
					Why: fmt.Sprintf("tunnel probe: the peer at %s no longer hears this gateway", t.Address)})
			}
		case !t.lastReply.IsZero() && now.Before(deadline):
			if !t.known || !t.alive {
				t.goAlive(now)
				p.events = append(p.events, ProbeEvent{Peering: t.name, Alive: true})
			}
			if deadline.Before(next) {
				next = deadline
			}
		case !now.Before(deadline) && t.unanswered < t.multiplier()-1:
			// Due, but too few requests went out since the last reply
			// (this process stalled): wait for the next ones.
		case !now.Before(deadline):
			if !t.known || t.alive {
				how := ""
				if !t.fast {
					how = ", idle: no user traffic"
				}
				if t.damp > 0 {
					how += fmt.Sprintf(", lengthened from %v after the tunnel flapped", t.interval()*time.Duration(t.Multiplier))
				}
				t.goDead(now)
				p.events = append(p.events, ProbeEvent{Peering: t.name, Never: t.lastReply.IsZero(),
					Why: fmt.Sprintf("tunnel probe: no reply from %s for %v (%v × %d%s)", t.Address, deadline.Sub(ref), t.interval(), t.Multiplier, how)})
			}
		default: // not yet answered, not yet due
			if deadline.Before(next) {
				next = deadline
			}
		}
		if !t.vgate && !t.plain {
			// Plain: answering for plainAfter, or never answering for
			// silentPlainAfter (a router that drops pings: its session
			// must not wait for a dial that only a vgate peer would make),
			// without a request of its own.
			at := t.since.Add(silentPlainAfter)
			if t.alive {
				at = t.aliveSince.Add(plainAfter)
			}
			if (t.alive || t.lastReply.IsZero()) && !now.Before(at) {
				t.plain = true
				p.events = append(p.events, ProbeEvent{Peering: t.name, Plain: true})
			} else if at.Before(next) && (t.alive || t.lastReply.IsZero()) {
				next = at
			}
		}
		if send {
			p.seq++
			p.sendTo(t, now)
			t.unanswered++
			t.nextSend = t.nextSend.Add(t.interval())
			if t.nextSend.Before(now) { // fell behind (a stall): no burst
				t.nextSend = now.Add(t.interval())
			}
		}
		if t.nextSend.Before(next) {
			next = t.nextSend
		}
	}
	return max(next.Sub(now), 0)
}

// sendTo writes one echo request to t. p.mu is held (by the run loop).
func (p *Prober) sendTo(t *probeTarget, now time.Time) {
	var flags uint32
	if t.alive {
		flags |= probeHears
	}
	if p.draining {
		flags |= probeDraining
	}
	if t.avoid {
		flags |= probeAvoids
	}
	from, to := p.srcBytes, t.Address.As16()
	if t.LocalWire.IsValid() { // NAT: the payload names what crosses the tunnel
		from = t.LocalWire.As16()
	}
	if t.PeerWire.IsValid() {
		to = t.PeerWire.As16()
	}
	putProbeFlags(p.sendBuf[:], p.isV6, p.id, p.seq, now, from, to, t.LocalASN, t.PeerASN, flags)
	p.sent++
	p.sendSA = t.sa
	if p.raw != nil { // nil: a test's prober without a socket
		_ = p.raw.Write(p.sendFn)
	}
}

// putProbe writes an echo request into b (probeLen bytes). The ICMPv6
// checksum is the kernel's; the ICMPv4 one is computed here.
func putProbe(b []byte, v6 bool, id, seq uint16, now time.Time, from, to [16]byte, asn, expects uint32, hears bool) {
	var flags uint32
	if hears {
		flags = probeHears
	}
	putProbeFlags(b, v6, id, seq, now, from, to, asn, expects, flags)
}

// putProbeFlags is putProbe with every flag.
func putProbeFlags(b []byte, v6 bool, id, seq uint16, now time.Time, from, to [16]byte, asn, expects, flags uint32) {
	b[0], b[1] = 8, 0 // echo request
	if v6 {
		b[0] = 128
	}
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[8:12], probeMark)
	binary.BigEndian.PutUint64(b[12:], uint64(now.UnixNano()))
	copy(b[20:36], from[:])
	copy(b[36:52], to[:])
	binary.BigEndian.PutUint32(b[52:], asn)
	binary.BigEndian.PutUint32(b[56:], expects)
	binary.BigEndian.PutUint32(b[60:], flags)
	if !v6 {
		binary.BigEndian.PutUint16(b[2:], icmpChecksum(b[:probeLen]))
	}
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// probeMsg is a parsed probe packet.
type probeMsg struct {
	reply    bool
	id       uint16
	sent     int64 // unix nanoseconds
	from, to netip.Addr
	asn      uint32 // the sender's AS
	expects  uint32 // the AS the sender expects of the receiver
	hears    bool   // the sender hears the receiver
	draining bool   // the sender drains
	avoids   bool   // the sender's routes avoid the receiver
}

// parseProbe reads a vgate probe from what a raw ICMP socket returns (for
// IPv4 the packet with its IP header, for IPv6 the ICMPv6 message). ok is
// false for anything else.
func parseProbe(b []byte, v6 bool) (m probeMsg, ok bool) {
	if !v6 {
		if len(b) < 20 || b[0]>>4 != 4 {
			return m, false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return m, false
		}
		b = b[ihl:]
	}
	if len(b) < probeLen || string(b[8:12]) != probeMark {
		return m, false
	}
	switch {
	case !v6 && b[0] == 0, v6 && b[0] == 129:
		m.reply = true
	case !v6 && b[0] == 8, v6 && b[0] == 128:
	default:
		return m, false
	}
	m.id = binary.BigEndian.Uint16(b[4:])
	m.sent = int64(binary.BigEndian.Uint64(b[12:]))
	m.from = netip.AddrFrom16([16]byte(b[20:36])).Unmap()
	m.to = netip.AddrFrom16([16]byte(b[36:52])).Unmap()
	m.asn = binary.BigEndian.Uint32(b[52:])
	m.expects = binary.BigEndian.Uint32(b[56:])
	flags := binary.BigEndian.Uint32(b[60:])
	m.hears = flags&probeHears != 0
	m.draining = flags&probeDraining != 0
	m.avoids = flags&probeAvoids != 0
	return m, true
}

func (p *Prober) receive() {
	for {
		if err := p.raw.Read(p.recvFn); err != nil || p.recvErr != nil {
			return // closed
		}
		p.handle(p.recvBuf[:p.recvN], p.recvIn, time.Now())
	}
}

// handle takes one received packet, which came from in: a reply to our
// probe marks its target answered; a request from a peer's tunnel address
// marks that peer as running vgate, and one that says the peer stopped
// hearing this end (after it said it did) marks the tunnel lost. A request
// is no evidence that this end's packets arrive: the peer's verdict may be
// an idle tunnel's, seconds old. Either counts only from the peer's tunnel
// address (the packet's source as well as what it says) and through its
// tunnel's interface.
func (p *Prober) handle(b []byte, in probeIn, now time.Time) {
	m, ok := parseProbe(b, p.isV6)
	if !ok {
		return
	}
	p.unwire(&m, in.src)
	peer := m.from
	if m.reply {
		peer = m.to
	}
	if in.src != peer {
		return
	}
	wake := false
	var ev, drain ProbeEvent
	p.mu.Lock()
	if t := p.targets[peer]; t == nil || !p.arrivedVia(t, in.ifindex, now) {
		p.mu.Unlock()
		return
	}
	if m.reply {
		if t := p.targets[m.to]; t != nil && m.id == p.id && m.from == p.src {
			t.lastReply = now
			t.unanswered = 0
			t.peerLost = false
			t.rtt = now.Sub(time.Unix(0, m.sent))
			wake = !t.alive
		}
	} else if t := p.targets[m.from]; t != nil && m.to == p.src {
		t.peerASN, t.peerExpect = m.asn, m.expects
		if !t.vgate {
			t.vgate, t.plain = true, false
			ev = ProbeEvent{Peering: t.name, Vgate: true}
		}
		switch {
		case m.hears:
			t.peerLost = false
		case t.peerHears && t.alive:
			t.peerLost = true
			wake = true
		}
		t.peerHears = m.hears
		t.peerAvoids = m.avoids
		if t.peerDraining != m.draining {
			t.peerDraining = m.draining
			drain = ProbeEvent{Peering: t.name, Drain: true, Draining: m.draining}
		}
	}
	p.mu.Unlock()
	if ev.Vgate {
		p.report(ev)
	}
	if drain.Drain {
		p.report(drain)
	}
	if wake {
		p.poke()
	}
}

// unwire maps a probe's payload addresses, written as they cross the
// tunnel (by the peer in its request, by this end in the request a reply
// echoes), to this side's view when src's target has wire addresses.
func (p *Prober) unwire(m *probeMsg, src netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.targets[src]
	if t == nil {
		return
	}
	peer, local := &m.from, &m.to
	if m.reply {
		peer, local = &m.to, &m.from
	}
	if t.PeerWire.IsValid() && *peer == t.PeerWire {
		*peer = src
	}
	if t.LocalWire.IsValid() && *local == t.LocalWire {
		*local = p.src
	}
}

func (p *Prober) report(ev ProbeEvent) {
	switch {
	case ev.Vgate:
		p.log.Debug("tunnel probe: the peer runs vgate", "peering", ev.Peering)
	case ev.Drain:
		p.log.Info("tunnel probe: the peer says it drains", "peering", ev.Peering, "draining", ev.Draining)
	case ev.Plain:
		p.log.Info("tunnel probe: the peer answers but sends no probes: not vgate, this end dials", "peering", ev.Peering)
	case ev.Alive:
		p.log.Info("tunnel alive", "peering", ev.Peering)
	default:
		// Info: the gateway's "tunnel down" line (warn, reason probe_dead)
		// is the one to act on.
		p.log.Info("tunnel dead", "peering", ev.Peering, "reason", ev.Why)
	}
	if p.onEvent != nil {
		p.onEvent(ev)
	}
}

// Status reports every probed peering, sorted by address.
func (p *Prober) Status() []ProbeStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []ProbeStatus{}
	for _, t := range p.targets {
		out = append(out, ProbeStatus{Peering: t.name, Address: t.Address, Alive: t.alive, LastReply: t.lastReply, RTT: t.rtt,
			Interval: t.Interval, Multiplier: t.Multiplier, Idle: t.known && !t.fast, Vgate: t.vgate, Plain: t.plain, PeerASN: t.peerASN, PeerExpects: t.peerExpect,
			Draining: t.peerDraining, Avoids: t.peerAvoids, Avoiding: t.avoid})
	}
	slices.SortFunc(out, func(a, b ProbeStatus) int { return a.Address.Compare(b.Address) })
	return out
}

// Vgate reports the peerings learned to run vgate.
func (p *Prober) Vgate() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]bool{}
	for _, t := range p.targets {
		if t.vgate {
			out[t.name] = true
		}
	}
	return out
}
