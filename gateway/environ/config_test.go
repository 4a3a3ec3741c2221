package environ

import (
	"net/netip"
	"testing"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
)

func pub(t *testing.T) keys.PublicKey {
	k, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// baseConfig has four peerings: two with literal endpoints, a dial-in
// one and one whose name does not resolve.
func baseConfig(t *testing.T) *config.Config {
	return &config.Config{
		Name:          "east",
		AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
		TunnelAddress: netip.MustParseAddr("169.254.10.1"),
		ListenPort:    51820,
		MaxTunnels:    10,
		Peerings: []config.Peering{
			{Name: "west", Network: "west", PublicKey: pub(t), Endpoint: "198.18.0.2:51820",
				AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}, TunnelAddress: netip.MustParseAddr("169.254.10.2")},
			{Name: "v6", Network: "v6", PublicKey: pub(t), Endpoint: "[2001:db8::2]:51820",
				AddressSpaces: []netip.Prefix{netip.MustParsePrefix("fd00:3::/48")}},
			{Name: "dialin", Network: "dialin", PublicKey: pub(t),
				AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.4.0.0/16")}},
			{Name: "badname", Network: "badname", PublicKey: pub(t), Endpoint: "nowhere.invalid:51820",
				AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.5.0.0/16")}},
		},
	}
}
