package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"testing"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/peering"
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
		want   []api.RefusalReason
	}{
		{"tunnel limit", tooMany.Validate(), true, []api.RefusalReason{api.RefusedTunnelLimit}},
		{"overlap", overlapping.Validate(), true, []api.RefusalReason{api.RefusedOverlap}},
		{"limit and overlap", both.Validate(), true, []api.RefusalReason{api.RefusedTunnelLimit, api.RefusedOverlap}},
		{"invalid field", invalid.Validate(), true, []api.RefusalReason{api.RefusedInvalid}},
		{"restart", checkReload(testConfig(t), renamed), false, []api.RefusalReason{api.RefusedRestartRequired}},
		{"limit error", &peering.LimitError{Max: 1, Declared: 2, Refused: []string{"b"}}, false, []api.RefusalReason{api.RefusedTunnelLimit}},
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

// A config that did not load counts as invalid when the file could not be
// read (what config.Load returns then), and by its problems otherwise.
func TestLoadRefusalReasons(t *testing.T) {
	unreadable := fmt.Errorf("config: %w", &fs.PathError{Op: "open", Path: "/etc/vgate/vgate.yaml", Err: fs.ErrNotExist})
	if got := loadRefusalReasons(unreadable); !slices.Equal(got, []api.RefusalReason{api.RefusedInvalid}) {
		t.Errorf("unreadable file: %q, want invalid", got)
	}
	if got := loadRefusalReasons(nil); got != nil {
		t.Errorf("nil: %q", got)
	}
	// A file error during a reload's apply is not a refusal.
	if got := refusalReasons(fmt.Errorf("state_dir: %w", unreadable)); got != nil {
		t.Errorf("refusalReasons(apply file error) = %q, want none", got)
	}
}

func TestDownReason(t *testing.T) {
	for s, want := range map[peering.State]api.DownReason{
		peering.StateUp:    "",
		peering.StateDown:  api.ReasonNoHandshake,
		peering.StateStale: api.ReasonHandshakeStale,
	} {
		if got := downReason(s); got != want {
			t.Errorf("downReason(%s) = %q, want %q", s, got, want)
		}
		if want != "" && !slices.Contains(api.DownReasons, want) {
			t.Errorf("%q is not in DownReasons", want)
		}
	}
}

func TestPeeringTransitions(t *testing.T) {
	ps := func(states ...string) []api.PeeringStatus {
		var out []api.PeeringStatus
		for i := 0; i < len(states); i += 2 {
			st := peering.State(states[i+1])
			out = append(out, api.PeeringStatus{Name: states[i], Network: "n-" + states[i], State: peeringState(st), Reason: downReason(st)})
		}
		return out
	}
	prev := map[string]api.PeeringState{}
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

func TestBGPReasons(t *testing.T) {
	ps := []api.PeeringStatus{
		{Name: "up-est", State: api.StateUp},
		{Name: "up-idle", State: api.StateUp},
		{Name: "up-maxpfx", State: api.StateUp},
		{Name: "up-maxpfx-was", State: api.StateUp},
		{Name: "down", State: api.StateDown, Reason: api.ReasonNoHandshake},
		{Name: "static", State: api.StateUp},
	}
	bgpReasons(ps, []api.NeighborStatus{
		{Name: "up-est", State: "established"},
		{Name: "up-idle", State: "active", LastDown: "hold timer expired"},
		{Name: "up-maxpfx", State: "idle", Down: "max-prefix: more than 100 prefixes received"},
		{Name: "up-maxpfx-was", State: "idle", LastDown: "max-prefix: more than 100 prefixes received"},
		{Name: "down", State: "idle"},
	})
	want := map[string]api.DownReason{
		"up-est": "", "up-idle": api.ReasonBGPDown, "up-maxpfx": api.ReasonPrefixLimit, "up-maxpfx-was": api.ReasonPrefixLimit,
		"down": api.ReasonNoHandshake, "static": "",
	}
	for _, p := range ps {
		if p.Reason != want[p.Name] {
			t.Errorf("%s: reason %q, want %q", p.Name, p.Reason, want[p.Name])
		}
	}
}
