package p2s

import (
	"sync"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/peering"
)

// ActiveWindow is how recently a client must have sent something (traffic
// or a keepalive) to count as active: a little more than the keepalive
// interval its config asks for, so an idle laptop that is there stays
// active and one that left stops being active within 30 s.
const ActiveWindow = DefaultKeepalive*time.Second + 2*time.Second

// SampleEvery is how often the server reads its clients' counters to
// notice when each last sent something.
const SampleEvery = 500 * time.Millisecond

// Activity remembers, per client key, when its received-byte counter last
// grew: wireguard-go counts keepalives too, so that is the last time the
// client was heard from. Safe for concurrent use.
type Activity struct {
	mu   sync.Mutex
	seen map[keys.PublicKey]heard
}

type heard struct {
	rx uint64
	at time.Time
}

// Observe takes one sample of the device's peers at now. A client seen
// for the first time counts as heard at its last handshake (the gateway
// cannot know of anything later); keys no longer in stats are forgotten.
func (a *Activity) Observe(stats map[keys.PublicKey]*dataplane.PeerStats, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = map[keys.PublicKey]heard{}
	}
	for k, st := range stats {
		h, ok := a.seen[k]
		switch {
		case !ok:
			h = heard{rx: st.RxBytes, at: st.LastHandshake}
		case st.RxBytes != h.rx:
			h = heard{rx: st.RxBytes, at: now}
		}
		if st.LastHandshake.After(h.at) && !st.LastHandshake.After(now) {
			h.at = st.LastHandshake
		}
		a.seen[k] = h
	}
	for k := range a.seen {
		if _, ok := stats[k]; !ok {
			delete(a.seen, k)
		}
	}
}

// LastHeard is when the client with key k was last heard from (zero:
// never).
func (a *Activity) LastHeard(k keys.PublicKey) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[k].at
}

// ClientState is what is known about a client at now from when it was
// last heard from: active within ActiveWindow, idle up to
// peering.StaleAfter (it may be asleep or gone; its session is still
// valid), gone after that, never if it never was.
func ClientState(lastHeard, now time.Time) api.ClientState {
	switch age := now.Sub(lastHeard); {
	case lastHeard.IsZero():
		return api.ClientNever
	case age <= ActiveWindow:
		return api.ClientActive
	case age <= peering.StaleAfter:
		return api.ClientIdle
	default:
		return api.ClientGone
	}
}
