package plan

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/ipsec"
	"github.com/vgate-project/vgate/routing"
)

// The applier reads nothing but the plan: what the running parts are made
// with (listen port, run directory, key, state_dir) is in it.
func TestPlanHostAndParts(t *testing.T) {
	key, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	withAll := func(t *testing.T) *config.Config {
		cfg := bgpConfig(t)
		cfg.PrivateKey, cfg.StateDir, cfg.ControlSocket = key, "/var/lib/vgate", "/run/vgate/vgate.sock"
		cfg.BGP.GracefulRestart = &config.GracefulRestart{}
		cfg.PointToSite = &config.PointToSite{ListenPort: 51821, AddressPool: []netip.Prefix{p("172.16.201.0/24")},
			Enroll: &config.Enroll{Listen: "198.18.0.1:8443", URL: "https://vpn.example:8443/"}}
		return cfg
	}
	host := []netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("10.1.0.1")}
	for _, tt := range []struct {
		name     string
		cfg      func(*testing.T) *config.Config
		host     []netip.Addr
		wantHost Host
		wantP2S  bool
		wantSelf []netip.Addr
		graceful bool
	}{
		{"bgp, graceful restart, point-to-site", withAll, host,
			Host{ListenPort: 51820, RunDir: "/run/vgate", PrivateKey: key, StateDir: "/var/lib/vgate"},
			true, append(slices.Clone(host), netip.MustParseAddr("169.254.10.1")), true},
		{"neither", func(t *testing.T) *config.Config {
			cfg := bgpConfig(t)
			cfg.ControlSocket = "vgate.sock"
			return cfg
		}, nil, Host{ListenPort: 51820, RunDir: "."}, false, nil, false},
	} {
		st := Plan(Input{Config: tt.cfg(t), Env: testEnv(), HostAddrs: tt.host})
		if st.Host != tt.wantHost {
			t.Errorf("%s: Host = %+v, want %+v", tt.name, st.Host, tt.wantHost)
		}
		if (st.P2S != nil) != tt.wantP2S {
			t.Fatalf("%s: P2S = %+v, want one: %v", tt.name, st.P2S, tt.wantP2S)
		}
		if st.P2S != nil {
			if st.P2S.PrivateKey != key || st.P2S.StateDir != "/var/lib/vgate" || !slices.Equal(st.P2S.Self, tt.wantSelf) {
				t.Errorf("%s: P2S key/state_dir/self = %v %q %v, want the gateway's, /var/lib/vgate, %v", tt.name,
					st.P2S.PrivateKey.Public(), st.P2S.StateDir, st.P2S.Self, tt.wantSelf)
			}
			if e := st.Enroll; e == nil || e.StateDir != "/var/lib/vgate" || e.Gateway != "east" {
				t.Errorf("%s: Enroll = %+v, want state_dir /var/lib/vgate and gateway east", tt.name, e)
			}
		}
		if st.BGP == nil || st.BGP.GracefulStop != tt.graceful {
			t.Errorf("%s: BGP = %+v, want GracefulStop %v", tt.name, st.BGP, tt.graceful)
		}
	}
}

// Every route through one peering's tunnel names that peering; the pool
// and a multipath route name none.
func TestRouteOwner(t *testing.T) {
	owners := func(st State) []string {
		var out []string
		for _, r := range st.Routes {
			out = append(out, fmt.Sprintf("%s %s", r.Dst, r.Peering))
		}
		return out
	}
	cfg := bgpConfig(t)
	cfg.PointToSite = &config.PointToSite{ListenPort: 51821, AddressPool: []netip.Prefix{p("172.16.201.0/24")}}
	learned := []routing.Route{
		{Prefix: p("10.4.0.0/16"), Neighbor: "b", Accepted: true, Best: true},
		{Prefix: p("10.5.0.0/16"), Neighbor: "c", Accepted: true, Best: true},
		{Prefix: p("10.6.0.0/16"), Neighbor: "b", Accepted: true, Best: true},
		{Prefix: p("10.6.0.0/16"), Neighbor: "c", Accepted: true},
	}
	single := Plan(Input{Config: cfg, Env: testEnv(), Learned: learned})
	want := []string{"10.3.0.0/16 c", "10.4.0.0/16 b", "10.5.0.0/16 c", "10.6.0.0/16 b", "10.9.0.0/16 s",
		"169.254.10.2/32 b", "169.254.10.3/32 c", "172.16.201.0/24 "}
	if got := owners(single); !slices.Equal(got, want) {
		t.Errorf("owners = %q, want %q", got, want)
	}
	cfg.BGP.Multipath = true
	multi := Plan(Input{Config: cfg, Env: testEnv(), Learned: learned})
	want[3] = "10.6.0.0/16 " // through b and c
	if got := owners(multi); !slices.Equal(got, want) {
		t.Errorf("multipath: owners = %q, want %q", got, want)
	}

	ip := ipsecConfig(t)
	for _, r := range Plan(Input{Config: ip, Env: testEnv()}).Routes {
		if r.Dev == ipsec.IfName && r.Peering != "hq" {
			t.Errorf("IPsec route %s through %s: owner %q, want hq", r.Dst, r.Dev, r.Peering)
		}
	}
}
