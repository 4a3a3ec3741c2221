package gateway

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/kernel"
	"github.com/vgate-project/vgate/gateway/p2s"
)

// ErrNoP2S is returned by the client operations when point_to_site is not
// configured.
var ErrNoP2S = errors.New("point_to_site is not configured on this gateway")

// ErrP2SDisabled is returned by the client operations when point_to_site
// is configured but could not start (Status.P2S.Disabled says why).
var ErrP2SDisabled = errors.New("point_to_site is disabled")

// p2sMTU is the MTU of the P2S interface: clients may dial over IPv4 or
// IPv6, so the IPv6 overhead is assumed (1420 on a 1500-byte underlay).
func (g *Gateway) p2sMTU(cfg *config.Config) int {
	if cfg.MTU != 0 {
		return cfg.MTU
	}
	under := 0
	if g.env.UnderlayMTU != nil {
		under = g.env.UnderlayMTU(netip.Addr{})
	}
	return dataplane.TunnelMTU(under, netip.Addr{})
}

// applyP2S moves the point-to-site server to cfg: opens it when
// point_to_site appears, updates it in place (sessions stay) when it
// changes, closes it when it goes. It returns the kernel routes of the
// pool (through the P2S interface). A change it cannot apply (registered
// clients outside a new pool) is refused before anything changes. A
// corrupt registry does not stop the gateway: point-to-site stays off
// with the reason in g.p2sDisabled until a reload finds the file fixed.
func (g *Gateway) applyP2S(cfg *config.Config) ([]kernel.Route, error) {
	want := cfg.PointToSite
	g.p2sDisabled = ""
	var self []netip.Addr // the gateway's own addresses, closed to clients but for DNS, ping, gateway_services
	if want != nil {
		local, err := p2s.LocalAddrs()
		if err != nil {
			return nil, fmt.Errorf("point_to_site: list the host's addresses: %w", err)
		}
		self = append(local, cfg.TunnelAddress)
	}
	switch {
	case want == nil && g.p2s == nil:
		return nil, nil
	case want == nil:
		g.p2s.Close()
		g.p2s = nil
		g.log.Info("point-to-site stopped (point_to_site removed from the config)")
		return nil, nil
	case g.p2s == nil:
		s, err := p2s.Open(p2s.Options{
			Config:     want,
			PrivateKey: cfg.PrivateKey,
			StateDir:   cfg.StateDir,
			MTU:        g.p2sMTU(cfg),
			NewTUN:     dataplane.CreateTUN,
			LinkUp:     g.kern.LinkUp,
			Log:        g.log,
			Self:       self,
		})
		if errors.Is(err, p2s.ErrCorruptRegistry) {
			g.p2sDisabled = err.Error()
			g.log.Error("point-to-site disabled; site-to-site tunnels keep running", "error", err)
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		g.p2s = s
	default:
		g.p2s.SetSelf(self)
		if err := g.p2s.Update(want, cfg.PrivateKey); err != nil {
			return nil, err
		}
	}
	var routes []kernel.Route
	for _, q := range g.p2s.Routes() {
		routes = append(routes, kernel.Route{Dst: q, Dev: g.p2s.IfName(), Src: cfg.TunnelAddress})
	}
	return routes, nil
}

func (g *Gateway) closeP2S() {
	if g.p2s != nil {
		g.p2s.Close()
		g.p2s = nil
	}
}

func (g *Gateway) p2sServer() (*p2s.Server, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errors.New("gateway is stopped")
	}
	if g.p2s == nil && g.p2sDisabled != "" {
		return nil, fmt.Errorf("%w: %s", ErrP2SDisabled, g.p2sDisabled)
	}
	if g.p2s == nil {
		return nil, ErrNoP2S
	}
	return g.p2s, nil
}

// AddClient registers a point-to-site client and returns its config.
func (g *Gateway) AddClient(req p2s.AddRequest) (p2s.Added, error) {
	s, err := g.p2sServer()
	if err != nil {
		return p2s.Added{}, err
	}
	return s.Add(req)
}

// Clients lists the point-to-site clients.
func (g *Gateway) Clients() ([]p2s.ClientInfo, error) {
	s, err := g.p2sServer()
	if err != nil {
		return nil, err
	}
	return s.Clients()
}

// RevokeClient removes a point-to-site client at once.
func (g *Gateway) RevokeClient(name string) (p2s.ClientInfo, error) {
	s, err := g.p2sServer()
	if err != nil {
		return p2s.ClientInfo{}, err
	}
	return s.Revoke(name)
}

// p2sStatus is the point-to-site section of Status, or nil.
func (g *Gateway) p2sStatus() *p2s.Status {
	g.mu.Lock()
	s, disabled := g.p2s, g.p2sDisabled
	g.mu.Unlock()
	if s == nil && disabled != "" {
		return &p2s.Status{Disabled: disabled}
	}
	if s == nil {
		return nil
	}
	st := s.Status()
	return &st
}
