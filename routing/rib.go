package routing

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	vapi "github.com/vgate-project/vgate/api"
)

// NeighborStatus is one session as `vgate bgp` shows it: the control
// API's type.
type NeighborStatus = vapi.NeighborStatus

// RIB is a snapshot: every received route and every session.
type RIB struct {
	Routes    []Route          `json:"routes"`
	Neighbors []NeighborStatus `json:"neighbors"`
}

// Snapshot returns every received route (accepted or rejected, with the
// best path marked) and every session. It reads every route table: call
// Sessions where the sessions are enough.
func (s *Speaker) Snapshot(ctx context.Context) (RIB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshots.Add(1)
	// Neighbors is never nil: the control API shows an empty list.
	rib := RIB{Neighbors: make([]NeighborStatus, 0, len(s.neighbors))}
	clear(s.counts) // neighbors gone since are forgotten
	byAddr := map[netip.Addr]string{}
	for _, name := range slices.Sorted(maps.Keys(s.neighbors)) {
		byAddr[s.neighbors[name].Address] = name
	}

	type key struct {
		name string
		p    netip.Prefix
	}
	idx := map[key]int{}
	for _, name := range slices.Sorted(maps.Keys(s.neighbors)) {
		n := s.neighbors[name]
		ns := NeighborStatus{Name: name, Address: n.Address, ASN: n.ASN, State: vapi.SessionIdle, MaxPrefixes: maxPrefixes(n)}
		err := s.bgp.ListPeer(ctx, &api.ListPeerRequest{Address: n.Address.String(), EnableAdvertised: true}, func(p *api.Peer) {
			peerStatus(&ns, p)
			s.notePeer(p)
		})
		if err != nil {
			return RIB{}, fmt.Errorf("bgp: neighbor %s: %w", name, err)
		}
		seen := s.rejectSeen[name]
		if seen == nil {
			seen = map[netip.Prefix]bool{}
			s.rejectSeen[name] = seen
		}
		now := map[netip.Prefix]bool{}
		for _, f := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
			// Not EnableFiltered: GoBGP would apply the import policy by
			// writing into the live Adj-RIB-In, which races with its own
			// route watchers (the events poll waits for). The policy in
			// GoBGP is importSets of s.importPol, whose Check is its
			// reference semantics (policy.go), so Check decides here.
			err := s.bgp.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: n.Address.String(), Family: f}, func(nlri bgp.NLRI, paths []*apiutil.Path) {
				pfx, ok := nlriPrefix(nlri)
				if !ok {
					return
				}
				seen, translated, rej := s.importPol.Decide(name, pfx)
				accepted := rej.Code == ""
				for _, p := range paths {
					r := routeFrom(pfx, name, p)
					r.Accepted = accepted
					if translated {
						// GoBGP refused it (policies): it is never
						// GoBGP's best; the only path to its seen prefix.
						r.Prefix, r.PeerPrefix, r.Best = seen, pfx, accepted
					}
					if !r.Accepted {
						r.Reason = rej
						now[pfx] = true
					}
					idx[key{name, pfx}] = len(rib.Routes)
					rib.Routes = append(rib.Routes, r)
					ns.Received++
					if r.Accepted {
						ns.Accepted++
					} else {
						ns.Rejected++
					}
				}
			})
			if err != nil && ns.State == vapi.SessionEstablished {
				return RIB{}, fmt.Errorf("bgp: routes of %s: %w", name, err)
			}
		}
		for p := range now {
			if !seen[p] {
				s.rejectTot[name]++
			}
		}
		s.rejectSeen[name] = now
		s.noteStatus(&ns, n)
		s.counts[name] = routeCounts{ns.Received, ns.Accepted, ns.Rejected, ns.Advertised}
		rib.Neighbors = append(rib.Neighbors, ns)
	}
	for _, f := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		err := s.bgp.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f}, func(nlri bgp.NLRI, paths []*apiutil.Path) {
			pfx, ok := nlriPrefix(nlri)
			if !ok {
				return
			}
			for _, p := range paths {
				if !p.Best {
					continue
				}
				name, ok := byAddr[p.PeerAddress]
				if !ok {
					continue // originated here
				}
				if i, ok := idx[key{name, pfx}]; ok {
					rib.Routes[i].Best = true
				}
			}
		})
		if err != nil {
			return RIB{}, fmt.Errorf("bgp: best paths: %w", err)
		}
	}
	slices.SortFunc(rib.Routes, func(a, b Route) int {
		if c := a.Prefix.Compare(b.Prefix); c != 0 {
			return c
		}
		return strings.Compare(a.Neighbor, b.Neighbor)
	})
	return rib, nil
}

func nlriPrefix(n bgp.NLRI) (netip.Prefix, bool) {
	if p, ok := n.(*bgp.IPAddrPrefix); ok && p.Prefix.IsValid() {
		return p.Prefix, true
	}
	return netip.Prefix{}, false
}

func routeFrom(pfx netip.Prefix, name string, p *apiutil.Path) Route {
	r := Route{Prefix: pfx, Neighbor: name}
	if p.Age != 0 {
		r.Since = time.Unix(p.Age, 0)
	}
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeAsPath:
			for _, seg := range a.Value {
				r.ASPath = append(r.ASPath, seg.GetAS()...)
			}
		case *bgp.PathAttributeNextHop:
			r.NextHop = a.Value
		case *bgp.PathAttributeMpReachNLRI:
			r.NextHop = a.Nexthop
		}
	}
	return r
}
