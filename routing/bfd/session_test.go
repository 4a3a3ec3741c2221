package bfd

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const ms = time.Millisecond

// peerPkt is a packet from the peer (discriminator 77) in state st at 100
// ms × 5, addressed to session s.
func peerPkt(s *Session, st State) Packet {
	your := s.local
	if st == Down || st == AdminDown {
		your = 0
	}
	return Packet{State: st, DetectMult: 5, MyDisc: 77, YourDisc: your, DesiredMinTx: 100000, RequiredMinRx: 100000}
}

// step is one input to a session and what must follow.
type step struct {
	at    time.Duration // since t0
	rx    *Packet       // a packet received, or nil: the timer
	mod   func(*Session, *Packet)
	state State
	diag  Diag
	event bool // a state change is reported
	admin bool // ... as the peer's AdminDown
	drop  bool // the packet is discarded
}

func TestSessionTransitions(t *testing.T) {
	rx := func(st State) *Packet { p := Packet{State: st}; return &p }
	cases := []struct {
		name  string
		steps []step
	}{
		{"three-way up from peer down", []step{
			{at: 0, rx: rx(Down), state: Init, event: true},
			{at: 10 * ms, rx: rx(Up), state: Up, event: true},
		}},
		{"up at once from peer init", []step{
			{at: 0, rx: rx(Init), state: Up, event: true},
		}},
		{"init ignores a down", []step{
			{at: 0, rx: rx(Down), state: Init, event: true},
			{at: 10 * ms, rx: rx(Down), state: Init},
		}},
		{"peer signals down", []step{
			{at: 0, rx: rx(Init), state: Up, event: true},
			{at: 10 * ms, rx: rx(Down), state: Down, diag: DiagNeighborDown, event: true},
		}},
		{"peer admin down is not a failure", []step{
			{at: 0, rx: rx(Init), state: Up, event: true},
			{at: 10 * ms, rx: rx(AdminDown), state: Down, diag: DiagNeighborDown, event: true, admin: true},
			{at: 20 * ms, rx: rx(AdminDown), state: Down, diag: DiagNeighborDown},
			{at: 30 * ms, rx: rx(Down), state: Init, diag: DiagNeighborDown, event: true},
		}},
		{"detection time expires after 5 × 100 ms", []step{
			{at: 0, rx: rx(Init), state: Up, event: true},
			{at: 499 * ms, state: Up},
			{at: 500 * ms, state: Down, diag: DiagDetectionExpired, event: true},
			{at: 2 * time.Second, state: Down, diag: DiagDetectionExpired},
		}},
		{"each packet restarts detection", []step{
			{at: 0, rx: rx(Init), state: Up, event: true},
			{at: 400 * ms, rx: rx(Up), state: Up},
			{at: 800 * ms, state: Up},
			{at: 900 * ms, state: Down, diag: DiagDetectionExpired, event: true},
		}},
		{"init times out too", []step{
			{at: 0, rx: rx(Down), state: Init, event: true},
			{at: 500 * ms, state: Down, diag: DiagDetectionExpired, event: true},
		}},
		{"slower peer: detection follows its interval", []step{
			{at: 0, rx: rx(Init), mod: func(_ *Session, p *Packet) { p.DesiredMinTx, p.DetectMult = 300000, 3 }, state: Up, event: true},
			{at: 899 * ms, state: Up},
			{at: 900 * ms, state: Down, diag: DiagDetectionExpired, event: true},
		}},
		{"wrong your discriminator is dropped", []step{
			{at: 0, rx: rx(Init), mod: func(s *Session, p *Packet) { p.YourDisc = s.local + 1 }, state: Down, drop: true},
		}},
		{"admin down locally ignores the peer", []step{
			{at: 0, rx: rx(Init), state: Up, event: true},
			{at: 10 * ms, mod: func(s *Session, _ *Packet) { s.SetAdminDown(t0.Add(10 * ms)) }, state: AdminDown, diag: DiagAdminDown},
			{at: 20 * ms, rx: rx(Up), state: AdminDown, diag: DiagAdminDown},
			{at: 2 * time.Second, state: AdminDown, diag: DiagAdminDown},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewSession(5, Timing{Interval: 100 * ms, Multiplier: 5}, t0, 1)
			for i, st := range c.steps {
				now := t0.Add(st.at)
				var ev *Event
				ok := true
				switch {
				case st.rx != nil:
					p := peerPkt(s, st.rx.State)
					if st.mod != nil {
						st.mod(s, &p)
					}
					ev, ok = s.Receive(p, now)
				case st.mod != nil:
					st.mod(s, nil)
				default:
					ev = s.Timer(now)
				}
				if ok == st.drop {
					t.Fatalf("step %d: accepted %v, want %v", i, ok, !st.drop)
				}
				if (ev != nil) != st.event {
					t.Fatalf("step %d: event %+v, want one: %v", i, ev, st.event)
				}
				if ev != nil && ev.RemoteAdminDown != st.admin {
					t.Fatalf("step %d: event %+v, want remote admin down %v", i, ev, st.admin)
				}
				if got, d := s.State(); got != st.state || d != st.diag {
					t.Fatalf("step %d: state %v/%v, want %v/%v", i, got, d, st.state, st.diag)
				}
			}
		})
	}
}

