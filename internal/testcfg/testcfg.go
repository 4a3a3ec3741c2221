// Package testcfg holds the config fixtures that tests of several
// packages share; only tests import it.
package testcfg

import (
	"net/netip"
	"testing"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
)

// PublicKey is a fresh public key.
func PublicKey(t testing.TB) keys.PublicKey {
	t.Helper()
	k, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// East is gateway "east" (10.1.0.0/16) with four peerings: "west" and
// "v6" with literal endpoints (IPv4, IPv6), "dialin" without an endpoint
// and "badname" whose name does not resolve.
func East(t testing.TB) *config.Config {
	t.Helper()
	return &config.Config{
		Name:          "east",
		AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
		TunnelAddress: netip.MustParseAddr("169.254.10.1"),
		ListenPort:    51820,
		MaxTunnels:    10,
		Peerings: []config.Peering{
			{Name: "west", Network: "west", PublicKey: PublicKey(t), Endpoint: "198.18.0.2:51820",
				AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}, TunnelAddress: netip.MustParseAddr("169.254.10.2")},
			{Name: "v6", Network: "v6", PublicKey: PublicKey(t), Endpoint: "[2001:db8::2]:51820",
				AddressSpaces: []netip.Prefix{netip.MustParsePrefix("fd00:3::/48")}},
			{Name: "dialin", Network: "dialin", PublicKey: PublicKey(t),
				AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.4.0.0/16")}},
			{Name: "badname", Network: "badname", PublicKey: PublicKey(t), Endpoint: "nowhere.invalid:51820",
				AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.5.0.0/16")}},
		},
	}
}
