package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/vgate-project/vgate/api"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/peering"
	"github.com/vgate-project/vgate/routing"
)

// The refusal classifier works on the errors the config package and
// checkReload really produce, not on hand-written strings.
func TestRefusalReasons(t *testing.T) {
	testConfig := func(t *testing.T) *config.Config {
		c := baseConfig(t)
		c.PrivateKeyFile = "/etc/vgate/private.key"
		if err := c.Validate(); err != nil {
			t.Fatalf("base config: %v", err)
		}
		return c
	}
	tooMany := testConfig(t)
	tooMany.MaxTunnels = 2 // four peerings declared
	overlapping := testConfig(t)
	overlapping.Peerings[1].AddressSpaces = []netip.Prefix{netip.MustParsePrefix("10.1.128.0/17")} // inside local 10.1.0.0/16
	both := testConfig(t)
	both.MaxTunnels = 1
	both.Peerings[2].AddressSpaces = both.Peerings[0].AddressSpaces // another network's 10.2.0.0/16
	invalid := testConfig(t)
	invalid.Peerings[0].Network = ""
	renamed := testConfig(t)
	renamed.Name = "east2"

	for _, tc := range []struct {
		name   string
		err    error
		cfgErr bool // err comes from config validation
		want   []api.RefusalReason
	}{
		{"tunnel limit", tooMany.Validate(), true, []api.RefusalReason{api.RefusedTunnelLimit}},
		{"overlap", overlapping.Validate(), true, []api.RefusalReason{api.RefusedOverlap}},
		{"limit and overlap", both.Validate(), true, []api.RefusalReason{api.RefusedTunnelLimit, api.RefusedOverlap}},
		{"invalid field", invalid.Validate(), true, []api.RefusalReason{api.RefusedInvalid}},
		{"restart", plan.CheckReload(testConfig(t), renamed), false, []api.RefusalReason{api.RefusedRestartRequired}},
		{"limit error", &peering.LimitError{Max: 1, Declared: 2, Refused: []string{"b"}}, false, []api.RefusalReason{api.RefusedTunnelLimit}},
		{"unreadable file", unreadable(t), false, []api.RefusalReason{api.RefusedInvalid}},
		{"apply failure is no refusal", errors.New("tunnel west: create interface vg-west: busy (rolled back)"), false, nil},
		{"nil", nil, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil && tc.want != nil {
				t.Fatal("the case's config unexpectedly validated")
			}
			var errs config.Errors
			if tc.cfgErr && !errors.As(tc.err, &errs) {
				t.Fatalf("want a config.Errors, got %T: %v", tc.err, tc.err)
			}
			if got := refusalReasons(tc.err); !slices.Equal(got, tc.want) {
				t.Fatalf("refusalReasons(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

// reason sets the reason of peering name in ps.
func reason(ps []api.PeeringStatus, name string, r api.DownReason) []api.PeeringStatus {
	for i := range ps {
		if ps[i].Name == name {
			ps[i].Reason = r
		}
	}
	return ps
}

func TestPeeringTransitions(t *testing.T) {
	ps := func(states ...string) []api.PeeringStatus {
		var out []api.PeeringStatus
		for i := 0; i < len(states); i += 2 {
			st := api.PeeringState(states[i+1])
			_, reason := peering.Evaluate(peering.Observation{})
			if st == api.StateUp {
				reason = ""
			}
			out = append(out, api.PeeringStatus{Name: states[i], Network: "n-" + states[i], State: st, Reason: reason})
		}
		return out
	}
	prev := map[string]seenPeering{}
	steps := []struct {
		cur  []api.PeeringStatus
		want []string // peering:from>to
	}{
		// First look: down peerings are not news; an up one is.
		{ps("a", "down", "b", "up"), []string{"b:down>up"}},
		{ps("a", "down", "b", "up"), nil},
		{ps("a", "up", "b", "stale"), []string{"a:down>up", "b:up>stale"}},
		// b removed by a reload, c added already up.
		{ps("a", "up", "c", "up"), []string{"c:down>up"}},
		// b comes back: it starts from down again.
		{ps("a", "up", "b", "down", "c", "up"), nil},
		// b's reason changes while it stays down: news.
		{reason(ps("a", "up", "b", "down", "c", "up"), "b", api.ReasonHandshakeUnanswered), []string{"b:down>down"}},
		{reason(ps("a", "up", "b", "down", "c", "up"), "b", api.ReasonHandshakeUnanswered), nil},
	}
	for i, s := range steps {
		var got []string
		for _, tr := range peeringTransitions(prev, s.cur) {
			got = append(got, fmt.Sprintf("%s:%s>%s", tr.Peering, tr.From, tr.To))
			if tr.To != api.StateUp && tr.Reason == "" {
				t.Errorf("step %d: %s went %s without a reason", i, tr.Peering, tr.To)
			}
		}
		if !slices.Equal(got, s.want) {
			t.Fatalf("step %d: transitions = %q, want %q", i, got, s.want)
		}
	}
}

func TestPrefixLimited(t *testing.T) {
	for _, tc := range []struct {
		n    routing.NeighborStatus
		want bool
	}{
		{routing.NeighborStatus{State: "established"}, false},
		{routing.NeighborStatus{State: "active", DownCode: routing.DownHoldTimerExpired}, false},
		{routing.NeighborStatus{State: "idle", DownCode: routing.DownMaxPrefix, Down: "max-prefix: more than 100 prefixes received"}, true},
		// The text alone decides nothing.
		{routing.NeighborStatus{State: "idle", Down: "max-prefix: more than 100 prefixes received"}, false},
		{routing.NeighborStatus{State: "established", DownCode: routing.DownMaxPrefix}, false},
		{routing.NeighborStatus{State: "idle"}, false},
	} {
		if got := prefixLimited(tc.n); got != tc.want {
			t.Errorf("prefixLimited(%+v) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func unreadable(t *testing.T) error {
	_, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil {
		t.Fatal("loading a missing file succeeded")
	}
	return err
}

func pub(t *testing.T) keys.PublicKey {
	k, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func baseConfig(t *testing.T) *config.Config {
	return &config.Config{
		Name:          "east",
		AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
		TunnelAddress: netip.MustParseAddr("169.254.10.1"),
		ListenPort:    51820,
		MaxTunnels:    10,
		Peerings: []config.Peering{
			{Name: "west", Network: "west", PublicKey: pub(t), Endpoint: "198.18.0.2:51820",
				AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}, TunnelAddress: netip.MustParseAddr("169.254.10.2")},
			{Name: "v6", Network: "v6", PublicKey: pub(t), Endpoint: "[2001:db8::2]:51820",
				AddressSpaces: []netip.Prefix{netip.MustParsePrefix("fd00:3::/48")}},
			{Name: "dialin", Network: "dialin", PublicKey: pub(t),
				AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.4.0.0/16")}},
			{Name: "badname", Network: "badname", PublicKey: pub(t), Endpoint: "nowhere.invalid:51820",
				AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.5.0.0/16")}},
		},
	}
}

// A change of a peering's path (direct UDP or the relay) is reported once,
// with both ends; a first look, a peering without a path and a removed
// peering are not.
func TestPathChanges(t *testing.T) {
	prev := map[string]string{}
	look := func(ps ...api.PeeringStatus) []pathChange { return pathChanges(prev, ps) }
	west := func(path string) api.PeeringStatus {
		return api.PeeringStatus{Name: "west", Network: "west", Path: path}
	}
	hq := api.PeeringStatus{Name: "hq", Network: "hq"} // IPsec: no path
	if got := look(west("direct"), hq); len(got) != 0 {
		t.Fatalf("first look: %v, want none", got)
	}
	if got := look(west("direct"), hq); len(got) != 0 {
		t.Fatalf("no change: %v, want none", got)
	}
	got := look(west("relay"), hq)
	if want := (pathChange{Peering: "west", Network: "west", From: "direct", To: "relay"}); len(got) != 1 || got[0] != want {
		t.Fatalf("to relay: %v, want [%v]", got, want)
	}
	if got := look(west("relay")); len(got) != 0 {
		t.Fatalf("relay again: %v, want none", got)
	}
	if got := look(west("direct")); len(got) != 1 || got[0].From != "relay" || got[0].To != "direct" {
		t.Fatalf("back to direct: %v", got)
	}
	look() // west removed
	if got := look(west("relay")); len(got) != 0 {
		t.Fatalf("re-added peering: %v, want none (a first look)", got)
	}
}

// A tunnel going down, or down for a lower layer than before, is a
// warning; a recovery, or a reason of a higher layer while down (the
// lower layers came back), is info.
func TestLogTransitionLevels(t *testing.T) {
	for _, c := range []struct {
		tr    transition
		level string
	}{
		{transition{From: api.StateUp, To: api.StateDown, Reason: api.ReasonSendBlocked}, "WARN"},
		{transition{From: api.StateUp, To: api.StateStale, Reason: api.ReasonHandshakeStale}, "WARN"},
		{transition{From: api.StateDown, FromReason: api.ReasonProbeDead, To: api.StateDown, Reason: api.ReasonHandshakeUnanswered}, "WARN"},
		{transition{From: api.StateDown, FromReason: api.ReasonHandshakeUnanswered, To: api.StateDown, Reason: api.ReasonProbeDead}, "INFO"},
		{transition{From: api.StateDown, FromReason: api.ReasonProbeDead, To: api.StateDown, Reason: api.ReasonBGPDown}, "INFO"},
		{transition{From: api.StateDown, FromReason: api.ReasonBGPDown, To: api.StateUp}, "INFO"},
	} {
		var buf bytes.Buffer
		logTransition(slog.New(slog.NewTextHandler(&buf, nil)), c.tr)
		if !strings.Contains(buf.String(), "level="+c.level) {
			t.Errorf("%+v logged %q, want level %s", c.tr, buf.String(), c.level)
		}
	}
}
