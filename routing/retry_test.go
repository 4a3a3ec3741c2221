package routing

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 2 * time.Second, 2 * time.Second}
	for i, w := range want {
		if got := retryDelay(i); got != w {
			t.Errorf("retryDelay(%d) = %v, want %v", i, got, w)
		}
	}
	if retryDelay(1000) != retryMax {
		t.Error("no cap")
	}
}

// Two speakers on loopback, a passive, b dialing it with a wrong AS for a:
// the session fails and a schedules its next attempt (shown as
// NextAttempt); fixing b's AS brings it up. Then a probe hold and its
// release: the session comes back (started afresh, not after GoBGP's idle
// hold; the times are logged).
func TestSessionRetry(t *testing.T) {
	aAddr, bAddr := addr("127.0.0.4"), addr("127.0.0.5")
	aPort := freePort(t, aAddr)
	a := startSpeaker(t, 65001, "127.0.0.4", aPort)
	b := startSpeaker(t, 65002, "127.0.0.5", -1)
	ctx := context.Background()
	if err := a.Set(ctx, State{Originate: []netip.Prefix{pfx("10.1.0.0/16")},
		Neighbors: []Neighbor{{Name: "b", Address: bAddr, ASN: 65002, Passive: true}}}); err != nil {
		t.Fatal(err)
	}
	bState := State{Neighbors: []Neighbor{{Name: "a", Address: aAddr, ASN: 65009, LocalAddress: bAddr, Port: uint16(aPort)}}}
	if err := b.Set(ctx, bState); err != nil {
		t.Fatal(err)
	}
	sawNext := false
	waitRIB(t, a, "a: the session failed and a retry is due", func(r RIB) bool {
		n := neighbor(r, "b")
		if !n.NextAttempt.IsZero() {
			sawNext = true
			if !n.Passive || n.NextAttempt.Sub(time.Now()) > retryMax {
				t.Errorf("a: %+v", n)
			}
		}
		return sawNext && n.LastDownCode != DownNone
	})

	bState.Neighbors[0].ASN = 65001
	t0 := time.Now()
	if err := b.Set(ctx, bState); err != nil {
		t.Fatal(err)
	}
	waitRIB(t, a, "a: established after the fix", func(r RIB) bool { return neighbor(r, "b").State == "established" })
	// How fast is a figure (logged), asserted only in the lab tests.
	t.Logf("established %v after the fix", time.Since(t0).Round(100*time.Millisecond))
	if n := neighbor(mustSnap(t, a), "b"); !n.NextAttempt.IsZero() {
		t.Errorf("established with an attempt scheduled: %+v", n)
	}

	if err := a.SetDown(ctx, "b", HoldProbe, "tunnel probe: no reply"); err != nil {
		t.Fatal(err)
	}
	waitRIB(t, a, "a: held down", func(r RIB) bool {
		n := neighbor(r, "b")
		return n.State != "established" && n.DownCode == DownProbe && n.NextAttempt.IsZero()
	})
	t0 = time.Now()
	if err := a.SetDown(ctx, "b", HoldProbe, ""); err != nil {
		t.Fatal(err)
	}
	waitRIB(t, a, "a: established after the release", func(r RIB) bool { return neighbor(r, "b").State == "established" })
	t.Logf("established %v after the release", time.Since(t0).Round(100*time.Millisecond))
}

func mustSnap(t *testing.T, s *Speaker) RIB {
	t.Helper()
	r, err := s.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}