// TestTransmit: 1 s while not Up, the negotiated interval with 0–25 %
// jitter once Up, at once on a change of state, a Final to a Poll, and
// the poll sequence that announces the faster rate.
func TestTransmit(t *testing.T) {
	s := NewSession(5, Timing{Interval: 100 * ms, Multiplier: 5}, t0, 1)
	p, ok := s.Transmit(t0)
	if !ok || p.State != Down || p.DesiredMinTx != 1000000 || p.RequiredMinRx != 100000 || p.YourDisc != 0 || p.MyDisc != 5 || p.DetectMult != 5 || p.Poll {
		t.Fatalf("first packet %+v, %v", p, ok)
	}
	if _, ok := s.Transmit(t0.Add(500 * ms)); ok {
		t.Fatal("sent again within 0.75 s while Down")
	}
	if n := s.Next(); n.Sub(t0) < 750*ms || n.Sub(t0) > time.Second {
		t.Fatalf("next packet at %v, want 0.75-1 s while Down", n.Sub(t0))
	}
	now := t0.Add(600 * ms)
	pk := peerPkt(s, Init)
	pk.Poll = true
	if ev, _ := s.Receive(pk, now); ev == nil || ev.State != Up {
		t.Fatalf("not up: %+v", ev)
	}
	// Up now: the state change and the Final go at once, with a Poll for
	// the new, faster transmit interval.
	p, ok = s.Transmit(now)
	if !ok || p.State != Up || !p.Final || p.Poll || p.YourDisc != 77 {
		t.Fatalf("final %+v, %v", p, ok)
	}
	// The Poll cannot ride on a Final: it goes with the next packet,
	// already at the faster rate.
	if _, ok := s.Transmit(now.Add(74 * ms)); ok {
		t.Fatal("sent again within 75 ms")
	}
	p, ok = s.Transmit(now.Add(100 * ms))
	if !ok || !p.Poll || p.DesiredMinTx != 100000 {
		t.Fatalf("poll %+v, %v", p, ok)
	}
	// The peer answers the poll: the rate is 100 ms less 0-25 %.
	fin := peerPkt(s, Up)
	fin.Final = true
	now = now.Add(100 * ms)
	s.Receive(fin, now)
	var gaps []time.Duration
	last := now
	for at := now; at.Before(now.Add(10 * time.Second)); at = at.Add(time.Millisecond) {
		if p, ok := s.Transmit(at); ok {
			if p.Poll {
				t.Fatalf("still polling at %v", at.Sub(t0))
			}
			gaps = append(gaps, at.Sub(last))
			last = at
			s.Receive(peerPkt(s, Up), at) // keep it up
		}
	}
	lo, hi := time.Hour, time.Duration(0)
	for _, g := range gaps[1:] {
		lo, hi = min(lo, g), max(hi, g)
	}
	if lo < 75*ms || hi > 100*ms || hi-lo < 10*ms {
		t.Fatalf("gaps %v..%v over %d packets, want jittered within 75-100 ms", lo, hi, len(gaps))
	}
}

// TestTimingChange: a new rate while Up is announced by a poll sequence,
// without leaving Up; a slower peer is not sent to faster than it asks.
func TestTimingChange(t *testing.T) {
	s := NewSession(5, Timing{Interval: 100 * ms, Multiplier: 5}, t0, 1)
	s.Receive(peerPkt(s, Init), t0)
	fin := peerPkt(s, Up)
	fin.Final = true
	s.Receive(fin, t0)
	for s.Next().Equal(t0) {
		s.Transmit(t0)
	}
	now := t0.Add(50 * ms)
	s.SetTiming(Timing{Interval: 300 * ms, Multiplier: 3}, now)
	p, ok := s.Transmit(now)
	if !ok || !p.Poll || p.DesiredMinTx != 300000 || p.RequiredMinRx != 300000 || p.DetectMult != 3 || p.State != Up {
		t.Fatalf("poll %+v %v", p, ok)
	}
	// Until the Final, detection uses the longer of old and new receive
	// intervals and transmission the shorter: neither end times out.
	if sn := s.Snapshot(); sn.TxInterval != 100*ms || sn.Detect != 1500*ms || !sn.Polling {
		t.Fatalf("during poll: %+v", sn)
	}
	fin.DesiredMinTx, fin.RequiredMinRx = 300000, 300000
	if ev, _ := s.Receive(fin, now.Add(10*ms)); ev != nil {
		t.Fatalf("timing change changed state: %+v", ev)
	}
	if sn := s.Snapshot(); sn.TxInterval != 300*ms || sn.Detect != 1500*ms || sn.Polling || sn.State != Up {
		t.Fatalf("after final: %+v", sn)
	}
	// The peer asks for 1 s: sent to no faster.
	slow := peerPkt(s, Up)
	slow.RequiredMinRx = 1000000
	s.Receive(slow, now.Add(20*ms))
	s.Transmit(now.Add(20 * ms))
	if n := s.Next(); n.Sub(now.Add(20*ms)) < 750*ms {
		t.Fatalf("next packet %v after, want ≥ 0.75 s for a peer asking 1 s", n.Sub(now.Add(20*ms)))
	}
	// A peer asking for no packets gets none.
	none := peerPkt(s, Up)
	none.RequiredMinRx = 0
	s.Receive(none, now.Add(30*ms))
	for at := now.Add(30 * ms); at.Before(now.Add(5 * time.Second)); at = at.Add(10 * ms) {
		if p, ok := s.Transmit(at); ok {
			t.Fatalf("sent %+v to a peer asking for none", p)
		}
		s.Receive(none, at)
	}
}
