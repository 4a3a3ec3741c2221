package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vgate-project/vgate/gateway/keys"
)

const (
	keyWest  = "4gqO7PS24rEjqowgn5GQtaEbKlVjT7SNOwLPquRM4xs="
	keyWest2 = "AM77U5/IT5xdaxuE2yP+DSDWHO/ItqlslW6GZTNQWZM="
	keyNorth = "zrv57ejMjRKwLk8onVJLt7ewYe0U5IsT37qI6/Iwsl8="
)

// full is a valid config exercising every section. Line numbers matter to
// some tests: peerings[0] starts on line 14, peerings[1] on line 21.
const full = `name: vnet-east
address_spaces: [10.1.0.0/16, fd00:1::/48]
tunnel_address: 10.1.255.254
private_key_file: /etc/vgate/private.key
listen_port: 51820
max_tunnels: 10
mtu: 1420

bgp:
  asn: 65001
  router_id: 10.1.255.253

peerings:
  - name: west
    network: vnet-west
    public_key: "` + keyWest + `"
    endpoint: 198.18.0.2:51820
    address_spaces: [10.2.0.0/16, fd00:2::/48]
    bgp: { asn: 65002, address: 10.2.255.254 }
    persistent_keepalive: 25s
  - name: west2
    network: vnet-west
    public_key: "` + keyWest2 + `"
    endpoint: "[2001:db8::2]:51820"
    address_spaces: [10.2.0.0/16]
    tunnel_address: 169.254.10.2
  - name: north
    network: vnet-north
    public_key: "` + keyNorth + `"
    endpoint: gw.north.example.net:51820
    address_spaces: [10.3.0.0/16]

point_to_site:
  listen_port: 51821
  endpoint: vpn.example.net:51821
  address_pool: [172.16.201.0/24, fd00:99::/64]
  max_clients: 200
  dns: [10.1.0.53]
  groups:
    - name: developers
      allow: [10.1.0.0/16, 10.2.0.0/16]
      interconnected: true
    - name: ops
      allow: [0.0.0.0/0]
      gateway_services: [tcp/22, udp/161, tcp/8000-8080, icmp]

metrics: { listen: "127.0.0.1:9475" }
control_socket: /run/vgate/test.sock
state_dir: /var/lib/vgate-test
`

// minimal is the smallest valid config.
const minimal = `name: vnet-east
address_spaces: [10.1.0.0/16]
tunnel_address: 10.1.255.254
private_key_file: private.key
`

// edit applies old→new replacements to base and fails the test if an old
// string is absent (so a case cannot silently test the valid config).
func edit(t *testing.T, base string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(base, pairs[i]) {
			t.Fatalf("edit: %q not in config", pairs[i])
		}
		base = strings.Replace(base, pairs[i], pairs[i+1], 1)
	}
	return base
}

func mustParse(t *testing.T, data string) *Config {
	t.Helper()
	c, err := Parse([]byte(data), "vgate.yaml")
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return c
}

func parseErrors(t *testing.T, data string) Errors {
	t.Helper()
	c, err := Parse([]byte(data), "vgate.yaml")
	if err == nil {
		t.Fatalf("Parse succeeded (%+v), want an error", c)
	}
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("Parse error %T %v is not a non-empty Errors", err, err)
	}
	return es
}

