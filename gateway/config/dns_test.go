package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestDNSValid(t *testing.T) {
	withP2S := minimal + "point_to_site:\n  endpoint: vpn.example.net:51821\n  address_pool: [172.16.0.0/24]\n  enroll: { listen: \"198.18.0.1:8443\" }\n"
	c := mustParse(t, withP2S+"dns: { zone: East.Vnet.Internal., upstream: [10.1.0.53, \"[fd00::53]:5353\"] }\n"+
		"peerings:\n  - {name: west, network: vnet-west, public_key: "+keyWest+", address_spaces: [10.2.0.0/16], tunnel_address: 10.2.255.254, dns_zone: west.vnet.internal}\n"+
		"  - {name: west2, network: vnet-west, public_key: "+keyWest2+", address_spaces: [10.2.0.0/16], tunnel_address: 10.2.255.253, dns_zone: west.vnet.internal}\n")
	if got := c.PointToSite.DNS; !slices.Equal(got, []netip.Addr{c.TunnelAddress}) {
		t.Errorf("point_to_site.dns = %v, want the tunnel address", got)
	}
	if got := c.PointToSite.DNSSearch; !slices.Equal(got, []string{"east.vnet.internal"}) {
		t.Errorf("point_to_site search domains = %v", got)
	}
	if got := EnrollURL(c); got != "https://vpn.example.net:8443/" {
		t.Errorf("EnrollURL = %q", got)
	}
	if CanonicalZone(c.DNS.Zone) != "east.vnet.internal." {
		t.Errorf("CanonicalZone(%q) = %q", c.DNS.Zone, CanonicalZone(c.DNS.Zone))
	}
	for in, want := range map[string]string{"10.1.0.53": "10.1.0.53:53", "[fd00::53]:5353": "[fd00::53]:5353", "::ffff:10.0.0.1": "10.0.0.1:53"} {
		if ap, err := ParseUpstream(in); err != nil || ap.String() != want {
			t.Errorf("ParseUpstream(%q) = %v, %v; want %s", in, ap, err, want)
		}
	}
	// What dns implies may be written (a loaded config's round trip does).
	c = mustParse(t, minimal+"dns: { zone: east.internal }\npoint_to_site:\n  endpoint: vpn.example.net:51821\n  address_pool: [172.16.0.0/24]\n  dns: [10.1.255.254]\n")
	if !slices.Equal(c.PointToSite.DNSSearch, []string{"east.internal"}) {
		t.Errorf("explicit tunnel address as point_to_site.dns: search %v", c.PointToSite.DNSSearch)
	}
	c = mustParse(t, minimal+"point_to_site:\n  endpoint: vpn.example.net:51821\n  address_pool: [172.16.0.0/24]\n")
	if c.PointToSite.DNS != nil || EnrollURL(c) != "" {
		t.Errorf("without dns and enroll: dns %v, enroll URL %q", c.PointToSite.DNS, EnrollURL(c))
	}
}

func TestDNSErrors(t *testing.T) {
	withP2S := minimal + "point_to_site:\n  endpoint: vpn.example.net:51821\n  address_pool: [172.16.0.0/24]\n"
	peerZone := func(zone, extra string) string {
		return "peerings:\n  - {name: west, network: vnet-west, public_key: " + keyWest + ", address_spaces: [10.2.0.0/16]" + extra + ", dns_zone: " + zone + "}\n"
	}
	tests := []struct {
		name, data, field, want string
	}{
		{"zone missing", minimal + "dns: { upstream: [10.1.0.53] }\n", "dns.zone", "required"},
		{"zone one label", minimal + "dns: { zone: internal }\n", "dns.zone", "at least two labels"},
		{"zone bad chars", minimal + "dns: { zone: \"east_1.internal\" }\n", "dns.zone", "not a DNS zone"},
		{"upstream garbage", minimal + "dns: { zone: east.internal, upstream: [dns.google] }\n", "dns.upstream[0]", "neither an IP address nor address:port"},
		{"upstream port 0", minimal + "dns: { zone: east.internal, upstream: [\"10.0.0.1:0\"] }\n", "dns.upstream[0]", "neither"},
		{"upstream loops", minimal + "dns: { zone: east.internal, upstream: [10.1.255.254] }\n", "dns.upstream[0]", "would loop"},
		{"p2s dns beside dns", withP2S + "  dns: [10.1.0.53]\ndns: { zone: east.internal }\n", "point_to_site.dns", "put these resolvers in dns.upstream"},
		{"peer zone without dns", minimal + peerZone("west.internal", ", tunnel_address: 10.2.255.254"), "peerings[0].dns_zone", "needs the gateway's own dns section"},
		{"peer zone without tunnel address", minimal + "dns: { zone: east.internal }\n" + peerZone("west.internal", ""), "peerings[0].dns_zone", "set peerings[0].tunnel_address"},
		{"peer zone same as ours", minimal + "dns: { zone: east.internal }\n" + peerZone("East.Internal", ", tunnel_address: 10.2.255.254"), "peerings[0].dns_zone", "is the same zone as dns.zone"},
		{"peer zone inside ours", minimal + "dns: { zone: east.internal }\n" + peerZone("w.east.internal", ", tunnel_address: 10.2.255.254"), "peerings[0].dns_zone", "lies inside dns.zone"},
		{"two networks one zone", minimal + "dns: { zone: east.internal }\npeerings:\n" +
			"  - {name: a, network: n1, public_key: " + keyWest + ", address_spaces: [10.2.0.0/16], tunnel_address: 10.2.255.254, dns_zone: w.internal}\n" +
			"  - {name: b, network: n2, public_key: " + keyWest2 + ", address_spaces: [10.3.0.0/16], tunnel_address: 10.3.255.254, dns_zone: w.internal}\n",
			"peerings[1].dns_zone", "is the same zone as peerings[0].dns_zone"},
		{"enroll listen missing", withP2S + "  enroll: { url: \"https://vpn.example.net/\" }\n", "point_to_site.enroll.listen", "required"},
		{"enroll listen bad", withP2S + "  enroll: { listen: \"8443\" }\n", "point_to_site.enroll.listen", "not host:port"},
		{"enroll url http", withP2S + "  enroll: { listen: \":8443\", url: \"http://vpn.example.net/\" }\n", "point_to_site.enroll.url", "https:// URL"},
		{"enroll without p2s", minimal + "enroll: { listen: \":8443\" }\n", "enroll", "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := parseErrors(t, tt.data)
			for _, e := range es {
				if e.Field == tt.field && strings.Contains(e.Error(), tt.want) {
					return
				}
			}
			t.Errorf("no error at %s containing %q; got:\n%v", tt.field, tt.want, es)
		})
	}
}

// FuzzParseUpstream: an accepted upstream has a port, no zone, no mapped
// address, and parses back from its string to the same value.
func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{"10.1.0.53", "[fd00::53]:5353", "::ffff:10.0.0.1", "10.0.0.1:0", "fe80::1%eth0", "dns.google", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := ParseUpstream(s)
		if err != nil {
			return
		}
		if ap.Port() == 0 || ap.Addr().Zone() != "" || ap.Addr().Is4In6() {
			t.Fatalf("ParseUpstream(%q) = %v", s, ap)
		}
		if again, err := ParseUpstream(ap.String()); err != nil || again != ap {
			t.Fatalf("%v does not round-trip: %v %v", ap, again, err)
		}
	})
}
