package routing

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// The watchdog's decisions, on a fake clock looking every second: a
// session down with its tunnel alive is reset once it has been so for the
// bound, and every bound after that while it lasts (attempt 2, 3, ...);
// established, held down by vgate, or with its tunnel not answering, it
// is left alone and its stretch starts again; a stall of the process
// gives every session the whole bound again; a peering gone is
// forgotten.
func TestWatchdogDecisions(t *testing.T) {
	const bound = 30 * time.Second
	down := NeighborStatus{Name: "p", State: "active", Passive: true, LastDownCode: DownConnectionLost}
	up := NeighborStatus{Name: "p", State: "established"}
	held := NeighborStatus{Name: "p", State: "idle", Down: "tunnel probe: no reply", DownCode: DownProbe}
	alive := map[string]bool{"p": true}
	t0 := time.Unix(1_000_000, 0)

	type step struct {
		at    time.Duration // since t0
		n     NeighborStatus
		alive map[string]bool
		want  int  // attempt of the reset decided at this look; 0: none
		stall bool // no look since the previous step (else one a second)
	}
	for _, tt := range []struct {
		name  string
		steps []step
	}{
		{"stuck: reset at the bound, then every bound", []step{
			{0, down, alive, 0, false}, {29 * time.Second, down, alive, 0, false}, {30 * time.Second, down, alive, 1, false},
			{59 * time.Second, down, alive, 0, false}, {60 * time.Second, down, alive, 2, false}, {90 * time.Second, down, alive, 3, false},
		}},
		{"established in time: nothing", []step{
			{0, down, alive, 0, false}, {20 * time.Second, up, alive, 0, false}, {40 * time.Second, down, alive, 0, false}, {69 * time.Second, down, alive, 0, false},
			{70 * time.Second, down, alive, 1, false},
		}},
		{"up between two resets: the next stretch starts at attempt 1", []step{
			{0, down, alive, 0, false}, {30 * time.Second, down, alive, 1, false}, {31 * time.Second, up, alive, 0, false},
			{32 * time.Second, down, alive, 0, false}, {62 * time.Second, down, alive, 1, false},
		}},
		{"held down by vgate: never", []step{
			{0, held, alive, 0, false}, {30 * time.Second, held, alive, 0, false}, {90 * time.Second, held, alive, 0, false},
		}},
		{"tunnel not answering: never; alive again: a new stretch", []step{
			{0, down, nil, 0, false}, {40 * time.Second, down, nil, 0, false}, {41 * time.Second, down, alive, 0, false},
			{60 * time.Second, down, nil, 0, false}, {61 * time.Second, down, alive, 0, false}, {91 * time.Second, down, alive, 1, false},
		}},
		{"a stall of this process: the whole bound again", []step{
			{0, down, alive, 0, false}, {20 * time.Second, down, alive, 0, false}, {40 * time.Second, down, alive, 0, true},
			{69 * time.Second, down, alive, 0, false}, {70 * time.Second, down, alive, 1, false},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWatchdog(bound)
			// Every second in between, the session as at the step before.
			prev := tt.steps[0]
			for i, s := range tt.steps {
				if i > 0 && !s.stall {
					for at := tt.steps[i-1].at + time.Second; at < s.at; at += time.Second {
						if rs := w.check(t0.Add(at), []NeighborStatus{prev.n}, prev.alive); len(rs) != 0 {
							t.Fatalf("at %v (between steps): reset %+v", at, rs)
						}
					}
				}
				rs := w.check(t0.Add(s.at), []NeighborStatus{s.n}, s.alive)
				got := 0
				if len(rs) == 1 {
					got = rs[0].Attempt
				}
				if len(rs) > 1 || got != s.want {
					t.Fatalf("at %v: %+v, want attempt %d", s.at, rs, s.want)
				}
				if got == 1 && (!strings.Contains(rs[0].Why, "state active") || !strings.Contains(rs[0].Why, "last down: connection_lost") ||
					!strings.Contains(rs[0].Why, "this end listens")) {
					t.Errorf("why: %q", rs[0].Why)
				}
				prev = s
			}
		})
	}

	w := newWatchdog(bound)
	w.check(t0, []NeighborStatus{down}, alive)
	w.check(t0.Add(time.Second), nil, alive) // the peering was removed
	if len(w.stuck) != 0 {
		t.Errorf("a removed peering is remembered: %+v", w.stuck)
	}
}

// fakeSessions is a watchdogTarget: sessions set by the test, resets
// recorded with the (fake) time they happened.
type fakeSessions struct {
	mu       sync.Mutex
	sessions []NeighborStatus
	resets   []time.Time
}

func (f *fakeSessions) Sessions(context.Context) ([]NeighborStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sessions), nil
}

func (f *fakeSessions) Recover(_ context.Context, r Recovery) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resets = append(f.resets, time.Now())
	return nil
}

