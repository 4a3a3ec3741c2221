package routing

import (
	"net/netip"

	api "github.com/osrg/gobgp/v4/api"
)

// natPolicies adds a neighbor's NAT statements (ns is its neighbor set):
// on import, GoBGP refuses what its ingress rules translate (the gateway
// takes those routes from the Adj-RIB-In, Import.Seen); on export, what
// overlaps Hide is not advertised to it. Both match overlap exactly
// (protectedEntries).
func natPolicies(n Neighbor, ns string, prefixSet func(string, []prefixEntry), reject func(name, neighborSet, prefixSet string, invert bool), export *api.Policy) {
	var internals []netip.Prefix
	for _, t := range n.Ingress {
		internals = append(internals, t.Internal)
	}
	for _, fam := range []struct {
		is4 bool
		sfx string
	}{{true, "4"}, {false, "6"}} {
		if es := protectedEntries(internals, fam.is4); len(es) > 0 {
			set := "nat-" + n.Name + "-" + fam.sfx
			prefixSet(set, es)
			reject(ns+"-nat-"+fam.sfx, ns, set, false)
		}
		if es := protectedEntries(n.Hide, fam.is4); len(es) > 0 {
			set := "hide-" + n.Name + "-" + fam.sfx
			prefixSet(set, es)
			export.Statements = append(export.Statements, &api.Statement{
				Name: ns + "-hide-" + fam.sfx,
				Conditions: &api.Conditions{
					NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: ns},
					PrefixSet:   &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: set},
				},
				Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
			})
		}
	}
}
