package bfd

import (
	"math/rand/v2"
	"time"
)

// Timing is a session's configured rate: vgate sends every Interval at
// most and asks the peer to send no faster than Interval; Multiplier
// intervals without a packet declare the session down.
type Timing struct {
	Interval   time.Duration
	Multiplier int
}

// slowTx is the least transmit interval while the session is not Up
// (RFC 5880 6.8.3).
const slowTx = time.Second

// Session is one BFD session's state machine (RFC 5880 6.8), a pure
// function of the packets received, the timers and the clock passed in:
// it opens no socket and reads no clock. Not safe for concurrent use.
type Session struct {
	local  uint32 // bfd.LocalDiscr
	remote uint32 // bfd.RemoteDiscr

	state       State
	remoteState State
	localDiag   Diag
	remoteDiag  Diag
	remoteMult  uint8
	// The peer's last advertised intervals, µs.
	remoteMinRx     uint32
	remoteDesiredTx uint32

	timing Timing
	// advTx and advRx are the intervals advertised in our packets (µs);
	// opTx and opRx those in force: during a poll sequence the old and
	// new values are combined so that neither end times out early (RFC
	// 5880 6.8.3), and the new ones take over at the Final.
	advTx, advRx uint32
	opTx, opRx   uint32
	polling      bool
	sendFinal    bool

	adminDown bool
	lastRx    time.Time
	detectAt  time.Time // zero: no detection timer running
	nextTx    time.Time
	rnd       *rand.Rand

	// Counters and the last transitions, for status.
	everUp    bool
	upSince   time.Time
	lastDown  time.Time
	downs     int
	remoteAdm bool // the peer said AdminDown (not a failure, RFC 5882 3.2)
}

// NewSession makes a session in Down with local discriminator disc
// (non-zero, unique among the runner's sessions). seed makes the
// transmit jitter reproducible in tests.
func NewSession(disc uint32, t Timing, now time.Time, seed uint64) *Session {
	s := &Session{local: disc, state: Down, remoteState: Down, timing: t, remoteMinRx: 1,
		rnd: rand.New(rand.NewPCG(seed, uint64(disc)))}
	s.advTx, s.advRx = s.wantTx(), us(t.Interval)
	s.opTx, s.opRx = s.advTx, s.advRx
	s.nextTx = now
	return s
}

func us(d time.Duration) uint32 { return uint32(d / time.Microsecond) }

func dur(u uint32) time.Duration { return time.Duration(u) * time.Microsecond }

// wantTx is the desired transmit interval for the current state.
func (s *Session) wantTx() uint32 {
	if s.state != Up && s.timing.Interval < slowTx {
		return us(slowTx)
	}
	return us(s.timing.Interval)
}

// Event is a change of the session state worth reporting.
type Event struct {
	State State
	// Diag is the local diagnostic: why the session went down.
	Diag Diag
	// RemoteAdminDown: the peer took the session administratively down;
	// not a failure of the path (RFC 5882 3.2).
	RemoteAdminDown bool
}

// State reports the session state and the local diagnostic.
func (s *Session) State() (State, Diag) { return s.state, s.localDiag }

// Receive processes a parsed control packet from the session's peer
// (RFC 5880 6.8.6 after the checks Parse makes). ok is false when the
// packet is discarded; ev is set when the state changed.
func (s *Session) Receive(p Packet, now time.Time) (ev *Event, ok bool) {
	if p.YourDisc != 0 && p.YourDisc != s.local {
		return nil, false
	}
	s.remote = p.MyDisc
	s.remoteState = p.State
	s.remoteDiag = p.Diag
	s.remoteMult = p.DetectMult
	s.remoteDesiredTx = p.DesiredMinTx
	oldMinRx := s.remoteMinRx
	s.remoteMinRx = p.RequiredMinRx
	if p.Final && s.polling {
		s.polling = false
		s.opTx, s.opRx = s.advTx, s.advRx
	}
	if p.Poll {
		s.sendFinal = true
	}
	if s.adminDown {
		return nil, true
	}
	s.lastRx = now
	s.detectAt = now.Add(s.detectTime())
	if oldMinRx != p.RequiredMinRx && s.remoteMinRx != 0 {
		// The peer's rate changed: the next packet follows the new
		// interval, not the old one (a slower peer is not flooded).
		if nt := now.Add(s.txInterval()); nt.Before(s.nextTx) || oldMinRx < p.RequiredMinRx {
			s.nextTx = nt
		}
	}
	prev := s.state
	s.remoteAdm = p.State == AdminDown
	switch {
	case p.State == AdminDown:
		if s.state != Down {
			s.localDiag = DiagNeighborDown
			s.state = Down
		}
	case s.state == Down:
		switch p.State {
		case Down:
			s.state = Init
		case Init:
			s.state = Up
		}
	case s.state == Init:
		if p.State == Init || p.State == Up {
			s.state = Up
		}
	case s.state == Up:
		if p.State == Down {
			s.localDiag = DiagNeighborDown
			s.state = Down
		}
	}
	if s.state == prev {
		return nil, true
	}
	return s.transition(prev, now), true
}

// transition records a state change and starts a poll sequence when the
// intervals to advertise change with it (1 s while not Up).
func (s *Session) transition(prev State, now time.Time) *Event {
	ev := &Event{State: s.state, Diag: s.localDiag}
	switch {
	case s.state == Up:
		s.everUp = true
		s.upSince = now
		s.localDiag = DiagNone
		ev.Diag = DiagNone
	case prev == Up:
		s.downs++
		s.lastDown = now
		ev.RemoteAdminDown = s.remoteAdm
	}
	s.retime(now)
	// A change of state is sent at once (RFC 5880 6.8.7 lets the next
	// packet go early): the peer's state machine moves without waiting
	// up to a second.
	s.nextTx = now
	return ev
}

