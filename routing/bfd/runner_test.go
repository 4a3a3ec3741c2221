package bfd

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// TestRunnerLoopback runs two runners against each other on loopback
// addresses: both come up, a planned stop is AdminDown (not a failure)
// on the other side, a silent stop times out with diagnostic 1, and a
// packet sent with a TTL below 255 is dropped.
func TestRunnerLoopback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a1, a2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	timing := Timing{Interval: 20 * time.Millisecond, Multiplier: 3}
	evA := make(chan PeerEvent, 16)
	ra, err := New(a1, slog.New(slog.DiscardHandler), func(ev PeerEvent) { evA <- ev })
	if err != nil {
		t.Skipf("cannot listen on %v:%d: %v", a1, Port, err)
	}
	defer ra.Close(false)
	go ra.Run(ctx)
	ra.SetTargets(map[string]Target{"b": {Address: a2, Interface: "lo", Timing: timing}})

	startB := func() (*Runner, chan PeerEvent) {
		ev := make(chan PeerEvent, 16)
		rb, err := New(a2, slog.New(slog.DiscardHandler), func(e PeerEvent) { ev <- e })
		if err != nil {
			t.Fatal(err)
		}
		go rb.Run(ctx)
		rb.SetTargets(map[string]Target{"a": {Address: a1, Timing: timing}})
		return rb, ev
	}
	wait := func(ch chan PeerEvent, st State, within time.Duration) PeerEvent {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case ev := <-ch:
				if ev.State == st {
					return ev
				}
			case <-deadline:
				t.Fatalf("no %v within %v", st, within)
			}
		}
	}

	rb, evB := startB()
	wait(evA, Up, 5*time.Second)
	wait(evB, Up, 5*time.Second)
	// Both poll sequences done: 20 ms each way, detection 3 × 20 ms.
	for i := 0; ; i++ {
		st := ra.Status()
		if len(st) == 1 && st[0].State == Up.String() && st[0].RemoteState == Up.String() && !polling(ra, st[0].Peering) && st[0].TxInterval == 20*time.Millisecond && st[0].Detect == 60*time.Millisecond {
			break
		}
		if i > 300 {
			t.Fatalf("status %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}

	rb.Close(true)
	if ev := wait(evA, Down, 2*time.Second); !ev.RemoteAdminDown || ev.Diag != DiagNeighborDown || !ev.EverUp {
		t.Fatalf("planned stop seen as %+v", ev)
	}

	rb, _ = startB()
	wait(evA, Up, 5*time.Second)
	// A silent stop: the listener goes, nothing more is sent.
	rb.mu.Lock()
	rb.closed = true
	for _, p := range rb.peers {
		rb.drop(p)
	}
	rb.mu.Unlock()
	rb.conn.Close()
	start := time.Now()
	ev := wait(evA, Down, 2*time.Second)
	if ev.RemoteAdminDown || ev.Diag != DiagDetectionExpired {
		t.Fatalf("silent stop seen as %+v", ev)
	}
	t.Logf("detected in %v (detection time 60 ms)", time.Since(start))

	// GTSM: a packet from further away (TTL 64) is dropped.
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a1, Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ipv4.NewConn(c).SetTTL(64)
	before := ra.Dropped()[DropNames[DropTTL]]
	c.Write(Packet{State: Down, DetectMult: 3, MyDisc: 1}.Append(nil))
	for i := 0; ra.Dropped()[DropNames[DropTTL]] == before; i++ {
		if i > 200 {
			t.Fatal("TTL 64 packet not dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunnerDrops: a packet from an address that is no session's peer,
// or from the peer but through another interface than its tunnel's, is
// dropped and counted, and brings no session up.
func TestRunnerDrops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b, stranger := netip.MustParseAddr("127.0.0.4"), netip.MustParseAddr("127.0.0.5"), netip.MustParseAddr("127.0.0.6")
	timing := Timing{Interval: 20 * time.Millisecond, Multiplier: 3}
	ra, err := New(a, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Skipf("cannot listen on %v:%d: %v", a, Port, err)
	}
	defer ra.Close(false)
	go ra.Run(ctx)
	// b's packets arrive on lo, not on the tunnel the session expects.
	ra.SetTargets(map[string]Target{"b": {Address: b, Interface: "vg-nosuch", Timing: timing}})
	rb, err := New(b, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close(false)
	go rb.Run(ctx)
	rb.SetTargets(map[string]Target{"a": {Address: a, Timing: timing}})

	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(stranger, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ipv4.NewConn(c).SetTTL(255)
	c.Write(Packet{State: Down, DetectMult: 3, MyDisc: 1}.Append(nil))
	c.Write([]byte("not bfd at all, but long enough to pass the length check"))
	for i := 0; ; i++ {
		d := ra.Dropped()
		if d[DropNames[DropInterface]] > 0 && d[DropNames[DropUnknownSource]] > 0 && d[DropNames[DropMalformed]] > 0 {
			break
		}
		if i > 300 {
			t.Fatalf("dropped %v, want interface, unknown_source and malformed counted", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := ra.Status(); st[0].State != Down.String() || st[0].Received != 0 {
		t.Fatalf("session from the wrong interface: %+v", st[0])
	}
}

// polling reports whether the peering's session has a poll sequence
// running (not part of the status).
func polling(r *Runner, peering string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.peers[peering]
	return p != nil && p.s.Snapshot().Polling
}
