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
		if len(st) == 1 && st[0].State == Up && st[0].RemoteState == Up && !st[0].Polling && st[0].TxInterval == 20*time.Millisecond && st[0].Detect == 60*time.Millisecond {
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
	before := ra.Dropped()[DropTTL]
	c.Write(Packet{State: Down, DetectMult: 3, MyDisc: 1}.Append(nil))
	for i := 0; ra.Dropped()[DropTTL] == before; i++ {
		if i > 200 {
			t.Fatal("TTL 64 packet not dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
