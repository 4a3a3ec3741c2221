package plan

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/route"
	"github.com/vgate-project/vgate/gateway/wgspec"
	"github.com/vgate-project/vgate/ipsec"
)

// IfNamePrefix starts the name of every tunnel interface: vg-<peering>.
const IfNamePrefix = "vg-"

// Env answers the questions Desired needs from the outside world: where an
// endpoint name points, and the MTU of the underlay toward an address.
type Env struct {
	Resolve     func(hostport string) (netip.AddrPort, error)
	UnderlayMTU func(dst netip.Addr) int
}

// desired is the static part of the plan (plan.go): the data-plane state a config asks for: one tunnel per
// peering and a route through it for every prefix the peer may use. An
// endpoint that does not resolve is reported in errs and the tunnel is still
// built without it (the remote side can dial in); everything else in a
// validated config has a definite answer.
func desired(cfg *config.Config, env Env) (tunnels []Tunnel, routes []route.Route, errs []Problem) {
	for i := range cfg.Peerings {
		p := &cfg.Peerings[i]
		if p.IsIPsec() {
			t := ipsecTunnel(p)
			tunnels = append(tunnels, t)
			for _, q := range p.AllowedIPs() {
				routes = append(routes, route.Route{Dst: q.Masked(), Dev: t.IfName, Src: cfg.TunnelAddress, Peering: p.Name})
			}
			continue
		}
		var ep netip.AddrPort
		if p.Endpoint != "" {
			a, err := env.Resolve(p.Endpoint)
			if err != nil {
				errs = append(errs, Problem{Peering: p.Name, Endpoint: p.Endpoint, Err: err})
			} else {
				ep = a
			}
		}
		mtu := cfg.MTU
		if mtu == 0 {
			mtu = wgspec.TunnelMTU(env.UnderlayMTU(ep.Addr()), ep.Addr())
		}
		ifname := IfNamePrefix + p.Name
		// Routes and AllowedIPs in this side's view; the seam translates
		// what crosses the tunnel with the peering's rules (docs/nat.md).
		allowed := p.SeenAllowedIPs()
		var relay RelayTarget
		if p.Relay != nil {
			relay = RelayTarget{URL: p.Relay.URL, Pin: p.Relay.Pin}
		}
		tunnels = append(tunnels, Tunnel{
			Relay:  relay,
			Kind:   KindWireGuard,
			Name:   p.Name,
			IfName: ifname,
			MTU:    mtu,
			WireGuard: wgspec.PeerSpec{
				PublicKey:  p.PublicKey,
				Endpoint:   ep,
				Keepalive:  p.PersistentKeepalive,
				AllowedIPs: allowed,
				NAT:        p.NATRules(),
			},
		})
		for _, q := range allowed {
			routes = append(routes, route.Route{Dst: q.Masked(), Dev: ifname, Src: cfg.TunnelAddress, Peering: p.Name})
		}
	}
	return tunnels, routes, errs
}

// ipsecTunnel is the tunnel of an IPsec peering: charon resolves a DNS
// endpoint itself, and the traffic selectors are ipsec.TrafficSelectors of
// the peering's spaces and BGP peer address.
func ipsecTunnel(p *config.Peering) Tunnel {
	x := p.IPsec
	local, remote := ipsec.TrafficSelectors(p.AddressSpaces, p.PeerTunnelAddress())
	return Tunnel{
		Kind:   KindIPsec,
		Name:   p.Name,
		IfName: ipsec.IfName,
		MTU:    ipsec.MTU,
		IPsec: ipsec.Peer{
			Name: p.Name, Remote: p.Endpoint, PSK: x.PSK, LocalID: x.LocalID, RemoteID: x.RemoteID,
			IKE: x.IKE, ESP: x.ESP, IKELifetime: x.IKELifetime, ChildLifetime: x.ChildLifetime, DPD: x.DPD,
			LocalTS: local, RemoteTS: remote,
		},
	}
}

// KindOf is the kind of peering p's tunnel.
func KindOf(p *config.Peering) Kind {
	if p.IsIPsec() {
		return KindIPsec
	}
	return KindWireGuard
}

// IfNameOf is the interface a peering's routes go through: vg-<name> for
// WireGuard, the libipsec TUN for IPsec.
func IfNameOf(p *config.Peering) string {
	if p.IsIPsec() {
		return ipsec.IfName
	}
	return IfNamePrefix + p.Name
}

// ErrRestartRequired marks a valid config change that a running gateway
// cannot apply live (errors.Is); the reload is refused.
var ErrRestartRequired = errors.New("needs a restart")

// CheckReload refuses the changes a running gateway cannot take without a
// restart. Everything else is applied live.
func CheckReload(old, new *config.Config) error {
	if old.Name != new.Name {
		return fmt.Errorf("name: changing the gateway name (%q to %q) %w", old.Name, new.Name, ErrRestartRequired)
	}
	if old.ListenPort != new.ListenPort {
		return fmt.Errorf("listen_port: changing the tunnel port (%d to %d) %w", old.ListenPort, new.ListenPort, ErrRestartRequired)
	}
	if old.ControlSocket != new.ControlSocket {
		return fmt.Errorf("control_socket: changing the control socket (%s to %s) %w", old.ControlSocket, new.ControlSocket, ErrRestartRequired)
	}
	if old.Metrics.Listen != new.Metrics.Listen {
		return fmt.Errorf("metrics.listen: changing the metrics address (%q to %q) %w", old.Metrics.Listen, new.Metrics.Listen, ErrRestartRequired)
	}
	return nil
}