func TestParseFull(t *testing.T) {
	c := mustParse(t, full)
	if c.Name != "vnet-east" || len(c.AddressSpaces) != 2 || c.AddressSpaces[1] != netip.MustParsePrefix("fd00:1::/48") {
		t.Errorf("top level decoded wrong: %+v", c)
	}
	if c.BGP == nil || c.BGP.ASN != 65001 || c.BGP.RouterID != netip.MustParseAddr("10.1.255.253") {
		t.Errorf("bgp = %+v", c.BGP)
	}
	if len(c.Peerings) != 3 {
		t.Fatalf("got %d peerings", len(c.Peerings))
	}
	w := c.Peerings[0]
	if w.Name != "west" || w.PublicKey.String() != keyWest || w.PersistentKeepalive != 25*time.Second ||
		w.BGP == nil || w.BGP.Address != netip.MustParseAddr("10.2.255.254") || w.Line != 14 {
		t.Errorf("peerings[0] = %+v", w)
	}
	if got := c.Peerings[1].Line; got != 21 {
		t.Errorf("peerings[1].Line = %d, want 21", got)
	}
	if p := c.PointToSite; p == nil || p.MaxClients != 200 || len(p.Groups) != 2 || !p.Groups[0].Interconnected {
		t.Errorf("point_to_site = %+v", p)
	} else if got := fmt.Sprint(p.Groups[1].Services()); got != "[tcp/22 udp/161 tcp/8000-8080 icmp]" || p.Groups[0].Services() != nil {
		t.Errorf("gateway_services = %s, %v", got, p.Groups[0].Services())
	}
	if c.Metrics.Listen != "127.0.0.1:9475" || c.ControlSocket != "/run/vgate/test.sock" || c.StateDir != "/var/lib/vgate-test" || c.MTU != 1420 {
		t.Errorf("misc decoded wrong: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate of a parsed config: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, minimal+"bgp: {asn: 65001}\npoint_to_site: {endpoint: vpn.example.net:51821, address_pool: [172.16.0.0/24]}\n")
	if c.ListenPort != DefaultListenPort || c.MaxTunnels != DefaultMaxTunnels || c.ControlSocket != DefaultControlSocket || c.StateDir != DefaultStateDir {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.BGP.RouterID != c.TunnelAddress {
		t.Errorf("bgp.router_id = %v, want tunnel_address %v", c.BGP.RouterID, c.TunnelAddress)
	}
	if c.PointToSite.ListenPort != DefaultP2SPort || c.PointToSite.MaxClients != DefaultMaxClients {
		t.Errorf("point_to_site defaults not applied: %+v", c.PointToSite)
	}
}

// TestBFDAndProbeOff: the effective BFD timing, `off` for both, and a
// YAML round trip that keeps them.
func TestBFDAndProbeOff(t *testing.T) {
	c := mustParse(t, minimal+"bgp: {asn: 65001}\npeerings:\n"+
		"  - {name: a, network: n1, public_key: "+keyWest+", bgp: {asn: 65002, address: 169.254.0.2, probe: off, bfd: {}}}\n"+
		"  - {name: b, network: n2, public_key: "+keyWest2+", bgp: {asn: 65003, address: 169.254.0.3, bfd: {interval: 300ms}}}\n"+
		"  - {name: c, network: n3, public_key: "+keyNorth+", bgp: {asn: 65004, address: 169.254.0.4, bfd: off, probe: {interval: 20ms}}}\n")
	for i, want := range []struct {
		iv       time.Duration
		m        int
		on, poff bool
	}{{100 * time.Millisecond, 5, true, true}, {300 * time.Millisecond, 5, true, false}, {0, 0, false, false}} {
		b := c.Peerings[i].BGP
		iv, m, on := b.BFDTiming()
		if iv != want.iv || m != want.m || on != want.on || b.ProbeOff() != want.poff {
			t.Errorf("peering %d: bfd %v × %d on %v, probe off %v; want %+v", i, iv, m, on, b.ProbeOff(), want)
		}
	}
	if iv, _ := c.Peerings[2].BGP.ProbeTiming(); iv != 20*time.Millisecond {
		t.Errorf("probe interval %v", iv)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2 := mustParse(t, string(out))
	for i := range c.Peerings {
		if !reflect.DeepEqual(c.Peerings[i].BGP, c2.Peerings[i].BGP) {
			t.Errorf("round trip changed peering %d's bgp: %+v, was %+v\n%s", i, c2.Peerings[i].BGP, c.Peerings[i].BGP, out)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	c := mustParse(t, full)
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2 := mustParse(t, string(out))
	for _, cc := range []*Config{c, c2} {
		for i := range cc.Peerings {
			cc.Peerings[i].Line = 0
		}
	}
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("round trip changed the config:\nfirst  %+v\nsecond %+v\nyaml:\n%s", c, c2, out)
	}
}

func TestExampleFile(t *testing.T) {
	data, err := os.ReadFile("testdata/vgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, string(data))
	if c.Name != "vnet-east" || len(c.Peerings) != 1 || c.PointToSite == nil || c.BGP.RouterID != c.TunnelAddress {
		t.Errorf("example decoded wrong: %+v", c)
	}
}

func TestValidVariants(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"link-local tunnel address", edit(t, minimal, "tunnel_address: 10.1.255.254", "tunnel_address: 169.254.0.1")},
		{"ipv6 tunnel address with router_id", edit(t, minimal, "address_spaces: [10.1.0.0/16]", "address_spaces: [fd00:1::/48]",
			"tunnel_address: 10.1.255.254", "tunnel_address: fd00:1::1") + "bgp: {asn: 65001, router_id: 192.0.2.1}\n"},
		{"same network repeats prefixes", minimal + "peerings:\n" +
			"  - {name: a, network: n1, public_key: " + keyWest + ", address_spaces: [10.2.0.0/16, 10.4.5.0/24]}\n" +
			"  - {name: b, network: n1, public_key: " + keyWest2 + ", address_spaces: [10.2.0.0/16, 10.4.0.0/16]}\n"},
		{"bgp peering with a static route", minimal + "bgp: {asn: 65001}\npeerings:\n  - {name: a, network: n1, public_key: " + keyWest + ", address_spaces: [10.2.0.0/16], static_routes: [10.2.5.0/24], bgp: {asn: 65002, address: 169.254.0.2}}\n"},
		{"bgp probe timing", minimal + "bgp: {asn: 65001}\npeerings:\n  - {name: a, network: n1, public_key: " + keyWest + ", bgp: {asn: 65002, address: 169.254.0.2, probe: {interval: 100ms, multiplier: 10}}}\n"},
		{"bgp drain and graceful restart", minimal + "bgp: {asn: 65001, drain: true, graceful_restart: {restart_time: 60s, long_lived: 1h}}\n"},
		{"bgp graceful restart defaults", minimal + "bgp: {asn: 65001, graceful_restart: {}}\n"},
		{"bgp bfd, probe off", minimal + "bgp: {asn: 65001}\npeerings:\n  - {name: a, network: n1, public_key: " + keyWest + ", bgp: {asn: 65002, address: 169.254.0.2, probe: off, bfd: {interval: 100ms, multiplier: 5}}}\n"},
		{"bgp bfd off", minimal + "bgp: {asn: 65001}\npeerings:\n  - {name: a, network: n1, public_key: " + keyWest + ", bgp: {asn: 65002, address: 169.254.0.2, bfd: off}}\n"},
		{"peering with bgp only", minimal + "bgp: {asn: 65001}\npeerings:\n  - {name: a, network: n1, public_key: " + keyWest + ", bgp: {asn: 65002, address: 169.254.0.2}}\n"},
		{"ipv6 endpoint", minimal + "peerings:\n  - {name: a, network: n1, public_key: " + keyWest + ", endpoint: \"[fd00::1]:51820\", address_spaces: [10.2.0.0/16]}\n"},
		{"relay with pin", minimal + "peerings:\n  - {name: a, network: n1, public_key: " + keyWest + ", address_spaces: [10.2.0.0/16], relay: {url: \"wss://relay.example.net/\", pin: \"sha256:" + strings.Repeat("ab", 32) + "\"}}\n"},
		{"relay without pin", minimal + "peerings:\n  - {name: a, network: n1, public_key: " + keyWest + ", address_spaces: [10.2.0.0/16], relay: {url: \"wss://relay.example.net:8443/vgate\"}}\n"},
		{"yaml anchors and merge", minimal + "x: 1\n"},
	}
	tests[len(tests)-1].data = minimal + "peerings:\n  - &p {name: a, network: n1, public_key: " + keyWest + ", address_spaces: [10.2.0.0/16]}\n  - {<<: *p, name: b, public_key: " + keyWest2 + "}\n"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { mustParse(t, tt.data) })
	}
}

// peer returns one flow-style peering line.
func peer(name, network, key, spaces string) string {
	return fmt.Sprintf("  - {name: %s, network: %s, public_key: %q, address_spaces: %s}\n", name, network, key, spaces)
}

func TestParseErrors(t *testing.T) {
	withPeer := minimal + "peerings:\n" + peer("west", "vnet-west", keyWest, "[10.2.0.0/16]")
	withBGP := minimal + "bgp: {asn: 65001}\n"
	withP2S := minimal + "point_to_site:\n  endpoint: vpn.example.net:51821\n  address_pool: [172.16.0.0/24]\n"
	tests := []struct {
		name  string
		data  string
		field string // FieldError.Field of the (first) error
		line  int    // its line; -1 to skip the check
		want  string // substring of its message
	}{
		// name
		{"name missing", edit(t, minimal, "name: vnet-east\n", ""), "name", 1, "required"},
		{"name charset", edit(t, minimal, "vnet-east", "Vnet_East"), "name", 1, "1 to 63 characters of a-z, 0-9 and '-'"},
		{"name too long", edit(t, minimal, "vnet-east", strings.Repeat("a", 64)), "name", 1, "metric labels"},
		{"name leading dash", edit(t, minimal, "vnet-east", "-east"), "name", 1, "not starting or ending"},
		// address spaces and tunnel address
		{"no address spaces", edit(t, minimal, "[10.1.0.0/16]", "[]"), "address_spaces", 2, "at least one prefix"},
		{"host bits", edit(t, minimal, "[10.1.0.0/16]", "[10.1.0.1/16]"), "address_spaces[0]", 2, "10.1.0.1/16 has host bits set; did you mean 10.1.0.0/16?"},
		{"bad prefix", edit(t, minimal, "[10.1.0.0/16]", "[10.1.0.0/16, 10.9.0.0/33]"), "address_spaces[1]", 2, `"10.9.0.0/33" is not a prefix such as 10.1.0.0/16 (prefix length out of range)`},
		{"bad prefix keeps indexes", edit(t, minimal, "[10.1.0.0/16]", "[10.1.0.0/16, 10.9.0.0/33, \"::ffff:10.9.0.0/112\"]"), "address_spaces[2]", 2, "IPv4-mapped"},
		{"empty list item", edit(t, minimal, "[10.1.0.0/16]", "\n  - 10.1.0.0/16\n  -\n  - 10.0.0.0/8"), "address_spaces[2]", 5, "10.0.0.0/8 (local address_spaces) overlaps"},
		{"bad peering keeps indexes", minimal + "peerings:\n  - 5\n" + peer("west", "vnet-west", keyWest, "[10.1.0.0/24]"), "peerings[1].address_spaces[0]", 7, "overlaps"},
		{"mapped prefix", edit(t, minimal, "[10.1.0.0/16]", "[10.1.0.0/16, \"::ffff:10.9.0.0/112\"]"), "address_spaces[1]", 2, "IPv4-mapped"},
		{"address spaces not a list", edit(t, minimal, "[10.1.0.0/16]", "10.1.0.0/16"), "address_spaces", 2, "want a list"},
		{"tunnel address missing", edit(t, minimal, "tunnel_address: 10.1.255.254\n", ""), "tunnel_address", 1, "required"},
		{"tunnel address outside", edit(t, minimal, "10.1.255.254", "10.9.0.1"), "tunnel_address", 3, "10.9.0.1 must be inside address_spaces or in 169.254.0.0/16"},
		{"tunnel address mapped", edit(t, minimal, "10.1.255.254", "\"::ffff:10.1.0.1\""), "tunnel_address", 3, "write it as 10.1.0.1"},
		{"tunnel address garbage", edit(t, minimal, "10.1.255.254", "10.1.255"), "tunnel_address", 3, `"10.1.255" is not an IP address`},
		// relay
		{"relay url scheme", minimal + "peerings:\n  - {name: a, network: n1, public_key: " + keyWest + ", address_spaces: [10.2.0.0/16], relay: {url: \"https://r.example/\"}}\n", "peerings[0].relay.url", -1, "the scheme must be wss"},
		{"relay url missing", minimal + "peerings:\n  - {name: a, network: n1, public_key: " + keyWest + ", address_spaces: [10.2.0.0/16], relay: {pin: x}}\n", "peerings[0].relay.url", -1, "required"},
		{"relay pin", minimal + "peerings:\n  - {name: a, network: n1, public_key: " + keyWest + ", address_spaces: [10.2.0.0/16], relay: {url: \"wss://r.example/\", pin: \"sha256:abc\"}}\n", "peerings[0].relay.pin", -1, "sha256:<64 hex digits>"},
		// bgp
		{"graceful restart time too long", minimal + "bgp: {asn: 65001, graceful_restart: {restart_time: 4096s}}\n", "bgp.graceful_restart.restart_time", -1, "whole seconds from 1s to 1h8m15s"},
		{"graceful restart time fraction", minimal + "bgp: {asn: 65001, graceful_restart: {restart_time: 1500ms}}\n", "bgp.graceful_restart.restart_time", -1, "got 1.5s"},
		{"long-lived stale time negative", minimal + "bgp: {asn: 65001, graceful_restart: {long_lived: -1s}}\n", "bgp.graceful_restart.long_lived", -1, "whole seconds up to"},
		// scalars
		{"private key file missing", edit(t, minimal, "private_key_file: private.key\n", ""), "private_key_file", 1, "required"},
		{"listen port zero", minimal + "listen_port: 0\n", "listen_port", 5, "must be a UDP port from 1 to 65535"},
		{"listen port too big", minimal + "listen_port: 70000\n", "listen_port", 5, "want a whole number from 0 to 65535"},
		{"max tunnels 11", minimal + "max_tunnels: 11\n", "max_tunnels", 5, "between 1 and 10"},
		{"max tunnels 0", minimal + "max_tunnels: 0\n", "max_tunnels", 5, "between 1 and 10"},
		{"mtu", minimal + "mtu: 100\n", "mtu", 5, "576 to 65535"},
		{"metrics listen", minimal + "metrics: {listen: localhost}\n", "metrics.listen", 5, "not host:port"},
		// gateway bgp
		{"bgp asn 0", minimal + "bgp: {router_id: 10.1.255.254}\n", "bgp.asn", 5, "required"},
		{"bgp asn trans", minimal + "bgp: {asn: 23456}\n", "bgp.asn", 5, "AS_TRANS"},
		{"bgp asn reserved", minimal + "bgp: {asn: 4294967295}\n", "bgp.asn", 5, "reserved"},
		{"bgp asn overflow", minimal + "bgp: {asn: 4294967296}\n", "bgp.asn", 5, "want a whole number from 0 to 4294967295"},
		{"router id ipv6", minimal + "bgp: {asn: 65001, router_id: \"fd00::1\"}\n", "bgp.router_id", 5, "must be an IPv4 address"},
		{"router id needed for ipv6", edit(t, minimal, "[10.1.0.0/16]", "[fd00:1::/48]", "10.1.255.254", "\"fd00:1::1\"") + "bgp: {asn: 65001}\n", "bgp.router_id", 5, "tunnel_address is IPv6"},
		// peerings
		{"peering name missing", minimal + "peerings:\n  - {network: n, public_key: " + keyWest + ", address_spaces: [10.2.0.0/16]}\n", "peerings[0].name", 6, "required"},
		{"peering name too long", edit(t, withPeer, "name: west", "name: abcdefghijklm"), "peerings[0].name", 6, "vg-<name>"},
		{"peering name charset", edit(t, withPeer, "name: west", "name: West"), "peerings[0].name", 6, "1 to 12 characters"},
		{"peering name duplicate", withPeer + peer("west", "vnet-x", keyNorth, "[10.5.0.0/16]"), "peerings[1].name", 7, `duplicate peering name "west" (also peerings[0])`},
		{"peering network missing", edit(t, withPeer, "network: vnet-west, ", ""), "peerings[0].network", 6, "required"},
		{"public key missing", edit(t, withPeer, `public_key: "`+keyWest+`", `, ""), "peerings[0].public_key", 6, "required"},
		{"public key invalid", edit(t, withPeer, keyWest, "bm90IGEga2V5"), "peerings[0].public_key", 6, "want a base64 WireGuard public key"},
		{"public key duplicate", withPeer + peer("east2", "vnet-x", keyWest, "[10.5.0.0/16]"), "peerings[1].public_key", 7, `same public key as peerings[0] ("west")`},
		{"peering spaces missing", edit(t, withPeer, ", address_spaces: [10.2.0.0/16]", ""), "peerings[0].address_spaces", 6, "unless the peering runs bgp"},
		{"peering prefix host bits", edit(t, withPeer, "[10.2.0.0/16]", "[10.2.0.0/8]"), "peerings[0].address_spaces[0]", 6, "did you mean 10.0.0.0/8?"},
		{"endpoint no port", edit(t, withPeer, "network: vnet-west,", "network: vnet-west, endpoint: 198.18.0.2,"), "peerings[0].endpoint", 6, "not host:port"},
		{"endpoint port zero", edit(t, withPeer, "network: vnet-west,", "network: vnet-west, endpoint: 198.18.0.2:0,"), "peerings[0].endpoint", 6, "must be a number from 1 to 65535"},
		{"endpoint named port", edit(t, withPeer, "network: vnet-west,", "network: vnet-west, endpoint: \"gw.example:wg\","), "peerings[0].endpoint", 6, "must be a number"},
		{"endpoint bare ipv6", edit(t, withPeer, "network: vnet-west,", "network: vnet-west, endpoint: \"fd00::1:51820\","), "peerings[0].endpoint", 6, "[addr]:port"},
		{"endpoint bad host", edit(t, withPeer, "network: vnet-west,", "network: vnet-west, endpoint: \"gw..example:51820\","), "peerings[0].endpoint", 6, "neither an IP address nor a DNS name"},
		{"endpoint numeric name", edit(t, withPeer, "network: vnet-west,", "network: vnet-west, endpoint: \"300.1.1.1:51820\","), "peerings[0].endpoint", 6, "neither an IP address nor a DNS name"},
		{"keepalive too long", edit(t, withPeer, "network: vnet-west,", "network: vnet-west, persistent_keepalive: 70000s,"), "peerings[0].persistent_keepalive", 6, "1s to 65535s"},
		{"keepalive fraction", edit(t, withPeer, "network: vnet-west,", "network: vnet-west, persistent_keepalive: 1.5s,"), "peerings[0].persistent_keepalive", 6, "whole seconds"},
		{"keepalive negative", edit(t, withPeer, "network: vnet-west,", "network: vnet-west, persistent_keepalive: -1s,"), "peerings[0].persistent_keepalive", 6, "whole seconds"},
		{"keepalive number", edit(t, withPeer, "network: vnet-west,", "network: vnet-west, persistent_keepalive: 25,"), "peerings[0].persistent_keepalive", 6, "want a duration such as 25s"},
		{"peer addresses differ", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", tunnel_address: 10.2.0.1, bgp: {asn: 65002, address: 10.2.0.2}}\n"), "peerings[0].tunnel_address", 7, "differs from bgp.address 10.2.0.2"},
		{"peer bgp asn missing", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {address: 10.2.0.2}}\n"), "peerings[0].bgp.asn", 7, "required"},
		{"peer bgp address missing", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {asn: 65002}}\n"), "peerings[0].bgp.address", 7, "required"},
		{"probe interval too short", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {asn: 65002, address: 10.2.0.2, probe: {interval: 5ms}}}\n"), "peerings[0].bgp.probe.interval", 7, "whole milliseconds from 10ms to 10s, got 5ms"},
		{"probe interval fraction", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {asn: 65002, address: 10.2.0.2, probe: {interval: 10500us}}}\n"), "peerings[0].bgp.probe.interval", 7, "got 10.5ms"},
		{"probe multiplier", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {asn: 65002, address: 10.2.0.2, probe: {multiplier: 1}}}\n"), "peerings[0].bgp.probe.multiplier", 7, "0 (default 8) or 3 to 50, got 1"},
		{"probe detection too long", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {asn: 65002, address: 10.2.0.2, probe: {interval: 2s, multiplier: 20}}}\n"), "peerings[0].bgp.probe", 7, "interval 2s × multiplier 20 = 40s to detect a dead tunnel; at most 30s"},
		{"probe on", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {asn: 65002, address: 10.2.0.2, probe: on}}\n"), "peerings[0].bgp.probe", 7, `want off or`},
		{"bfd interval too short", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {asn: 65002, address: 10.2.0.2, bfd: {interval: 5ms}}}\n"), "peerings[0].bgp.bfd.interval", 7, "0 (default 100ms) or whole milliseconds from 10ms to 10s, got 5ms"},
		{"bfd interval fraction", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {asn: 65002, address: 10.2.0.2, bfd: {interval: 100500us}}}\n"), "peerings[0].bgp.bfd.interval", 7, "got 100.5ms"},
		{"bfd multiplier", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {asn: 65002, address: 10.2.0.2, bfd: {multiplier: 2}}}\n"), "peerings[0].bgp.bfd.multiplier", 7, "0 (default 5) or 3 to 50, got 2"},
		{"bfd detection too long", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {asn: 65002, address: 10.2.0.2, bfd: {interval: 10s, multiplier: 5}}}\n"), "peerings[0].bgp.bfd", 7, "interval 10s × multiplier 5 = 50s to detect a dead path; at most 30s"},
		{"bfd unknown field", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {asn: 65002, address: 10.2.0.2, bfd: {multiplyer: 5}}}\n"), "peerings[0].bgp.bfd.multiplyer", 7, "did you mean"},
		{"bfd a number", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {asn: 65002, address: 10.2.0.2, bfd: 100}}\n"), "peerings[0].bgp.bfd", 7, `want off or`},
		{"probe unknown field", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", bgp: {asn: 65002, address: 10.2.0.2, probe: {intervall: 1s}}}\n"), "peerings[0].bgp.probe.intervall", 7, "did you mean"},
		{"peer bgp without gateway bgp", edit(t, withPeer, "}\n", ", bgp: {asn: 65002, address: 10.2.0.2}}\n"), "peerings[0].bgp", 6, "gateway's own bgp section"},
		{"static routes without bgp", withPeer[:len(withPeer)-2] + ", static_routes: [10.2.1.0/24]}\n", "peerings[0].static_routes[0]", 6, "static_routes is for peerings that run bgp"},
		{"static route outside allow-list", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", static_routes: [10.3.0.0/16], bgp: {asn: 65002, address: 10.2.0.2}}\n"), "peerings[0].static_routes[0]", 7, "10.3.0.0/16 is not inside this peering's address_spaces [10.2.0.0/16]"},
		{"static route host bits", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}\n", ", static_routes: [10.2.1.1/24], bgp: {asn: 65002, address: 10.2.0.2}}\n"), "peerings[0].static_routes[0]", 7, "host bits"},
		{"peer bgp family", withBGP + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[\"fd00:2::/48\"]"), "}\n", ", bgp: {asn: 65002, address: \"fd00:2::1\"}}\n"), "peerings[0].bgp.address", 7, "different IP families"},
		// point to site
		{"p2s port clash", withP2S + "  listen_port: 51820\n", "point_to_site.listen_port", 8, "must differ from listen_port"},
		{"p2s port zero", withP2S + "  listen_port: 0\n", "point_to_site.listen_port", 8, "1 to 65535"},
		{"p2s endpoint missing", edit(t, withP2S, "  endpoint: vpn.example.net:51821\n", ""), "point_to_site.endpoint", 5, "required"},
		{"p2s endpoint bad", edit(t, withP2S, "vpn.example.net:51821", "vpn.example.net"), "point_to_site.endpoint", 6, "not host:port"},
		{"p2s pool missing", edit(t, withP2S, "  address_pool: [172.16.0.0/24]\n", ""), "point_to_site.address_pool", 5, "at least one prefix"},
		{"p2s pool host bits", edit(t, withP2S, "172.16.0.0/24", "172.16.0.1/24"), "point_to_site.address_pool[0]", 7, "has host bits set"},
		{"p2s max clients 0", withP2S + "  max_clients: 0\n", "point_to_site.max_clients", 8, "between 1 and 65535"},
		{"p2s max clients big", withP2S + "  max_clients: 70000\n", "point_to_site.max_clients", 8, "between 1 and 65535"},
		{"p2s dns", withP2S + "  dns: [1.2.3]\n", "point_to_site.dns[0]", 8, "is not an IP address"},
		{"p2s group duplicate", withP2S + "  groups:\n    - {name: dev, allow: [10.1.0.0/16]}\n    - {name: dev}\n", "point_to_site.groups[1].name", 10, `duplicate group name "dev"`},
		{"p2s group name", withP2S + "  groups:\n    - {name: Dev}\n", "point_to_site.groups[0].name", 9, "metric labels"},
		{"p2s group allow", withP2S + "  groups:\n    - {name: dev, allow: [10.1.0.0/8]}\n", "point_to_site.groups[0].allow[0]", 9, "did you mean 10.0.0.0/8?"},
		{"p2s gateway service port", withP2S + "  groups:\n    - {name: dev, allow: [10.1.0.0/16]}\n    - name: ops\n      gateway_services: [tcp/22, tcp/99999]\n", "point_to_site.groups[1].gateway_services[1]", 11, `group "ops": "tcp/99999" is not a gateway service: port "99999" is not a number from 1 to 65535`},
		{"p2s gateway service proto", withP2S + "  groups:\n    - name: ops\n      gateway_services:\n        - sctp/22\n", "point_to_site.groups[0].gateway_services[0]", 11, `group "ops": "sctp/22" is not a gateway service: unknown protocol "sctp"`},
		{"p2s gateway service range", withP2S + "  groups:\n    - {name: ops, gateway_services: [udp/60-50]}\n", "point_to_site.groups[0].gateway_services[0]", 9, `"udp/60-50" is not a gateway service: port range 60-50 is empty`},
		{"p2s gateway service duplicate", withP2S + "  groups:\n    - {name: ops, gateway_services: [icmp, tcp/22, tcp/22-22]}\n", "point_to_site.groups[0].gateway_services[2]", 9, `group "ops": "tcp/22-22" is listed twice (also point_to_site.groups[0].gateway_services[1])`},
		{"p2s gateway service not a list", withP2S + "  groups:\n    - {name: ops, gateway_services: tcp/22}\n", "point_to_site.groups[0].gateway_services", 9, "want a list"},
		// overlaps (No overlapping address spaces)
		{"local spaces overlap", edit(t, minimal, "[10.1.0.0/16]", "[10.0.0.0/8, 10.1.0.0/16]"), "address_spaces[1]", 2,
			"10.1.0.0/16 (local address_spaces) overlaps 10.0.0.0/8 (local address_spaces): 10.1.0.0/16 is inside 10.0.0.0/8"},
		{"local spaces duplicate", edit(t, minimal, "[10.1.0.0/16]", "[10.1.0.0/16, 10.1.0.0/16]"), "address_spaces[1]", 2, "equals"},
		{"peering inside local", minimal + "peerings:\n" + peer("west", "vnet-west", keyWest, "[10.1.0.0/24]"), "peerings[0].address_spaces[0]", 6,
			`10.1.0.0/24 (peering "west", network vnet-west) overlaps 10.1.0.0/16 (local address_spaces): 10.1.0.0/24 is inside 10.1.0.0/16`},
		{"peering contains local", minimal + "peerings:\n" + peer("west", "vnet-west", keyWest, "[10.0.0.0/8]"), "peerings[0].address_spaces[0]", 6, "10.0.0.0/8 contains 10.1.0.0/16"},
		{"ipv6 overlap", edit(t, minimal, "[10.1.0.0/16]", "[10.1.0.0/16, fd00:1::/48]") + "peerings:\n" + peer("west", "vnet-west", keyWest, "[\"fd00:1:0:5::/64\"]"), "peerings[0].address_spaces[0]", 6,
			`fd00:1:0:5::/64 (peering "west", network vnet-west) overlaps fd00:1::/48 (local address_spaces)`},
		{"peering covers tunnel address", edit(t, minimal, "10.1.255.254", "169.254.0.1") + "peerings:\n" + peer("west", "vnet-west", keyWest, "[169.254.0.0/24]"), "peerings[0].address_spaces[0]", 6,
			"169.254.0.0/24 contains 169.254.0.1/32"},
		{"peer tunnel address is ours", edit(t, minimal, "10.1.255.254", "169.254.0.1") + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}", ", tunnel_address: 169.254.0.1}"), "peerings[0].tunnel_address", 6,
			`169.254.0.1/32 (peering "west", network vnet-west tunnel address) overlaps 169.254.0.1/32 (tunnel_address)`},
		{"peer tunnel address in local", minimal + "peerings:\n" + edit(t, peer("west", "vnet-west", keyWest, "[10.2.0.0/16]"), "}", ", tunnel_address: 10.1.0.9}"), "peerings[0].tunnel_address", 6,
			"10.1.0.9/32 (peering \"west\", network vnet-west tunnel address) overlaps 10.1.0.0/16 (local address_spaces)"},
		{"different networks overlap", withPeer + peer("north", "vnet-north", keyNorth, "[10.2.128.0/17]"), "peerings[1].address_spaces[0]", 7,
			`10.2.128.0/17 (peering "north", network vnet-north) overlaps 10.2.0.0/16 (peering "west", network vnet-west)`},
		{"own spaces overlap", minimal + "peerings:\n" + peer("west", "vnet-west", keyWest, "[10.2.0.0/16, 10.2.3.0/24]"), "peerings[0].address_spaces[1]", 6,
			`10.2.3.0/24 (peering "west", network vnet-west) overlaps 10.2.0.0/16 (peering "west", network vnet-west)`},
		{"pool vs local", edit(t, withP2S, "172.16.0.0/24", "10.1.200.0/24"), "point_to_site.address_pool[0]", 7,
			"10.1.200.0/24 (point_to_site.address_pool) overlaps 10.1.0.0/16 (local address_spaces)"},
		{"pool vs peering", withPeer + "point_to_site:\n  endpoint: vpn.example.net:51821\n  address_pool: [10.2.0.0/24]\n", "point_to_site.address_pool[0]", 9,
			`10.2.0.0/24 (point_to_site.address_pool) overlaps 10.2.0.0/16 (peering "west", network vnet-west)`},
		{"pool vs itself", edit(t, withP2S, "[172.16.0.0/24]", "[172.16.0.0/24, 172.16.0.0/25]"), "point_to_site.address_pool[1]", 7, "is inside"},
		// decoding
		{"unknown field", minimal + "colour: blue\n", "colour", 5, `unknown field "colour"`},
		{"unknown peering field", minimal + "peerings:\n  - name: west\n    network: vnet-west\n    public_key: " + keyWest + "\n    mtu: 1400\n", "peerings[0].mtu", 9, `unknown field "mtu"`},
		{"duplicate key", minimal + "name: again\n", "name", 5, "duplicate key \"name\" (first at line 1)"},
		{"bgp not a mapping", minimal + "bgp: 65001\n", "bgp", 5, "want a mapping"},
		{"anchor contains itself", minimal + "peerings:\n  - &p {<<: *p, name: b, network: n, public_key: " + keyWest + "}\n", "peerings[0]", 6, `anchor "p" contains itself`},
		{"syntax error", minimal + "peerings: [\n", "", -1, "did not find expected"},
		{"tab indentation", "name: x\n\tfoo: 1\n", "", 2, "found a tab character"},
		{"two documents", minimal + "---\nname: other\n", "", 5, "only one YAML document"},
		{"not a mapping", "- a\n- b\n", "", 1, "want a mapping of fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := parseErrors(t, tt.data)
			var e *FieldError
			for _, x := range es {
				if strings.Contains(x.Msg, tt.want) {
					e = x
					break
				}
			}
			if e == nil {
				t.Fatalf("no error contains %q; got:\n%v", tt.want, es)
			}
			if e.Field != tt.field || (tt.line >= 0 && e.Line != tt.line) {
				t.Errorf("error %q at field %q line %d, want field %q line %d", e, e.Field, e.Line, tt.field, tt.line)
			}
			if e.File != "vgate.yaml" {
				t.Errorf("error %q: File = %q", e, e.File)
			}
		})
	}
}

