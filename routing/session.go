package routing

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	vapi "github.com/vgate-project/vgate/api"
)

// Session timers. Hold time is short for BGP, but the gateway's tunnel
// probe (not BGP) is what detects a dead path within a second; these only
// bound how long a half-dead session lingers.
const (
	holdTime          = 9 // seconds
	keepaliveInterval = 3
	connectRetry      = 1
	idleHoldAfterDown = 1
)

// maxPrefixes is n's prefix limit in effect.
func maxPrefixes(n Neighbor) int {
	if n.MaxPrefixes > 0 {
		return n.MaxPrefixes
	}
	return DefaultMaxPrefixes
}

// sessionEqual reports whether two neighbors need the same GoBGP session
// (Allowed is policy, applied without a reset).
func sessionEqual(n, o Neighbor) bool {
	return n.Name == o.Name && n.Address == o.Address && n.ASN == o.ASN && n.LocalAddress == o.LocalAddress &&
		n.Port == o.Port && n.Passive == o.Passive && maxPrefixes(n) == maxPrefixes(o) && n.GracefulRestart == o.GracefulRestart
}

func onlyPassiveDiffers(a, b Neighbor) bool {
	a.Passive = b.Passive
	return sessionEqual(a, b)
}

func onlyLimitDiffers(a, b Neighbor) bool {
	a.MaxPrefixes = b.MaxPrefixes
	return sessionEqual(a, b)
}

func peerConf(n Neighbor, disabled bool) *api.Peer {
	port := uint32(n.Port)
	if port == 0 {
		port = 179
	}
	tr := &api.Transport{RemotePort: port, PassiveMode: n.Passive}
	if n.LocalAddress.IsValid() {
		tr.LocalAddress = n.LocalAddress.String()
	}
	limit := uint32(maxPrefixes(n))
	var afs []*api.AfiSafi
	for _, f := range []*api.Family{familyV4, familyV6} {
		af := &api.AfiSafi{
			Config:       &api.AfiSafiConfig{Family: f, Enabled: true},
			PrefixLimits: &api.PrefixLimit{Family: f, MaxPrefixes: limit},
		}
		if gr := n.GracefulRestart; gr.RestartTime > 0 {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
			if gr.LongLived > 0 {
				af.LongLivedGracefulRestart = &api.LongLivedGracefulRestart{Config: &api.LongLivedGracefulRestartConfig{
					Enabled: true, RestartTime: uint32(gr.LongLived / time.Second)}}
			}
		}
		afs = append(afs, af)
	}
	var gr *api.GracefulRestart
	if g := n.GracefulRestart; g.RestartTime > 0 {
		// LocalRestarting stays false: GoBGP ties the Forwarding State
		// bit to it, and vgate's forwarding does not survive a restart.
		gr = &api.GracefulRestart{Enabled: true, RestartTime: uint32(g.RestartTime / time.Second), LonglivedEnabled: g.LongLived > 0}
	}
	return &api.Peer{
		GracefulRestart: gr,
		Conf: &api.PeerConf{
			NeighborAddress: n.Address.String(),
			PeerAsn:         n.ASN,
			Description:     n.Name,
			AdminDown:       disabled,
		},
		Transport: tr,
		Timers: &api.Timers{
			Config: &api.TimersConfig{
				ConnectRetry:           connectRetry,
				HoldTime:               holdTime,
				KeepaliveInterval:      keepaliveInterval,
				IdleHoldTimeAfterReset: idleHoldAfterDown,
			},
			// GoBGP arms OpenConfirm's hold timer (and keepalives) from
			// the hold time negotiated by the peer's last session, and
			// every vgate session runs on a fresh GoBGP peer
			// (retry.go): without a seed the first OpenConfirm waits
			// for the peer's KEEPALIVE forever. Our own hold time bounds
			// it (the negotiated one is never longer); an Established
			// session negotiates its own.
			State: &api.TimersState{NegotiatedHoldTime: holdTime, KeepaliveInterval: keepaliveInterval},
		},
		AfiSafis: afs,
	}
}

// resendAfter is when a new session gets its routes once more
// (resendAfterUp).
const resendAfter = time.Second

