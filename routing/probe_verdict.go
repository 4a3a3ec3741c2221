package routing

// Each target's state and verdicts: its timing (fast under demand, idle,
// lengthened after flaps), and step, which decides at each deadline
// whether a tunnel is alive, dead or plain and what is due to be sent.

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

type probeTarget struct {
	name string
	ProbeTarget
	// ifindex is Interface's index, looked up when the target is set and
	// again (at most once per ifRecheck) when a packet from the peer
	// arrives on another one: the tunnel's interface may have been made
	// anew.
	ifindex   int32
	ifChecked time.Time
	sa        unix.Sockaddr // made once: sending allocates nothing
	since     time.Time     // when probing began
	nextSend  time.Time
	lastReply time.Time
	rtt       time.Duration
	// unanswered counts the requests sent since the last reply: a
	// tunnel is dead only when Multiplier-1 of them went unanswered as
	// well as Detect passed, so a stall of this process (no requests sent)
	// never reads as a dead tunnel.
	unanswered int
	// demandSeen is Demand's count at the last step, lastDemand when it
	// last moved; fast is whether the last step probed every Interval.
	demandSeen uint64
	lastDemand time.Time
	fast       bool
	// peerHears is what the peer's last request said: it hears this end.
	// peerLost is set when a request says it no longer does (after one
	// that said it did); it holds the tunnel dead until new evidence.
	peerHears bool
	peerLost  bool
	// aliveSince is when t last came alive; damp is the flap dampening
	// level (detection time × 2^damp).
	aliveSince time.Time
	damp       int
	flapped    bool // it went dead within flapWindow of coming alive
	alive      bool
	known      bool // alive has been decided at least once
	vgate      bool
	plain      bool   // no request of its own: see plainAfter
	peerASN    uint32 // what the peer's requests say (peerSays)
	peerExpect uint32
	// peerDraining and peerAvoids are what the peer's last request said
	// (probeDraining, probeAvoids); avoid is what this end's requests say.
	peerDraining bool
	peerAvoids   bool
	avoid        bool
}

// plainAfter is how long a tunnel answers without a single request from
// the peer before the peer is taken not to run vgate. A vgate peer probes
// every tunnel at least once a second (fast for 2 s after it comes
// alive), so this is dozens of requests lost in a row. silentPlainAfter
// is how long a tunnel that has never answered, nor sent a request, takes
// to make the same verdict (a router that drops pings, or a vgate peer
// down since before this gateway started: its first request makes it
// vgate again).
const (
	plainAfter       = 5 * time.Second
	silentPlainAfter = 30 * time.Second
)

// IdleInterval is the request interval of an idle tunnel (see Demand
// above); a configured Interval longer than it is kept.
const IdleInterval = time.Second

// demandCheck is how often an idle tunnel's demand counter is read;
// demandHold how long after its last user traffic, or after it came
// alive, a tunnel stays fast (at least; twice its detection time if that
// is longer, so that a verdict due is never postponed by going idle).
const (
	demandCheck = 100 * time.Millisecond
	demandHold  = 2 * time.Second
)

// Flap dampening: a tunnel that goes dead less than flapWindow after it
// came alive gets 2^maxDamp times the configured detection time (at once:
// one step per flap still reset every session of a starved host several
// times over); flapCalm alive in one go restores it. A host too busy
// to answer within the detection time otherwise flaps every tunnel over
// and over, and each flap re-plans and resets BGP sessions, which makes
// it busier still (docs/routing.md).
// A steady tunnel keeps the configured timing.
const (
	flapWindow = 10 * time.Second
	flapCalm   = 30 * time.Second
	maxDamp    = 3
)

// interval is the request interval now: Interval while fast, else
// IdleInterval (or Interval if that is longer).
func (t *probeTarget) interval() time.Duration {
	if t.fast {
		return t.Interval
	}
	return max(t.Interval, IdleInterval)
}

// detect is the detection time now: interval × Multiplier, lengthened
// while flapping.
func (t *probeTarget) detect() time.Duration {
	return t.interval() * time.Duration(t.Multiplier) << t.damp
}

// wantFast says whether t needs the fast timing at now (see Demand in
// the package comment), noting new demand first.
func (t *probeTarget) wantFast(now time.Time) bool {
	if t.Demand == nil {
		return true
	}
	if c := t.Demand.Load(); c != t.demandSeen {
		t.demandSeen, t.lastDemand = c, now
	}
	hold := max(demandHold, 2*t.Detect()<<t.damp)
	return !t.alive || t.peerLost || now.Sub(t.lastDemand) < hold || now.Sub(t.aliveSince) < hold
}

