package routing

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/google/uuid"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Set moves the speaker to st: originated prefixes, the import policy and
// the sessions, touching only what differs. A session whose parameters
// change is re-created; a change of Allowed or Protected re-applies the
// policy to what is already received without a reset.
func (s *Speaker) Set(ctx context.Context, st State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error

	// Neighbors.
	want := map[string]Neighbor{}
	for _, n := range st.Neighbors {
		want[n.Name] = n
	}
	s.want = want
	for name, old := range s.neighbors {
		n, ok := want[name]
		if ok && sessionEqual(n, old) {
			continue
		}
		if ok && onlyPassiveDiffers(old, n) && s.established(ctx, old) {
			// Which end dials matters only for the next connection:
			// the running session stays, and the next fresh start
			// (recreate) takes the new mode.
			continue
		}
		if ok && onlyLimitDiffers(old, n) {
			// A new prefix limit applies to the running session (GoBGP
			// checks it at once); a raised one releases a max-prefix hold.
			s.clearHold(name, holdMaxPrefix)
			s.evMu.Lock()
			s.byAddr[n.Address] = n // a peer event may arrive during UpdatePeer
			s.evMu.Unlock()
			if _, err := s.bgp.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: peerConf(n, s.disabled[name])}); err != nil {
				errs = append(errs, fmt.Errorf("bgp: update neighbor %s: %w", name, err))
				continue
			}
			s.neighbors[name] = n
			if err := s.syncAdmin(ctx, name); err != nil {
				errs = append(errs, err)
			}
			s.log.Info("bgp neighbor prefix limit changed", "peering", name, "max_prefixes", maxPrefixes(n))
			continue
		}
		if err := s.bgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: old.Address.String()}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: remove neighbor %s: %w", name, err))
		}
		delete(s.neighbors, name)
		delete(s.disabled, name)
		s.evMu.Lock()
		delete(s.sess, old.Address)
		s.evMu.Unlock()
		if n, ok := want[name]; !ok || maxPrefixes(n) != maxPrefixes(old) {
			s.clearHold(name, holdMaxPrefix)
		}
		if _, ok := want[name]; !ok {
			delete(s.holds, name)
			s.noteHolds(name)
			delete(s.rejectSeen, name)
			delete(s.rejectTot, name)
			delete(s.recoveries, name)
		}
		s.log.Info("bgp neighbor removed", "peering", name, "address", old.Address)
	}

	// Policy before new sessions, so nothing is accepted unfiltered.
	im := Import{Protected: st.Protected, Allowed: map[string][]netip.Prefix{}}
	for _, n := range st.Neighbors {
		if n.Allowed != nil {
			im.Allowed[n.Name] = n.Allowed
		}
		if len(n.Ingress) > 0 {
			if im.Ingress == nil {
				im.Ingress = map[string][]Translation{}
			}
			im.Ingress[n.Name] = n.Ingress
		}
	}
	if err := s.setPolicy(ctx, im, st.Neighbors, st.Drain); err != nil {
		errs = append(errs, err)
	}

	for _, n := range st.Neighbors {
		if _, ok := s.neighbors[n.Name]; ok {
			continue
		}
		s.evMu.Lock()
		s.byAddr[n.Address] = n
		s.evMu.Unlock()
		held := len(s.holds[n.Name]) > 0
		if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: peerConf(n, held)}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: add neighbor %s (%s AS%d): %w", n.Name, n.Address, n.ASN, err))
			continue
		}
		s.neighbors[n.Name] = n
		s.disabled[n.Name] = held
		s.log.Info("bgp neighbor added", "peering", n.Name, "address", n.Address, "asn", n.ASN, "max_prefixes", maxPrefixes(n))
	}
	s.evMu.Lock()
	for a, n := range s.byAddr {
		if cur, ok := s.neighbors[n.Name]; !ok || cur.Address != a {
			delete(s.byAddr, a)
			delete(s.lastDown, a)
			delete(s.pfxCt, a)
		}
	}
	s.evMu.Unlock()

	// Originated prefixes.
	wantOrig := map[netip.Prefix]bool{}
	for _, p := range st.Originate {
		wantOrig[p.Masked()] = true
	}
	for p, id := range s.originated {
		if wantOrig[p] {
			continue
		}
		if err := s.bgp.DeletePath(apiutil.DeletePathRequest{UUIDs: []uuid.UUID{id}}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: withdraw %s: %w", p, err))
			continue
		}
		delete(s.originated, p)
	}
	for _, p := range slices.SortedFunc(maps.Keys(wantOrig), netip.Prefix.Compare) {
		if _, ok := s.originated[p]; ok {
			continue
		}
		path, err := originPath(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: originate %s: %w", p, err))
			continue
		}
		resp, err := s.bgp.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
		if err == nil && len(resp) != 1 {
			err = fmt.Errorf("%d results for one path", len(resp))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: originate %s: %w", p, err))
			continue
		}
		s.originated[p] = resp[0].UUID
	}
	s.state = st
	return errors.Join(errs...)
}

func bgpFamily(p netip.Prefix) bgp.Family {
	if p.Addr().Is4() {
		return bgp.RF_IPv4_UC
	}
	return bgp.RF_IPv6_UC
}

// originPath is p as a locally originated path: origin IGP, next hop
// "self" (the unspecified address, which GoBGP replaces per session).
func originPath(p netip.Prefix) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, err
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if p.Addr().Is4() {
		nh, err := bgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		mp, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, []bgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	return &apiutil.Path{Family: bgpFamily(p), Nlri: nlri, Attrs: attrs}, nil
}
