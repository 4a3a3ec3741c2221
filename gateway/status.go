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
	"github.com/vgate-project/vgate/gateway/relay"
	"github.com/vgate-project/vgate/overlap"
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
	for _, k := range g.kinds {
		if s := k.Port(); s != nil {
			st.Port = portStats(*s) // apiconv.go
		}
	}
	rs := g.relays
	tunnels := make([]Tunnel, len(cfg.Peerings))
	views := make([]TunnelView, len(cfg.Peerings))
	for i, p := range cfg.Peerings {
		tunnels[i] = g.tunnel(p.Name)
		if k := g.kinds[plan.KindOf(&p)]; k != nil && tunnels[i] != nil {
			views[i] = k.View(p.Name)
		}
	}
	b := g.bgp
	g.mu.Unlock()

	st.P2S = g.p2sStatus()
	pool := ""
	if st.P2S != nil {
		pool = overlap.Join(st.P2S.Pool)
	}
	st.DNS, st.Enroll = g.dns.Observe(), g.enroll.Observe() // names.Component, enroll.Component
	sessions := map[string]routing.NeighborStatus{}
	if b != nil {
		// Sessions, not Snapshot: Status runs every second and needs no
		// route; reading every table would allocate on an idle hub.
		if ns, err := b.Sessions(ctx); err == nil {
			for _, n := range ns {
				sessions[n.Name] = n
			}
		}
	}
	devices := map[string]api.PortDevice{}
	for _, d := range st.Port.Devices {
		devices[d.Name] = d
	}
	var dead map[string]bool
	probes := map[string]api.ProbeStatus{}
	if b != nil {
		dead = b.Held() // bgp.Component
		for _, p := range b.Probes() {
			probes[p.Peering] = p
		}
	}
	now := time.Now()
	for i := range cfg.Peerings {
		p := &cfg.Peerings[i]
		ps := api.PeeringStatus{
			Name:          p.Name,
			Network:       p.Network,
			PublicKey:     p.PublicKey.String(),
			Interface:     plan.IfNameOf(p),
			AddressSpaces: p.AddressSpaces,
			Type:          config.TypeWireGuard,
		}
		ps.NAT = natStatus(p, nil) // nat.go; with counters below
		obs := peering.Observation{Now: now, BGP: p.BGP != nil && cfg.BGP != nil, ProbeDead: dead[p.Name], ProbeLastReply: probes[p.Name].LastReply}
		if p.IsIPsec() {
			ps.Type, ps.PublicKey = config.TypeIPsec, ""
			obs.IPsec, obs.IPsecDown = true, api.ReasonCharonNotRunning
			if tunnels[i] != nil {
				obs.IPsecDown, ps.IPsec = views[i].Down, views[i].IPsec
			}
		}
		if n, ok := sessions[p.Name]; ok {
			obs.BGPEstablished = n.State == api.SessionEstablished
			obs.PrefixLimit = prefixLimited(n)
			obs.BFDDown = obs.BGP && !obs.BGPEstablished && n.DownCode == routing.DownBFD
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
				ps.NAT = natStatus(p, &s.NAT)   // nat.go
				ps.Queue = queueStatus(s.Queue) // apiconv.go
				obs.LastHandshake = s.LastHandshake
			}
			obs.UnansweredSince = devices[p.Name].UnansweredSince
		}
		if rs != nil && tunnels[i] != nil {
			ps.Path, ps.Relay = rs.Path(p.Name) // relay.Transport
			if ps.Path != relay.PathRelay {
				// On the relay the tunnel does not need the UDP path.
				obs.SendBlockedSince = devices[p.Name].SendBlockedSince
			}
		}
		if at, from := g.env.MovedAt(p.Endpoint); !at.IsZero() { // environ.Facts
			ps.EndpointMoved, ps.EndpointPrevious = at, from.String()
		}
		ps.State, ps.Reason = peering.Evaluate(obs)
		ps.Hint = hint(p, cfg.ListenPort, obs, ps.Reason, devices[p.Name].SendBlockedTo)
		if p.IsIPsec() {
			ps.Hint = ipsecHint(p, ps.Reason)
		}
		if ps.Reason == api.ReasonBFDDown {
			ps.Hint = bfdHint(p, sessions[p.Name].Down)
		}
		if ps.Hint == "" && pool != "" {
			ps.Hint = g.p2s.ReturnHint(p.Name, pool, now) // p2s.Component
		}
		if ps.State == api.StateUp {
			st.Tunnels.Up++
		}
		st.Peerings = append(st.Peerings, ps)
	}
	if b != nil {
		st.Drain = b.DrainStatus(sessions) // bgp.Component
	}
	g.recent.fill(&st, now) // recent.go
	return st, nil
}

// bfdHint explains a peering down for bfd_down; held is the session's
// hold text ("bfd_down: <diagnostic>"), empty once BFD is up again and
// the session is starting.
func bfdHint(p *config.Peering, held string) string {
	if held == "" {
		return "BFD with " + p.BGP.Address.String() + " is up again; the BGP session is starting"
	}
	return held + ": BFD with " + p.BGP.Address.String() + " through the tunnel went down; the session comes back when BFD is up again"
}

// ipsecHint is what to check for an IPsec peering that is not up
// (docs/troubleshooting.md has more).
func ipsecHint(p *config.Peering, r api.DownReason) string {
	switch r {
	case api.ReasonIKEConnecting:
		return "no IKE answer yet from " + p.Endpoint + ": check the endpoint, that UDP 500 and 4500 are open both ways, and that the device has a connection for this gateway"
	case api.ReasonNoProposalChosen:
		return "the device accepts none of the offered proposals: compare ipsec.ike and ipsec.esp with the device's IPsec policy (legacy algorithms need legacy: true)"
	case api.ReasonAuthFailed:
		return "authentication failed: check that ipsec.psk_file holds the device's pre-shared key, and local_id/remote_id against the device's identities"
	case api.ReasonDPDTimeout:
		return "the device stopped answering dead-peer detection; vgate re-initiates by itself when it is back"
	case api.ReasonChildSADown:
		return "IKE is up but no child SA: compare the device's traffic selectors (its remote networks must include what it routes to this gateway) and ESP proposals"
	case api.ReasonCharonNotRunning:
		return "vgate's charon is not running; see the gateway log (component=ipsec) and vgate check"
	}
	return ""
}

// hint is what to check for a peering that is not up, for people ("" when
// there is nothing to add to the reason).
func hint(p *config.Peering, listenPort uint16, obs peering.Observation, r api.DownReason, blockedTo string) string {
	switch r {
	case api.ReasonSendBlocked:
		if blockedTo == "" {
			blockedTo = p.Endpoint
		}
		return fmt.Sprintf("the local firewall refuses UDP to %s (sending fails with \"operation not permitted\" for %v): check this host's output rules (nft list ruleset, iptables -S OUTPUT) for UDP from port %d",
			blockedTo, obs.Now.Sub(obs.SendBlockedSince).Round(time.Second), listenPort)
	case api.ReasonProbeDead:
		return "the tunnel probe gets no answer through the tunnel although its handshake is recent: the path died since, or the peer stopped; the BGP session is held down until the probe answers again"
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
