package routing

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/dataplane"
)

// v4Packet is icmp in an IPv4 header (version, length and total length
// set, as a raw socket returns it).
func v4Packet(icmp []byte) []byte {
	ip := make([]byte, 20, 20+len(icmp))
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(icmp)))
	return append(ip, icmp...)
}

func TestProbePacketRoundTrip(t *testing.T) {
	from, to := netip.MustParseAddr("10.1.255.254"), netip.MustParseAddr("10.2.255.254")
	now := time.Unix(1700000000, 123456789)
	for _, v6 := range []bool{false, true} {
		var b [probeLen]byte
		f, tt := from, to
		if v6 {
			f, tt = netip.MustParseAddr("fd00:1::1"), netip.MustParseAddr("fd00:2::1")
		}
		putProbe(b[:], v6, 0x1234, 7, now, f.As16(), tt.As16(), 65001, 65002, v6)
		pkt := b[:]
		if !v6 {
			if icmpChecksum(pkt) != 0 {
				t.Errorf("ICMPv4 checksum does not verify")
			}
			pkt = v4Packet(pkt)
		}
		m, ok := parseProbe(pkt, v6)
		if !ok || m.reply || m.id != 0x1234 || m.sent != now.UnixNano() || m.from != f || m.to != tt || m.asn != 65001 || m.expects != 65002 || m.hears != v6 {
			t.Errorf("v6=%v: parsed %+v, %v", v6, m, ok)
		}
		// The peer's kernel answers with type 0 (129): the data comes back.
		if v6 {
			b[0] = 129
		} else {
			b[0] = 0
			pkt = v4Packet(b[:])
		}
		if m, ok := parseProbe(pkt, v6); !ok || !m.reply || m.from != f {
			t.Errorf("v6=%v: reply parsed %+v, %v", v6, m, ok)
		}
	}
}

func TestProbeParseRejects(t *testing.T) {
	var b [probeLen]byte
	putProbe(b[:], false, 1, 1, time.Now(), netip.MustParseAddr("10.0.0.1").As16(), netip.MustParseAddr("10.0.0.2").As16(), 65001, 65002, false)
	good := v4Packet(b[:])
	bad := map[string][]byte{
		"empty":         nil,
		"short":         good[:30],
		"not ipv4":      append([]byte{0x65}, good[1:]...),
		"bad ihl":       append([]byte{0x41}, good[1:]...),
		"other mark":    func() []byte { c := append([]byte(nil), good...); c[28] = 'x'; return c }(),
		"other type":    func() []byte { c := append([]byte(nil), good...); c[20] = 3; return c }(),
		"v6 short":      b[:10],
		"v6 other type": func() []byte { c := append([]byte(nil), b[:]...); c[0] = 1; return c }(),
	}
	for name, pkt := range bad {
		v6 := name[:2] == "v6"
		if m, ok := parseProbe(pkt, v6); ok {
			t.Errorf("%s: parsed %+v", name, m)
		}
	}
}

// FuzzParseProbe: any bytes are either refused or parsed without panic,
// and what is parsed carries the mark.
func FuzzParseProbe(f *testing.F) {
	var b [probeLen]byte
	putProbe(b[:], false, 1, 1, time.Unix(1, 0), netip.MustParseAddr("10.0.0.1").As16(), netip.MustParseAddr("10.0.0.2").As16(), 65001, 65002, false)
	f.Add(v4Packet(b[:]), false)
	f.Add(b[:], true)
	f.Add([]byte{0x4f, 0, 0}, false)
	f.Fuzz(func(t *testing.T, pkt []byte, v6 bool) {
		if _, ok := parseProbe(pkt, v6); ok && len(pkt) < probeLen {
			t.Fatalf("parsed a %d-byte packet", len(pkt))
		}
	})
}

