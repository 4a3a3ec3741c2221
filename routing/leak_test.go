package routing

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// settledGoroutines returns the goroutine count once it is at most limit,
// or once it has not changed for half a second (GoBGP ends some of its
// goroutines shortly after Stop), or after 10s.
func settledGoroutines(limit int) int {
	n, same := runtime.NumGoroutine(), 0
	deadline := time.Now().Add(10 * time.Second)
	for n > limit && same < 5 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}

// Twenty start / Set (with a neighbor and a route) / Close cycles leave no
// goroutines behind.
func TestSpeakerRestartsLeakNoGoroutines(t *testing.T) {
	ctx := context.Background()
	a := addr("127.0.0.1")
	cycle := func() {
		port := freePort(t, a)
		s, err := Start(ctx, Config{ASN: 65001, RouterID: a, ListenAddresses: []netip.Addr{a}, ListenPort: port, Log: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Set(ctx, State{
			Originate: []netip.Prefix{pfx("10.1.0.0/16"), pfx("fd00:1::/48")},
			Neighbors: []Neighbor{{Name: "b", Address: addr("127.0.0.2"), ASN: 65002, Port: uint16(freePort(t, addr("127.0.0.2")))}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	cycle() // warm up: package-level goroutines GoBGP starts once
	base := settledGoroutines(0)
	for i := 0; i < 20; i++ {
		cycle()
	}
	const slack = 5
	if n := settledGoroutines(base + slack); n > base+slack {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("goroutines after 20 restarts: %d, before: %d (slack %d)\n%s", n, base, slack, buf)
	}
}
