package gateway

import (
	"context"
	"net/netip"
	"time"

	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/wgbind"
	"github.com/vgate-project/vgate/peering"
	"github.com/vgate-project/vgate/routing"
)

// Status is what `vgate status` shows: the gateway, its tunnels used
// against the limit, and every configured peering. It never contains key
// material other than public keys.
type Status struct {
	Name          string          `json:"name"`
	PublicKey     string          `json:"public_key"`
	AddressSpaces []netip.Prefix  `json:"address_spaces"`
	TunnelAddress netip.Addr      `json:"tunnel_address"`
	ListenPort    uint16          `json:"listen_port"`
	Tunnels       TunnelCount     `json:"tunnels"`
	Peerings      []PeeringStatus `json:"peerings"`
	Started       time.Time       `json:"started"`
	Reloads       ReloadStats     `json:"reloads"`
	ConfigFile    string          `json:"config_file,omitempty"`
	// Port counts what the shared UDP port did with received datagrams.
	Port wgbind.Stats `json:"port"`
	// P2S is the point-to-site server (p2s.go); nil when not configured.
	P2S *p2s.Status `json:"point_to_site,omitempty"`
}

// TunnelCount is tunnels in use against the limit.
type TunnelCount struct {
	Used  int `json:"used"`
	Up    int `json:"up"`
	Limit int `json:"limit"`
}

// PeeringStatus is one configured peering and its tunnel.
type PeeringStatus struct {
	Name          string         `json:"name"`
	Network       string         `json:"network"`
	PublicKey     string         `json:"public_key"`
	Interface     string         `json:"interface"`
	MTU           int            `json:"mtu"`
	State         peering.State  `json:"state"`
	Reason        string         `json:"reason,omitempty"` // why it is not up (a peering.Reason code); "" when up
	Endpoint      string         `json:"endpoint,omitempty"`
	LastHandshake time.Time      `json:"last_handshake,omitzero"`
	RxBytes       uint64         `json:"rx_bytes"`
	TxBytes       uint64         `json:"tx_bytes"`
	AddressSpaces []netip.Prefix `json:"address_spaces"`
	AllowedIPs    []netip.Prefix `json:"allowed_ips"`
	Error         string         `json:"error,omitempty"`
}

// Status reports the gateway's current state. Each peering's state and
// reason come from peering.Evaluate, the one definition of "up" that the
// "N up" count, the tunnel log lines and the metrics share.
func (g *Gateway) Status(ctx context.Context) Status {
	g.mu.Lock()
	cfg := g.cfg
	st := Status{
		Name:          cfg.Name,
		PublicKey:     cfg.PrivateKey.Public().String(),
		AddressSpaces: cfg.AddressSpaces,
		TunnelAddress: cfg.TunnelAddress,
		ListenPort:    cfg.ListenPort,
		Started:       g.started,
		Reloads:       g.reloads,
		ConfigFile:    cfg.Path,
		Tunnels:       TunnelCount{Limit: cfg.MaxTunnels},
	}
	if wg, ok := g.kinds[plan.KindWireGuard].(*wireGuardKind); ok {
		st.Port = wg.portStats()
	}
	tunnels := make([]Tunnel, len(cfg.Peerings))
	for i, p := range cfg.Peerings {
		tunnels[i] = g.tunnel(p.Name)
	}
	b := g.bgp
	g.mu.Unlock()

	st.P2S = g.p2sStatus()
	sessions := map[string]routing.NeighborStatus{}
	if b != nil {
		if rib, err := b.speaker.Snapshot(ctx); err == nil {
			for _, n := range rib.Neighbors {
				sessions[n.Name] = n
			}
		}
	}
	now := time.Now()
	for i := range cfg.Peerings {
		p := &cfg.Peerings[i]
		ps := PeeringStatus{
			Name:          p.Name,
			Network:       p.Network,
			PublicKey:     p.PublicKey.String(),
			Interface:     plan.IfNamePrefix + p.Name,
			AddressSpaces: p.AddressSpaces,
		}
		obs := peering.Observation{Now: now, BGP: p.BGP != nil && cfg.BGP != nil}
		if n, ok := sessions[p.Name]; ok {
			obs.BGPEstablished = n.State == "established"
			obs.PrefixLimit = prefixLimited(n)
		}
		if t := tunnels[i]; t != nil {
			st.Tunnels.Used++
			ps.MTU = t.MTU()
			if s, err := t.Stats(); err != nil {
				ps.Error = err.Error()
			} else {
				ps.Endpoint = s.Endpoint
				ps.LastHandshake = s.LastHandshake
				ps.RxBytes, ps.TxBytes = s.RxBytes, s.TxBytes
				ps.AllowedIPs = s.AllowedIPs
				obs.LastHandshake = s.LastHandshake
			}
		}
		var reason peering.Reason
		ps.State, reason = peering.Evaluate(obs)
		ps.Reason = string(reason)
		if ps.State == peering.StateUp {
			st.Tunnels.Up++
		}
		st.Peerings = append(st.Peerings, ps)
	}
	return st
}
