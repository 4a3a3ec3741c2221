package gateway

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/peering"
	"github.com/vgate-project/vgate/routing"
)

// Status reports the gateway's current state. Each peering's state and
// reason come from peering.Evaluate, the one definition of "up" that the
// "N up" count, the tunnel log lines and the metrics share.
func (g *Gateway) Status(ctx context.Context) (api.Status, error) {
	g.mu.Lock()
	cfg := g.cfg
	st := api.Status{
		Name:          cfg.Name,
		PublicKey:     publicKeyOf(cfg.PrivateKey),
		AddressSpaces: cfg.AddressSpaces,
		TunnelAddress: cfg.TunnelAddress,
		ListenPort:    cfg.ListenPort,
		Started:       g.started,
		Reloads:       g.reloads,
		ConfigFile:    cfg.Path,
		Tunnels:       api.TunnelCount{Limit: cfg.MaxTunnels},
		Forwarding:    forwarding(), // forwarding.go
	}
	if wg, ok := g.kinds[plan.KindWireGuard].(*wireGuardKind); ok {
		st.Port = portStats(wg.portStats()) // apiconv.go
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
	unanswered := map[string]time.Time{}
	for _, d := range st.Port.Devices {
		unanswered[d.Name] = d.UnansweredSince
	}
	now := time.Now()
	for i := range cfg.Peerings {
		p := &cfg.Peerings[i]
		ps := api.PeeringStatus{
			Name:          p.Name,
			Network:       p.Network,
			PublicKey:     p.PublicKey.String(),
			Interface:     plan.IfNamePrefix + p.Name,
			AddressSpaces: p.AddressSpaces,
		}
		obs := peering.Observation{Now: now, BGP: p.BGP != nil && cfg.BGP != nil}
		if n, ok := sessions[p.Name]; ok {
			obs.BGPEstablished = n.State == api.SessionEstablished
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
				ps.DroppedSource = s.DroppedSource
				obs.LastHandshake = s.LastHandshake
			}
			obs.UnansweredSince = unanswered[p.Name]
		}
		ps.State, ps.Reason = peering.Evaluate(obs)
		ps.Hint = hint(p, cfg.ListenPort, obs, ps.Reason)
		if ps.State == api.StateUp {
			st.Tunnels.Up++
		}
		st.Peerings = append(st.Peerings, ps)
	}
	return st, nil
}

// hint is what to check for a peering that is not up, for people ("" when
// there is nothing to add to the reason).
func hint(p *config.Peering, listenPort uint16, obs peering.Observation, r api.DownReason) string {
	switch r {
	case api.ReasonHandshakeUnanswered:
		w, _ := peering.Unanswered(obs)
		port := strconv.Itoa(int(listenPort))
		if _, pp, err := net.SplitHostPort(p.Endpoint); err == nil {
			port = pp
		}
		return fmt.Sprintf("handshake not answered for %v: check the public keys, the endpoint and that UDP %s is open", w.Round(time.Second), port)
	}
	return ""
}

// lastPublic caches the public key of the last private key Status saw:
// Status runs every second (WatchPeerings) and an X25519 each time was a
// visible share of an idle gateway's CPU.
var lastPublic atomic.Pointer[struct {
	priv keys.PrivateKey
	pub  string
}]

func publicKeyOf(priv keys.PrivateKey) string {
	if c := lastPublic.Load(); c != nil && c.priv == priv {
		return c.pub
	}
	c := &struct {
		priv keys.PrivateKey
		pub  string
	}{priv, priv.Public().String()}
	lastPublic.Store(c)
	return c.pub
}
