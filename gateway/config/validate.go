package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/overlap"
	"github.com/vgate-project/vgate/peering"
)

// MaxPeeringName is the longest peering name: it becomes the interface
// name vg-<name>, and Linux interface names have at most 15 characters.
const MaxPeeringName = 12

var linkLocal4 = netip.MustParsePrefix("169.254.0.0/16")

// isLabel reports whether s is 1..max characters of a-z, 0-9 and '-', not
// starting or ending with '-' (a DNS label, usable in metric labels).
func isLabel(s string, max int) bool {
	if len(s) == 0 || len(s) > max || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' {
				return false
			}
		}
	}
	// A name whose last label is numeric is a mistyped IPv4 address.
	_, err := strconv.Atoi(labels[len(labels)-1])
	return err != nil
}

// checkHostPort validates host:port; host is an IP address (IPv6 in
// brackets) or a DNS name, and may be empty only if emptyHost.
func checkHostPort(s string, emptyHost bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port (write IPv6 as [addr]:port)", s)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%q: port %q must be a number from 1 to 65535", s, port)
	}
	if host == "" {
		if emptyHost {
			return nil
		}
		return fmt.Errorf("%q: host is missing", s)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if strings.Contains(host, ":") || !isDNSName(host) {
		return fmt.Errorf("%q: %q is neither an IP address nor a DNS name", s, host)
	}
	return nil
}

// checkAddr reports why a set address is unusable, or "".
func checkAddr(a netip.Addr) string {
	switch {
	case a.Zone() != "":
		return fmt.Sprintf("%s must not have a zone", a)
	case a.Is4In6():
		return fmt.Sprintf("%s is an IPv4-mapped IPv6 address; write it as %s", a, a.Unmap())
	}
	return ""
}

func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// prefixes checks a list of prefixes and returns the canonical ones with
// their field paths.
func prefixes(d *doc, path string, ps []netip.Prefix) (ok []netip.Prefix, paths []string) {
	for i, p := range ps {
		pp := fmt.Sprintf("%s[%d]", path, i)
		if err := overlap.Canonical(p); err != nil {
			d.errorf(pp, "%v", err)
			continue
		}
		ok = append(ok, p)
		paths = append(paths, pp)
	}
	return ok, paths
}

// coveredBy reports whether q lies inside one of ps.
func coveredBy(q netip.Prefix, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Bits() <= q.Bits() && p.Contains(q.Addr()) {
			return true
		}
	}
	return false
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ownedSet accumulates prefixes for one overlap.Conflicts call.
type ownedSet struct {
	entries []overlap.Owned
	paths   []string
}

func (s *ownedSet) add(path string, o overlap.Owned) {
	s.entries = append(s.entries, o)
	s.paths = append(s.paths, path)
}

// report records one error per conflict, at the later entry's path,
// naming that entry first.
func (s *ownedSet) report(d *doc) {
	for _, c := range overlap.Conflicts(s.entries) {
		if c.Err != nil { // fail closed; only canonical prefixes are added
			d.errorw(s.paths[c.I], c.Err)
			continue
		}
		d.errorw(s.paths[c.J], overlap.Conflict{A: c.B, B: c.A})
	}
}

