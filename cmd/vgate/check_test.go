package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/config"
)

// vgate check prints the effective control_socket, state_dir and
// metrics.listen, whether the machine forwards, and, per BGP peering, that
// address_spaces is the import allow-list and which static_routes it has.
func TestCheckDetails(t *testing.T) {
	cfgText := validCfg + `    bgp: {asn: 65002, address: 10.2.255.254, probe: off, bfd: {interval: 300ms}}
    static_routes: [10.2.9.0/24]
  - name: south
    network: south
    public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
    endpoint: 198.18.0.3:51820
    address_spaces: [10.3.0.0/16]
bgp: {asn: 65001}
metrics: {listen: "127.0.0.1:9586"}
`
	path, _ := writeConfig(t, cfgText)
	code, out, errOut := vgate(t, "", "check", "--config", path)
	if code != 0 {
		t.Fatalf("code %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"control_socket  /run/vgate/vgate.sock",
		"state_dir       /var/lib/vgate",
		"metrics.listen  127.0.0.1:9586",
		"ip forwarding   ipv4 ",
		"peering west: bgp AS65002, address_spaces 10.2.0.0/16 is the import allow-list (routes come from BGP); static_routes 10.2.9.0/24 installed beside BGP",
		"peering south: static, routes 10.3.0.0/16 through the tunnel",
		"peering west: probe off, bfd 300ms × 5 (down after 1.5s at the router's same setting), UDP 10.2.255.254:3784",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}

	if strings.Contains(out, "note: peering west") {
		t.Errorf("BFD recommended for a peering that runs it:\n%s", out)
	}
	var bb bytes.Buffer
	printCheckDetails(&bb, mustLoad(t, validCfg+"    bgp: {asn: 65002, address: 10.2.255.254}\nbgp: {asn: 65001}\n"), true, true)
	for _, want := range []string{
		"peering west: probe 50ms × 8 (dead after 400ms), bfd off",
		"note: peering west: if the peer is a router that is not vgate, set bgp.bfd: { interval: 100ms, multiplier: 5 }",
	} {
		if !strings.Contains(bb.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, bb.String())
		}
	}

	// Names and enrollment.
	var nb bytes.Buffer
	printCheckDetails(&nb, mustLoad(t, validCfg+`    tunnel_address: 10.2.255.254
    dns_zone: west.internal
dns: {zone: east.internal}
point_to_site:
  endpoint: vpn.example.net:51821
  address_pool: [172.16.0.0/24]
  enroll: {listen: ":8443"}
`), true, true)
	for _, want := range []string{
		"dns             zone east.internal on 10.1.255.254:53 (UDP, TCP); upstream none: other names REFUSED",
		"dns             west.internal forwarded to peering west at 10.2.255.254:53",
		"enrollment      https://vpn.example.net:8443/ (listen :8443/tcp",
	} {
		if !strings.Contains(nb.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, nb.String())
		}
	}

	// NAT rules, and the routes as this side sees them.
	var natOut bytes.Buffer
	printCheckDetails(&natOut, mustLoad(t, validCfg+`    nat:
      ingress: [{internal: 10.2.0.0/16, external: 100.66.0.0/16}]
      egress: [{internal: 10.1.0.0/16, external: 100.99.0.0/16}]
`), true, true)
	for _, want := range []string{
		"peering west: nat.ingress[0] the peer's 10.2.0.0/16 is 100.66.0.0/16 on this side",
		"peering west: nat.egress[0] this side's 10.1.0.0/16 is 100.99.0.0/16 to the peer",
		"peering west: static, routes 100.66.0.0/16 (address_spaces 10.2.0.0/16 as this side sees them) through the tunnel",
	} {
		if !strings.Contains(natOut.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, natOut.String())
		}
	}

	var b bytes.Buffer
	printCheckDetails(&b, mustLoad(t, validCfg), false, true)
	if s := b.String(); !strings.Contains(s, "ipv4 OFF, ipv6 on (hosts behind this gateway cannot reach peered networks: sysctl -w net.ipv4.ip_forward=1") ||
		!strings.Contains(s, "metrics.listen  off") {
		t.Errorf("forwarding off / metrics off not shown:\n%s", s)
	}
}

func mustLoad(t *testing.T, body string) *config.Config {
	t.Helper()
	path, _ := writeConfig(t, body)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestIPsecCheckText(t *testing.T) {
	p := config.Peering{Name: "hq", Type: config.TypeIPsec, Endpoint: "203.0.113.5",
		AddressSpaces: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")},
		BGP:           &config.PeerBGP{ASN: 65010, Address: netip.MustParseAddr("169.254.21.1")},
		IPsec:         &config.IPsec{ESP: []string{"aes256gcm16"}, DPD: 15 * time.Second, Legacy: true}}
	got := ipsecCheckText(&p)
	want := "ipsec (IKEv2, PSK) to 203.0.113.5, ike defaults, esp aes256gcm16, dpd 15s, traffic selectors 0.0.0.0/0, ::/0 === 192.168.0.0/16, 169.254.21.1/32; legacy algorithms allowed"
	if got != want {
		t.Errorf("ipsecCheckText =\n%s\nwant\n%s", got, want)
	}
}