// newTarget is peering "west" at peer with the default timing, probed
// from t0 on.
func newTarget(peer netip.Addr, t0 time.Time) *probeTarget {
	return &probeTarget{name: "west", since: t0, nextSend: t0, ifindex: testIfindex,
		ProbeTarget: ProbeTarget{Address: peer, Interval: 50 * time.Millisecond, Multiplier: 8}}
}

// testIfindex is the index of the tunnel interface "vg-west" in tests
// without sockets.
const testIfindex = 7

// fromTunnel is where a packet from peer's tunnel address arrives when it
// came through its tunnel.
func fromTunnel(peer netip.Addr) probeIn { return probeIn{src: peer, ifindex: testIfindex} }

// testProber is a Prober without a socket, for the receive path.
func testProber(src netip.Addr, onEvent func(ProbeEvent)) *Prober {
	return &Prober{log: slog.New(slog.DiscardHandler), src: src, id: 42, onEvent: onEvent, wake: make(chan struct{}, 1),
		targets: map[netip.Addr]*probeTarget{}, srcBytes: src.As16(),
		ifIndex: func(name string) int32 {
			if name == "vg-west" {
				return testIfindex
			}
			return 0
		}}
}

func TestProbeHandle(t *testing.T) {
	src, peer := netip.MustParseAddr("10.1.255.254"), netip.MustParseAddr("10.2.255.254")
	var events []ProbeEvent
	p := testProber(src, func(ev ProbeEvent) { events = append(events, ev) })
	p.targets[peer] = &probeTarget{name: "west", ifindex: testIfindex, ProbeTarget: ProbeTarget{Address: peer, Interval: 50 * time.Millisecond, Multiplier: 8}}
	now := time.Now()
	var b [probeLen]byte

	// A reply to another prober's id, or to another source, is not ours.
	putProbe(b[:], false, 43, 1, now, src.As16(), peer.As16(), 65001, 65002, false)
	b[0] = 0
	p.handle(v4Packet(b[:]), fromTunnel(peer), now)
	if !p.targets[peer].lastReply.IsZero() {
		t.Fatal("a reply with another id was taken")
	}
	putProbe(b[:], false, 42, 1, now.Add(-3*time.Millisecond), src.As16(), peer.As16(), 65001, 65002, false)
	b[0] = 0
	p.handle(v4Packet(b[:]), fromTunnel(peer), now)
	if tg := p.targets[peer]; tg.lastReply != now || tg.rtt != 3*time.Millisecond {
		t.Fatalf("reply not recorded: %+v", tg)
	}
	// A request from the peer says it runs vgate, once.
	putProbe(b[:], false, 7, 1, now, peer.As16(), src.As16(), 65001, 65002, false)
	p.handle(v4Packet(b[:]), fromTunnel(peer), now)
	p.handle(v4Packet(b[:]), fromTunnel(peer), now)
	if len(events) != 1 || !events[0].Vgate || events[0].Peering != "west" || !p.Vgate()["west"] {
		t.Fatalf("events = %+v", events)
	}
	// What the peer says of the ASes is kept (the last request's).
	if st := p.Status(); len(st) != 1 || st[0].PeerASN != 65001 || st[0].PeerExpects != 65002 {
		t.Fatalf("status = %+v", st)
	}
}

// TestProbeNoAllocs: building, parsing and taking a probe packet allocate
// nothing (the probe runs all the time; idle allocation is measured).
func TestProbeNoAllocs(t *testing.T) {
	src, peer := netip.MustParseAddr("10.1.255.254"), netip.MustParseAddr("10.2.255.254")
	p := testProber(src, nil)
	p.targets[peer] = &probeTarget{name: "west", alive: true, ifindex: testIfindex, ProbeTarget: ProbeTarget{Address: peer, Interval: 50 * time.Millisecond, Multiplier: 8}}
	in := fromTunnel(peer)
	pkt := make([]byte, 20+probeLen)
	pkt[0] = 0x45
	now := time.Now()
	allocs := testing.AllocsPerRun(1000, func() {
		putProbe(pkt[20:], false, 42, 9, now, src.As16(), peer.As16(), 65001, 65002, false)
		pkt[20] = 0
		p.handle(pkt, in, now)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per probe packet", allocs)
	}
}

// TestProberLoopback runs the real socket (root): the gateway probes its
// own loopback address, which answers, and learns it "runs vgate" from
// its own requests. Then a step far past the deadline (no reply can have
// come from the future) declares it dead; the steady state sends and
// decides without allocating.
func TestProberLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP (loudly): the probe's raw ICMP socket needs root")
	}
	for _, a := range []string{"127.0.0.1", "::1"} {
		t.Run(a, func(t *testing.T) { proberLoopback(t, netip.MustParseAddr(a)) })
	}
}