// peerEvent follows GoBGP's typed peer events (on GoBGP's watcher
// goroutine, which must not wait on mu): it records why sessions go down
// and holds a session down when GoBGP shut it for its prefix limit.
func (s *Speaker) peerEvent(ev *apiutil.WatchEventMessage_PeerEvent, at time.Time) {
	defer func() {
		s.wake()
		s.changed()
	}()
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := ev.Peer.State
	addr := st.NeighborAddress
	s.evMu.Lock()
	s.sess[addr] = s.sess[addr].next(fsmStateName(st.SessionState), at)
	n, ok := s.byAddr[addr]
	s.pfxCt[addr] = st.AdminState == api.PeerState_ADMIN_STATE_PFX_CT
	var d downInfo
	down := false
	if ok {
		d, down = downFromEvent(st, s.evHolds[n.Name], s.evHoldText[n.Name], at)
		if down {
			if d.code == DownMaxPrefix {
				d.text = maxPrefixText(maxPrefixes(n))
			}
			s.lastDown[addr] = d
		}
	}
	if ok {
		s.noteSession(addr, n, st.SessionState == bgp.BGP_FSM_ESTABLISHED, down, d.code) // retry.go
	}
	hold := ok && down && d.code == DownMaxPrefix && s.evHolds[n.Name] != DownMaxPrefix && !s.closed
	if hold {
		s.wg.Add(1)
	}
	resend := ok && st.SessionState == bgp.BGP_FSM_ESTABLISHED && !s.closed
	if resend {
		s.wg.Add(1)
	}
	s.evMu.Unlock()
	if !ok {
		return
	}
	switch {
	case st.SessionState == bgp.BGP_FSM_ESTABLISHED:
		s.log.Info("bgp session established", "peering", n.Name, "address", addr)
	case down:
		attrs := []any{"peering", n.Name, "address", addr, "code", string(d.code), "reason", d.text}
		if d.notif != nil {
			attrs = append(attrs, "notification", d.notif.Direction, "notification_code", d.notif.Code, "notification_subcode", d.notif.Subcode)
		}
		if d.code == DownProbe || d.code == DownAdmin {
			// vgate's own hold: "bgp session held down" said it, and the
			// gateway's tunnel-down line (warn) carries the cause.
			s.log.Debug("bgp session down", attrs...)
		} else {
			s.log.Warn("bgp session down", attrs...)
		}
	}
	if hold {
		// Keep it down until the limit changes; not from this
		// goroutine, which GoBGP owns.
		go func() {
			defer s.wg.Done()
			s.holdForPrefixLimit(n)
		}()
	}
	if resend {
		go func() {
			defer s.wg.Done()
			s.resendAfterUp(addr)
		}()
	}
}

// resendAfterUp sends a new session everything it should have once more,
// resendAfter after it came up (a soft reset out). GoBGP v4.8.0 can miss
// routes that arrive from another session in the moment this one comes
// up: neither its initial table dump nor the update carries them, and
// nothing sends them later (docs/routing.md). Sending the table again is
// cheap (vgate's tables are small) and repeats nothing the peer does not
// already take as a replacement.
func (s *Speaker) resendAfterUp(addr netip.Addr) {
	select {
	case <-s.ctx.Done():
		return
	case <-time.After(resendAfter):
	}
	if err := s.bgp.ResetPeer(s.ctx, &api.ResetPeerRequest{Address: addr.String(), Soft: true,
		Direction: api.ResetPeerRequest_DIRECTION_OUT}); err != nil && s.ctx.Err() == nil {
		s.log.Debug("bgp: resend to a new session", "address", addr, "error", err)
	}
}

// peerStatus fills ns's session state, uptime and advertised count from
// GoBGP's peer p.
func peerStatus(ns *NeighborStatus, p *api.Peer) {
	if st := p.GetState(); st != nil {
		ns.State = sessionState(st.SessionState)
	}
	if t := p.GetTimers().GetState().GetUptime(); t != nil && ns.State == vapi.SessionEstablished {
		ns.Since = t.AsTime()
	}
	for _, af := range p.GetAfiSafis() {
		ns.Advertised += int(af.GetState().GetAdvertised())
	}
}