// The loop on synctest's clock: a session stuck from the start is reset
// WatchdogBound after the loop first saw it (one look a second), and
// WatchdogBound after that; once established, no more; nothing after the
// context ends.
func TestWatchdogLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSessions{sessions: []NeighborStatus{{Name: "p", State: "openconfirm"}}}
		ctx, cancel := context.WithCancel(t.Context())
		t0 := time.Now()
		done := make(chan struct{})
		go func() {
			runWatchdog(ctx, f, func() map[string]bool { return map[string]bool{"p": true} }, WatchdogBound)
			close(done)
		}()
		time.Sleep(watchdogEvery + WatchdogBound + watchdogEvery/2)
		synctest.Wait()
		f.mu.Lock()
		if len(f.resets) != 1 || f.resets[0].Sub(t0) != watchdogEvery+WatchdogBound {
			t.Errorf("resets at %v after the start, want one at %v", offsets(f.resets, t0), watchdogEvery+WatchdogBound)
		}
		f.mu.Unlock()
		time.Sleep(WatchdogBound)
		synctest.Wait()
		f.mu.Lock()
		if len(f.resets) != 2 || f.resets[1].Sub(f.resets[0]) != WatchdogBound {
			t.Errorf("resets at %v after the start, want a second one %v after the first", offsets(f.resets, t0), WatchdogBound)
		}
		f.sessions = []NeighborStatus{{Name: "p", State: "established"}}
		f.mu.Unlock()
		time.Sleep(3 * WatchdogBound)
		cancel()
		<-done
		if len(f.resets) != 2 {
			t.Errorf("resets at %v after the start, want none once established", offsets(f.resets, t0))
		}
	})
}

func offsets(ts []time.Time, t0 time.Time) []time.Duration {
	var out []time.Duration
	for _, t := range ts {
		out = append(out, t.Sub(t0))
	}
	return out
}

// The watchdog on a real speaker, at the listening end: a peer dials in
// and falls silent after the speaker's OPEN (GoBGP would wait 240 s in
// OpenSent, and no down event comes to retry on). The watchdog starts the
// session afresh while that connection is in flight: the speaker closes
// it (nothing is left open on its side), counts the reset, logs it once
// at warn, and the peer's next connection makes the session.
func TestWatchdogRecoversListeningEnd(t *testing.T) {
	sAddr, pAddr := addr("127.0.0.61"), addr("127.0.0.62")
	sPort := freePort(t, sAddr)
	var logs syncBuffer
	s, err := Start(t.Context(), Config{ASN: 65001, RouterID: sAddr, ListenAddresses: []netip.Addr{sAddr}, ListenPort: sPort,
		Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Set(t.Context(), State{Neighbors: []Neighbor{{Name: "p", Address: pAddr, ASN: 65062, Passive: true}}}); err != nil {
		t.Fatal(err)
	}
	const bound = 3 * time.Second
	s.startWatchdog(func() map[string]bool { return map[string]bool{"p": true} }, bound)
	dialIn := func() net.Conn {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c := scriptDial(t, pAddr, netip.AddrPortFrom(sAddr, uint16(sPort)))
			if typ, _, err := scriptRead(c, 2*time.Second); err == nil && typ == bgp.BGP_MSG_OPEN {
				return c
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatal("the speaker never answered a connection with an OPEN")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	c1 := dialIn()
	t0 := time.Now()
	if _, _, err := scriptRead(c1, 20*bound); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the silent connection was not closed %v after the speaker's OPEN (state %s): %v", time.Since(t0).Round(time.Second), sessionOf(t, s, "p").State, err)
	}
	t.Logf("the watchdog closed the silent connection %v after the speaker's OPEN (bound %v)", time.Since(t0).Round(100*time.Millisecond), bound)
	local, remote := c1.RemoteAddr().(*net.TCPAddr).AddrPort(), c1.LocalAddr().(*net.TCPAddr).AddrPort()
	c1.Close()
	c2 := dialIn()
	scriptWrite(t, c2, scriptOpen(t, 65062, pAddr, holdTime))
	scriptExpect(t, c2, bgp.BGP_MSG_KEEPALIVE, 10*time.Second)
	scriptWrite(t, c2, scriptKeepalive(t))
	waitRIB(t, s, "established on the next connection", func(r RIB) bool { return neighbor(r, "p").State == "established" })
	// Gone, or in TIME_WAIT (the speaker closed first; the kernel's, no
	// descriptor): not CLOSE-WAIT or established.
	if st := tcpState(t, local, remote); st != "" && st != "06" {
		t.Errorf("the speaker's end of the reset connection is still open: state %s", st)
	}
	if n := sessionOf(t, s, "p"); n.Recoveries != 1 {
		t.Errorf("recoveries = %d, want 1", n.Recoveries)
	}
	if got := strings.Count(logs.String(), "level=WARN msg=\"bgp session started afresh by the watchdog\""); got != 1 {
		t.Errorf("%d warnings, want 1; log:\n%s", got, logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