func TestFieldErrorFormat(t *testing.T) {
	es := parseErrors(t, minimal+"peerings:\n"+peer("west", "vnet-west", keyWest, "[10.1.0.0/24]"))
	want := `vgate.yaml:6: peerings[0].address_spaces[0]: 10.1.0.0/24 (peering "west", network vnet-west) overlaps 10.1.0.0/16 (local address_spaces): 10.1.0.0/24 is inside 10.1.0.0/16`
	if es.Error() != want {
		t.Errorf("got  %s\nwant %s", es.Error(), want)
	}
	if got := (&FieldError{File: "f.yaml", Field: "name", Msg: "required"}).Error(); got != "f.yaml: name: required" {
		t.Errorf("no line: %q", got)
	}
}

func TestTunnelLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(minimal + "peerings:\n")
	for i := 1; i <= 11; i++ {
		k, _ := keys.GeneratePrivate()
		b.WriteString(peer(fmt.Sprintf("p%d", i), fmt.Sprintf("net%d", i), k.Public().String(), fmt.Sprintf("[10.%d.0.0/16]", 100+i)))
	}
	es := parseErrors(t, b.String())
	if len(es) != 1 {
		t.Fatalf("want exactly the limit error, got:\n%v", es)
	}
	e := es[0]
	if e.Field != "peerings[10]" || e.Line != 16 || !strings.Contains(e.Msg, "max_tunnels is 10") || !strings.Contains(e.Msg, `refused: peering "p11"`) {
		t.Errorf("got %q (field %q line %d)", e, e.Field, e.Line)
	}
	// A lower max_tunnels refuses more, all named.
	es = parseErrors(t, b.String()+"max_tunnels: 9\n")
	if !strings.Contains(es.Error(), `vgate.yaml:15: peerings[9]: tunnel limit: max_tunnels is 9 and 11 peerings are declared; refused: peering "p10", peering "p11"`) {
		t.Errorf("got %v", es)
	}
}

