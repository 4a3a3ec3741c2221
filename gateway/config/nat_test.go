package config

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vgate-project/vgate/nat"
	"github.com/vgate-project/vgate/overlap"
)

// natHub is a hub (10.9.0.0/16) with two branches that both use
// 10.1.0.0/16, shown here as 100.65.0.0/16 and 100.66.0.0/16. Lines
// matter: peering a starts on line 6 (its rules on 12 and 13), peering b
// on line 14 (its rule on 20).
const natHub = `name: hub
address_spaces: [10.9.0.0/16, "fd09::/48"]
tunnel_address: 10.9.255.254
private_key_file: private.key
peerings:
  - name: a
    network: branch-a
    public_key: "` + keyWest + `"
    address_spaces: [10.1.0.0/16, "fd01::/48"]
    nat:
      ingress:
        - { internal: 10.1.0.0/16, external: 100.65.0.0/16 }
        - { internal: "fd01::/48", external: "fd65::/48" }
  - name: b
    network: branch-b
    public_key: "` + keyNorth + `"
    address_spaces: [10.1.0.0/16]
    nat:
      ingress:
        - { internal: 10.1.0.0/16, external: 100.66.0.0/16 }
`

// natPeer is a third peering, to network branch-c, with a nat section
// (lines 21 to 25).
func natPeer(name, spaces, natFlow string) string {
	return "  - name: " + name + "\n    network: branch-c\n    public_key: \"" + keyWest2 + "\"\n    address_spaces: " + spaces + "\n    nat: " + natFlow + "\n"
}