func validate(c *Config, d *doc) {
	switch {
	case c.Name == "":
		d.errorf("name", "required: this gateway's network name, e.g. vnet-east")
	case !isLabel(c.Name, 63):
		d.errorf("name", "%q must be 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-' (it is used in metric labels)", c.Name)
	}

	if len(c.AddressSpaces) == 0 {
		d.errorf("address_spaces", "at least one prefix is required")
	}
	local, localPaths := prefixes(d, "address_spaces", c.AddressSpaces)

	ta := c.TunnelAddress
	taOK := false
	switch {
	case !ta.IsValid():
		d.errorf("tunnel_address", "required: this gateway's overlay address, inside address_spaces or in 169.254.0.0/16")
	case checkAddr(ta) != "":
		d.errorf("tunnel_address", "%s", checkAddr(ta))
	case !inAny(ta, local) && !linkLocal4.Contains(ta):
		d.errorf("tunnel_address", "%s must be inside address_spaces or in 169.254.0.0/16 (link-local)", ta)
	default:
		taOK = true
	}

	if c.PrivateKeyFile == "" {
		d.errorf("private_key_file", "required: path of the base64 WireGuard private key (mode 0600)")
	}
	if c.ListenPort == 0 {
		d.errorf("listen_port", "must be a UDP port from 1 to 65535")
	}
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > 65535) {
		d.errorf("mtu", "must be 0 (derive from the underlay) or 576 to 65535, got %d", c.MTU)
	}
	if c.Metrics.Listen != "" {
		if err := checkHostPort(c.Metrics.Listen, true); err != nil {
			d.errorf("metrics.listen", "%v", err)
		}
	}

	if b := c.BGP; b != nil {
		checkASN(d, "bgp.asn", b.ASN)
		switch {
		case !b.RouterID.IsValid() && ta.Is6():
			d.errorf("bgp.router_id", "required: tunnel_address is IPv6, so set an IPv4 router_id")
		case !b.RouterID.IsValid():
			d.errorf("bgp.router_id", "required (defaults to tunnel_address when that is IPv4)")
		case !b.RouterID.Is4():
			d.errorf("bgp.router_id", "%s must be an IPv4 address (BGP router IDs are 32-bit)", b.RouterID)
		}
		if g := b.GracefulRestart; g != nil {
			if t := g.RestartTime; t != 0 && (t < time.Second || t > MaxRestartTime || t%time.Second != 0) {
				d.errorf("bgp.graceful_restart.restart_time", "must be 0 (default %v) or whole seconds from 1s to %v, got %v", DefaultRestartTime, MaxRestartTime, t)
			}
			if t := g.LongLived; t < 0 || t > MaxLongLivedStale || t%time.Second != 0 {
				d.errorf("bgp.graceful_restart.long_lived", "must be 0 (none) or whole seconds up to %v, got %v", MaxLongLivedStale, t)
			}
		}
	}

	var all ownedSet
	for i, p := range local {
		all.add(localPaths[i], overlap.Owned{Prefix: p, Owner: "local address_spaces"})
	}
	if taOK && !inAny(ta, local) {
		all.add("tunnel_address", overlap.Owned{Prefix: hostPrefix(ta), Owner: "tunnel_address"})
	}

	validatePeerings(c, d, &all)

	if c.PointToSite != nil {
		validateP2S(c, d, &all)
		validateEnroll(c, d) // dns.go
	}
	validateDNS(c, d) // dns.go
	all.report(d)
	checkOwnKey(c, d)
}

func checkASN(d *doc, path string, asn uint32) {
	switch asn {
	case 0:
		d.errorf(path, "required: an AS number from 1 to 4294967294")
	case 23456:
		d.errorf(path, "23456 is AS_TRANS (RFC 6793) and cannot be used")
	case 4294967295:
		d.errorf(path, "4294967295 is reserved (RFC 7300); use 1 to 4294967294")
	}
}

