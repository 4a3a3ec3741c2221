package laptop

import "time"

// How the client finds out whether the gateway answers. WireGuard sends
// nothing back to an idle client, so after ProbeQuiet without a packet
// from the gateway the client sends a handshake initiation (wireguard-go
// sends at most one per ProbeEvery, its RekeyTimeout), which a gateway
// that knows the client answers at once. No answer within AnswerWait: the
// gateway is silent. A silent gateway is noticed within ProbeQuiet +
// ProbeEvery + AnswerWait plus a sample, under 10 s.
const (
	ProbeQuiet  = 2 * time.Second
	ProbeEvery  = 5 * time.Second
	AnswerWait  = 2 * time.Second
	WatchSample = 500 * time.Millisecond
)

// AnswerEvent is a change in whether the gateway answers.
type AnswerEvent int

const (
	NoChange  AnswerEvent = iota
	Connected             // the first handshake completed
	Silent                // the gateway stopped answering (or never answered)
	Answering             // the gateway answers again after Silent
)

// Answers decides, from samples of the gateway peer's received bytes and
// last handshake, when the gateway answers and when to probe it. Pure:
// the caller samples and sends the probes.
type Answers struct {
	started     bool
	rx          uint64
	hs          time.Time
	heard       time.Time // last time rx grew or a handshake completed (or the start)
	probed      time.Time
	connected   bool
	silent      bool
	silentSince time.Time
}

// Observe takes one sample at now. It returns the event, if any, and
// whether to send a probe (a handshake initiation) now.
func (a *Answers) Observe(now time.Time, rx uint64, hs time.Time) (ev AnswerEvent, probe bool) {
	if !a.started {
		a.started, a.rx, a.hs, a.heard = true, rx, hs, now
	}
	if rx != a.rx || hs.After(a.hs) {
		a.heard = now
		switch {
		case !a.connected && !hs.IsZero():
			a.connected, a.silent = true, false
			ev = Connected
		case a.silent && a.connected:
			a.silent = false
			ev = Answering
		}
	}
	a.rx, a.hs = rx, hs
	if ev == NoChange && !a.silent && !a.probed.IsZero() && a.heard.Before(a.probed) && now.Sub(a.probed) >= AnswerWait {
		a.silent, a.silentSince = true, a.heard
		ev = Silent
	}
	if now.Sub(a.heard) >= ProbeQuiet && now.Sub(a.probed) >= ProbeEvery {
		a.probed = now
		probe = true
	}
	return ev, probe
}

// Quiet is how long before now the gateway was last heard from, when it
// is silent.
func (a *Answers) Quiet(now time.Time) time.Duration { return now.Sub(a.silentSince) }

// EverConnected says whether a handshake ever completed.
func (a *Answers) EverConnected() bool { return a.connected }
