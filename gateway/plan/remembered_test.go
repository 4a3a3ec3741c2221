package plan

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// A remembered endpoint fills in only a dial-in-only peering's endpoint,
// only for the same public key, and never changes the MTU.
func TestPlanRemembered(t *testing.T) {
	cfg := testConfig(t) // west, v6: configured; dialin: none; badname: does not resolve
	env := Env{
		Resolve: func(hp string) (netip.AddrPort, error) {
			if strings.HasPrefix(hp, "nowhere") {
				return netip.AddrPort{}, errors.New("no such host")
			}
			return resolveLiteral(hp)
		},
		UnderlayMTU: func(netip.Addr) int { return 1500 },
	}
	key := func(name string) RememberedEndpoint {
		for _, p := range cfg.Peerings {
			if p.Name == name {
				return RememberedEndpoint{Peering: name, PublicKey: p.PublicKey}
			}
		}
		t.Fatalf("no peering %s", name)
		return RememberedEndpoint{}
	}
	with := func(r RememberedEndpoint, ep string) RememberedEndpoint {
		r.Endpoint = netip.MustParseAddrPort(ep)
		return r
	}
	other := key("dialin")
	other.PublicKey = pub(t) // the peering's key changed since
	gone := with(key("dialin"), "198.18.0.77:51820")
	gone.Peering = "removed"

	base := Plan(Input{Config: cfg, Env: env})
	for _, tc := range []struct {
		name string
		mem  []RememberedEndpoint
		want map[string]string // peering -> endpoint ("" none)
	}{
		{"nothing remembered", nil,
			map[string]string{"west": "198.18.0.2:51820", "dialin": "", "badname": ""}},
		{"dial-in only gets its endpoint",
			[]RememberedEndpoint{with(key("dialin"), "198.18.0.4:40000")},
			map[string]string{"west": "198.18.0.2:51820", "dialin": "198.18.0.4:40000", "badname": ""}},
		{"configured wins, also when it does not resolve",
			[]RememberedEndpoint{with(key("west"), "198.18.0.9:1"), with(key("badname"), "198.18.0.5:2")},
			map[string]string{"west": "198.18.0.2:51820", "dialin": "", "badname": ""}},
		{"another key, a removed peering: ignored",
			[]RememberedEndpoint{with(other, "198.18.0.4:40000"), gone},
			map[string]string{"dialin": ""}},
		{"IPv6 endpoint",
			[]RememberedEndpoint{with(key("dialin"), "[2001:db8::4]:51820")},
			map[string]string{"dialin": "[2001:db8::4]:51820"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Plan(Input{Config: cfg, Env: env, Remembered: tc.mem})
			for i, tun := range st.Tunnels {
				want, ok := tc.want[tun.Name]
				if !ok {
					continue
				}
				got := ""
				if tun.WireGuard.Endpoint.IsValid() {
					got = tun.WireGuard.Endpoint.String()
				}
				if got != want {
					t.Errorf("%s: endpoint %q, want %q", tun.Name, got, want)
				}
				if tun.MTU != base.Tunnels[i].MTU {
					t.Errorf("%s: MTU %d, without memory %d", tun.Name, tun.MTU, base.Tunnels[i].MTU)
				}
			}
			if len(st.Routes) != len(base.Routes) || len(st.Problems) != len(base.Problems) {
				t.Errorf("routes or problems changed: %d/%d, %d/%d", len(st.Routes), len(base.Routes), len(st.Problems), len(base.Problems))
			}
		})
	}
}
