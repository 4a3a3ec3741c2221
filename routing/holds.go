package routing

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	api "github.com/osrg/gobgp/v4/api"
)

// Hold sources: why vgate holds a session down.
const (
	holdMaxPrefix = "max-prefix"
	HoldProbe     = "probe"
	HoldBFD       = "bfd"
)

// SetDown holds the session of neighbor name down for a reason from a
// source (e.g. HoldProbe: its tunnel does not answer), or releases that
// source's hold when reason is "". The session runs when no source holds
// it. Holding a session down withdraws its routes at once.
func (s *Speaker) SetDown(ctx context.Context, name, source, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason == "" {
		s.clearHold(name, source)
	} else {
		if s.holds[name] == nil {
			s.holds[name] = map[string]string{}
		}
		s.holds[name][source] = reason
		s.noteHolds(name)
	}
	return s.syncAdmin(ctx, name)
}

func (s *Speaker) clearHold(name, source string) {
	if h := s.holds[name]; h != nil {
		delete(h, source)
		if len(h) == 0 {
			delete(s.holds, name)
		}
	}
	s.noteHolds(name)
}

// syncAdmin enables or disables name in GoBGP to match its holds.
func (s *Speaker) syncAdmin(ctx context.Context, name string) error {
	n, ok := s.neighbors[name]
	if !ok {
		return nil
	}
	held := len(s.holds[name]) > 0
	s.evMu.Lock()
	pfxCt := s.pfxCt[n.Address]
	s.evMu.Unlock()
	// GoBGP keeps a session it shut for its prefix limit down until it
	// is enabled: released here too when vgate never held it.
	if held == s.disabled[name] && (held || !pfxCt) {
		return nil
	}
	addr := n.Address.String()
	var err error
	if held {
		err = s.bgp.DisablePeer(ctx, &api.DisablePeerRequest{Address: addr, Communication: holdText(s.holds[name])})
	} else {
		// A fresh session, not EnablePeer: GoBGP would keep an enabled
		// session idle for its idle hold time (5 s) first.
		err = s.recreate(ctx, name)
	}
	if err != nil {
		return fmt.Errorf("bgp: neighbor %s: %w", name, err)
	}
	s.disabled[name] = held
	if held {
		// Info: vgate's own action; the cause (a dead tunnel, a prefix
		// limit) is the peering's state, logged at warn by the gateway.
		s.log.Info("bgp session held down", "peering", name, "reason", holdText(s.holds[name]))
	} else {
		s.log.Info("bgp session released", "peering", name)
	}
	return nil
}

func holdText(h map[string]string) string {
	var parts []string
	for _, src := range slices.Sorted(maps.Keys(h)) {
		parts = append(parts, h[src])
	}
	return strings.Join(parts, "; ")
}

// holdForPrefixLimit holds n down for its prefix limit, unless its limit (or
// the neighbor) changed since GoBGP shut it.
func (s *Speaker) holdForPrefixLimit(n Neighbor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.neighbors[n.Name]
	if !ok || cur.Address != n.Address || maxPrefixes(cur) != maxPrefixes(n) {
		return
	}
	if s.holds[n.Name] == nil {
		s.holds[n.Name] = map[string]string{}
	}
	s.holds[n.Name][holdMaxPrefix] = maxPrefixText(maxPrefixes(n))
	s.noteHolds(n.Name)
	if err := s.syncAdmin(s.ctx, n.Name); err != nil && s.ctx.Err() == nil {
		s.log.Error("bgp: hold session down after max-prefix", "peering", n.Name, "error", err)
	}
}

// noteHolds publishes name's holds to the peer-event watcher. Called with
// s.mu held.
func (s *Speaker) noteHolds(name string) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	if c := holdCode(s.holds[name]); c != DownNone {
		s.evHolds[name] = c
		s.evHoldText[name] = holdText(s.holds[name])
	} else {
		delete(s.evHolds, name)
		delete(s.evHoldText, name)
	}
}
