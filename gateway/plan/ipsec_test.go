package plan

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/route"
	"github.com/vgate-project/vgate/ipsec"
	"github.com/vgate-project/vgate/routing/spec"
)

func ipsecConfig(t *testing.T) *config.Config {
	cfg := testConfig(t)
	cfg.Peerings = append(cfg.Peerings[:1], config.Peering{
		Name: "hq", Network: "hq", Type: config.TypeIPsec, Endpoint: "203.0.113.5",
		AddressSpaces: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")},
		IPsec:         &config.IPsec{PSKFile: "hq.psk", PSK: ipsec.NewSecret([]byte("psk-psk-psk")), DPD: 2e9},
	})
	return cfg
}

func TestDesiredIPsec(t *testing.T) {
	cfg := ipsecConfig(t)
	env := Env{Resolve: resolveLiteral, UnderlayMTU: func(netip.Addr) int { return 1500 }}
	tunnels, routes, errs := desired(cfg, env)
	if len(errs) != 0 || len(tunnels) != 2 {
		t.Fatalf("tunnels %v errs %v", tunnels, errs)
	}
	h := tunnels[1]
	if h.Kind != KindIPsec || h.IfName != ipsec.IfName || h.IPsec.Remote != "203.0.113.5" || h.IPsec.DPD != 2e9 || h.IPsec.PSK.IsZero() {
		t.Fatalf("hq tunnel = %+v", h)
	}
	if fmt.Sprint(h.IPsec.RemoteTS) != "[192.168.0.0/16]" || fmt.Sprint(h.IPsec.LocalTS) != "[0.0.0.0/0 ::/0]" {
		t.Errorf("selectors %v === %v", h.IPsec.LocalTS, h.IPsec.RemoteTS)
	}
	want := route.Route{Dst: netip.MustParsePrefix("192.168.0.0/16"), Dev: ipsec.IfName, Src: cfg.TunnelAddress}
	found := false
	for _, r := range routes {
		found = found || r.Dst == want.Dst && r.Dev == want.Dev && r.Src == want.Src
	}
	if !found {
		t.Errorf("no route %v in %v", want, routes)
	}
}

func TestIPsecBGPRoutesAndView(t *testing.T) {
	cfg := ipsecConfig(t)
	cfg.BGP = &config.BGP{ASN: 65001, RouterID: netip.MustParseAddr("10.1.255.254")}
	hq := &cfg.Peerings[1]
	hq.BGP = &config.PeerBGP{ASN: 65010, Address: netip.MustParseAddr("169.254.21.1")}
	learned := []spec.Route{{Prefix: netip.MustParsePrefix("192.168.7.0/24"), Neighbor: "hq", Accepted: true, Best: true}}
	in := Input{Config: cfg, Env: Env{Resolve: resolveLiteral, UnderlayMTU: func(netip.Addr) int { return 1500 }}, Learned: learned}
	st := Plan(in)
	var got *route.Route
	for i, r := range st.Routes {
		if r.Dst.String() == "192.168.7.0/24" {
			got = &st.Routes[i]
		}
	}
	if got == nil || fmt.Sprint(got.Devices()) != "[ipsec0]" {
		t.Fatalf("BGP route via IPsec: %+v", got)
	}
	if fmt.Sprint(st.Tunnels[1].IPsec.RemoteTS) != "[192.168.0.0/16 169.254.21.1/32]" {
		t.Errorf("BGP over IPsec selectors: %v", st.Tunnels[1].IPsec.RemoteTS)
	}
	// The device's address is protected from BGP.
	protected := false
	for _, p := range st.BGP.Speaker.Protected {
		protected = protected || p.Prefix.String() == "203.0.113.5/32"
	}
	if !protected {
		t.Error("IPsec endpoint not protected")
	}
	view := Routes(in, st.Routes, nil)
	for _, e := range view {
		if e.Prefix.String() == "192.168.7.0/24" && (e.Peering != "hq" || !e.Installed) {
			t.Errorf("view: %+v", e)
		}
	}
}