func validatePeerings(c *Config, d *doc, all *ownedSet) {
	names := make(map[string]int)
	pubs := make(map[keys.PublicKey]int)
	allNames := make([]string, len(c.Peerings))
	var views []natView // nat.go
	for i := range c.Peerings {
		p := &c.Peerings[i]
		base := fmt.Sprintf("peerings[%d]", i)
		allNames[i] = p.Name
		switch first, dup := names[p.Name]; {
		case p.Name == "":
			d.errorf(base+".name", "required")
		case !isLabel(p.Name, MaxPeeringName):
			d.errorf(base+".name", "%q must be 1 to %d characters of a-z, 0-9 and '-', not starting or ending with '-' (it becomes the interface name vg-<name>)", p.Name, MaxPeeringName)
		case dup:
			d.errorf(base+".name", "duplicate peering name %q (also peerings[%d])", p.Name, first)
		default:
			names[p.Name] = i
		}
		if p.Network == "" {
			d.errorf(base+".network", "required: the remote network's name (peerings to one network may share its prefixes)")
		}
		validateIPsec(d, base, p) // ipsec.go
		switch first, dup := pubs[p.PublicKey]; {
		case p.IsIPsec():
		case p.PublicKey.IsZero():
			d.errorf(base+".public_key", "required: the remote gateway's base64 WireGuard public key")
		case dup:
			d.errorf(base+".public_key", "same public key as peerings[%d] (%q); each peering is a different remote gateway", first, c.Peerings[first].Name)
		default:
			pubs[p.PublicKey] = i
		}
		if p.Endpoint != "" && !p.IsIPsec() {
			if err := checkHostPort(p.Endpoint, false); err != nil {
				d.errorf(base+".endpoint", "%v", err)
			}
		}
		if p.Relay != nil {
			checkRelay(d, base+".relay", p.Relay) // relay.go
		}
		if len(p.AddressSpaces) == 0 && p.BGP == nil {
			d.errorf(base+".address_spaces", "at least one prefix is required unless the peering runs bgp")
		}
		spaces, paths := prefixes(d, base+".address_spaces", p.AddressSpaces)
		if ka := p.PersistentKeepalive; ka < 0 || ka > 65535*time.Second || ka%time.Second != 0 {
			d.errorf(base+".persistent_keepalive", "must be 0 (off) or whole seconds from 1s to 65535s, got %v", ka)
		}

		peerAddr, peerPath := netip.Addr{}, ""
		if a := p.TunnelAddress; a.IsValid() {
			if msg := checkAddr(a); msg != "" {
				d.errorf(base+".tunnel_address", "%s", msg)
			} else {
				peerAddr, peerPath = a, base+".tunnel_address"
			}
		}
		if b := p.BGP; b != nil {
			checkASN(d, base+".bgp.asn", b.ASN)
			if b.MaxPrefixes < 0 || b.MaxPrefixes > 1000000 {
				d.errorf(base+".bgp.max_prefixes", "must be 0 (default 1000) to 1000000, got %d", b.MaxPrefixes)
			}
			if b.Prepend < 0 || b.Prepend > 10 {
				d.errorf(base+".bgp.prepend", "must be 0 to 10, got %d", b.Prepend)
			}
			checkProbe(d, base+".bgp.probe", b)
			checkBFD(d, base+".bgp.bfd", b)
			switch {
			case !b.Address.IsValid():
				d.errorf(base+".bgp.address", "required: the remote gateway's tunnel address to peer with")
			case checkAddr(b.Address) != "":
				d.errorf(base+".bgp.address", "%s", checkAddr(b.Address))
			case p.TunnelAddress.IsValid() && p.TunnelAddress != b.Address:
				d.errorf(base+".tunnel_address", "%s differs from bgp.address %s; both are the remote gateway's tunnel address", p.TunnelAddress, b.Address)
			case c.TunnelAddress.IsValid() && c.TunnelAddress.Is4() != b.Address.Is4():
				d.errorf(base+".bgp.address", "%s and tunnel_address %s are of different IP families; BGP speaks from tunnel_address", b.Address, c.TunnelAddress)
			case !peerAddr.IsValid():
				peerAddr, peerPath = b.Address, base+".bgp.address"
			}
			if c.BGP == nil {
				d.errorf(base+".bgp", "needs the gateway's own bgp section (asn)")
			}
		}
		statics, staticPaths := prefixes(d, base+".static_routes", p.StaticRoutes)
		for j, q := range statics {
			switch {
			case p.BGP == nil:
				d.errorf(staticPaths[j], "%s: static_routes is for peerings that run bgp; without bgp, address_spaces are the static routes", q)
			case !coveredBy(q, spaces):
				d.errorf(staticPaths[j], "%s is not inside this peering's address_spaces %v (the import allow-list, which also bounds its static routes)", q, spaces)
			}
		}

		owner, domain := fmt.Sprintf("peering %q, network %s", p.Name, p.Network), "network:"+p.Network
		if p.Network == "" {
			owner, domain = fmt.Sprintf("peering %q", p.Name), "" // fail closed: no shared domain
		}
		var own ownedSet
		for j, q := range spaces {
			own.add(paths[j], overlap.Owned{Prefix: q, Owner: owner})
		}
		// With NAT rules, this side sees the peering's spaces translated.
		ingress, egress := checkNAT(d, base, p, spaces, peerAddr)                                // nat.go
		seen := addSeen(d, all, base, owner, domain, spaces, paths, ingress, peerAddr, peerPath) // nat.go
		if peerAddr.IsValid() && !inAny(peerAddr, seen) {
			all.add(peerPath, overlap.Owned{Prefix: hostPrefix(peerAddr), Owner: owner + " tunnel address", Domain: domain})
			seen = append(seen, hostPrefix(peerAddr))
		}
		own.report(d)
		views = append(views, natView{base: base, name: p.Name, owner: owner, real: spaces, realPaths: paths, seen: seen, ingress: ingress, egress: egress})
	}
	checkViews(c, d, views)   // nat.go
	checkIPsecSelectors(c, d) // ipsec.go
	switch err := peering.CheckLimit(c.MaxTunnels, allNames); {
	case err == nil:
	case errors.As(err, new(*peering.RangeError)):
		d.errorw("max_tunnels", err)
	default:
		var le *peering.LimitError
		path := "peerings"
		if errors.As(err, &le) {
			path = fmt.Sprintf("peerings[%d]", le.Max)
		}
		d.errorw(path, err)
	}
}