// multiplier is Multiplier, scaled as detect is.
func (t *probeTarget) multiplier() int { return t.Multiplier << t.damp }

// goDead marks t dead at now and notes a flap if it came alive within
// flapWindow. The longer detection applies from the next time it comes
// alive: lengthening it now would move the deadline just passed and
// bring the tunnel back without a reply.
func (t *probeTarget) goDead(now time.Time) {
	t.flapped = t.alive && now.Sub(t.aliveSince) < flapWindow
	t.alive, t.known = false, true
}

// goAlive marks t alive at now, lengthening its detection if it flapped.
func (t *probeTarget) goAlive(now time.Time) {
	if t.flapped {
		t.damp = maxDamp
	}
	t.flapped = false
	t.alive, t.known = true, true
	t.aliveSince = now
}

// idleWait is how long the loop sleeps with no target.
const idleWait = time.Second

// step sends the requests that are due, decides the targets whose
// deadline passed or that answered, fills p.events with the transitions,
// and returns how long until the next thing is due.
func (p *Prober) step(now time.Time) time.Duration {
	p.events = p.events[:0]
	p.mu.Lock()
	defer p.mu.Unlock()
	next := now.Add(idleWait)
	for _, t := range p.targets {
		if fast := t.wantFast(now); fast != t.fast {
			t.fast = fast
			if fast && t.nextSend.After(now) {
				t.nextSend = now // demand: the next request goes now
			}
		}
		if !t.fast && now.Add(demandCheck).Before(next) {
			next = now.Add(demandCheck)
		}
		send := !now.Before(t.nextSend)
		ref := t.lastReply
		if ref.IsZero() {
			ref = t.since
		}
		if t.alive && t.damp > 0 && now.Sub(t.aliveSince) >= flapCalm {
			t.damp = 0 // calm again: back to the configured timing
		}
		deadline := ref.Add(t.detect())
		switch {
		case t.peerLost:
			if !t.known || t.alive {
				t.goDead(now)
				p.events = append(p.events, ProbeEvent{Peering: t.name,
					Why: fmt.Sprintf("tunnel probe: the peer at %s no longer hears this gateway", t.Address)})
			}
		case !t.lastReply.IsZero() && now.Before(deadline):
			if !t.known || !t.alive {
				t.goAlive(now)
				p.events = append(p.events, ProbeEvent{Peering: t.name, Alive: true})
			}
			if deadline.Before(next) {
				next = deadline
			}
		case !now.Before(deadline) && t.unanswered < t.multiplier()-1:
			// Due, but too few requests went out since the last reply
			// (this process stalled): wait for the next ones.
		case !now.Before(deadline):
			if !t.known || t.alive {
				how := ""
				if !t.fast {
					how = ", idle: no user traffic"
				}
				if t.damp > 0 {
					how += fmt.Sprintf(", lengthened from %v after the tunnel flapped", t.interval()*time.Duration(t.Multiplier))
				}
				t.goDead(now)
				p.events = append(p.events, ProbeEvent{Peering: t.name, Never: t.lastReply.IsZero(),
					Why: fmt.Sprintf("tunnel probe: no reply from %s for %v (%v × %d%s)", t.Address, deadline.Sub(ref), t.interval(), t.Multiplier, how)})
			}
		default: // not yet answered, not yet due
			if deadline.Before(next) {
				next = deadline
			}
		}
		if !t.vgate && !t.plain {
			// Plain: answering for plainAfter, or never answering for
			// silentPlainAfter (a router that drops pings: its session
			// must not wait for a dial that only a vgate peer would make),
			// without a request of its own.
			at := t.since.Add(silentPlainAfter)
			if t.alive {
				at = t.aliveSince.Add(plainAfter)
			}
			if (t.alive || t.lastReply.IsZero()) && !now.Before(at) {
				t.plain = true
				p.events = append(p.events, ProbeEvent{Peering: t.name, Plain: true})
			} else if at.Before(next) && (t.alive || t.lastReply.IsZero()) {
				next = at
			}
		}
		if send {
			p.seq++
			p.sendTo(t, now)
			t.unanswered++
			t.nextSend = t.nextSend.Add(t.interval())
			if t.nextSend.Before(now) { // fell behind (a stall): no burst
				t.nextSend = now.Add(t.interval())
			}
		}
		if t.nextSend.Before(next) {
			next = t.nextSend
		}
	}
	return max(next.Sub(now), 0)
}
