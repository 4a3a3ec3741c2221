package routing

import (
	"regexp"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// A drain through GoBGP's policy API: one global export statement adds
// the GRACEFUL_SHUTDOWN community (65535:0, RFC 8326) and prepends the
// speaker's AS three times, a soft reset out re-sends what it advertises,
// and no session is reset. FRR lowers an eBGP route carrying the
// community to LOCAL_PREF 0 by itself; BIRD keeps 100 until its admin
// adds an import filter for the community (RouterConf.HonorGracefulShutdown),
// which `birdc configure` applies without resetting the session either.
// Removing the statement undoes all of it.
func TestGoBGPDrainInterop(t *testing.T) {
	t.Parallel()
	x := newInterop(t, true, true)
	x.startRouters(nil, nil)
	sp := x.startSpeaker("drain", labPeer{})
	for _, r := range x.routers() {
		x.speakerUp(sp, r, false, 60*time.Second)
	}
	frrIs := func(what string, want func(frrRoute) bool) {
		t.Helper()
		waitFor(t, "FRR: 10.1.0.0/16 "+what, 20*time.Second, func() (bool, string) {
			r, out := x.frrRoute(labSpace)
			return r.Found && want(r), out
		})
	}
	birdIs := func(what string, want func(birdAttrs) bool) {
		t.Helper()
		waitFor(t, "BIRD: 10.1.0.0/16 "+what, 20*time.Second, func() (bool, string) {
			out := x.birdRoute(labSpace)
			a := parseBirdAttrs(out)
			return a.found && want(a), out
		})
	}
	frrIs("as the speaker sends it", func(r frrRoute) bool {
		return r.ASPath == "65001" && r.LocalPref == 100 && r.Community == ""
	})
	birdIs("as the speaker sends it", func(a birdAttrs) bool {
		return a.asPath == "65001" && a.community == ""
	})
	sessions := func() (frrEst int, birdSince string, flops map[string]uint32) {
		n, _ := x.frrNeighbor()
		out, _ := x.bird.Birdc("show", "protocols", "vgate")
		if m := regexp.MustCompile(`(?m)^vgate\s+BGP\s+\S+\s+up\s+(\S+)`).FindStringSubmatch(out); m != nil {
			birdSince = m[1]
		}
		flops = map[string]uint32{}
		for _, r := range x.routers() {
			_, _, p := sp.states(r.tunnel)
			flops[r.name] = p.GetState().GetFlops()
		}
		return n.ConnectionsEstablished, birdSince, flops
	}
	e0, s0, f0 := sessions()

	// No route action: the statement modifies and evaluation goes on
	// (vgate's per-neighbour prepend statements would follow).
	sp.setExportActions(&api.Actions{
		RouteAction: api.RouteAction_ROUTE_ACTION_UNSPECIFIED,
		Community:   &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: []string{"65535:0"}},
		AsPrepend:   &api.AsPrependAction{Asn: labASN, Repeat: 3},
	})
	frrIs("drained: prepended, graceful-shutdown, LOCAL_PREF 0", func(r frrRoute) bool {
		return r.ASPath == "65001 65001 65001 65001" && r.Community == "graceful-shutdown" && r.LocalPref == 0
	})
	birdIs("drained: prepended, (65535,0), LOCAL_PREF left at 100", func(a birdAttrs) bool {
		return a.asPath == "65001 65001 65001 65001" && a.community == "(65535,0)" && a.localPref == "100"
	})
	t.Logf("drained, BIRD without a filter:\n%s", x.birdRoute(labSpace))

	// BIRD's admin honours the community.
	conf := routerConf(birdTunnel, birdASN, "10.9.0.0/16", nil, nil)
	conf.HonorGracefulShutdown = true
	if err := x.bird.Reconfigure(conf.BIRD()); err != nil {
		t.Fatal(err)
	}
	birdIs("drained, with the admin's filter: LOCAL_PREF 0", func(a birdAttrs) bool {
		return a.community == "(65535,0)" && a.localPref == "0"
	})
	if e, s, f := sessions(); e != e0 || s != s0 || f["frr"] != f0["frr"] || f["bird"] != f0["bird"] {
		t.Errorf("a session was reset by the drain: FRR established %d -> %d, BIRD up since %s -> %s, GoBGP flops %v -> %v", e0, e, s0, s, f0, f)
	}

	// Undrain.
	sp.setExportActions(nil)
	frrIs("undrained", func(r frrRoute) bool {
		return r.ASPath == "65001" && r.LocalPref == 100 && r.Community == ""
	})
	birdIs("undrained", func(a birdAttrs) bool {
		return a.asPath == "65001" && a.community == "" && a.localPref == "100"
	})
	if e, s, f := sessions(); e != e0 || s != s0 || f["frr"] != f0["frr"] || f["bird"] != f0["bird"] {
		t.Errorf("a session was reset by the undrain: FRR established %d -> %d, BIRD up since %s -> %s, GoBGP flops %v -> %v", e0, e, s0, s, f0, f)
	}
}

// birdAttrs are the BGP attributes of the speaker's route in BIRD's
// `show route ... all`.
type birdAttrs struct {
	found                        bool
	asPath, community, localPref string
}

var birdAttrRE = regexp.MustCompile(`(?m)^\s+BGP\.(as_path|community|local_pref):\s*(.*?)\s*$`)

func parseBirdAttrs(out string) birdAttrs {
	a := birdAttrs{found: strings.Contains(out, labSpace.String())}
	for _, m := range birdAttrRE.FindAllStringSubmatch(out, -1) {
		switch m[1] {
		case "as_path":
			a.asPath = m[2]
		case "community":
			a.community = m[2]
		case "local_pref":
			a.localPref = m[2]
		}
	}
	return a
}
