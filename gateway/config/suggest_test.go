package config

import (
	"strings"
	"testing"
)

func TestSuggest(t *testing.T) {
	known := []string{"address_spaces", "bgp", "endpoint", "name", "network", "public_key", "static_routes", "tunnel_address"}
	for _, tc := range []struct{ in, want string }{
		{"adress_spaces", "address_spaces"},
		{"address-spaces", "address_spaces"},
		{"Address_Spaces", "address_spaces"},
		{"adress_space", "address_spaces"},
		{"netwrok", "network"},
		{"publickey", "public_key"},
		{"endpiont", "endpoint"},
		{"bpg", "bgp"},
		{"colour", ""},
		{"mtu", ""}, // valid elsewhere, not a misspelling of a peering field
		{"x", ""},
		{"routes", ""},
	} {
		if got := suggest(tc.in, known); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// One misspelt field gives one problem, with a line, that names the field
// it is likely meant to be and folds the problems that follow only from
// it; problems of their own are still listed beside it.
func TestTypoFolding(t *testing.T) {
	peering := "peerings:\n  - name: west\n    network: vnet-west\n    public_key: \"" + keyWest + "\"\n"
	for _, tc := range []struct {
		name, data string
		want       []string // every problem, in order (substrings, with line)
	}{
		{"peering address_spaces", minimal + peering + "    adress_spaces: [10.2.0.0/16]\n",
			[]string{`vgate.yaml:9: peerings[0].adress_spaces: unknown field "adress_spaces": did you mean "address_spaces"? (this also explains the problem with peerings[0].address_spaces)`}},
		{"top-level address_spaces", edit(t, minimal, "address_spaces:", "adress_spaces:"),
			[]string{`vgate.yaml:2: adress_spaces: unknown field "adress_spaces": did you mean "address_spaces"? (this also explains the problem with address_spaces, tunnel_address)`}},
		{"misspelt optional field", minimal + peering + "    address_spaces: [10.2.0.0/16]\n    persistent_keepalve: 25s\n",
			[]string{`vgate.yaml:10: peerings[0].persistent_keepalve: unknown field "persistent_keepalve": did you mean "persistent_keepalive"?`}},
		{"a real problem stays", minimal + peering + "    adress_spaces: [10.2.0.0/16]\n    endpoint: nowhere\n",
			[]string{
				`vgate.yaml:9: peerings[0].adress_spaces: unknown field "adress_spaces": did you mean "address_spaces"? (this also explains`,
				`vgate.yaml:10: peerings[0].endpoint: "nowhere" is not host:port`,
			}},
		{"two typos", edit(t, minimal, "address_spaces:", "adress_spaces:", "tunnel_address:", "tunnel_adress:"),
			[]string{
				`vgate.yaml:2: adress_spaces: unknown field "adress_spaces": did you mean "address_spaces"? (the misspelt fields also explain the problems with address_spaces, tunnel_address)`,
				`vgate.yaml:3: tunnel_adress: unknown field "tunnel_adress": did you mean "tunnel_address"? (the misspelt fields also explain`,
			}},
		{"quoted key: suggested, not folded", minimal + peering + "    \"adress_spaces\": [10.2.0.0/16]\n",
			[]string{
				`vgate.yaml:6: peerings[0].address_spaces: at least one prefix is required`,
				`vgate.yaml:9: peerings[0].adress_spaces: unknown field "adress_spaces": did you mean "address_spaces"?`,
			}},
		{"no suggestion", minimal + "colour: blue\n",
			[]string{`vgate.yaml:5: colour: unknown field "colour" (known here: address_spaces, bgp,`}},
		{"missing top-level field has a line", edit(t, minimal, "name: vnet-east\n", ""),
			[]string{`vgate.yaml:1: name: required`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := parseErrors(t, tc.data)
			if len(es) != len(tc.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(es), len(tc.want), es)
			}
			for i, e := range es {
				if !strings.Contains(e.Error(), tc.want[i]) {
					t.Errorf("problem %d:\n got %s\nwant %s", i, e.Error(), tc.want[i])
				}
				if e.Line <= 0 {
					t.Errorf("problem %q has no line", e.Error())
				}
			}
		})
	}
}
