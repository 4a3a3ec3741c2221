package routing

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// Fast session recovery. After a session goes down GoBGP idles it for a
// fixed 5 s (its idle hold time) and refuses the peer's connections
// meanwhile, so two ends that went down at different moments can miss
// each other for several rounds. vgate does not wait for that: a session
// that went down while vgate does not hold it is started afresh (the
// GoBGP peer removed and added again, which has no idle hold) after a
// short backoff, retryFirst doubling to retryMax; a session released
// from a hold starts afresh at once. Only one end of a vgate-to-vgate
// session dials (the gateway decides which: gateway/plan), so the fresh
// passive end is listening when the dialing end connects.
const (
	retryFirst = 200 * time.Millisecond
	retryMax   = 2 * time.Second
)

func retryDelay(attempt int) time.Duration {
	d := retryFirst
	for i := 0; i < attempt && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// recreate starts name's session afresh: the GoBGP peer is removed and
// added again (with the neighbor the last Set wanted). s.mu is held.
func (s *Speaker) recreate(ctx context.Context, name string) error {
	n, ok := s.neighbors[name]
	if !ok {
		return nil
	}
	if w, ok := s.want[name]; ok && w.Address == n.Address {
		n = w
	}
	held := len(s.holds[name]) > 0
	if err := s.bgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: n.Address.String()}); err != nil {
		return fmt.Errorf("bgp: restart neighbor %s: %w", name, err)
	}
	s.evMu.Lock()
	s.byAddr[n.Address] = n
	delete(s.sess, n.Address) // a new session: idle until its events say more
	s.evMu.Unlock()
	if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: peerConf(n, held)}); err != nil {
		delete(s.neighbors, name)
		return fmt.Errorf("bgp: restart neighbor %s: %w", name, err)
	}
	s.neighbors[name] = n
	s.disabled[name] = held
	s.log.Debug("bgp session started afresh", "peering", name, "passive", n.Passive)
	return nil
}

// established reports whether n's session is established now.
func (s *Speaker) established(ctx context.Context, n Neighbor) bool {
	up := false
	_ = s.bgp.ListPeer(ctx, &api.ListPeerRequest{Address: n.Address.String()}, func(p *api.Peer) {
		up = p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
	})
	return up
}

// noteSession follows one session's state for the retry schedule (on
// GoBGP's watcher goroutine; s.evMu is held): established clears it; a
// down that vgate did not cause by a hold schedules a fresh start.
func (s *Speaker) noteSession(addr netip.Addr, n Neighbor, established, down bool, code DownCode) {
	r := s.retry[addr]
	switch {
	case established:
		if r != nil {
			if r.timer != nil && r.timer.Stop() {
				s.wg.Done()
			}
			delete(s.retry, addr)
		}
	case down && code != DownProbe && code != DownBFD && code != DownAdmin && code != DownMaxPrefix && !s.closed:
		if r == nil {
			r = &retryState{}
			s.retry[addr] = r
		}
		if r.timer != nil && r.timer.Stop() {
			s.wg.Done()
		}
		d := retryDelay(r.attempt)
		r.attempt++
		r.next = time.Now().Add(d)
		s.wg.Add(1)
		r.timer = time.AfterFunc(d, func() {
			defer s.wg.Done()
			s.retryNow(n)
		})
	}
}

// retryNow starts n's session afresh unless it came up, is held, or
// changed meanwhile.
func (s *Speaker) retryNow(n Neighbor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evMu.Lock()
	if r := s.retry[n.Address]; r != nil {
		r.next, r.timer = time.Time{}, nil
	}
	closed := s.closed
	s.evMu.Unlock()
	cur, ok := s.neighbors[n.Name]
	if closed || !ok || cur.Address != n.Address || len(s.holds[n.Name]) > 0 || s.established(s.ctx, cur) {
		return
	}
	if err := s.recreate(s.ctx, n.Name); err != nil && s.ctx.Err() == nil {
		s.log.Error("bgp: session retry", "peering", n.Name, "error", err)
	}
}

// nextAttempt is when name's session is retried (zero: not scheduled).
func (s *Speaker) nextAttempt(addr netip.Addr) time.Time {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	if r := s.retry[addr]; r != nil && r.timer != nil {
		return r.next
	}
	return time.Time{}
}

// retryState is vgate's own reconnect schedule of a session that went
// down (retry.go).
type retryState struct {
	attempt int
	next    time.Time
	timer   *time.Timer
}
