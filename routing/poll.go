package routing

import (
	"fmt"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// pollInterval is how often the speaker compares its counters while
// something happens (after an event, for activeFor); slowPoll is how often
// it compares them when nothing does. An idle speaker is not asked
// anything in between: each comparison lists every peer, which an idle hub
// should not pay for several times a second (docs/routing.md).
const (
	pollInterval = 100 * time.Millisecond
	activeFor    = time.Second
	slowPoll     = 5 * time.Second
)

// wake tells the poll loop that GoBGP reported something. It never
// blocks (it runs on GoBGP's watcher goroutines).
func (s *Speaker) wake() {
	select {
	case s.events <- struct{}{}:
	default:
	}
}

// poll calls OnChange when the speaker's counters move (updates received
// per session, routes received and accepted, paths in the global table),
// and once more when they have settled, so the last change is never
// missed. It compares them every pollInterval for activeFor after an
// event, and every slowPoll otherwise.
func (s *Speaker) poll() {
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	var last string
	dirty, fast := false, true
	activeUntil := time.Now().Add(activeFor)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.events:
			activeUntil = time.Now().Add(activeFor)
			if !fast {
				fast = true
				t.Reset(pollInterval) // Go 1.23+: no stale tick to drain
			}
			continue
		case <-t.C:
		}
		fp := s.fingerprint()
		switch {
		case fp != last:
			last, dirty = fp, true
			s.changed()
		case dirty:
			dirty = false
			s.changed()
		}
		fast = dirty || time.Now().Before(activeUntil)
		if fast {
			t.Reset(pollInterval)
		} else {
			t.Reset(slowPoll)
		}
	}
}

// fingerprint sums up what polling watches. GoBGP lists peers (and their
// families) from maps, in random order, so the parts are sorted: an
// unchanged speaker must give the same string every time, or every poll
// looks like a change and replans the gateway.
func (s *Speaker) fingerprint() string {
	s.fingerprints.Add(1)
	var peers []string
	_ = s.bgp.ListPeer(s.ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		peers = append(peers, peerFingerprint(p))
		s.notePeer(p)
	})
	var tables []string
	for _, f := range []*api.Family{familyV4, familyV6} {
		if t, err := s.bgp.GetTable(s.ctx, &api.GetTableRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f}); err == nil {
			tables = append(tables, fmt.Sprintf("%d/%d", t.NumDestination, t.NumPath))
		}
	}
	return canonicalFingerprint(peers, tables)
}

// peerFingerprint is one peer's part of the fingerprint.
func peerFingerprint(p *api.Peer) string {
	st := p.GetState()
	m := st.GetMessages().GetReceived()
	// Established or not is what matters for routes; the states a
	// down session cycles through (idle, active, connect) are not.
	established := st.GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
	var afs []string
	for _, af := range p.GetAfiSafis() {
		fam := af.GetConfig().GetFamily()
		afs = append(afs, fmt.Sprintf("%d.%d/%d/%d", fam.GetAfi(), fam.GetSafi(), af.GetState().GetReceived(), af.GetState().GetAccepted()))
	}
	slices.Sort(afs)
	return fmt.Sprintf("%s/%v/%d/%d/%v/%s", st.GetNeighborAddress(), established, m.GetUpdate(), m.GetWithdrawUpdate(),
		p.GetTimers().GetState().GetUptime().AsTime().UnixNano(), strings.Join(afs, ","))
}

// canonicalFingerprint joins peer parts in sorted order (the order GoBGP
// lists them in carries no meaning) and then the tables, in their fixed
// order. It sorts peers in place.
func canonicalFingerprint(peers, tables []string) string {
	slices.Sort(peers)
	return strings.Join(peers, ";") + "|" + strings.Join(tables, ";")
}

func (s *Speaker) changed() {
	if s.cfg.OnChange != nil {
		s.cfg.OnChange()
	}
}
