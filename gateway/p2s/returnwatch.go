package p2s

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/vgate-project/vgate/overlap"
)

// The "pool not routed back" hint. With static routing, the network
// behind a peering must route the point-to-site pool back through its
// tunnel (README.md, "Point-to-site"); when it does not, clients' packets
// leave, nothing returns, and every counter looks healthy. The P2S filter
// counts, per peering, client packets toward its routes and packets for
// clients from behind it (returns.go); returnLoop samples them
// and flat returns while clients send become a hint in `vgate status` and
// one warning in the log.

const (
	returnTick = 2 * time.Second
	// A peering is flagged when clients sent at least returnMinSent
	// packets toward it over at least returnWindow and none came back.
	returnWindow  = 6 * time.Second
	returnMinSent = 3
	// returnForget clears a flag once clients stopped sending that long.
	returnForget = 30 * time.Second
)

// returnSample is one peering's counters at one time.
type returnSample struct{ sent, back uint64 }

// flatReturn is what returnLoop remembers of one peering between ticks.
type flatReturn struct {
	last      returnSample
	since     time.Time // first tick of the current "sending, nothing back" stretch; zero when none
	lastSent  time.Time // last tick at which clients sent
	sentCount uint64    // packets sent during the stretch
	// shown is the verdict of the last tick: status shows what the loop
	// decided (and warned about), not a verdict of its own.
	shown bool
}

// nextFlat is the decision: it folds one new sample into the state.
// Anything coming back ends a stretch; sending with nothing back extends
// it; silence keeps it for returnForget.
func nextFlat(st flatReturn, cur returnSample, now time.Time) flatReturn {
	dSent, dBack := cur.sent-st.last.sent, cur.back-st.last.back
	st.last = cur
	switch {
	case dBack > 0:
		st.since, st.sentCount = time.Time{}, 0
	case dSent > 0:
		if st.since.IsZero() {
			st.since = now
		}
		st.sentCount += dSent
		st.lastSent = now
	case !st.since.IsZero() && now.Sub(st.lastSent) >= returnForget:
		st.since, st.sentCount = time.Time{}, 0
	}
	return st
}

// flagged reports whether st is a "nothing comes back" peering at now, and
// for how long.
func (st flatReturn) flagged(now time.Time) (time.Duration, bool) {
	if st.since.IsZero() || st.sentCount < returnMinSent {
		return 0, false
	}
	d := now.Sub(st.since)
	return d, d >= returnWindow
}

// returnWatch holds returnLoop's state.
type returnWatch struct {
	mu    sync.Mutex
	state map[string]flatReturn
}

// returnLoop samples the P2S filter's counts every returnTick until ctx
// ends.
func (c *Component) returnLoop(ctx context.Context) {
	t := time.NewTicker(returnTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s := c.Current()
			if s == nil {
				c.returns.reset()
				continue
			}
			c.returns.observe(s.Filter().Returns(), now, func(name string, d time.Duration, sent uint64) {
				c.log.Warn("point-to-site clients send toward a peering and nothing comes back: the peer may not route the pool back",
					"peering", name, "packets", sent, "for", d.Round(time.Second), "pool", overlap.Join(s.Routes()))
			})
		}
	}
}

// ReturnHint is the "nothing comes back" hint for peering name ("" when
// it is not flagged); pool is the pool as the hint shows it.
func (c *Component) ReturnHint(name, pool string, now time.Time) string {
	var r *Returns
	if s := c.Current(); s != nil {
		r = s.Filter().Returns()
	}
	return c.returns.hint(name, pool, now, r)
}

func (w *returnWatch) reset() {
	w.mu.Lock()
	w.state = nil
	w.mu.Unlock()
}

// observe folds the current counts in; warn is called once when a
// peering becomes flagged.
func (w *returnWatch) observe(r *Returns, now time.Time, warn func(name string, d time.Duration, sent uint64)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	counts := r.Counts()
	next := make(map[string]flatReturn, len(counts))
	names := make([]string, 0, len(counts))
	for name := range counts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := counts[name]
		cur := returnSample{sent: c.Sent.Load(), back: c.Back.Load()}
		prev, ok := w.state[name]
		if !ok {
			next[name] = flatReturn{last: cur}
			continue
		}
		st := nextFlat(prev, cur, now)
		d, is := st.flagged(now)
		if is && !prev.shown {
			warn(name, d, st.sentCount)
		}
		st.shown = is
		next[name] = st
	}
	w.state = next
}

// hint is the status hint for peering name, "" when it is not flagged.
// A reply counted in r (the live counters; may be nil) since the last
// tick clears it at once, without waiting for the next tick.
func (w *returnWatch) hint(name string, pool string, now time.Time, r *Returns) string {
	w.mu.Lock()
	st, ok := w.state[name]
	w.mu.Unlock()
	if !ok {
		return ""
	}
	if !st.shown {
		return ""
	}
	if r != nil {
		if c := r.Counts()[name]; c != nil && c.Back.Load() != st.last.back {
			return ""
		}
	}
	d := now.Sub(st.since)
	return fmt.Sprintf("point-to-site clients sent %d packets toward this peering in %v and none came back: "+
		"the peer may not route the pool (%s) back through this tunnel; add the pool to its address_spaces for this peering, or use BGP",
		st.sentCount, d.Round(time.Second), pool)
}
