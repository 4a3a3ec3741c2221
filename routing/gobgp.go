package routing

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

const (
	importPolicyName = "vgate-import"
	exportPolicyName = "vgate-export"
)

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
	sets, pol, _ := policies(im, neighbors, 0)
	return sets, pol
}

// policies returns the defined sets, the import policy and the export
// policy (AS-path prepending toward neighbors that ask for it; asn is the
// speaker's own).
func policies(im Import, neighbors []Neighbor, asn uint32) ([]*api.DefinedSet, *api.Policy, *api.Policy) {
	var sets []*api.DefinedSet
	var stmts []*api.Statement
	prefixSet := func(name string, es []prefixEntry) {
		ds := &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name}
		for _, e := range es {
			ds.Prefixes = append(ds.Prefixes, &api.Prefix{IpPrefix: e.Prefix.String(), MaskLengthMin: uint32(e.Min), MaskLengthMax: uint32(e.Max)})
		}
		sets = append(sets, ds)
	}
	reject := func(name, neighborSet, prefixSet string, invert bool) {
		t := api.MatchSet_ANY
		if invert {
			t = api.MatchSet_INVERT
		}
		stmts = append(stmts, &api.Statement{
			Name: name,
			Conditions: &api.Conditions{
				NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: neighborSet},
				PrefixSet:   &api.MatchSet{Type: t, Name: prefixSet},
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_REJECT},
		})
	}
	export := &api.Policy{Name: exportPolicyName}
	if len(neighbors) == 0 {
		return nil, &api.Policy{Name: importPolicyName}, export
	}
	all := &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: "peers"}
	for _, n := range neighbors {
		all.List = append(all.List, netip.PrefixFrom(n.Address, n.Address.BitLen()).String())
	}
	sets = append(sets, all)
	prefixSet("any4", []prefixEntry{{netip.MustParsePrefix("0.0.0.0/0"), 0, 32}})
	prefixSet("any6", []prefixEntry{{netip.MustParsePrefix("::/0"), 0, 128}})

	var prot []netip.Prefix
	for _, p := range im.Protected {
		prot = append(prot, p.Prefix)
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
		sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: ns,
			List: []string{netip.PrefixFrom(n.Address, n.Address.BitLen()).String()}})
		if n.Prepend > 0 {
			export.Statements = append(export.Statements, &api.Statement{
				Name:       ns + "-prepend",
				Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: ns}},
				Actions: &api.Actions{
					RouteAction: api.RouteAction_ACCEPT,
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
	return sets, &api.Policy{Name: importPolicyName, Statements: stmts}, export
}

// setPolicy programs im into GoBGP when it changed and re-applies it to the
// routes already received (soft reset in). Called with s.mu held.
func (s *Speaker) setPolicy(ctx context.Context, im Import, neighbors []Neighbor) error {
	sets, imp, exp := policies(im, neighbors, s.cfg.ASN)
	if s.policySet && reflect.DeepEqual(s.importPol, im) && reflect.DeepEqual(policyKey(s.state.Neighbors), policyKey(neighbors)) {
		return nil
	}
	if err := s.bgp.SetPolicies(ctx, &api.SetPoliciesRequest{DefinedSets: sets, Policies: []*api.Policy{imp, exp}}); err != nil {
		return fmt.Errorf("bgp: import policy: %w", err)
	}
	if !s.policySet {
		for _, a := range []struct {
			dir  api.PolicyDirection
			name string
		}{{api.PolicyDirection_IMPORT, importPolicyName}, {api.PolicyDirection_EXPORT, exportPolicyName}} {
			err := s.bgp.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
				Name:          "global",
				Direction:     a.dir,
				Policies:      []*api.Policy{{Name: a.name}},
				DefaultAction: api.RouteAction_ACCEPT,
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
		_ = s.bgp.ResetPeer(ctx, &api.ResetPeerRequest{Address: n.Address.String(), Soft: true, Direction: api.ResetPeerRequest_BOTH})
	}
	return nil
}

type policyNeighbor struct {
	addr    netip.Addr
	prepend int
}

func policyKey(ns []Neighbor) map[string]policyNeighbor {
	m := map[string]policyNeighbor{}
	for _, n := range ns {
		m[n.Name] = policyNeighbor{n.Address, n.Prepend}
	}
	return m
}

// gobgpLogger adapts slog to GoBGP's logger. GoBGP's info records are
// chatty configuration echoes: they go to debug. hook sees every record
// (for session-down reasons); it must not block.
type gobgpLogger struct {
	l    *slog.Logger
	hook func(msg string, fields map[string]any)
}

func (g *gobgpLogger) log(level slog.Level, msg string, fields gobgplog.Fields) {
	if g.hook != nil {
		g.hook(msg, fields)
	}
	if !g.l.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		attrs = append(attrs, strings.ToLower(k), v)
	}
	g.l.Log(context.Background(), level, msg, attrs...)
}

func (g *gobgpLogger) Panic(msg string, f gobgplog.Fields) {
	g.log(slog.LevelError, msg, f)
	panic(msg)
}
func (g *gobgpLogger) Fatal(msg string, f gobgplog.Fields) {
	// Library code never exits the process: report loudly instead.
	g.log(slog.LevelError, "gobgp fatal: "+msg, f)
}
func (g *gobgpLogger) Error(msg string, f gobgplog.Fields) { g.log(slog.LevelError, msg, f) }
func (g *gobgpLogger) Warn(msg string, f gobgplog.Fields) {
	level := slog.LevelWarn
	switch msg {
	case "invalid peer type", "cannot set TTL (255) for TCPListener":
		// Listing an idle peer, and the TTL-security attempt on a
		// listener: noise at every poll or start.
		level = slog.LevelDebug
	}
	g.log(level, msg, f)
}
func (g *gobgpLogger) Info(msg string, f gobgplog.Fields)  { g.log(slog.LevelDebug, msg, f) }
func (g *gobgpLogger) Debug(msg string, f gobgplog.Fields) { g.log(slog.LevelDebug-4, msg, f) }
func (g *gobgpLogger) SetLevel(gobgplog.LogLevel)          {}

// GetLevel reports info (the hook needs session up/down and prefix-limit
// records), or debug when the slog handler wants GoBGP's debug records.
func (g *gobgpLogger) GetLevel() gobgplog.LogLevel {
	if g.l.Enabled(context.Background(), slog.LevelDebug-4) {
		return gobgplog.DebugLevel
	}
	return gobgplog.InfoLevel
}
