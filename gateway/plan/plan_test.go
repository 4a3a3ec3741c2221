package plan

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/wgspec"
	"github.com/vgate-project/vgate/routing/spec"
)

func routeStrings(st State) []string {
	var out []string
	for _, r := range st.Routes {
		out = append(out, fmt.Sprintf("%s %s", r.Dst, strings.Join(r.Devices(), ",")))
	}
	return out
}

// TestPlan covers the planner as a whole: every part of the desired state
// for one input, in the combinations start, reload and a RIB change give.
func TestPlan(t *testing.T) {
	pool := &config.PointToSite{ListenPort: 51821, AddressPool: []netip.Prefix{p("172.16.201.0/24")}}
	env := Env{
		Resolve: func(hp string) (netip.AddrPort, error) {
			if strings.HasPrefix(hp, "nowhere") {
				return netip.AddrPort{}, errors.New("no such host")
			}
			return resolveLiteral(hp)
		},
		UnderlayMTU: func(netip.Addr) int { return 1500 },
	}
	learnedPool := []spec.Route{
		// b announces the P2S pool (a hijack the import policy also
		// refuses) and a prefix of its own.
		{Prefix: p("172.16.201.0/24"), Neighbor: "b", Accepted: true, Best: true},
		{Prefix: p("10.4.0.0/16"), Neighbor: "b", Accepted: true, Best: true},
		{Prefix: p("10.66.0.0/16"), Neighbor: "b", Reason: api.RouteRejection{Code: api.RejectOutsideAddressSpaces}},
	}
	tests := []struct {
		name       string
		cfg        func(*testing.T) *config.Config
		in         func(*Input)
		tunnels    []string // name ifname mtu
		routes     []string // present
		notRoutes  []string // absent
		bgp        bool
		probes     map[string]spec.ProbeTarget
		p2s        bool
		problems   int
		allowedOfB []string
	}{
		{
			name:      "static only",
			cfg:       testConfig,
			tunnels:   []string{"west vg-west 1440", "v6 vg-v6 1420", "dialin vg-dialin 1420", "badname vg-badname 1420"},
			routes:    []string{"10.2.0.0/16 vg-west", "169.254.10.2/32 vg-west", "fd00:3::/48 vg-v6", "10.4.0.0/16 vg-dialin"},
			notRoutes: []string{"172.16.201.0/24 vgate-p2s"},
			problems:  1,
		},
		{
			name: "point-to-site pool routed to its device",
			cfg: func(t *testing.T) *config.Config {
				c := testConfig(t)
				c.PointToSite = pool
				return c
			},
			routes:   []string{"172.16.201.0/24 " + wgspec.P2SIfName},
			p2s:      true,
			problems: 1,
		},
		{
			name: "point-to-site down: no pool route",
			cfg: func(t *testing.T) *config.Config {
				c := testConfig(t)
				c.PointToSite = pool
				return c
			},
			in:        func(in *Input) { in.P2SDown = true },
			notRoutes: []string{"172.16.201.0/24 " + wgspec.P2SIfName},
			problems:  1,
		},
		{
			name: "bgp: sessions, probes, learned routes; static (pool) wins",
			cfg: func(t *testing.T) *config.Config {
				c := bgpConfig(t)
				c.PointToSite = pool
				return c
			},
			in:        func(in *Input) { in.Learned = learnedPool },
			tunnels:   []string{"b vg-b 1440", "c vg-c 1440", "s vg-s 1420"},
			routes:    []string{"10.4.0.0/16 vg-b", "172.16.201.0/24 " + wgspec.P2SIfName, "10.3.0.0/16 vg-c", "10.9.0.0/16 vg-s"},
			notRoutes: []string{"172.16.201.0/24 vg-b", "10.66.0.0/16 vg-b"},
			bgp:       true,
			probes:    map[string]spec.ProbeTarget{"b": defaultProbe("b", "169.254.10.2", 65002), "c": defaultProbe("c", "169.254.10.3", 65003)},
			p2s:       true,
			// Accepted routes join AllowedIPs, best or not; rejected ones do not.
			allowedOfB: []string{"169.254.10.2/32", "172.16.201.0/24", "10.4.0.0/16"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{Config: tt.cfg(t), Env: env}
			if tt.in != nil {
				tt.in(&in)
			}
			st := Plan(in)
			if again := Plan(in); !reflect.DeepEqual(st, again) {
				t.Fatalf("Plan is not deterministic:\n%+v\n%+v", st, again)
			}
			if st.TunnelAddress != in.Config.TunnelAddress {
				t.Errorf("tunnel address %s, want %s", st.TunnelAddress, in.Config.TunnelAddress)
			}
			if len(st.Problems) != tt.problems {
				t.Errorf("problems = %v, want %d", st.Problems, tt.problems)
			}
			var tunnels []string
			for _, tu := range st.Tunnels {
				if tu.Kind != KindWireGuard {
					t.Errorf("tunnel %s of kind %q", tu.Name, tu.Kind)
				}
				tunnels = append(tunnels, fmt.Sprintf("%s %s %d", tu.Name, tu.IfName, tu.MTU))
			}
			if tt.tunnels != nil && !slices.Equal(tunnels, tt.tunnels) {
				t.Errorf("tunnels = %q, want %q", tunnels, tt.tunnels)
			}
			routes := routeStrings(st)
			for _, r := range tt.routes {
				if !slices.Contains(routes, r) {
					t.Errorf("route %q missing from %q", r, routes)
				}
			}
			for _, r := range tt.notRoutes {
				if slices.Contains(routes, r) {
					t.Errorf("route %q planned: %q", r, routes)
				}
			}
			if (st.BGP != nil) != tt.bgp {
				t.Fatalf("BGP part = %+v, want present=%v", st.BGP, tt.bgp)
			}
			if st.BGP != nil {
				if !reflect.DeepEqual(st.BGP.Probes, tt.probes) {
					t.Errorf("probes = %v, want %v", st.BGP.Probes, tt.probes)
				}
				want := BGPIdentity{ASN: in.Config.BGP.ASN, RouterID: in.Config.BGP.RouterID, Listen: in.Config.TunnelAddress}
				if st.BGP.Identity != want {
					t.Errorf("identity = %+v, want %+v", st.BGP.Identity, want)
				}
				if len(st.BGP.Speaker.Neighbors) != 2 {
					t.Errorf("neighbors = %+v", st.BGP.Speaker.Neighbors)
				}
			}
			if (st.P2S != nil) != tt.p2s {
				t.Fatalf("P2S part = %+v, want present=%v", st.P2S, tt.p2s)
			}
			if st.P2S != nil && (st.P2S.MTU != 1420 || st.P2S.Config != in.Config.PointToSite) {
				t.Errorf("P2S = %+v", st.P2S)
			}
			if tt.allowedOfB != nil {
				var got []string
				for _, tu := range st.Tunnels {
					if tu.Name == "b" {
						for _, a := range tu.WireGuard.AllowedIPs {
							got = append(got, a.String())
						}
					}
				}
				if !slices.Equal(got, tt.allowedOfB) {
					t.Errorf("AllowedIPs of b = %q, want %q", got, tt.allowedOfB)
				}
			}
		})
	}
}

