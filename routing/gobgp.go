package routing

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"

	api "github.com/osrg/gobgp/v4/api"
)

const (
	importPolicyName = "vgate-import"
	exportPolicyName = "vgate-export"
)

// gracefulShutdownPref is the LOCAL_PREF of a route received with
// GRACEFUL_SHUTDOWN: RFC 8326 suggests 0, which GoBGP's policy cannot set
// (it reads 0 as "no action"); 1 is below the default 100 all the same.
const gracefulShutdownPref = 1

// policyDefinition renders an Import as GoBGP defined sets and one global
// import policy (default accept) whose statements each reject:
//
//   - from any neighbor: a prefix overlapping a protected prefix;
//   - from a neighbor with an allow-list: a prefix outside it, or any prefix
//     of a family its allow-list does not mention.
//
// GoBGP prefix sets hold one family each and an inverted match never
// matches the other family, hence one set per family and the "any" sets.
func policyDefinition(im Import, neighbors []Neighbor) ([]*api.DefinedSet, *api.Policy) {
	sets, pol, _ := policies(im, neighbors, 0, false)
	return sets, pol
}

// policies returns the defined sets, the import policy and the export
// policy (AS-path prepending toward neighbors that ask for it; asn is the
// speaker's own).
//
// Draining, the export policy's first statement adds GRACEFUL_SHUTDOWN
// and prepends DrainPrepend copies of asn for every neighbor; it has no
// route action, so GoBGP applies it and goes on to the per-neighbor
// prepends (an accept would end the evaluation). The import policy always
// lowers a route carrying GRACEFUL_SHUTDOWN to gracefulShutdownPref, as
// RFC 8326 asks of a receiver, so a draining peer's paths lose to any
// other.
func policies(im Import, neighbors []Neighbor, asn uint32, drain bool) ([]*api.DefinedSet, *api.Policy, *api.Policy) {
	var sets []*api.DefinedSet
	var stmts []*api.Statement
	prefixSet := func(name string, es []prefixEntry) {
		ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: name}
		for _, e := range es {
			ds.Prefixes = append(ds.Prefixes, &api.Prefix{IpPrefix: e.Prefix.String(), MaskLengthMin: uint32(e.Min), MaskLengthMax: uint32(e.Max)})
		}
		sets = append(sets, ds)
	}
	reject := func(name, neighborSet, prefixSet string, invert bool) {
		t := api.MatchSet_TYPE_ANY
		if invert {
			t = api.MatchSet_TYPE_INVERT
		}
		stmts = append(stmts, &api.Statement{
			Name: name,
			Conditions: &api.Conditions{
				NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: neighborSet},
				PrefixSet:   &api.MatchSet{Type: t, Name: prefixSet},
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
		})
	}
	export := &api.Policy{Name: exportPolicyName}
	if len(neighbors) == 0 {
		return nil, &api.Policy{Name: importPolicyName}, export
	}
	all := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: "peers"}
	for _, n := range neighbors {
		all.List = append(all.List, netip.PrefixFrom(n.Address, n.Address.BitLen()).String())
	}
	sets = append(sets, all)
	sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_COMMUNITY, Name: "graceful-shutdown",
		List: []string{GracefulShutdown}})
	if drain {
		export.Statements = append(export.Statements, &api.Statement{
			Name:       "drain",
			Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: "peers"}},
			Actions: &api.Actions{
				RouteAction: api.RouteAction_ROUTE_ACTION_UNSPECIFIED,
				Community:   &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: []string{GracefulShutdown}},
				AsPrepend:   &api.AsPrependAction{Asn: asn, Repeat: DrainPrepend},
			},
		})
	}
	prefixSet("any4", []prefixEntry{{netip.MustParsePrefix("0.0.0.0/0"), 0, 32}})
	prefixSet("any6", []prefixEntry{{netip.MustParsePrefix("::/0"), 0, 128}})

	var prot []netip.Prefix
	for _, p := range im.Protected {
		prot = append(prot, p.Prefix)
	}
	// Ingress externals: another neighbor's routes there are refused, and
	// the owner's own there were not translated (ambiguous).
	for _, ts := range im.Ingress {
		for _, t := range ts {
			prot = append(prot, t.External.Masked())
		}
	}
	for _, fam := range []struct {
		is4 bool
		sfx string
	}{{true, "4"}, {false, "6"}} {
		if es := protectedEntries(prot, fam.is4); len(es) > 0 {
			prefixSet("protected"+fam.sfx, es)
			reject("protected"+fam.sfx, "peers", "protected"+fam.sfx, false)
		}
	}
	for _, n := range neighbors {
		ns := "peer-" + n.Name
		sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: ns,
			List: []string{netip.PrefixFrom(n.Address, n.Address.BitLen()).String()}})
		natPolicies(n, ns, prefixSet, reject, export) // nat.go: before the prepend's accept
		if n.Prepend > 0 {
			export.Statements = append(export.Statements, &api.Statement{
				Name:       ns + "-prepend",
				Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: ns}},
				Actions: &api.Actions{
					RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
					AsPrepend:   &api.AsPrependAction{Asn: asn, Repeat: uint32(n.Prepend)},
				},
			})
		}
		allowed, ok := im.Allowed[n.Name]
		if !ok {
			continue
		}
		for _, fam := range []struct {
			is4 bool
			sfx string
		}{{true, "4"}, {false, "6"}} {
			es := allowedEntries(allowed, fam.is4)
			if len(es) == 0 {
				reject(ns+"-no-ipv"+fam.sfx, ns, "any"+fam.sfx, false)
				continue
			}
			set := "allow-" + n.Name + "-" + fam.sfx
			prefixSet(set, es)
			reject(ns+"-outside-"+fam.sfx, ns, set, true)
		}
	}
	stmts = append(stmts, &api.Statement{
		Name: "graceful-shutdown",
		Conditions: &api.Conditions{
			NeighborSet:  &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: "peers"},
			CommunitySet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: "graceful-shutdown"},
		},
		Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_UNSPECIFIED, LocalPref: &api.LocalPrefAction{Value: gracefulShutdownPref}},
	})
	return sets, &api.Policy{Name: importPolicyName, Statements: stmts}, export
}