func TestMultipleErrors(t *testing.T) {
	data := `name: Bad_Name
address_spaces: [10.1.0.1/16, 10.1.0.0/33]
tunnel_address: 10.9.9.9
listen_port: 0
colour: blue
peerings:
  - {name: waytoolongname, network: n, public_key: "bm9wZQ==", address_spaces: [10.2.0.0/16]}
  - {name: ok, public_key: "` + keyWest + `", endpoint: nowhere, address_spaces: [10.2.0.0/24]}
`
	es := parseErrors(t, data)
	want := []string{
		`vgate.yaml:1: name: "Bad_Name" must be`,
		`vgate.yaml:2: address_spaces[0]: 10.1.0.1/16 has host bits set`,
		`vgate.yaml:2: address_spaces[1]: "10.1.0.0/33" is not a prefix`,
		`vgate.yaml:4: listen_port: must be a UDP port`,
		`vgate.yaml:5: colour: unknown field "colour"`,
		`vgate.yaml:7: peerings[0].name: "waytoolongname" must be 1 to 12`,
		`vgate.yaml:7: peerings[0].public_key: want a base64 WireGuard public key`,
		`vgate.yaml:8: peerings[1].network: required`,
		`vgate.yaml:8: peerings[1].endpoint: "nowhere" is not host:port`,
		`vgate.yaml:8: peerings[1].address_spaces[0]: 10.2.0.0/24 (peering "ok") overlaps 10.2.0.0/16 (peering "waytoolongname", network n)`,
		`vgate.yaml:1: private_key_file: required`,
	}
	got := es.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
	if n := strings.Count(got, "\n") + 1; n != len(es) {
		t.Errorf("Error() has %d lines for %d errors", n, len(es))
	}
	for i := 1; i < len(es); i++ {
		if es[i].Line < es[i-1].Line {
			t.Errorf("errors not in line order:\n%s", got)
		}
	}
	// The tunnel address is outside the spaces, but the spaces themselves
	// are invalid, so it is reported too (every problem, not the first).
	if !strings.Contains(got, "tunnel_address: 10.9.9.9 must be inside") {
		t.Errorf("tunnel address not reported:\n%s", got)
	}
}

