package routing

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

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

// Close closes the probe socket; Run returns once its context ends.
func (p *Prober) Close() { p.conn.Close() }

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
