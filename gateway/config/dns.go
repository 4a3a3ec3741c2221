package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/vgate-project/vgate/overlap"
)

// DefaultEnrollPort is the port of enroll.listen in examples and of the
// enrollment URL when enroll.listen gives none.
const DefaultEnrollPort = 8443

// CanonicalZone is a zone as the name server compares it: lower case,
// with the root's trailing dot ("east.vnet.internal.").
func CanonicalZone(z string) string {
	return strings.ToLower(strings.TrimSuffix(z, ".")) + "."
}

// ParseUpstream parses a dns.upstream entry: an IP address, or
// address:port ([v6]:port), default port 53.
func ParseUpstream(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.AddrPort{}, fmt.Errorf("%q: an address with a zone cannot be an upstream", s)
		}
		return netip.AddrPortFrom(a.Unmap(), 53), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("%q is neither an IP address nor address:port (write IPv6 with a port as [addr]:port)", s)
	}
	return overlap.UnmapAddrPort(ap), nil
}

// zoneRelation says how two canonical zones relate: "" when they are
// disjoint, else a description for an error.
func zoneRelation(a, b string) string {
	switch {
	case a == b:
		return "is the same zone as"
	case strings.HasSuffix(a, "."+b):
		return "lies inside"
	case strings.HasSuffix(b, "."+a):
		return "contains"
	}
	return ""
}

func validateDNS(c *Config, d *doc) {
	type zone struct{ path, canon, network string }
	var zones []zone
	if s := c.DNS; s != nil {
		switch {
		case s.Zone == "":
			d.errorf("dns.zone", "required: the gateway's DNS zone, e.g. %s.internal", c.Name)
		case !isDNSName(s.Zone) || strings.Count(strings.TrimSuffix(s.Zone, "."), ".") == 0:
			d.errorf("dns.zone", "%q is not a DNS zone of at least two labels (letters, digits and '-', e.g. east.vnet.internal)", s.Zone)
		default:
			zones = append(zones, zone{"dns.zone", CanonicalZone(s.Zone), ""})
		}
		for i, u := range s.Upstream {
			path := fmt.Sprintf("dns.upstream[%d]", i)
			ap, err := ParseUpstream(u)
			switch {
			case err != nil:
				d.errorf(path, "%v", err)
			case ap.Addr() == c.TunnelAddress:
				d.errorf(path, "%s is tunnel_address, where this gateway serves DNS itself: a query would loop", u)
			}
		}
		// point_to_site.dns may only say what dns implies (a round trip
		// of a loaded config writes it).
		if p := c.PointToSite; p != nil && d.present("point_to_site.dns") && !slices.Equal(p.DNS, []netip.Addr{c.TunnelAddress}) {
			d.errorf("point_to_site.dns", "set together with dns: with dns, client configs get the tunnel address %s as their DNS server; put these resolvers in dns.upstream instead", c.TunnelAddress)
		}
	}
	for i, p := range c.Peerings {
		if p.DNSZone == "" {
			continue
		}
		path := fmt.Sprintf("peerings[%d].dns_zone", i)
		switch {
		case c.DNS == nil:
			d.errorf(path, "peering %q: forwarding %s needs the gateway's own dns section (dns: { zone: ... })", p.Name, p.DNSZone)
		case !isDNSName(p.DNSZone) || strings.Count(strings.TrimSuffix(p.DNSZone, "."), ".") == 0:
			d.errorf(path, "peering %q: %q is not a DNS zone of at least two labels", p.Name, p.DNSZone)
		case !p.PeerTunnelAddress().IsValid():
			d.errorf(path, "peering %q: names in %s are forwarded to the remote gateway's tunnel address; set peerings[%d].tunnel_address (or bgp.address)", p.Name, p.DNSZone, i)
		default:
			zones = append(zones, zone{path, CanonicalZone(p.DNSZone), p.Network})
		}
	}
	for j := range zones {
		for i := range j {
			a, b := zones[j], zones[i]
			if a.network != "" && a.network == b.network && a.canon == b.canon {
				continue // two peerings to one network share its zone
			}
			if rel := zoneRelation(a.canon, b.canon); rel != "" {
				d.errorf(a.path, "%s %s %s %s: a name must have one server", strings.TrimSuffix(a.canon, "."), rel, b.path, strings.TrimSuffix(b.canon, "."))
			}
		}
	}
}

func validateEnroll(c *Config, d *doc) {
	e := c.PointToSite.Enroll
	if e == nil {
		return
	}
	if e.Listen == "" {
		d.errorf("point_to_site.enroll.listen", "required: host:port of the enrollment HTTPS listener, e.g. 198.18.0.1:%d", DefaultEnrollPort)
	} else if err := checkHostPort(e.Listen, true); err != nil {
		d.errorf("point_to_site.enroll.listen", "%v", err)
	}
	if e.URL != "" {
		u, err := url.Parse(e.URL)
		switch {
		case err != nil:
			d.errorf("point_to_site.enroll.url", "%q is not a URL: %v", e.URL, err)
		case u.Scheme != "https" || u.Host == "":
			d.errorf("point_to_site.enroll.url", "%q must be an https:// URL with a host", e.URL)
		case u.User != nil || u.RawQuery != "" || u.Fragment != "":
			d.errorf("point_to_site.enroll.url", "%q must not hold a user, query or fragment", e.URL)
		}
	}
}

// EnrollURL is the URL invite tokens carry: point_to_site.enroll.url, or
// https://<point_to_site.endpoint's host>:<enroll.listen's port>/.
func EnrollURL(c *Config) string {
	p := c.PointToSite
	if p == nil || p.Enroll == nil {
		return ""
	}
	if p.Enroll.URL != "" {
		return p.Enroll.URL
	}
	host, _, _ := net.SplitHostPort(p.Endpoint)
	port := strconv.Itoa(DefaultEnrollPort)
	if _, lp, err := net.SplitHostPort(p.Enroll.Listen); err == nil {
		port = lp
	}
	return "https://" + net.JoinHostPort(host, port) + "/"
}