func validateP2S(c *Config, d *doc, all *ownedSet) {
	s := c.PointToSite
	switch {
	case s.ListenPort == 0:
		d.errorf("point_to_site.listen_port", "must be a UDP port from 1 to 65535")
	case s.ListenPort == c.ListenPort:
		d.errorf("point_to_site.listen_port", "%d must differ from listen_port, which the site-to-site tunnels use", s.ListenPort)
	}
	if s.Endpoint == "" {
		d.errorf("point_to_site.endpoint", "required: host:port that client configs dial, e.g. vpn.example.net:%d", cmp.Or(s.ListenPort, DefaultP2SPort))
	} else if err := checkHostPort(s.Endpoint, false); err != nil {
		d.errorf("point_to_site.endpoint", "%v", err)
	}
	if len(s.AddressPool) == 0 {
		d.errorf("point_to_site.address_pool", "at least one prefix is required")
	}
	if s.Relay != nil {
		checkRelay(d, "point_to_site.relay", s.Relay) // relay.go
	}
	pool, paths := prefixes(d, "point_to_site.address_pool", s.AddressPool)
	for i, p := range pool {
		all.add(paths[i], overlap.Owned{Prefix: p, Owner: "point_to_site.address_pool"})
	}
	if s.MaxClients < 1 || s.MaxClients > 65535 {
		d.errorf("point_to_site.max_clients", "must be between 1 and 65535, got %d", s.MaxClients)
	}
	for i, a := range s.DNS {
		path := fmt.Sprintf("point_to_site.dns[%d]", i)
		if !a.IsValid() {
			d.errorf(path, "want an IP address")
		} else if msg := checkAddr(a); msg != "" {
			d.errorf(path, "%s", msg)
		}
	}
	groups := make(map[string]int)
	for i, g := range s.Groups {
		base := fmt.Sprintf("point_to_site.groups[%d]", i)
		switch first, dup := groups[g.Name]; {
		case g.Name == "":
			d.errorf(base+".name", "required")
		case !isLabel(g.Name, 63):
			d.errorf(base+".name", "%q must be 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-' (it is used in metric labels)", g.Name)
		case dup:
			d.errorf(base+".name", "duplicate group name %q (also point_to_site.groups[%d])", g.Name, first)
		default:
			groups[g.Name] = i
		}
		prefixes(d, base+".allow", g.Allow)
		seen := make(map[Service]int)
		for j, e := range g.GatewayServices {
			path := fmt.Sprintf("%s.gateway_services[%d]", base, j)
			svc, err := ParseService(e)
			if err != nil {
				d.errorf(path, "group %q: %q is not a gateway service: %v (write %s)", g.Name, e, err, ServiceSyntax)
				continue
			}
			if first, dup := seen[svc]; dup {
				d.errorf(path, "group %q: %q is listed twice (also %s.gateway_services[%d])", g.Name, e, base, first)
				continue
			}
			seen[svc] = j
		}
	}
}

