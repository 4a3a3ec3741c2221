package routing

import (
	"context"
	"fmt"
	"time"

	vapi "github.com/vgate-project/vgate/api"
)

// The session watchdog bounds how long a session stays down while its
// tunnel works, whatever the cause: a GoBGP state waiting for something
// that never comes, a retry that was never scheduled (a listening end
// gets no down event to retry on), two ends waiting for each other. A
// session whose tunnel probe answers, that vgate does not hold down, and
// that has not been established for WatchdogBound is started afresh
// (recreate: the GoBGP peer removed and added, which drops whatever
// connection and FSM state it had) on whichever end sees it, the
// listening end too, and again every WatchdogBound while that lasts. The
// first reset of such a stretch is logged at warn with what the session
// was doing, the next ones at info; every one is counted
// (NeighborStatus.Recoveries).
const WatchdogBound = 30 * time.Second

// watchdogEvery is how often the watchdog looks; a gap of more than
// watchdogStall between two looks (this process was stopped or starved)
// starts every stretch again: what the sessions did meanwhile was not
// seen, and they get the whole bound to recover on their own.
const (
	watchdogEvery = time.Second
	watchdogStall = 3 * watchdogEvery
)

// Recovery is one reset the watchdog decided.
type Recovery struct {
	Peering string
	// Why says what the session was doing, for the log.
	Why string
	// Attempt is 1 for the first reset since the session was last
	// established (or its tunnel last stopped answering, or vgate held it).
	Attempt int
}

// watchdog decides which sessions to reset from what it is shown, with
// the time as an argument (tests drive it with a fake clock).
type watchdog struct {
	bound time.Duration
	last  time.Time // the previous look
	stuck map[string]*stuckSession
}

// stuckSession is a session seen down with its tunnel alive.
type stuckSession struct {
	since    time.Time // start of the stretch, or the last reset
	down     time.Time // start of the stretch, kept across resets
	attempts int
}

func newWatchdog(bound time.Duration) *watchdog {
	return &watchdog{bound: bound, stuck: map[string]*stuckSession{}}
}

// check looks at the sessions at now, alive being the peerings whose
// tunnel probe answers, and returns the sessions to start afresh.
func (w *watchdog) check(now time.Time, sessions []NeighborStatus, alive map[string]bool) []Recovery {
	stalled := !w.last.IsZero() && now.Sub(w.last) > watchdogStall
	w.last = now
	seen := make(map[string]bool, len(sessions))
	var out []Recovery
	for _, n := range sessions {
		seen[n.Name] = true
		if n.State == vapi.SessionEstablished || n.Down != "" || !alive[n.Name] {
			delete(w.stuck, n.Name)
			continue
		}
		st := w.stuck[n.Name]
		switch {
		case st == nil:
			w.stuck[n.Name] = &stuckSession{since: now, down: now}
			continue
		case stalled:
			st.since = now
			continue
		case now.Sub(st.since) < w.bound:
			continue
		}
		st.attempts++
		st.since = now
		why := fmt.Sprintf("its tunnel answers and it has not been established for %v (state %s", now.Sub(st.down).Round(time.Second), n.State)
		if n.LastDownCode != DownNone {
			why += ", last down: " + string(n.LastDownCode)
		}
		if n.Passive {
			why += ", this end listens"
		}
		out = append(out, Recovery{Peering: n.Name, Why: why + ")", Attempt: st.attempts})
	}
	for name := range w.stuck {
		if !seen[name] {
			delete(w.stuck, name)
		}
	}
	return out
}

// watchdogTarget is what the watchdog loop reads and resets: the Speaker
// (tests use a fake).
type watchdogTarget interface {
	Sessions(ctx context.Context) ([]NeighborStatus, error)
	Recover(ctx context.Context, r Recovery) error
}

// runWatchdog looks every watchdogEvery until ctx ends.
func runWatchdog(ctx context.Context, t watchdogTarget, alive func() map[string]bool, bound time.Duration) {
	w := newWatchdog(bound)
	tick := time.NewTicker(watchdogEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sessions, err := t.Sessions(ctx)
		if err != nil {
			continue
		}
		for _, r := range w.check(time.Now(), sessions, alive()) {
			_ = t.Recover(ctx, r) // it logs its own failure
		}
	}
}

// StartWatchdog runs the session watchdog until the speaker closes. alive
// returns the peerings whose tunnel answers now (the probe's verdicts);
// it is called once a second and must not call the speaker.
func (s *Speaker) StartWatchdog(alive func() map[string]bool) {
	s.startWatchdog(alive, WatchdogBound)
}

func (s *Speaker) startWatchdog(alive func() map[string]bool, bound time.Duration) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		runWatchdog(s.ctx, s, alive, bound)
	}()
}

// Recover starts a session afresh for the watchdog, unless it came up,
// was held down or removed meanwhile, and counts it.
func (s *Speaker) Recover(ctx context.Context, r Recovery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.neighbors[r.Peering]
	if !ok || len(s.holds[r.Peering]) > 0 || s.established(ctx, n) {
		return nil
	}
	if err := s.recreate(ctx, r.Peering); err != nil {
		if s.ctx.Err() == nil {
			s.log.Error("bgp session watchdog: starting the session afresh", "peering", r.Peering, "error", err)
		}
		return err
	}
	s.recoveries[r.Peering]++
	if r.Attempt == 1 {
		s.log.Warn("bgp session started afresh by the watchdog", "peering", r.Peering, "why", r.Why)
	} else {
		s.log.Info("bgp session started afresh by the watchdog again", "peering", r.Peering, "why", r.Why, "attempt", r.Attempt)
	}
	return nil
}
