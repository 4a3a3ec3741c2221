package plan

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/internal/testcfg"
)

func pub(t *testing.T) keys.PublicKey { return testcfg.PublicKey(t) }

func testConfig(t *testing.T) *config.Config {
	c := testcfg.East(t)
	c.Peerings[0].PersistentKeepalive = 25 * time.Second
	return c
}

func TestDesired(t *testing.T) {
	cfg := testConfig(t)
	env := Env{
		Resolve: func(hp string) (netip.AddrPort, error) {
			if strings.HasPrefix(hp, "nowhere") {
				return netip.AddrPort{}, errors.New("no such host")
			}
			return resolveLiteral(hp)
		},
		UnderlayMTU: func(netip.Addr) int { return 1500 },
	}
	tunnels, routes, errs := desired(cfg, env)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `peering "badname"`) {
		t.Fatalf("errs = %v", errs)
	}
	if len(tunnels) != 4 {
		t.Fatalf("tunnels = %d", len(tunnels))
	}
	w := tunnels[0]
	if w.IfName != "vg-west" || w.MTU != 1440 || w.WireGuard.Endpoint.String() != "198.18.0.2:51820" || w.WireGuard.Keepalive != 25*time.Second {
		t.Fatalf("west = %+v", w)
	}
	// A tunnel address outside the peer's spaces is an AllowedIP and a route.
	if len(w.WireGuard.AllowedIPs) != 2 || w.WireGuard.AllowedIPs[1].String() != "169.254.10.2/32" {
		t.Fatalf("west AllowedIPs = %v", w.WireGuard.AllowedIPs)
	}
	if tunnels[1].MTU != 1420 {
		t.Errorf("IPv6 underlay MTU = %d, want 1420", tunnels[1].MTU)
	}
	if tunnels[2].WireGuard.Endpoint.IsValid() || tunnels[2].MTU != 1420 {
		t.Errorf("dial-in tunnel = %+v", tunnels[2])
	}
	if tunnels[3].WireGuard.Endpoint.IsValid() {
		t.Errorf("unresolvable endpoint kept: %+v", tunnels[3])
	}
	if len(routes) != 5 || routes[0].Dev != "vg-west" || routes[0].Src != cfg.TunnelAddress {
		t.Fatalf("routes = %v", routes)
	}
	cfg.MTU = 1300
	tunnels, _, _ = desired(cfg, env)
	for _, tu := range tunnels {
		if tu.MTU != 1300 {
			t.Fatalf("configured mtu ignored: %+v", tu)
		}
	}
}

func TestCheckReload(t *testing.T) {
	old := testConfig(t)
	tests := []struct {
		field  string
		change func(c *config.Config)
	}{
		{"", func(c *config.Config) { c.Peerings = c.Peerings[:1] }},
		{"", func(c *config.Config) { c.TunnelAddress = netip.MustParseAddr("169.254.10.9") }},
		{"name", func(c *config.Config) { c.Name = "other" }},
		{"listen_port", func(c *config.Config) { c.ListenPort = 51000 }},
		{"control_socket", func(c *config.Config) { c.ControlSocket = "/tmp/x" }},
		{"metrics.listen", func(c *config.Config) { c.Metrics.Listen = ":1" }},
	}
	for _, tt := range tests {
		n := *old
		tt.change(&n)
		err := CheckReload(old, &n)
		if tt.field == "" && err != nil {
			t.Errorf("live change refused: %v", err)
		}
		if tt.field != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.field+":") || !errors.Is(err, ErrRestartRequired)) {
			t.Errorf("%s change: err = %v", tt.field, err)
		}
	}
}
