package gateway

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vgate-project/vgate/api"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/internal/testcfg"
	"github.com/vgate-project/vgate/peering"
)

// The refusal classifier works on the errors the config package and
// checkReload really produce, not on hand-written strings.
func TestRefusalReasons(t *testing.T) {
	testConfig := func(t *testing.T) *config.Config {
		c := testcfg.East(t)
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

func unreadable(t *testing.T) error {
	_, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil {
		t.Fatal("loading a missing file succeeded")
	}
	return err
}