// retime advertises the intervals the configuration and state want: at
// once while not Up, through a poll sequence while Up.
func (s *Session) retime(now time.Time) {
	tx, rx := s.wantTx(), us(s.timing.Interval)
	if tx == s.advTx && rx == s.advRx {
		return
	}
	s.advTx, s.advRx = tx, rx
	if s.state != Up {
		s.opTx, s.opRx = tx, rx
		s.polling = false
		return
	}
	s.polling = true
	s.opTx = min(s.opTx, tx)
	s.opRx = max(s.opRx, rx)
	if !s.detectAt.IsZero() {
		s.detectAt = s.lastRx.Add(s.detectTime())
	}
}

// SetTiming changes the configured rate without resetting the session:
// while Up the new intervals are announced with a poll sequence.
func (s *Session) SetTiming(t Timing, now time.Time) {
	s.timing = t
	s.retime(now)
	s.nextTx = now
}

// SetAdminDown takes the session administratively down (diagnostic 7),
// as before a planned stop: the peer must not treat it as a failure.
func (s *Session) SetAdminDown(now time.Time) {
	s.adminDown = true
	s.state = AdminDown
	s.localDiag = DiagAdminDown
	s.detectAt = time.Time{}
	s.nextTx = now
}

// detectTime is the detection time in asynchronous mode (RFC 5880
// 6.8.4): the peer's multiplier times the agreed interval it sends at.
func (s *Session) detectTime() time.Duration {
	return time.Duration(s.remoteMult) * dur(max(s.opRx, s.remoteDesiredTx))
}

// txInterval is the interval between our packets: the slower of ours and
// what the peer asks for (RFC 5880 6.8.7).
func (s *Session) txInterval() time.Duration {
	return dur(max(s.opTx, s.remoteMinRx))
}

// Timer fires the detection timer if due: an Init or Up session goes Down
// with "control detection time expired"; a Down one forgets the peer's
// discriminator.
func (s *Session) Timer(now time.Time) *Event {
	if s.detectAt.IsZero() || now.Before(s.detectAt) {
		return nil
	}
	s.detectAt = time.Time{}
	s.remote = 0
	s.remoteState = Down
	if s.state != Init && s.state != Up {
		return nil
	}
	prev := s.state
	s.state = Down
	s.localDiag = DiagDetectionExpired
	s.remoteAdm = false
	return s.transition(prev, now)
}

// Next is when Timer or Transmit has something to do next.
func (s *Session) Next() time.Time {
	if s.detectAt.IsZero() || s.nextTx.Before(s.detectAt) {
		return s.nextTx
	}
	return s.detectAt
}

// Transmit returns the packet to send now, if one is due (a Final to a
// Poll goes at once), and schedules the next with 0–25 % jitter (10–25 %
// at multiplier 1). Nothing is sent while the peer asks for no packets
// (required min RX 0) unless a Final is owed.
func (s *Session) Transmit(now time.Time) (Packet, bool) {
	final := s.sendFinal
	if !final && now.Before(s.nextTx) {
		return Packet{}, false
	}
	if !final && s.remoteMinRx == 0 {
		s.nextTx = now.Add(dur(s.opTx))
		return Packet{}, false
	}
	s.sendFinal = false
	p := Packet{
		Diag: s.localDiag, State: s.state, DetectMult: uint8(s.timing.Multiplier),
		MyDisc: s.local, YourDisc: s.remote,
		DesiredMinTx: s.advTx, RequiredMinRx: s.advRx,
		Final: final, Poll: s.polling && !final,
	}
	if s.adminDown {
		p.DesiredMinTx = max(s.advTx, us(slowTx))
	}
	if !now.Before(s.nextTx) {
		iv := s.txInterval()
		lo, hi := 0.75, 1.0
		if s.timing.Multiplier == 1 {
			hi = 0.9
		}
		f := lo + (hi-lo)*s.rnd.Float64()
		s.nextTx = now.Add(time.Duration(float64(iv) * f))
	}
	return p, true
}

// Snapshot is what status shows of a session.
type Snapshot struct {
	State, RemoteState    State
	LocalDiag, RemoteDiag Diag
	LocalDisc, RemoteDisc uint32
	// TxInterval is the interval packets are sent at; Detect the
	// detection time (0 while the peer is not heard).
	TxInterval, Detect time.Duration
	RemoteMultiplier   int
	RemoteMinRx        time.Duration
	RemoteDesiredTx    time.Duration
	EverUp             bool
	UpSince, LastDown  time.Time
	Downs              int
	RemoteAdminDown    bool
	Polling            bool
}

// Snapshot reports the session for status.
func (s *Session) Snapshot() Snapshot {
	sn := Snapshot{State: s.state, RemoteState: s.remoteState, LocalDiag: s.localDiag, RemoteDiag: s.remoteDiag,
		LocalDisc: s.local, RemoteDisc: s.remote, TxInterval: s.txInterval(),
		RemoteMultiplier: int(s.remoteMult), RemoteMinRx: dur(s.remoteMinRx), RemoteDesiredTx: dur(s.remoteDesiredTx),
		EverUp: s.everUp, UpSince: s.upSince, LastDown: s.lastDown, Downs: s.downs,
		RemoteAdminDown: s.remoteAdm, Polling: s.polling}
	if !s.detectAt.IsZero() {
		sn.Detect = s.detectTime()
	}
	return sn
}