// noteStatus fills what vgate itself knows of n's session: holds, the
// last down, the next attempt, the rejected total. s.mu is held.
func (s *Speaker) noteStatus(ns *NeighborStatus, n Neighbor) {
	name := n.Name
	ns.RejectedTotal = s.rejectTot[name]
	ns.Recoveries = s.recoveries[name]
	ns.Down = holdText(s.holds[name])
	s.evMu.Lock()
	d := s.lastDown[n.Address]
	s.evMu.Unlock()
	ns.LastDown, ns.LastDownCode, ns.LastDownAt, ns.Notification = d.text, d.code, d.at, d.notif
	ns.Passive = n.Passive
	if ns.State != vapi.SessionEstablished {
		ns.NextAttempt = s.nextAttempt(n.Address)
	}
	switch {
	case len(s.holds[name]) > 0:
		ns.DownCode = holdCode(s.holds[name])
	case ns.State != vapi.SessionEstablished:
		ns.DownCode = d.code
	}
}

// Sessions returns every session like Snapshot's Neighbors, without
// reading a route table: one ListPeer for all of them, for callers that
// run often (Status runs every second). The route counts (received,
// accepted, rejected, advertised, rejected total) are the last Snapshot's:
// GoBGP's own per-session counters do not see vgate's import policy.
func (s *Speaker) Sessions(ctx context.Context) ([]NeighborStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bgp: sessions: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]NeighborStatus, 0, len(s.neighbors))
	for _, name := range slices.Sorted(maps.Keys(s.neighbors)) {
		n := s.neighbors[name]
		ns := NeighborStatus{Name: name, Address: n.Address, ASN: n.ASN, State: vapi.SessionIdle, MaxPrefixes: maxPrefixes(n)}
		s.evMu.Lock()
		if seen, ok := s.sess[n.Address]; ok {
			ns.State = seen.state
			if seen.state == vapi.SessionEstablished {
				ns.Since = seen.since
			}
		}
		s.evMu.Unlock()
		if c, ok := s.counts[name]; ok && ns.State == vapi.SessionEstablished {
			ns.Received, ns.Accepted, ns.Rejected, ns.Advertised = c.Received, c.Accepted, c.Rejected, c.Advertised
		}
		s.noteStatus(&ns, n)
		out = append(out, ns)
	}
	return out, nil
}

// sessionSeen is a session's state as last seen, and since when it has
// been established.
type sessionSeen struct {
	state vapi.SessionState
	since time.Time
}

// next is the session seen in state at time at.
func (o sessionSeen) next(state vapi.SessionState, at time.Time) sessionSeen {
	switch {
	case state != vapi.SessionEstablished:
		return sessionSeen{state: state}
	case o.state == vapi.SessionEstablished && !o.since.IsZero():
		return o
	}
	return sessionSeen{state: state, since: at}
}

// notePeer corrects s.sess from a ListPeer answer (the safety poll, a
// Snapshot), in case an event was missed; GoBGP's own uptime wins there,
// so Sessions and Snapshot agree.
func (s *Speaker) notePeer(p *api.Peer) {
	a, err := netip.ParseAddr(p.GetState().GetNeighborAddress())
	if err != nil {
		if a, err = netip.ParseAddr(p.GetConf().GetNeighborAddress()); err != nil {
			return
		}
	}
	var ns NeighborStatus
	peerStatus(&ns, p)
	s.evMu.Lock()
	seen := s.sess[a].next(ns.State, time.Now())
	if ns.State == vapi.SessionEstablished && !ns.Since.IsZero() {
		seen.since = ns.Since
	}
	s.sess[a] = seen
	s.evMu.Unlock()
}

// fsmStateName names a GoBGP FSM state as sessionState names the API's
// (GoBGP's own conversion: the API enum is the FSM state plus one,
// pkg/server/grpc_server.go).
func fsmStateName(st bgp.FSMState) vapi.SessionState {
	return sessionState(api.PeerState_SessionState(int(st) + 1))
}