// The routes view and the plan agree: every route Plan installs that
// comes from static spaces or the pool shows as such in Routes.
func TestRoutesViewMatchesPlan(t *testing.T) {
	cfg := bgpConfig(t)
	cfg.PointToSite = &config.PointToSite{AddressPool: []netip.Prefix{p("172.16.201.0/24")}}
	in := Input{Config: cfg, Env: testEnv()}
	st := Plan(in)
	view := Routes(in, st.Routes, nil)
	bySource := map[string][]string{}
	for _, e := range view {
		bySource[e.Source] = append(bySource[e.Source], e.Prefix.String())
		if (e.Source == "static" || e.Source == "point-to-site") && !e.Installed {
			t.Errorf("%s %s not installed although the kernel has the planned routes", e.Source, e.Prefix)
		}
	}
	if !slices.Contains(bySource["point-to-site"], "172.16.201.0/24") || !slices.Contains(bySource["static"], "10.9.0.0/16") {
		t.Errorf("view = %v", bySource)
	}
}

func defaultProbe(peering, addr string, peerASN uint32) spec.ProbeTarget {
	return spec.ProbeTarget{Address: netip.MustParseAddr(addr), Interval: config.DefaultProbeInterval, Multiplier: config.DefaultProbeMultiplier,
		LocalASN: 65001, PeerASN: peerASN, Interface: IfNamePrefix + peering}
}
