package view

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/observe"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/relay"
	"github.com/vgate-project/vgate/peering"
	"github.com/vgate-project/vgate/routing"
)

// Status is `vgate status` of one observation, without the last-minute
// growth of the drop counters (View.Status adds it). Each peering's state
// and reason come from peering.Evaluate, the one definition of "up" that
// the "N up" count, the tunnel log lines and the metrics share.
func Status(o observe.Observation) api.Status {
	cfg := o.Config
	st := api.Status{
		Name:          cfg.Name,
		PublicKey:     publicKeyOf(cfg.PrivateKey),
		AddressSpaces: cfg.AddressSpaces,
		TunnelAddress: cfg.TunnelAddress,
		ListenPort:    cfg.ListenPort,
		Started:       o.Started,
		Reloads:       o.Reloads,
		ConfigFile:    cfg.Path,
		Tunnels:       api.TunnelCount{Limit: cfg.MaxTunnels},
		Forwarding:    o.Forwarding,
		Port:          o.Port,
		P2S:           o.P2S,
		DNS:           o.DNS,
		Enroll:        o.Enroll,
		Drain:         o.Drain,
	}
	devices := map[string]api.PortDevice{}
	for _, d := range st.Port.Devices {
		devices[d.Name] = d
	}
	for i := range cfg.Peerings {
		p := &cfg.Peerings[i]
		var op observe.Peering
		if i < len(o.Peerings) {
			op = o.Peerings[i]
		}
		ps, up := peeringStatus(p, op, o, devices[p.Name])
		if op.Tunnel != nil {
			st.Tunnels.Used++
		}
		if up {
			st.Tunnels.Up++
		}
		st.Peerings = append(st.Peerings, ps)
	}
	return st
}

// peeringStatus is one peering's status; up says its state is up.
func peeringStatus(p *config.Peering, op observe.Peering, o observe.Observation, dev api.PortDevice) (api.PeeringStatus, bool) {
	cfg := o.Config
	ps := api.PeeringStatus{
		Name:          p.Name,
		Network:       p.Network,
		PublicKey:     p.PublicKey.String(),
		Interface:     plan.IfNameOf(p),
		AddressSpaces: p.AddressSpaces,
		Type:          config.TypeWireGuard,
	}
	ps.NAT = natStatus(p, nil) // nat.go; with counters below
	obs := peering.Observation{Now: o.Now, BGP: p.BGP != nil && cfg.BGP != nil, ProbeDead: o.Held[p.Name], ProbeLastReply: o.Probes[p.Name].LastReply}
	t := op.Tunnel
	if p.IsIPsec() {
		ps.Type, ps.PublicKey = config.TypeIPsec, ""
		obs.IPsec, obs.IPsecDown = true, api.ReasonCharonNotRunning
		if t != nil {
			obs.IPsecDown, ps.IPsec = t.Down, t.IPsec
		}
	}
	if n, ok := o.Sessions[p.Name]; ok {
		obs.BGPEstablished = n.State == api.SessionEstablished
		obs.PrefixLimit = prefixLimited(n)
		obs.BFDDown = obs.BGP && !obs.BGPEstablished && n.DownCode == routing.DownBFD
	}
	if t != nil {
		ps.MTU = t.MTU
		if t.StatsErr != "" {
			ps.Error = t.StatsErr
		} else {
			s := t.Stats
			ps.Endpoint = s.Endpoint
			ps.LastHandshake = s.LastHandshake
			ps.RxBytes, ps.TxBytes = s.RxBytes, s.TxBytes
			ps.AllowedIPs = s.AllowedIPs
			ps.DroppedSource = s.DroppedSource
			ps.NAT = natStatus(p, &s.NAT) // nat.go
			ps.Queue = t.Queue
			obs.LastHandshake = s.LastHandshake
		}
		obs.UnansweredSince = dev.UnansweredSince
		if t.Relays {
			ps.Path, ps.Relay = t.Path, t.Relay
			if ps.Path != relay.PathRelay {
				// On the relay the tunnel does not need the UDP path.
				obs.SendBlockedSince = dev.SendBlockedSince
			}
		}
	}
	if at, from := op.EndpointMoved, op.EndpointPrevious; !at.IsZero() {
		ps.EndpointMoved, ps.EndpointPrevious = at, from.String()
	}
	ps.State, ps.Reason = peering.Evaluate(obs)
	ps.Hint = hint(p, cfg.ListenPort, obs, ps.Reason, dev.SendBlockedTo)
	if p.IsIPsec() {
		ps.Hint = ipsecHint(p, ps.Reason)
	}
	if ps.Reason == api.ReasonBFDDown {
		ps.Hint = bfdHint(p, o.Sessions[p.Name].Down)
	}
	if ps.Hint == "" {
		ps.Hint = op.ReturnHint // "" without a point-to-site pool
	}
	return ps, ps.State == api.StateUp
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

// prefixLimited reports whether vgate holds a session down for exceeding
// its max-prefix (a typed code from the speaker).
func prefixLimited(n routing.NeighborStatus) bool {
	return n.State != api.SessionEstablished && n.DownCode == routing.DownMaxPrefix
}
