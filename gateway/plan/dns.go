package plan

import (
	"strings"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/names/zone"
)

// dnsZone is the name server's desired state: nil without dns. A peer's
// spaces are its tunnel's AllowedIPs (declared spaces, tunnel address,
// prefixes accepted by BGP): a query from there is that peer's.
func dnsZone(cfg *config.Config, tunnels []Tunnel) *zone.Zone {
	if cfg.DNS == nil {
		return nil
	}
	z := &zone.Zone{
		Zone:          config.CanonicalZone(cfg.DNS.Zone),
		Gateway:       strings.ToLower(cfg.Name),
		TunnelAddress: cfg.TunnelAddress,
		Local:         cfg.AddressSpaces,
	}
	for _, u := range cfg.DNS.Upstream {
		if ap, err := config.ParseUpstream(u); err == nil { // validated by config
			z.Upstream = append(z.Upstream, ap)
		}
	}
	for _, p := range cfg.Peerings {
		np := zone.Peer{Name: p.Name, Addr: p.PeerTunnelAddress(), Spaces: p.SeenAllowedIPs(), Ingress: p.NATRules().Ingress}
		if p.DNSZone != "" {
			np.Zone = config.CanonicalZone(p.DNSZone)
		}
		for _, t := range tunnels {
			if t.Name == p.Name && t.Kind == KindWireGuard {
				np.Spaces = t.WireGuard.AllowedIPs
			}
		}
		z.Peers = append(z.Peers, np)
	}
	return z
}