// checkOwnKey refuses a peering whose public key is this gateway's own
// (known once the private key is loaded).
func checkOwnKey(c *Config, d *doc) {
	if c.PrivateKey.IsZero() {
		return
	}
	own := c.PrivateKey.Public()
	for i, p := range c.Peerings {
		if p.PublicKey == own {
			d.errorf(fmt.Sprintf("peerings[%d].public_key", i), "is this gateway's own public key (from private_key_file); use the remote gateway's key")
		}
	}
}

// checkProbe checks a peering's bgp.probe: the interval and multiplier
// each within bounds, and their product (the detection time) too.
func checkProbe(d *doc, path string, b *PeerBGP) {
	pr := b.Probe
	if pr == nil || pr.Off {
		return
	}
	ok := true
	if iv := pr.Interval; iv != 0 && (iv < MinProbeInterval || iv > MaxProbeInterval || iv%time.Millisecond != 0) {
		d.errorf(path+".interval", "must be 0 (default %v) or whole milliseconds from %v to %v, got %v", DefaultProbeInterval, MinProbeInterval, MaxProbeInterval, iv)
		ok = false
	}
	if m := pr.Multiplier; m != 0 && (m < MinProbeMultiplier || m > MaxProbeMultiplier) {
		d.errorf(path+".multiplier", "must be 0 (default %d) or %d to %d, got %d", DefaultProbeMultiplier, MinProbeMultiplier, MaxProbeMultiplier, m)
		ok = false
	}
	if !ok {
		return
	}
	if iv, m := b.ProbeTiming(); iv*time.Duration(m) > MaxProbeDetection {
		d.errorf(path, "interval %v × multiplier %d = %v to detect a dead tunnel; at most %v (BGP's own hold time takes over long before)", iv, m, iv*time.Duration(m), MaxProbeDetection)
	}
}

// checkBFD checks a peering's bgp.bfd like bgp.probe: the interval and
// multiplier within the same bounds, and the detection time.
func checkBFD(d *doc, path string, b *PeerBGP) {
	f := b.BFD
	if f == nil || f.Off {
		return
	}
	ok := true
	if iv := f.Interval; iv != 0 && (iv < MinProbeInterval || iv > MaxProbeInterval || iv%time.Millisecond != 0) {
		d.errorf(path+".interval", "must be 0 (default %v) or whole milliseconds from %v to %v, got %v", DefaultBFDInterval, MinProbeInterval, MaxProbeInterval, iv)
		ok = false
	}
	if m := f.Multiplier; m != 0 && (m < MinProbeMultiplier || m > MaxProbeMultiplier) {
		d.errorf(path+".multiplier", "must be 0 (default %d) or %d to %d, got %d", DefaultBFDMultiplier, MinProbeMultiplier, MaxProbeMultiplier, m)
		ok = false
	}
	if !ok {
		return
	}
	if iv, m, _ := b.BFDTiming(); iv*time.Duration(m) > MaxProbeDetection {
		d.errorf(path, "interval %v × multiplier %d = %v to detect a dead path; at most %v (BGP's own hold time takes over long before)", iv, m, iv*time.Duration(m), MaxProbeDetection)
	}
}

// IsDNSName is the rule for DNS names in configs (letters, digits and
// '-' in labels of 1 to 63 characters, at most 253 in all, the last label
// not numeric); the laptop checks an enrollment answer's search domains
// with it.
func IsDNSName(s string) bool { return isDNSName(s) }

// CheckEndpoint is the rule for endpoints in configs: host:port, the
// host an IP address (IPv6 in brackets) or a DNS name, the port 1-65535;
// the laptop checks an enrollment answer's endpoint with it.
func CheckEndpoint(s string) error { return checkHostPort(s, false) }
