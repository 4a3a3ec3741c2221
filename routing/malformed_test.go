package routing_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
	"github.com/vgate-project/vgate/routing"
)

func listenPort(t *testing.T, a netip.Addr) int32 {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(a, 0).String())
	if err != nil {
		t.Skipf("cannot listen on %s: %v", a, err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func neighborStatus(t *testing.T, s *routing.Speaker, name string) (routing.NeighborStatus, routing.RIB) {
	t.Helper()
	rib, err := s.Snapshot(context.Background())
	if err != nil {
		t.Error(err)
	}
	for _, n := range rib.Neighbors {
		if n.Name == name {
			return n, rib
		}
	}
	return routing.NeighborStatus{}, rib
}

func waitStatus(t *testing.T, s *routing.Speaker, name, what string, cond func(routing.NeighborStatus, routing.RIB) bool) routing.NeighborStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, rib := neighborStatus(t, s, name)
		if cond(n, rib) {
			return n
		}
		if time.Now().After(deadline) {
			// Also called from the per-case goroutines: fail, end this
			// goroutine (its defers run), let the others finish.
			t.Errorf("%s: %s not reached; neighbor %+v", name, what, n)
			runtime.Goexit()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasRoute(rib routing.RIB, neighbor, prefix string) bool {
	for _, r := range rib.Routes {
		if r.Neighbor == neighbor && r.Prefix == netip.MustParsePrefix(prefix) && r.Accepted {
			return true
		}
	}
	return false
}

// dialRaw connects a raw sender to the speaker, retrying while the
// speaker's side of the session is not yet accepting (idle hold).
func dialRaw(t *testing.T, local netip.Addr, remote netip.AddrPort, asn uint32) *netlab.RawBGP {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := netlab.DialRawBGP(ctx, local, remote, netlab.RawBGPConfig{ASN: asn, RouterID: local, HoldTime: 30})
		cancel()
		if err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Errorf("raw BGP from %s: %v", local, err)
			runtime.Goexit()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Malformed UPDATEs of the kinds GoBGP's remote-crash advisories describe,
// each on its own session of one speaker, all at once: the speaker does not
// panic, each malformed session is reset with a NOTIFICATION that the
// speaker's status names (typed code, error code/subcode matching what the
// sender received), and a well-behaved second session on the same speaker
// stays established, with its route, throughout.
func TestMalformedUpdates(t *testing.T) {
	ctx := context.Background()
	sAddr, goodAddr := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.6")
	port := listenPort(t, sAddr)
	s, err := routing.Start(ctx, routing.Config{ASN: 65001, RouterID: sAddr, ListenAddresses: []netip.Addr{sAddr}, ListenPort: port, Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	good, err := routing.Start(ctx, routing.Config{ASN: 65006, RouterID: goodAddr, ListenPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()

	const rawASN = 65005
	cases := netlab.MalformedUpdates(rawASN, netip.MustParseAddr("127.0.1.1"))
	if only := os.Getenv("MALFORMED_CASE"); only != "" {
		cases = slices.DeleteFunc(cases, func(c netlab.MalformedUpdate) bool { return c.Name != only })
	}
	st := routing.State{Neighbors: []routing.Neighbor{{Name: "good", Address: goodAddr, ASN: 65006, Passive: true}}}
	rawAddr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)}) }
	for i := range cases {
		st.Neighbors = append(st.Neighbors, routing.Neighbor{Name: fmt.Sprintf("raw%d", i), Address: rawAddr(i), ASN: rawASN, Passive: true})
	}
	if err := s.Set(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := good.Set(ctx, routing.State{
		Originate: []netip.Prefix{netip.MustParsePrefix("10.6.0.0/16")},
		Neighbors: []routing.Neighbor{{Name: "s", Address: sAddr, ASN: 65001, LocalAddress: goodAddr, Port: uint16(port)}},
	}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "good", "established with its route", func(n routing.NeighborStatus, rib routing.RIB) bool {
		return n.State == "established" && hasRoute(rib, "good", "10.6.0.0/16")
	})
	goodSince, _ := neighborStatus(t, s, "good")

	// Watch the good session for the whole run.
	stop := make(chan struct{})
	var watch sync.WaitGroup
	var goodErr error
	watch.Add(1)
	go func() {
		defer watch.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			rib, err := s.Snapshot(ctx)
			if err != nil {
				goodErr = err
				return
			}
			for _, n := range rib.Neighbors {
				if n.Name == "good" && (n.State != "established" || !n.Since.Equal(goodSince.Since) || !hasRoute(rib, "good", "10.6.0.0/16")) {
					goodErr = fmt.Errorf("good session disturbed: %+v", n)
					return
				}
			}
		}
	}()

	remote := netip.AddrPortFrom(sAddr, uint16(port))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("raw%d", i)
			r := dialRaw(t, rawAddr(i), remote, rawASN)
			defer r.Close()
			// A valid UPDATE first: the session works and holds a route.
			if err := r.SendRaw(netlab.ValidUpdate(rawASN, rawAddr(i), netip.MustParsePrefix("198.51.100.0/24"))); err != nil {
				t.Errorf("%s: %v", c.Name, err)
				return
			}
			waitStatus(t, s, name, c.Name+": established with the valid route", func(n routing.NeighborStatus, rib routing.RIB) bool {
				return n.State == "established" && hasRoute(rib, name, "198.51.100.0/24")
			})
			sent := time.Now()
			if err := r.SendRaw(c.Message); err != nil {
				t.Errorf("%s: %v", c.Name, err)
				return
			}
			// Either a reset with a NOTIFICATION, or (RFC 7606) the
			// UPDATE treated as a withdrawal and the session kept: then
			// a valid UPDATE sent after it is accepted on the same
			// session, and the malformed one's prefix is not.
			follow := netip.MustParsePrefix("198.51.100.128/25")
			if err := r.SendRaw(netlab.ValidUpdate(rawASN, rawAddr(i), follow)); err != nil {
				// A write refused by the reset (connection reset by
				// peer) can come before the reader has seen the reset.
				wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, _ = r.Wait(wctx)
				cancel()
				if r.Alive() {
					t.Errorf("%s: %v", c.Name, err)
					return
				}
			}
			var outcome string
			n := waitStatus(t, s, name, c.Name+": reset, or the follow-up route accepted", func(n routing.NeighborStatus, rib routing.RIB) bool {
				if n.State != "established" && !n.LastDownAt.Before(sent.Truncate(time.Second)) && n.LastDownCode != routing.DownNone {
					outcome = "reset"
					return true
				}
				if n.State == "established" && hasRoute(rib, name, follow.String()) {
					outcome = "treat-as-withdraw"
					return true
				}
				return false
			})
			_, rib := neighborStatus(t, s, name)
			if hasRoute(rib, name, netlab.MalformedPrefix.String()) {
				t.Errorf("%s: the malformed UPDATE's prefix was accepted", c.Name)
			}
			if outcome == "treat-as-withdraw" {
				if !r.Alive() || n.LastDownCode != routing.DownNone || !hasRoute(rib, name, "198.51.100.0/24") {
					t.Errorf("%s: treated as withdraw, but session %+v (sender alive %v)", c.Name, n, r.Alive())
				}
				t.Logf("%-32s treated as withdraw; session kept", c.Name)
				return
			}
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			notif, err := r.Wait(wctx)
			cancel()
			if err != nil || notif == nil {
				t.Errorf("%s: session reset without a NOTIFICATION: %v", c.Name, err)
				return
			}
			if n.LastDownCode != routing.DownNotificationSent || n.DownCode != routing.DownNotificationSent ||
				n.Notification == nil || n.Notification.Direction != routing.NotificationSent ||
				n.Notification.Code != notif.Code || n.Notification.Subcode != notif.Subcode || n.LastDown == "" {
				t.Errorf("%s: status after reset = %+v (notification %+v); sender got code %d subcode %d",
					c.Name, n, n.Notification, notif.Code, notif.Subcode)
			}
			if hasRoute(rib, name, "198.51.100.0/24") {
				t.Errorf("%s: route kept after the reset", c.Name)
			}
			t.Logf("%-32s reset: NOTIFICATION code %d subcode %d; status %s %q", c.Name, notif.Code, notif.Subcode, n.LastDownCode, n.LastDown)
		}()
	}
	wg.Wait()

	// The speaker still takes sessions: one raw neighbor comes back and
	// announces a route.
	r := dialRaw(t, rawAddr(0), remote, rawASN)
	defer r.Close()
	if err := r.SendRaw(netlab.ValidUpdate(rawASN, rawAddr(0), netip.MustParsePrefix("198.51.100.0/24"))); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "raw0", "re-established with a route", func(n routing.NeighborStatus, rib routing.RIB) bool {
		return n.State == "established" && hasRoute(rib, "raw0", "198.51.100.0/24")
	})
	close(stop)
	watch.Wait()
	if goodErr != nil {
		t.Error(goodErr)
	}
	if n, _ := neighborStatus(t, s, "good"); n.State != "established" || n.LastDownCode != routing.DownNone {
		t.Errorf("good after the run: %+v", n)
	}

}

// testLog is a debug logger to stderr when ROUTING_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("ROUTING_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	}
	return slog.New(slog.DiscardHandler)
}