func TestNATValid(t *testing.T) {
	c := mustParse(t, natHub)
	if got := c.Peerings[0].NATRules(); len(got.Ingress) != 2 || got.Ingress[1] != (nat.Rule{Internal: netip.MustParsePrefix("fd01::/48"), External: netip.MustParsePrefix("fd65::/48")}) || len(got.Egress) != 0 {
		t.Errorf("NATRules = %+v", got)
	}
	if !c.Peerings[1].NATRules().Equal(nat.Rules{Ingress: []nat.Rule{{Internal: netip.MustParsePrefix("10.1.0.0/16"), External: netip.MustParsePrefix("100.66.0.0/16")}}}) {
		t.Errorf("b: %+v", c.Peerings[1].NATRules())
	}
	for _, tc := range []struct{ name, data string }{
		// A branch that uses the hub's own 10.9.0.0/16 sees the hub as
		// 100.99.0.0/16 (egress) and is seen as 100.67.0.0/16 (ingress).
		{"egress and ingress", natHub + natPeer("c", "[10.9.0.0/16]", "{ingress: [{internal: 10.9.0.0/16, external: 100.67.0.0/16}], egress: [{internal: 10.9.0.0/16, external: 100.99.0.0/16}]}")},
		// Only part of a space translated: the rest is seen as it is.
		{"partial", edit(t, natHub, "address_spaces: [10.1.0.0/16]\n", "address_spaces: [10.0.0.0/14]\n",
			"{ internal: 10.1.0.0/16, external: 100.66.0.0/16 }", "{ internal: 10.1.0.0/16, external: 100.66.0.0/16 }\n        - { internal: 10.2.0.0/16, external: 100.67.0.0/16 }\n        - { internal: 10.3.0.0/16, external: 100.68.0.0/16 }\n        - { internal: 10.0.0.0/16, external: 100.69.0.0/16 }")},
		// An internal covered by two spaces together.
		{"covered by two spaces", edit(t, natHub, "address_spaces: [10.1.0.0/16]\n", "address_spaces: [10.1.0.0/17, 10.1.128.0/17]\n")},
		// A swap is a bijection.
		{"swap", edit(t, natHub, "address_spaces: [10.1.0.0/16]\n", "address_spaces: [10.1.0.0/16, 100.70.0.0/16]\n",
			"{ internal: 10.1.0.0/16, external: 100.66.0.0/16 }", "{ internal: 10.1.0.0/16, external: 100.70.0.0/16 }\n        - { internal: 100.70.0.0/16, external: 10.1.0.0/16 }")},
		// BGP: the allow-list is the peer's own, the session address is
		// as this side sees it.
		{"bgp", natHub + "    bgp: {asn: 65002, address: 100.66.255.254}\nbgp: {asn: 65001}\n"},
		// Both branches use the same link-local tunnel address: one is
		// translated.
		{"tunnel addresses", edit(t, natHub, "    address_spaces: [10.1.0.0/16]\n", "    address_spaces: [10.1.0.0/16]\n    tunnel_address: 169.254.0.2\n",
			"    address_spaces: [10.1.0.0/16, \"fd01::/48\"]\n", "    address_spaces: [10.1.0.0/16, \"fd01::/48\"]\n    tunnel_address: 169.254.100.2\n",
			"        - { internal: \"fd01::/48\", external: \"fd65::/48\" }\n", "        - { internal: \"fd01::/48\", external: \"fd65::/48\" }\n        - { internal: 169.254.0.2/32, external: 169.254.100.2/32 }\n")},
		// The pool is this side's: an egress rule may show it.
		{"egress pool", natHub + "      egress: [{internal: 172.16.0.0/24, external: 100.99.0.0/24}]\n" +
			"point_to_site: {endpoint: vpn.example.net:51821, address_pool: [172.16.0.0/24]}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) { mustParse(t, tc.data) })
	}
}

func TestNATErrors(t *testing.T) {
	isConflict := func(err error) bool { return errors.As(err, new(overlap.Conflict)) }
	is := func(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }
	c3 := func(nat string) string { return natHub + natPeer("c", "[10.9.0.0/16]", nat) }
	tests := []struct {
		name  string
		data  string
		field string
		line  int
		typed func(error) bool
		want  []string // substrings of the message: both sides named
	}{
		// Without rules nothing changes: overlap is refused, naming both
		// peerings.
		{"no rules", strings.ReplaceAll(strings.ReplaceAll(natHub, "    nat:\n      ingress:\n        - { internal: 10.1.0.0/16, external: 100.66.0.0/16 }\n", ""),
			"    nat:\n      ingress:\n        - { internal: 10.1.0.0/16, external: 100.65.0.0/16 }\n        - { internal: \"fd01::/48\", external: \"fd65::/48\" }\n", ""),
			"peerings[1].address_spaces[0]", 13, isConflict, []string{`peering "b", network branch-b`, `peering "a", network branch-a`}},
		{"same external", edit(t, natHub, "100.66.0.0/16", "100.65.0.0/16"), "peerings[1].nat.ingress[0].external", 20, isConflict,
			[]string{`peering "b", network branch-b, nat.ingress[0] (line 20): 10.1.0.0/16 as this side sees it`, `peering "a", network branch-a, nat.ingress[0] (line 12)`, "equals"}},
		{"external on local", edit(t, natHub, "100.66.0.0/16", "10.9.0.0/16"), "peerings[1].nat.ingress[0].external", 20, isConflict,
			[]string{"10.9.0.0/16 (peering \"b\"", "10.9.0.0/16 (local address_spaces)"}},
		{"external on the pool", natHub + "point_to_site: {endpoint: vpn.example.net:51821, address_pool: [100.66.0.0/24]}\n", "point_to_site.address_pool[0]", 21, isConflict,
			[]string{"100.66.0.0/24 (point_to_site.address_pool)", "nat.ingress[0] (line 20)"}},
		{"external on the peering's untranslated part", edit(t, natHub, "address_spaces: [10.1.0.0/16]\n", "address_spaces: [10.1.0.0/16, 100.66.0.0/24]\n"),
			"peerings[1].nat.ingress[0].external", 20, isConflict, []string{"100.66.0.0/16 (peering \"b\", network branch-b, nat.ingress[0]", "100.66.0.0/24 (peering \"b\", network branch-b)"}},
		{"length", edit(t, natHub, "100.66.0.0/16", "100.66.0.0/24"), "peerings[1].nat.ingress[0]", 20, is(nat.ErrLength), []string{"10.1.0.0/16 as 100.66.0.0/24"}},
		{"family", edit(t, natHub, "100.66.0.0/16", `"fd66::/16"`), "peerings[1].nat.ingress[0]", 20, is(nat.ErrFamily), nil},
		{"identity", edit(t, natHub, "100.66.0.0/16", "10.1.0.0/16"), "peerings[1].nat.ingress[0]", 20, is(nat.ErrIdentity), nil},
		{"rules overlap", edit(t, natHub, `{ internal: "fd01::/48", external: "fd65::/48" }`, "{ internal: 10.1.4.0/24, external: 100.70.0.0/24 }"),
			"peerings[0].nat.ingress[1]", 13, is(nat.ErrOverlap), []string{"internal 10.1.4.0/24 is inside 10.1.0.0/16 of ingress[0]", "(ingress[0] is at line 12)"}},
		{"externals overlap", edit(t, natHub, `{ internal: "fd01::/48", external: "fd65::/48" }`, "{ internal: 10.2.0.0/24, external: 100.65.7.0/24 }", `[10.1.0.0/16, "fd01::/48"]`, `[10.1.0.0/16, 10.2.0.0/16]`),
			"peerings[0].nat.ingress[1]", 13, is(nat.ErrOverlap), []string{"external 100.65.7.0/24 is inside 100.65.0.0/16"}},
		{"host bits", edit(t, natHub, "100.66.0.0/16", "100.66.0.1/16"), "peerings[1].nat.ingress[0].external", 20, nil, []string{"has host bits set; did you mean 100.66.0.0/16?"}},
		{"external missing", edit(t, natHub, "{ internal: 10.1.0.0/16, external: 100.66.0.0/16 }", "{ internal: 10.1.0.0/16 }"), "peerings[1].nat.ingress[0].external", 20, nil, []string{"required"}},
		{"ingress not covered", edit(t, natHub, "{ internal: 10.1.0.0/16, external: 100.66.0.0/16 }", "{ internal: 10.7.0.0/16, external: 100.66.0.0/16 }"),
			"peerings[1].nat.ingress[0].internal", 20, is(ErrNATNotCovered), []string{"10.7.0.0/16 is not inside this peering's address_spaces [10.1.0.0/16]"}},
		{"ingress half covered", edit(t, natHub, "address_spaces: [10.1.0.0/16]\n", "address_spaces: [10.1.0.0/17]\n"),
			"peerings[1].nat.ingress[0].internal", 20, is(ErrNATNotCovered), nil},
		{"egress not covered", natHub + "      egress: [{internal: 10.8.0.0/16, external: 100.99.0.0/16}]\n",
			"peerings[1].nat.egress[0].internal", 21, is(ErrNATNotCovered), []string{"10.8.0.0/16 is not inside this side's address spaces"}},
		{"ipsec", edit(t, natHub, "    network: branch-b\n    public_key: \""+keyNorth+"\"\n", "    network: branch-b\n    type: ipsec\n    endpoint: 198.18.0.9\n    ipsec: {psk_file: hq.psk}\n"),
			"peerings[1].nat", 20, is(ErrNATIPsec), []string{"one TUN"}},
		{"tunnel address as the peer numbers it", natHub + "    bgp: {asn: 65002, address: 10.1.255.254}\nbgp: {asn: 65001}\n",
			"peerings[1].bgp.address", 21, is(ErrNATTunnelAddress), []string{"write the peer's tunnel address as this side sees it: 100.66.255.254"}},
		// The branch uses the hub's 10.9.0.0/16: shown to the hub as
		// 100.67.0.0/16, but it would see the hub's 10.9.0.0/16 as its own.
		{"peer sees us as itself", c3("{ingress: [{internal: 10.9.0.0/16, external: 100.67.0.0/16}]}"),
			"peerings[2].nat.ingress[0].internal", 25, isConflict,
			[]string{`10.9.0.0/16 (peering "c", nat.ingress[0] (line 25) internal: the peer's own)`, `10.9.0.0/16 (local address_spaces, as peering "c" sees it)`, "a nat.egress rule can show them"}},
		{"egress identity", c3("{ingress: [{internal: 10.9.0.0/16, external: 100.67.0.0/16}], egress: [{internal: 10.9.0.0/16, external: 10.9.0.0/16}]}"),
			"peerings[2].nat.egress[0]", 25, is(nat.ErrIdentity), nil},
		{"egress external overlaps the peer", natHub + "      egress: [{internal: 10.9.0.0/16, external: 10.1.0.0/16}]\n",
			"peerings[1].nat.egress[0].external", 21, isConflict,
			[]string{`10.1.0.0/16 (this side's 10.9.0.0/16 as peering "b" sees it, nat.egress[0] (line 21))`, `10.1.0.0/16 (peering "b" address_spaces: the peer's own)`, "would see this side's addresses as its own; choose another external prefix"}},
		{"egress external overlaps this side", edit(t, natHub, `address_spaces: [10.9.0.0/16, "fd09::/48"]`, `address_spaces: [10.9.0.0/16, 100.99.0.0/24, "fd09::/48"]`) + "      egress: [{internal: 10.9.0.0/16, external: 100.99.0.0/16}]\n",
			"peerings[1].nat.egress[0].external", 21, isConflict, []string{`100.99.0.0/24 (local address_spaces, as peering "b" sees it)`}},
		{"egress external overlaps another peering", natHub + "      egress: [{internal: 10.9.0.0/16, external: 100.65.0.0/16}]\n",
			"peerings[1].nat.egress[0].external", 21, isConflict, []string{`100.65.0.0/16 (peering "a", network branch-a, as peering "b" sees it)`, `peering "b" could not tell the two apart`}},
		{"unknown field", natHub + "      egres: []\n", "peerings[1].nat.egres", 21, nil, []string{`unknown field "egres"`}},
		{"not a prefix", edit(t, natHub, "100.66.0.0/16", "100.66.0.0"), "peerings[1].nat.ingress[0].external", 20, nil, []string{"is not a prefix"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := parseErrors(t, tt.data)
			i := slices.IndexFunc(es, func(e *FieldError) bool { return e.Field == tt.field })
			if i < 0 {
				t.Fatalf("no error at %s; got:\n%v", tt.field, es)
			}
			e := es[i]
			if e.Line != tt.line {
				t.Errorf("%s at line %d, want %d", e, e.Line, tt.line)
			}
			if tt.typed != nil && !tt.typed(e) {
				t.Errorf("%s: cause %T %v is not the expected type", e, e.Err, e.Err)
			}
			for _, w := range tt.want {
				if !strings.Contains(e.Msg, w) {
					t.Errorf("message %q lacks %q", e.Msg, w)
				}
			}
		})
	}
}
