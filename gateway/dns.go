package gateway

import (
	"strings"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/names"
	"github.com/vgate-project/vgate/gateway/plan"
)

// applyDNS moves the name server to the plan: it listens on the tunnel
// address (UDP and TCP 53) when dns appears, takes a changed zone at
// once, moves when the tunnel address moves and stops when dns goes. It
// runs after applyP2S and applyAddress (the address must be on lo). The
// server reads the point-to-site directory per query, so a client added
// or revoked is answered (or not) from the next query on. g.mu is held.
func (g *Gateway) applyDNS(cfg *config.Config, st plan.State) error {
	g.dnsP2S.Store(g.p2s)
	switch {
	case st.DNS == nil && g.dns == nil:
		return nil
	case st.DNS == nil:
		g.closeDNS()
		g.log.Info("dns stopped (dns removed from the config)")
		return nil
	case g.dns != nil && g.dns.Addr() == st.DNS.TunnelAddress:
		g.dns.SetZone(st.DNS)
		return nil
	}
	g.closeDNS()
	s, err := names.Listen(st.DNS.TunnelAddress, 0, st.DNS, g.directory, g.log)
	if err != nil {
		return err
	}
	g.dns = s
	return nil
}

// directory is the point-to-site clients as the name server sees them.
func (g *Gateway) directory() names.Directory {
	if s := g.dnsP2S.Load(); s != nil {
		if d := s.Directory(); d != nil {
			return d
		}
	}
	return names.NoClients
}

func (g *Gateway) closeDNS() {
	if g.dns != nil {
		g.dns.Close()
		g.dns = nil
	}
}

// dnsStatus is the name server section of Status, or nil.
func (g *Gateway) dnsStatus() *api.DNSStatus {
	g.mu.Lock()
	s := g.dns
	g.mu.Unlock()
	if s == nil {
		return nil
	}
	return &api.DNSStatus{Address: s.Addr(), Zone: strings.TrimSuffix(s.Zone().Zone, "."), Queries: s.Counts()}
}
