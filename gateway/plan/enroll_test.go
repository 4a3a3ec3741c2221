package plan

import (
	"net/netip"
	"testing"

	"github.com/vgate-project/vgate/gateway/config"
)

// The enrollment listener and the P2S relay are in the plan: both only
// while point-to-site runs.
func TestPlanEnrollAndP2SRelay(t *testing.T) {
	env := Env{Resolve: resolveLiteral, UnderlayMTU: func(netip.Addr) int { return 1500 }}
	withP2S := func(t *testing.T) *config.Config {
		cfg := testConfig(t)
		cfg.PointToSite = &config.PointToSite{ListenPort: 51821, AddressPool: []netip.Prefix{netip.MustParsePrefix("172.16.201.0/24")},
			Enroll: &config.Enroll{Listen: "198.18.0.1:8443", URL: "https://vpn.example:8443/"},
			Relay:  &config.PeerRelay{URL: "https://relay.example/", Pin: "abc"}}
		return cfg
	}
	for _, tt := range []struct {
		name       string
		cfg        func(*testing.T) *config.Config
		down       bool
		wantEnroll *Enroll
		wantRelay  RelayTarget
	}{
		{"no point-to-site", testConfig, false, nil, RelayTarget{}},
		{"point-to-site with enroll and relay", withP2S, false, &Enroll{Listen: "198.18.0.1:8443", URL: "https://vpn.example:8443/", Gateway: "east"}, RelayTarget{URL: "https://relay.example/", Pin: "abc"}},
		{"point-to-site down", withP2S, true, nil, RelayTarget{}},
	} {
		st := Plan(Input{Config: tt.cfg(t), Env: env, P2SDown: tt.down})
		if (st.Enroll == nil) != (tt.wantEnroll == nil) || st.Enroll != nil && *st.Enroll != *tt.wantEnroll {
			t.Errorf("%s: Enroll = %+v, want %+v", tt.name, st.Enroll, tt.wantEnroll)
		}
		var relay RelayTarget
		if st.P2S != nil {
			relay = st.P2S.Relay
		}
		if relay != tt.wantRelay {
			t.Errorf("%s: P2S relay = %+v, want %+v", tt.name, relay, tt.wantRelay)
		}
	}
}