// setPolicy programs im into GoBGP when it changed and re-applies it to the
// routes already received (soft reset in). Called with s.mu held.
func (s *Speaker) setPolicy(ctx context.Context, im Import, neighbors []Neighbor, drain bool) error {
	sets, imp, exp := policies(im, neighbors, s.cfg.ASN, drain)
	if s.policySet && reflect.DeepEqual(s.importPol, im) && reflect.DeepEqual(policyKey(s.state.Neighbors), policyKey(neighbors)) && s.state.Drain == drain {
		return nil
	}
	if err := s.bgp.SetPolicies(ctx, &api.SetPoliciesRequest{DefinedSets: sets, Policies: []*api.Policy{imp, exp}}); err != nil {
		return fmt.Errorf("bgp: import policy: %w", err)
	}
	if !s.policySet {
		for _, a := range []struct {
			dir  api.PolicyDirection
			name string
		}{{api.PolicyDirection_POLICY_DIRECTION_IMPORT, importPolicyName}, {api.PolicyDirection_POLICY_DIRECTION_EXPORT, exportPolicyName}} {
			err := s.bgp.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
				Name:          "global",
				Direction:     a.dir,
				Policies:      []*api.Policy{{Name: a.name}},
				DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
			}})
			if err != nil {
				return fmt.Errorf("bgp: policy assignment %s: %w", a.name, err)
			}
		}
		s.policySet = true
	}
	s.importPol = im
	for _, n := range s.neighbors {
		// Only established sessions have routes to re-filter.
		_ = s.bgp.ResetPeer(ctx, &api.ResetPeerRequest{Address: n.Address.String(), Soft: true, Direction: api.ResetPeerRequest_DIRECTION_BOTH})
	}
	return nil
}

type policyNeighbor struct {
	addr    netip.Addr
	prepend int
	ingress []Translation
	hide    []netip.Prefix
}

func policyKey(ns []Neighbor) map[string]policyNeighbor {
	m := map[string]policyNeighbor{}
	for _, n := range ns {
		m[n.Name] = policyNeighbor{n.Address, n.Prepend, n.Ingress, n.Hide}
	}
	return m
}

// gobgpHandler is the slog handler GoBGP logs through: it only shapes
// GoBGP's records for vgate's log (nothing is decided from them; sessions
// are followed through peer events). GoBGP's info records are chatty
// configuration echoes and go to debug; its debug records below that.
type gobgpHandler struct {
	h slog.Handler
}

func newGoBGPLogger(l *slog.Logger) *slog.Logger {
	return slog.New(gobgpHandler{h: l.Handler()})
}

func gobgpLevel(l slog.Level) slog.Level {
	switch {
	case l >= slog.LevelWarn:
		return l
	case l >= slog.LevelInfo:
		return slog.LevelDebug
	}
	return slog.LevelDebug - 4
}

func (g gobgpHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return g.h.Enabled(ctx, gobgpLevel(l))
}

func (g gobgpHandler) Handle(ctx context.Context, r slog.Record) error {
	level := gobgpLevel(r.Level)
	switch r.Message {
	case "invalid peer type", "cannot set TTL (255) for TCPListener", "Closed an accepted connection":
		// Listing an idle peer, the TTL-security attempt on a listener,
		// a neighbor dialing a held-down session: noise.
		level = slog.LevelDebug
	}
	if !g.h.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		a.Key = strings.ToLower(a.Key)
		out.AddAttrs(a)
		return true
	})
	return g.h.Handle(ctx, out)
}

func (g gobgpHandler) WithAttrs(as []slog.Attr) slog.Handler {
	low := make([]slog.Attr, len(as))
	for i, a := range as {
		a.Key = strings.ToLower(a.Key)
		low[i] = a
	}
	return gobgpHandler{h: g.h.WithAttrs(low)}
}

func (g gobgpHandler) WithGroup(name string) slog.Handler {
	return gobgpHandler{h: g.h.WithGroup(name)}
}