func writeKey(t *testing.T, dir string, mode os.FileMode) (keys.PrivateKey, string) {
	t.Helper()
	k, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "private.key")
	if err := keys.WritePrivateFile(path, k); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return k, path
}

func writeConfig(t *testing.T, dir, data string) string {
	t.Helper()
	path := filepath.Join(dir, "vgate.yaml")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	t.Run("0600 key, relative path", func(t *testing.T) {
		dir := t.TempDir()
		k, _ := writeKey(t, dir, 0o600)
		path := writeConfig(t, dir, minimal) // private_key_file: private.key
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.PrivateKey != k || c.Path != path {
			t.Errorf("Load: key loaded %v, Path %q", c.PrivateKey == k, c.Path)
		}
	})
	t.Run("0644 key refused", func(t *testing.T) {
		dir := t.TempDir()
		k, kp := writeKey(t, dir, 0o644)
		path := writeConfig(t, dir, edit(t, minimal, "private.key", kp))
		_, err := Load(path)
		var es Errors
		if !errors.As(err, &es) || len(es) != 1 {
			t.Fatalf("Load = %v, want one error", err)
		}
		e := es[0]
		if e.Field != "private_key_file" || e.Line != 4 || !strings.Contains(e.Msg, "group or other") || e.File != path {
			t.Errorf("got %q", e)
		}
		if strings.Contains(err.Error(), k.Base64()) || strings.Contains(err.Error(), k.Hex()) {
			t.Errorf("error leaks the private key: %v", err)
		}
	})
	t.Run("missing key file", func(t *testing.T) {
		dir := t.TempDir()
		_, err := Load(writeConfig(t, dir, minimal))
		if err == nil || !strings.Contains(err.Error(), "vgate.yaml:4: private_key_file: private key file") {
			t.Errorf("Load = %v", err)
		}
	})
	t.Run("own public key as peer", func(t *testing.T) {
		dir := t.TempDir()
		k, _ := writeKey(t, dir, 0o600)
		data := minimal + "peerings:\n" + peer("west", "vnet-west", keyWest, "[10.2.0.0/16]") + peer("self", "vnet-x", k.Public().String(), "[10.3.0.0/16]")
		_, err := Load(writeConfig(t, dir, data))
		if err == nil || !strings.Contains(err.Error(), "vgate.yaml:7: peerings[1].public_key: is this gateway's own public key") {
			t.Errorf("Load = %v", err)
		}
		if err != nil && strings.Contains(err.Error(), k.Base64()) {
			t.Errorf("error leaks the private key: %v", err)
		}
	})
	t.Run("parse and key errors together", func(t *testing.T) {
		dir := t.TempDir()
		writeKey(t, dir, 0o640)
		_, err := Load(writeConfig(t, dir, minimal+"listen_port: 0\n"))
		if err == nil || !strings.Contains(err.Error(), "private_key_file") || !strings.Contains(err.Error(), "listen_port") {
			t.Errorf("Load = %v, want both problems", err)
		}
	})
	t.Run("missing config", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Load = %v, want ErrNotExist", err)
		}
	})
}

func TestValidateIdempotent(t *testing.T) {
	c := mustParse(t, full)
	for range 2 {
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	c.Peerings[1].PublicKey = c.Peerings[0].PublicKey
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "peerings[1].public_key: same public key") {
		t.Errorf("Validate = %v", err)
	}
}

// TestDeployExamples: every example topology in deploy/examples is a valid
// config (the key files are not read by Parse).
func TestDeployExamples(t *testing.T) {
	files, err := filepath.Glob("../../deploy/examples/*/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(data, f); err != nil {
			t.Errorf("%s:\n%v", f, err)
		}
	}
	data, err := os.ReadFile("../../deploy/examples/redundant/east.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := Parse(data, "east.yaml"); err != nil || !c.BGP.Multipath {
		t.Errorf("the redundant example's east does not use both west gateways (bgp.multipath)")
	}
}
