package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/peering"
	"github.com/vgate-project/vgate/routing"
)

// The refusal classifier works on the errors the config package and
// checkReload really produce, not on hand-written strings.
func TestRefusalReasons(t *testing.T) {
	testConfig := func(t *testing.T) *config.Config {
		c := testConfig(t)
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
		want   []string
	}{
		{"tunnel limit", tooMany.Validate(), true, []string{RefusedTunnelLimit}},
		{"overlap", overlapping.Validate(), true, []string{RefusedOverlap}},
		{"limit and overlap", both.Validate(), true, []string{RefusedTunnelLimit, RefusedOverlap}},
		{"invalid field", invalid.Validate(), true, []string{RefusedInvalid}},
		{"restart", checkReload(testConfig(t), renamed), false, []string{RefusedRestartRequired}},
		{"limit error", &peering.LimitError{Max: 1, Declared: 2, Refused: []string{"b"}}, false, []string{RefusedTunnelLimit}},
		{"unreadable file", fmt.Errorf("config: %w", errors.New("open /etc/vgate/vgate.yaml: no such file")), false, []string{RefusedInvalid}},
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

func TestDownReason(t *testing.T) {
	for s, want := range map[peering.State]string{
		peering.StateUp:    "",
		peering.StateDown:  ReasonNoHandshake,
		peering.StateStale: ReasonHandshakeStale,
	} {
		if got := downReason(s); got != want {
			t.Errorf("downReason(%s) = %q, want %q", s, got, want)
		}
		if want != "" && !slices.Contains(DownReasons, want) {
			t.Errorf("%q is not in DownReasons", want)
		}
	}
}

func TestPeeringTransitions(t *testing.T) {
	ps := func(states ...string) []PeeringStatus {
		var out []PeeringStatus
		for i := 0; i < len(states); i += 2 {
			st := peering.State(states[i+1])
			out = append(out, PeeringStatus{Name: states[i], Network: "n-" + states[i], State: st, Reason: downReason(st)})
		}
		return out
	}
	prev := map[string]peering.State{}
	steps := []struct {
		cur  []PeeringStatus
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
	}
	for i, s := range steps {
		var got []string
		for _, tr := range peeringTransitions(prev, s.cur) {
			got = append(got, fmt.Sprintf("%s:%s>%s", tr.Peering, tr.From, tr.To))
			if tr.To != peering.StateUp && tr.Reason == "" {
				t.Errorf("step %d: %s went %s without a reason", i, tr.Peering, tr.To)
			}
		}
		if !slices.Equal(got, s.want) {
			t.Fatalf("step %d: transitions = %q, want %q", i, got, s.want)
		}
	}
}

func TestBGPReasons(t *testing.T) {
	ps := []PeeringStatus{
		{Name: "up-est", State: peering.StateUp},
		{Name: "up-idle", State: peering.StateUp},
		{Name: "up-maxpfx", State: peering.StateUp},
		{Name: "up-maxpfx-was", State: peering.StateUp},
		{Name: "down", State: peering.StateDown, Reason: ReasonNoHandshake},
		{Name: "static", State: peering.StateUp},
	}
	bgpReasons(ps, []routing.NeighborStatus{
		{Name: "up-est", State: "established"},
		{Name: "up-idle", State: "active", LastDown: "hold timer expired"},
		{Name: "up-maxpfx", State: "idle", Down: "max-prefix: more than 100 prefixes received"},
		{Name: "up-maxpfx-was", State: "idle", LastDown: "max-prefix: more than 100 prefixes received"},
		{Name: "down", State: "idle"},
	})
	want := map[string]string{
		"up-est": "", "up-idle": ReasonBGPDown, "up-maxpfx": ReasonPrefixLimit, "up-maxpfx-was": ReasonPrefixLimit,
		"down": ReasonNoHandshake, "static": "",
	}
	for _, p := range ps {
		if p.Reason != want[p.Name] {
			t.Errorf("%s: reason %q, want %q", p.Name, p.Reason, want[p.Name])
		}
	}
}