func proberLoopback(t *testing.T, lo netip.Addr) {
	var mu sync.Mutex
	var events []ProbeEvent
	p, err := NewProber(lo, slog.New(slog.DiscardHandler), func(ev ProbeEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.SetTargets(map[string]ProbeTarget{"self": {Address: lo, Interval: 10 * time.Millisecond, Multiplier: 3, Interface: "lo"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := p.Status()
		if len(st) == 1 && st[0].Alive && st[0].Vgate {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not alive within 5s: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	// The loop is stopped: step is driven by hand.
	allocs := testing.AllocsPerRun(100, func() { _ = p.raw.Control(p.drainFn); p.step(time.Now()) })
	if allocs != 0 {
		t.Errorf("%v allocations per probe step", allocs)
	}
	p.mu.Lock()
	p.targets[lo].unanswered = 100 // as if nothing came back for long
	p.mu.Unlock()
	p.step(time.Now().Add(time.Hour))
	if len(p.events) != 1 || p.events[0].Alive || p.events[0].Peering != "self" {
		t.Errorf("a step past the deadline: %+v", p.events)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) < 2 || !events[0].Alive && !events[0].Vgate {
		t.Errorf("events = %+v", events)
	}
}

// TestProbeStallIsNotDeath: when this process was not scheduled for
// longer than the detection time, no requests went out, so no verdict;
// a tunnel that really stopped answering is declared dead once
// Multiplier-1 requests sent after the stall went unanswered.
func TestProbeStallIsNotDeath(t *testing.T) {
	src, peer := netip.MustParseAddr("10.1.255.254"), netip.MustParseAddr("10.2.255.254")
	p := testProber(src, nil)
	t0 := time.Now()
	tg := &probeTarget{name: "west", ifindex: testIfindex, ProbeTarget: ProbeTarget{Address: peer, Interval: 50 * time.Millisecond, Multiplier: 8},
		since: t0.Add(-time.Second), lastReply: t0, nextSend: t0.Add(50 * time.Millisecond), alive: true, known: true, vgate: true}
	p.targets[peer] = tg
	now := t0.Add(10 * time.Second) // a 10 s stall
	for i := 0; i < 20; i++ {
		p.step(now)
		if len(p.events) > 0 {
			if p.events[0].Alive || i != 7 {
				t.Fatalf("step %d after the stall: %+v", i, p.events)
			}
			return
		}
		now = now.Add(50 * time.Millisecond)
	}
	t.Fatal("never declared dead")
}

// vgateRequest is a request from peer to src as a vgate peer sends it.
func vgateRequest(peer, src netip.Addr, now time.Time, hears bool) []byte {
	var b [probeLen]byte
	putProbe(b[:], false, 7, 1, now, peer.As16(), src.As16(), 65002, 65001, hears)
	return v4Packet(b[:])
}

// ourReply is the peer kernel's reply to p's request.
func ourReply(p *Prober, peer netip.Addr, sent time.Time) []byte {
	var b [probeLen]byte
	putProbe(b[:], false, p.id, 1, sent, p.srcBytes, peer.As16(), 65001, 65002, false)
	b[0] = 0
	return v4Packet(b[:])
}

// A tunnel nobody sends user traffic through is probed once a second
// (from demandHold after it came alive); user traffic (its demand counter
// moving) makes the next request go at once and brings back the
// configured timing, so a tunnel that died while idle is declared dead
// about Detect after traffic starts. Without traffic the idle detection
// applies: Multiplier seconds.
func TestProbeIdleRate(t *testing.T) {
	src, peer := netip.MustParseAddr("10.1.255.254"), netip.MustParseAddr("10.2.255.254")
	p := testProber(src, nil)
	var demand atomic.Uint64
	t0 := time.Now()
	tg := newTarget(peer, t0)
	tg.Demand = &demand
	p.targets[peer] = tg
	now := t0
	// sim runs the loop for d (as Run does: step, sleep what it says),
	// the peer's kernel answering each request 1 ms later if answer; it
	// returns the requests sent and the verdicts with their times.
	type verdict struct {
		at time.Time
		ev ProbeEvent
	}
	var plain []verdict // the peer sends no requests: learned plain once
	sim := func(d time.Duration, answer bool) (sent uint64, vs []verdict) {
		end, s0 := now.Add(d), p.sent
		for now.Before(end) {
			before := p.sent
			wait := p.step(now)
			for _, ev := range p.events {
				if ev.Plain {
					plain = append(plain, verdict{now, ev})
					continue
				}
				vs = append(vs, verdict{now, ev})
			}
			if answer && p.sent > before {
				now = now.Add(time.Millisecond)
				p.handle(ourReply(p, peer, now), fromTunnel(peer), now)
				continue
			}
			now = now.Add(max(wait, time.Millisecond))
		}
		return p.sent - s0, vs
	}
	if _, vs := sim(3*time.Second, true); len(vs) != 1 || !vs[0].ev.Alive {
		t.Fatalf("start: %+v", vs)
	}
	// Idle: one request a second, still alive, shown as idle.
	sent, vs := sim(12*time.Second, true)
	if sent < 11 || sent > 13 || len(vs) != 0 {
		t.Fatalf("idle for 12 s: %d requests, verdicts %+v; want 11..13, none", sent, vs)
	}
	if st := p.Status(); !st[0].Alive || !st[0].Idle || !st[0].Plain {
		t.Fatalf("status while idle: %+v", st)
	}
	if len(plain) != 1 || plain[0].at.Sub(tg.aliveSince) != plainAfter {
		t.Fatalf("learned plain: %+v (alive since %v), want once, %v after it came alive", plain, tg.aliveSince, plainAfter)
	}
	// Traffic starts as the tunnel dies, between two idle requests: dead
	// within demandCheck + Detect + one interval of the traffic, with
	// requests every interval.
	sim(400*time.Millisecond, true)
	demand.Add(1)
	start := now
	sent, vs = sim(time.Second, false)
	if len(vs) != 1 || vs[0].ev.Alive {
		t.Fatalf("traffic on a dead idle tunnel: verdicts %+v", vs)
	}
	if took := vs[0].at.Sub(start); took > demandCheck+tg.Detect()+tg.Interval {
		t.Errorf("dead %v after traffic started, want at most %v", took, demandCheck+tg.Detect()+tg.Interval)
	}
	if sent < 15 {
		t.Errorf("%d requests in the second after traffic started, want every 50ms", sent)
	}
	// Back (a long way after it came alive: no flap dampening), then
	// idle again, then it dies without traffic: dead Multiplier idle
	// intervals after the last reply.
	if _, vs = sim(12*time.Second, true); len(vs) != 1 || !vs[0].ev.Alive {
		t.Fatalf("back: %+v", vs)
	}
	last := tg.lastReply
	_, vs = sim(12*time.Second, false)
	if len(vs) != 1 || vs[0].ev.Alive {
		t.Fatalf("dead while idle: verdicts %+v", vs)
	}
	if took := vs[0].at.Sub(last); took < 8*time.Second || took > 8*time.Second+IdleInterval {
		t.Errorf("idle tunnel dead %v after its last reply, want 8s (IdleInterval × 8)", took)
	}
	if why := vs[0].ev.Why; !strings.Contains(why, "(1s × 8, idle: no user traffic)") {
		t.Errorf("verdict: %q", why)
	}
	if st := p.Status(); st[0].Idle {
		t.Errorf("a dead tunnel is shown idle: %+v", st)
	}
}

// A vgate peer that says it no longer hears this end (after it said it
// did) marks the tunnel dead here at once, not after the detection time;
// new evidence brings it back. Requests that never said "I hear you" (a
// peer starting) do not.
func TestProbePeerLost(t *testing.T) {
	src, peer := netip.MustParseAddr("10.2.255.254"), netip.MustParseAddr("10.1.255.254")
	p := testProber(src, nil)
	t0 := time.Now()
	tg := newTarget(peer, t0)
	p.targets[peer] = tg
	p.handle(vgateRequest(peer, src, t0, false), fromTunnel(peer), t0)
	p.handle(ourReply(p, peer, t0), fromTunnel(peer), t0)
	p.step(t0)
	p.handle(vgateRequest(peer, src, t0, false), fromTunnel(peer), t0) // still starting
	p.step(t0.Add(time.Millisecond))
	if !tg.alive {
		t.Fatal("a starting peer's request (not hearing us yet) killed the tunnel")
	}
	p.handle(vgateRequest(peer, src, t0, true), fromTunnel(peer), t0.Add(2*time.Millisecond))
	p.step(t0.Add(2 * time.Millisecond))
	p.handle(vgateRequest(peer, src, t0, false), fromTunnel(peer), t0.Add(3*time.Millisecond))
	p.step(t0.Add(3 * time.Millisecond))
	if tg.alive || len(p.events) != 1 || p.events[0].Alive || !strings.Contains(p.events[0].Why, "no longer hears") {
		t.Fatalf("peer lost: alive=%v events=%+v", tg.alive, p.events)
	}
	// Dead: requests every interval.
	sent := p.sent
	for i := 1; i <= 4; i++ {
		p.step(t0.Add(time.Duration(i) * 50 * time.Millisecond))
	}
	if p.sent-sent != 4 {
		t.Errorf("%d requests in 4 intervals while dead, want 4", p.sent-sent)
	}
	p.handle(vgateRequest(peer, src, t0, true), fromTunnel(peer), t0.Add(210*time.Millisecond))
	p.step(t0.Add(210 * time.Millisecond))
	if !tg.alive {
		t.Fatal("not alive again after the peer hears us again")
	}
}

// A tunnel that goes dead soon after it came alive gets 8× its detection
// time; a long calm restores the configured timing.
func TestProbeFlapDampening(t *testing.T) {
	src, peer := netip.MustParseAddr("10.1.255.254"), netip.MustParseAddr("10.2.255.254")
	p := testProber(src, nil)
	t0 := time.Now()
	tg := newTarget(peer, t0)
	p.targets[peer] = tg
	now := t0
	// deadAfter answers at now, then steps every interval without answers
	// until the tunnel is dead, and returns how long that took.
	deadAfter := func() time.Duration {
		t.Helper()
		p.handle(ourReply(p, peer, now), fromTunnel(peer), now)
		p.step(now)
		if !tg.alive {
			t.Fatal("not alive after a reply")
		}
		start := now
		for i := 0; i < 1000 && tg.alive; i++ {
			now = now.Add(tg.Interval)
			p.step(now)
		}
		took := now.Sub(start)
		if len(p.events) != 1 || strings.Contains(p.events[0].Why, "lengthened from 400ms") != (tg.damp > 0) {
			t.Fatalf("verdict with damp %d: %+v", tg.damp, p.events)
		}
		// Dead stays dead without a reply (a longer detection must not
		// move the deadline just passed and bring it back).
		for i := 0; i < 100; i++ {
			now = now.Add(tg.Interval)
			p.step(now)
			if tg.alive || len(p.events) > 0 {
				t.Fatalf("came back %v after going dead, with no reply: %+v", now.Sub(start)-took, p.events)
			}
		}
		return took
	}
	want := []time.Duration{400, 3200, 3200}
	for i, w := range want {
		if got := deadAfter(); got != w*time.Millisecond {
			t.Fatalf("flap %d: dead after %v, want %v", i, got, w*time.Millisecond)
		}
	}
	if tg.damp != maxDamp {
		t.Errorf("damp = %d after %d flaps, want %d", tg.damp, len(want), maxDamp)
	}
	// Calm: alive for flapCalm in one go restores the configured timing.
	p.handle(ourReply(p, peer, now), fromTunnel(peer), now)
	p.step(now)
	for end := now.Add(flapCalm); now.Before(end); {
		now = now.Add(tg.Interval)
		p.handle(ourReply(p, peer, now), fromTunnel(peer), now)
		p.step(now)
	}
	if got := deadAfter(); got != 400*time.Millisecond {
		t.Errorf("after %v calm: dead after %v, want 400ms", flapCalm, got)
	}
}

// The TUN seam tells probe packets from user traffic (the demand count,
// gateway/dataplane/demand.go): requests and replies as this package
// builds them are control traffic there.
func TestProbeIsControlTraffic(t *testing.T) {
	from, to := netip.MustParseAddr("10.1.255.254"), netip.MustParseAddr("10.2.255.254")
	var b [probeLen]byte
	putProbe(b[:], false, 1, 1, time.Now(), from.As16(), to.As16(), 1, 2, true)
	req := v4Packet(b[:])
	req[9] = 1 // ICMP
	if !dataplane.IsControl(req) {
		t.Error("a probe request counts as user traffic")
	}
	rep := slices.Clone(req)
	rep[20] = 0 // echo reply, as the peer's kernel returns it
	if !dataplane.IsControl(rep) {
		t.Error("a probe reply counts as user traffic")
	}
	putProbe(b[:], true, 1, 1, time.Now(), from.As16(), to.As16(), 1, 2, true)
	v6 := append(make([]byte, 40), b[:]...)
	v6[0], v6[6] = 0x60, 58
	binary.BigEndian.PutUint16(v6[4:], probeLen)
	if !dataplane.IsControl(v6) {
		t.Error("an IPv6 probe request counts as user traffic")
	}
}

// Only the peer, through its tunnel, speaks for it: a request saying "I
// no longer hear you" or a reply to our probe counts only when it comes
// from the peer's tunnel address (the packet's source, not only what it
// says) and arrives on the tunnel's interface. A host on the underlay or
// the local network that sends such a packet to the tunnel address, with
// its own source or the peer's, changes nothing. A tunnel interface made
// anew (another index) is looked up again, at most once per ifRecheck.
func TestProbeOnlyThroughTheTunnel(t *testing.T) {
	src, peer := netip.MustParseAddr("10.2.255.254"), netip.MustParseAddr("10.1.255.254")
	p := testProber(src, nil)
	t0 := time.Now()
	tg := newTarget(peer, t0)
	tg.Interface = "vg-west"
	p.targets[peer] = tg
	p.handle(vgateRequest(peer, src, t0, true), fromTunnel(peer), t0)
	p.handle(ourReply(p, peer, t0), fromTunnel(peer), t0)
	p.step(t0)
	if !tg.alive || !tg.peerHears {
		t.Fatalf("the peer's request and reply through the tunnel: alive %v, hears %v", tg.alive, tg.peerHears)
	}
	underlay := netip.MustParseAddr("198.18.0.250")
	for i, in := range []probeIn{
		{src: underlay, ifindex: 2},           // the attacker's own address, on the underlay
		{src: peer, ifindex: 2},               // the peer's address, spoofed on the underlay
		{src: underlay, ifindex: testIfindex}, // another source through the tunnel
	} {
		now := t0.Add(time.Duration(i+1) * time.Millisecond)
		p.handle(vgateRequest(peer, src, now, false), in, now)
		p.step(now)
		if !tg.alive || !tg.peerHears {
			t.Fatalf("a request from %+v killed the tunnel: alive %v", in, tg.alive)
		}
	}
	// A reply from elsewhere does not keep a tunnel alive either.
	late := t0.Add(10 * time.Millisecond)
	p.handle(ourReply(p, peer, late), probeIn{src: peer, ifindex: 2}, late)
	if tg.lastReply != t0 {
		t.Fatalf("a reply from the underlay counted: last reply %v", tg.lastReply)
	}
	// The tunnel's interface is made anew (index 9): the first packet
	// within ifRecheck of the last lookup is dropped, a later one counts.
	p.ifIndex = func(string) int32 { return 9 }
	tg.ifChecked = late
	p.handle(ourReply(p, peer, late), probeIn{src: peer, ifindex: 9}, late)
	if tg.lastReply != t0 {
		t.Fatal("a reply on another interface counted before the interface was looked up again")
	}
	later := late.Add(ifRecheck)
	p.handle(ourReply(p, peer, later), probeIn{src: peer, ifindex: 9}, later)
	if tg.lastReply != later || tg.ifindex != 9 {
		t.Fatalf("a reply through the new interface: last reply %v, ifindex %d", tg.lastReply, tg.ifindex)
	}
}

// A peer that answers the probe without sending requests of its own is
// learned plain (not vgate) plainAfter after it came alive, once; one
// whose requests arrive meanwhile never is; a request after the verdict
// makes it vgate again (the status says which).
func TestProbeLearnsPlain(t *testing.T) {
	src, peer := netip.MustParseAddr("10.1.255.254"), netip.MustParseAddr("10.2.255.254")
	for _, requests := range []bool{false, true} {
		p := testProber(src, nil)
		t0 := time.Now()
		tg := newTarget(peer, t0)
		p.targets[peer] = tg
		now := t0
		var plain []time.Time
		for now.Before(t0.Add(3 * plainAfter)) {
			before := p.sent
			wait := p.step(now)
			for _, ev := range p.events {
				if ev.Plain {
					plain = append(plain, now)
				}
			}
			if p.sent > before {
				now = now.Add(time.Millisecond)
				p.handle(ourReply(p, peer, now), fromTunnel(peer), now)
				if requests {
					p.handle(vgateRequest(peer, src, now, true), fromTunnel(peer), now)
				}
				continue
			}
			now = now.Add(max(wait, time.Millisecond))
		}
		st := p.Status()[0]
		if requests {
			if len(plain) != 0 || st.Plain || !st.Vgate {
				t.Errorf("a vgate peer: learned plain at %v; status %+v", plain, st)
			}
			continue
		}
		if len(plain) != 1 || plain[0].Sub(tg.aliveSince) != plainAfter || !st.Plain || st.Vgate {
			t.Fatalf("a plain peer: learned plain at %v (alive since %v); status %+v", plain, tg.aliveSince, st)
		}
		p.handle(vgateRequest(peer, src, now, true), fromTunnel(peer), now)
		if st := p.Status()[0]; st.Plain || !st.Vgate {
			t.Errorf("a request after the plain verdict: status %+v", st)
		}
	}
	// A tunnel that never answers (a router dropping pings) is learned
	// plain silentPlainAfter after probing began; one that answered and
	// went dead is not (it may be a vgate peer restarting).
	p := testProber(src, nil)
	t0 := time.Now()
	tg := newTarget(peer, t0)
	p.targets[peer] = tg
	var plain []time.Time
	for now := t0; now.Before(t0.Add(2 * silentPlainAfter)); {
		wait := p.step(now)
		for _, ev := range p.events {
			if ev.Plain {
				plain = append(plain, now)
			}
		}
		now = now.Add(max(wait, time.Millisecond))
	}
	if len(plain) != 1 || plain[0].Sub(t0) != silentPlainAfter {
		t.Errorf("never answering: learned plain at %v after the start, want once at %v", offsets(plain, t0), silentPlainAfter)
	}
	p = testProber(src, nil)
	tg = newTarget(peer, t0)
	tg.lastReply = t0.Add(time.Second) // answered once, then no more
	p.targets[peer] = tg
	for now := t0.Add(time.Second); now.Before(t0.Add(2 * silentPlainAfter)); {
		wait := p.step(now)
		for _, ev := range p.events {
			if ev.Plain {
				t.Fatalf("a tunnel that answered and went dead: learned plain at %v", now.Sub(t0))
			}
		}
		now = now.Add(max(wait, time.Millisecond))
	}
}

// TestProbeDrainFlags: a draining prober's requests say so, and the ones
// to a peering it avoids say that; the receiver reports a peer that
// starts or stops draining once per change (never as a verdict on the
// tunnel) and shows both flags in its status.
func TestProbeDrainFlags(t *testing.T) {
	src, peer := netip.MustParseAddr("10.2.255.254"), netip.MustParseAddr("10.1.255.254")
	var events []ProbeEvent
	p := testProber(src, func(ev ProbeEvent) { events = append(events, ev) })
	t0 := time.Now()
	tg := newTarget(peer, t0)
	p.targets[peer] = tg

	// What this end sends.
	flags := func() uint32 {
		p.sendTo(tg, t0)
		m, ok := parseProbe(v4Packet(p.sendBuf[:]), false)
		if !ok {
			t.Fatal("own request does not parse")
		}
		var f uint32
		if m.draining {
			f |= probeDraining
		}
		if m.avoids {
			f |= probeAvoids
		}
		return f
	}
	if f := flags(); f != 0 {
		t.Fatalf("flags %b before any drain", f)
	}
	tg.nextSend = t0.Add(time.Hour)
	p.SetDraining(true)
	if f := flags(); f != probeDraining || tg.nextSend.After(time.Now()) {
		t.Fatalf("draining: flags %b, next request at %v (want now)", f, tg.nextSend)
	}
	p.SetAvoiding(map[string]bool{"west": true})
	if f := flags(); f != probeDraining|probeAvoids {
		t.Fatalf("draining and avoiding: flags %b", f)
	}
	p.SetDraining(false)
	p.SetAvoiding(nil)
	if f := flags(); f != 0 {
		t.Fatalf("undrained: flags %b", f)
	}

	// What this end hears.
	req := func(f uint32) []byte {
		var b [probeLen]byte
		putProbeFlags(b[:], false, 7, 1, t0, peer.As16(), src.As16(), 65002, 65001, probeHears|f)
		return v4Packet(b[:])
	}
	p.handle(req(0), fromTunnel(peer), t0)
	events = events[:0] // the vgate event
	p.handle(req(probeDraining), fromTunnel(peer), t0)
	p.handle(req(probeDraining), fromTunnel(peer), t0)
	if len(events) != 1 || !events[0].Drain || !events[0].Draining || events[0].Alive || events[0].Peering != "west" {
		t.Fatalf("events after a draining peer's requests: %+v", events)
	}
	p.handle(req(probeAvoids), fromTunnel(peer), t0)
	if len(events) != 2 || !events[1].Drain || events[1].Draining {
		t.Fatalf("events after the peer stopped draining: %+v", events)
	}
	if st := p.Status(); len(st) != 1 || st[0].Draining || !st[0].Avoids {
		t.Fatalf("status = %+v", st)
	}
	// A draining request from someone else's address changes nothing.
	p.handle(req(probeDraining), fromTunnel(netip.MustParseAddr("10.9.9.9")), t0)
	if len(events) != 2 {
		t.Fatalf("a forged source was taken: %+v", events)
	}
}
