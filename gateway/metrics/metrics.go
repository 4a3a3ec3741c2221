// Package metrics turns a running gateway's state into Prometheus metrics.
// Its Collector reads everything at scrape time from one call into a
// Source (gateway/view's View.Metrics, which returns api.Metrics):
// per-peer figures come from the WireGuard devices themselves and nothing
// polls between scrapes. It does not import the gateway. The
// caller registers the collector on a registry it owns; this package never
// touches the global default registry.
//
// Every configured peering keeps its series while it is down: vgate_peering_up
// is 0 and vgate_peering_down_reason says why, so an alert can fire on a
// tunnel that never came up. Labels are names (peering, network, reason,
// result); never keys.
package metrics

import (
	"context"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vgate-project/vgate/api"
)

// Namespace prefixes every vgate metric.
const Namespace = "vgate"

// Port drop reasons (label values of vgate_port_packets_dropped_total),
// one per counter of api.PortStats.
const (
	DropUnknownIndex = "unknown_index"
	DropMalformed    = "malformed"
	DropQueueFull    = "queue_full"
	DropNotOpen      = "not_open"
	// Handshake responses to a tunnel's own handshake.
	DropResponseBadMAC = "response_bad_mac"
	DropResponseLater  = "response_later"
)

// Source is what the collector reads once per scrape.
type Source interface {
	Metrics(ctx context.Context) api.Metrics
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) api.Metrics

// Metrics calls f.
func (f SourceFunc) Metrics(ctx context.Context) api.Metrics { return f(ctx) }

// scrapeTimeout bounds one read of the source.
const scrapeTimeout = 10 * time.Second

// Collector is a prometheus.Collector over a running gateway.
type Collector struct {
	source  Source
	version string

	buildInfo, tunnelsLimit, tunnelsConfigured, tunnelsUp    *prometheus.Desc
	peeringUp, peeringDownReason, peeringRx, peeringTx       *prometheus.Desc
	peeringHandshake, peeringInfo                            *prometheus.Desc
	portDispatched, portDropped, routesInstalled, reloads    *prometheus.Desc
	refusals, gatewayInfo, lastReloadTime, lastReloadError   *prometheus.Desc
	p2sRegistered, p2sConnected, p2sLimit, p2sPoolFree       *prometheus.Desc
	p2sPackets, p2sClientUp, p2sClientRx, p2sClientTx        *prometheus.Desc
	p2sClientHandshake, p2sClientDenied                      *prometheus.Desc
	p2sClientHeard                                           *prometheus.Desc
	bgpUp, bgpReceived, bgpAccepted, bgpRejected             *prometheus.Desc
	bgpRejectedTotal, bgpAdvertised, bgpMaxPrefixes          *prometheus.Desc
	bgpRecoveries                                            *prometheus.Desc
	probeUp, probeRTT                                        *prometheus.Desc
	bfdUp, bfdDowns, bfdDropped                              *prometheus.Desc
	ipForwarding, peeringSourceDropped                       *prometheus.Desc
	peeringSendDropped, peeringSendMarked, peeringQueueCoDel *prometheus.Desc
	peeringQueue, peeringQueueDropped                        *prometheus.Desc
	peeringSendRefused                                       *prometheus.Desc
	dnsQueries, enrollAttempts, invitesPending               *prometheus.Desc
	draining, drained                                        *prometheus.Desc
	peeringPath, peeringRelayConnected                       *prometheus.Desc
	ipsecInfo, ipsecIKE, ipsecChild                          *prometheus.Desc
	ipsecIKERekeys, ipsecChildRekeys                         *prometheus.Desc
	natPackets, natBytes, natDropped, natRuleInfo            *prometheus.Desc
}

// New returns a collector that reads source once per scrape. version is
// exported in vgate_build_info.
func New(source Source, version string) *Collector {
	peer := []string{"peering", "network"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
	}
	return &Collector{
		source:  source,
		version: version,

		buildInfo:         d("build_info", "Build information of the running vgate; always 1.", "version", "goversion"),
		gatewayInfo:       d("gateway_info", "The gateway's network name and tunnel port; always 1.", "gateway", "listen_port"),
		tunnelsLimit:      d("tunnels_limit", "The most site-to-site tunnels this gateway may run (max_tunnels)."),
		tunnelsConfigured: d("tunnels_configured", "Peerings configured, each one tunnel."),
		tunnelsUp:         d("tunnels_up", "Peerings that are up, as vgate_peering_up counts them (tunnel up and, with BGP, its session established)."),

		peeringInfo:       d("peering_info", "A configured peering and its tunnel interface; always 1.", "peering", "network", "interface"),
		peeringUp:         d("peering_up", "1 if the peering's tunnel is up, 0 if not (see vgate_peering_down_reason).", peer...),
		peeringDownReason: d("peering_down_reason", "1 for the reason the peering is down, 0 for the others; all 0 while it is up.", "peering", "network", "reason"),
		peeringRx:         d("peering_receive_bytes_total", "Bytes received from the peer (its WireGuard device, or an IPsec peering's child SAs).", peer...),
		peeringTx:         d("peering_transmit_bytes_total", "Bytes sent to the peer (its WireGuard device, or an IPsec peering's child SAs).", peer...),
		peeringHandshake:  d("peering_last_handshake_timestamp_seconds", "Unix time of the last completed WireGuard handshake; 0 if none yet.", peer...),

		portDispatched:  d("port_packets_dispatched_total", "Datagrams received on the shared tunnel port and handed to a tunnel device."),
		portDropped:     d("port_packets_dropped_total", "Datagrams received on the shared tunnel port and dropped, by reason.", "reason"),
		routesInstalled: d("routes_installed", "Kernel routes owned by vgate (protocol 76)."),
		reloads:         d("reloads_total", "Config reloads, by result.", "result"),
		lastReloadTime:  d("last_reload_timestamp_seconds", "Unix time of the last reload attempt; 0 if none."),
		lastReloadError: d("last_reload_failed", "1 if the last reload attempt failed (the previous config still runs)."),
		refusals:        d("refusals_total", "Reloads refused because the new config was invalid or needs a restart, by reason.", "reason"),

		p2sRegistered: d("p2s_clients_registered", "Point-to-site clients registered (vgate client add)."),
		p2sConnected:  d("p2s_clients_connected", "Point-to-site clients active: heard from (traffic or keepalive) in the last 27 s."),
		p2sLimit:      d("p2s_clients_limit", "The most point-to-site clients (point_to_site.max_clients)."),
		p2sPoolFree:   d("p2s_pool_free_addresses", "Clients the point-to-site pool can still address (the scarcer IP family)."),
		p2sPackets:    d("p2s_policy_packets_total", "Packets of point-to-site clients handled by the group policy, by verdict.", "verdict"),

		p2sClientUp:        d("p2s_client_up", "1 if the registered point-to-site client is active (heard from in the last 27 s), 0 if not.", "client"),
		p2sClientRx:        d("p2s_client_receive_bytes_total", "Bytes received from the point-to-site client.", "client"),
		p2sClientTx:        d("p2s_client_transmit_bytes_total", "Bytes sent to the point-to-site client.", "client"),
		p2sClientHandshake: d("p2s_client_last_handshake_timestamp_seconds", "Unix time of the client's last handshake; 0 if none yet.", "client"),
		p2sClientHeard:     d("p2s_client_last_heard_timestamp_seconds", "Unix time the client was last heard from (traffic or keepalive); 0 if never.", "client"),
		p2sClientDenied:    d("p2s_client_denied_packets_total", "Packets of the client dropped by its groups' policy.", "client"),

		bgpUp:                 d("bgp_session_up", "1 if the BGP session over the peering's tunnel is established, 0 if not.", "peering"),
		bgpReceived:           d("bgp_routes_received", "Routes the BGP peer currently announces (Adj-RIB-In, before policy).", "peering"),
		bgpAccepted:           d("bgp_routes_accepted", "Announced routes accepted by the import policy.", "peering"),
		bgpRejected:           d("bgp_routes_rejected", "Announced routes currently rejected by the import policy (hijacks, outside the allow-list).", "peering"),
		bgpRejectedTotal:      d("bgp_rejected_routes_total", "Route announcements rejected by the import policy since start.", "peering"),
		bgpAdvertised:         d("bgp_routes_advertised", "Routes advertised to the BGP peer.", "peering"),
		bgpMaxPrefixes:        d("bgp_max_prefixes", "The session's max-prefix limit; past it vgate shuts the session.", "peering"),
		bgpRecoveries:         d("bgp_session_recoveries_total", "Times vgate's watchdog started the BGP session afresh because it was not established for 30 s while its tunnel probe answered.", "peering"),
		probeUp:               d("peering_probe_up", "1 if the liveness probe through the tunnel gets answers, 0 if not.", "peering"),
		probeRTT:              d("peering_probe_rtt_seconds", "Round-trip time of the last liveness probe answer.", "peering"),
		bfdUp:                 d("bfd_up", "1 if the peering's BFD session is up, 0 if not.", "peering"),
		bfdDowns:              d("bfd_down_total", "Times the peering's BFD session went down after being up.", "peering"),
		bfdDropped:            d("bfd_dropped_total", "Received BFD packets dropped, by reason (ttl, interface, unknown_source, malformed, discriminator).", "reason"),
		peeringSourceDropped:  d("peering_source_dropped_packets_total", "Packets from the peer dropped because their source is not in its AllowedIPs (static routes, tunnel address, routes accepted from it).", peer...),
		peeringSendDropped:    d("peering_send_queue_dropped_packets_total", "Packets the tunnel's send queue dropped: codel (waited too long), overflow (queue full: the longest flow's oldest).", append(peer, "reason")...),
		peeringSendMarked:     d("peering_send_queue_ce_marked_packets_total", "ECN-capable packets the tunnel's send queue marked CE instead of dropping them.", peer...),
		peeringQueueCoDel:     d("peering_queue_codel_dropped_packets_total", "Received packets for the peering dropped from its queue on the shared tunnel port because they waited there too long (CoDel).", peer...),
		peeringQueue:          d("peering_queue_packets", "Received packets waiting in the peering's queue on the shared tunnel port for its WireGuard device.", peer...),
		peeringQueueDropped:   d("peering_queue_dropped_packets_total", "Received packets for the peering dropped because its queue on the shared tunnel port was full: its device does not keep up (CPU, or a flood aimed at it); other peerings are not affected.", peer...),
		peeringSendRefused:    d("peering_send_refused_packets_total", "Datagrams of the peering's tunnel this host refused to send (EPERM: a local firewall's output rule); while sends keep failing the peering is down for send_blocked.", peer...),
		peeringPath:           d("peering_path", "1 for the path the tunnel's datagrams take now (direct: UDP; relay: TCP/443 through its relay), 0 for the other.", "peering", "network", "path"),
		peeringRelayConnected: d("peering_relay_connected", "1 if the peering's relay accepted this gateway and is connected, 0 if not; only for peerings with a relay.", peer...),
		ipsecInfo:             d("ipsec_info", "An IPsec peering and where its ESP runs (libipsec: userspace, in charon's kernel-libipsec); always 1.", "peering", "network", "esp_mode"),
		ipsecIKE:              d("ipsec_ike_sa_established", "1 if the IPsec peering's IKE SA is established, 0 if not.", peer...),
		ipsecChild:            d("ipsec_child_sa_installed", "1 if the IPsec peering's child SA (ESP) is installed, 0 if not.", peer...),
		ipsecIKERekeys:        d("ipsec_ike_rekeys_total", "IKE SA rekeyings of the IPsec peering since start.", peer...),
		ipsecChildRekeys:      d("ipsec_child_rekeys_total", "Child SA rekeyings of the IPsec peering since start.", peer...),
		ipForwarding:          d("ip_forwarding", "1 if the kernel forwards packets of the family (ipv4, ipv6), 0 if not: without it nothing behind the gateway gets through its tunnels.", "family"),

		dnsQueries:     d("dns_queries_total", "DNS queries the name server on the tunnel address handled, by outcome (answer, nxdomain, refused, forwarded, servfail, malformed).", "outcome"),
		enrollAttempts: d("enroll_attempts_total", "Invite enrollment attempts on the enrollment listener, by result (enrolled or why refused).", "result"),
		invitesPending: d("invites_pending", "Invites issued and not yet used, revoked or expired."),
		draining:       d("draining", "1 while the gateway drains (vgate drain, bgp.drain): its routes are announced least preferred."),
		drained:        d("drained", "1 when the gateway drains and every established BGP peer routes around it (vgate status: drained)."),

		natPackets:  d("nat_translated_packets_total", "Packets a peering's NAT rule translated, by direction (out: into the tunnel, in: out of it).", "peering", "rule", "direction"),
		natBytes:    d("nat_translated_bytes_total", "Bytes (IP lengths) of the packets a peering's NAT rule translated, by direction.", "peering", "rule", "direction"),
		natDropped:  d("nat_dropped_packets_total", "Packets a peering's NAT rules applied to but could not translate, dropped, by direction and reason (malformed, ambiguous, source-routed).", "peering", "direction", "reason"),
		natRuleInfo: d("nat_rule_info", "A peering's NAT rule: internal prefix shown as external; always 1.", "peering", "rule", "internal", "external"),
	}
}

func (c *Collector) descs() []*prometheus.Desc {
	return []*prometheus.Desc{
		c.buildInfo, c.gatewayInfo, c.tunnelsLimit, c.tunnelsConfigured, c.tunnelsUp,
		c.peeringInfo, c.peeringUp, c.peeringDownReason, c.peeringRx, c.peeringTx, c.peeringHandshake,
		c.portDispatched, c.portDropped, c.routesInstalled, c.reloads, c.lastReloadTime,
		c.lastReloadError, c.refusals,
		c.p2sRegistered, c.p2sConnected, c.p2sLimit, c.p2sPoolFree, c.p2sPackets,
		c.p2sClientUp, c.p2sClientRx, c.p2sClientTx, c.p2sClientHandshake, c.p2sClientDenied, c.p2sClientHeard,
		c.bgpUp, c.bgpReceived, c.bgpAccepted, c.bgpRejected, c.bgpRejectedTotal, c.bgpAdvertised,
		c.bgpMaxPrefixes, c.bgpRecoveries, c.probeUp, c.probeRTT, c.bfdUp, c.bfdDowns, c.bfdDropped, c.ipForwarding, c.peeringSourceDropped,
		c.peeringSendDropped, c.peeringSendMarked, c.peeringQueueCoDel,
		c.peeringQueue, c.peeringQueueDropped,
		c.peeringSendRefused,
		c.dnsQueries, c.enrollAttempts, c.invitesPending, c.draining, c.drained,
		c.peeringPath, c.peeringRelayConnected,
		c.ipsecInfo, c.ipsecIKE, c.ipsecChild, c.ipsecIKERekeys, c.ipsecChildRekeys,
		c.natPackets, c.natBytes, c.natDropped, c.natRuleInfo,
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one call into the gateway, then
// every series from that snapshot.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	m := c.source.Metrics(ctx)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}

	gauge(c.buildInfo, 1, c.version, runtime.Version())
	gauge(c.gatewayInfo, 1, m.Name, strconv.Itoa(int(m.ListenPort)))
	gauge(c.tunnelsLimit, float64(m.Tunnels.Limit))
	gauge(c.tunnelsConfigured, float64(len(m.Peerings)))
	gauge(c.tunnelsUp, float64(m.Tunnels.Up))
	gauge(c.draining, b2f(m.Drain != nil))
	gauge(c.drained, b2f(m.Drain != nil && m.Drain.State == api.Drained))
	gauge(c.ipForwarding, b2f(m.Forwarding.IPv4), "ipv4")
	gauge(c.ipForwarding, b2f(m.Forwarding.IPv6), "ipv6")

	ports := map[string]api.PortDevice{} // the shared port's device queues, by peering
	for _, d := range m.Port.Devices {
		ports[d.Name] = d
	}
	for _, p := range m.Peerings {
		gauge(c.peeringInfo, 1, p.Name, p.Network, p.Interface)
		gauge(c.peeringQueue, float64(ports[p.Name].QueueDepth), p.Name, p.Network)
		counter(c.peeringQueueDropped, float64(ports[p.Name].DroppedQueueFull), p.Name, p.Network)
		counter(c.peeringSendRefused, float64(ports[p.Name].SendRefused), p.Name, p.Network)
		counter(c.peeringQueueCoDel, float64(ports[p.Name].DroppedCoDel), p.Name, p.Network)
		up := 0.0
		if p.Reason == "" {
			up = 1
		}
		gauge(c.peeringUp, up, p.Name, p.Network)
		for _, r := range reasonsOf(p) {
			v := 0.0
			if r == p.Reason {
				v = 1
			}
			gauge(c.peeringDownReason, v, p.Name, p.Network, string(r))
		}
		counter(c.peeringRx, float64(p.RxBytes), p.Name, p.Network)
		counter(c.peeringTx, float64(p.TxBytes), p.Name, p.Network)
		counter(c.peeringSourceDropped, float64(p.DroppedSource), p.Name, p.Network)
		if q := p.Queue; q != nil {
			counter(c.peeringSendDropped, float64(q.DroppedCoDel), p.Name, p.Network, "codel")
			counter(c.peeringSendDropped, float64(q.DroppedLimit), p.Name, p.Network, "overflow")
			counter(c.peeringSendMarked, float64(q.MarkedCE), p.Name, p.Network)
		}
		hs := 0.0
		if !p.LastHandshake.IsZero() {
			hs = float64(p.LastHandshake.UnixNano()) / 1e9
		}
		gauge(c.peeringHandshake, hs, p.Name, p.Network)
		if p.Path != "" {
			for _, path := range []string{"direct", "relay"} {
				gauge(c.peeringPath, b2f(p.Path == path), p.Name, p.Network, path)
			}
		}
		if p.Relay != nil {
			gauge(c.peeringRelayConnected, b2f(p.Relay.State == "connected"), p.Name, p.Network)
		}
		if x := p.IPsec; x != nil {
			gauge(c.ipsecInfo, 1, p.Name, p.Network, x.ESPMode)
			gauge(c.ipsecIKE, b2f(x.IKEState == "ESTABLISHED"), p.Name, p.Network)
			gauge(c.ipsecChild, b2f(x.ChildState == "INSTALLED"), p.Name, p.Network)
			counter(c.ipsecIKERekeys, float64(x.IKERekeys), p.Name, p.Network)
			counter(c.ipsecChildRekeys, float64(x.ChildRekeys), p.Name, p.Network)
		}
		if n := p.NAT; n != nil {
			for _, r := range n.Rules {
				gauge(c.natRuleInfo, 1, p.Name, r.Rule, r.Internal.String(), r.External.String())
				counter(c.natPackets, float64(r.Out.Packets), p.Name, r.Rule, "out")
				counter(c.natPackets, float64(r.In.Packets), p.Name, r.Rule, "in")
				counter(c.natBytes, float64(r.Out.Bytes), p.Name, r.Rule, "out")
				counter(c.natBytes, float64(r.In.Bytes), p.Name, r.Rule, "in")
			}
			for _, reason := range []string{"malformed", "ambiguous", "source-routed"} {
				counter(c.natDropped, float64(n.DroppedOut[reason]), p.Name, "out", reason)
				counter(c.natDropped, float64(n.DroppedIn[reason]), p.Name, "in", reason)
			}
		}
	}

	counter(c.portDispatched, float64(m.Port.Dispatched))
	counter(c.portDropped, float64(m.Port.DroppedUnknownIndex), DropUnknownIndex)
	counter(c.portDropped, float64(m.Port.DroppedMalformed), DropMalformed)
	counter(c.portDropped, float64(m.Port.DroppedQueueFull), DropQueueFull)
	counter(c.portDropped, float64(m.Port.DroppedNotOpen), DropNotOpen)
	counter(c.portDropped, float64(m.Port.DroppedResponseBadMAC), DropResponseBadMAC)
	counter(c.portDropped, float64(m.Port.DroppedResponseLater), DropResponseLater)

	if m.RoutesInstalled >= 0 {
		gauge(c.routesInstalled, float64(m.RoutesInstalled))
	}

	counter(c.reloads, float64(m.Reloads.OK), "ok")
	counter(c.reloads, float64(m.Reloads.Failed), "error")
	last, failed := 0.0, 0.0
	if !m.Reloads.Last.IsZero() {
		last = float64(m.Reloads.Last.UnixNano()) / 1e9
	}
	if m.Reloads.LastError != "" {
		failed = 1
	}
	gauge(c.lastReloadTime, last)
	gauge(c.lastReloadError, failed)
	for _, r := range api.RefusalReasons {
		counter(c.refusals, float64(m.Refusals[r]), string(r))
	}

	if b := m.BGP; b != nil { // bgp configured
		for _, n := range b.Neighbors {
			up := 0.0
			if n.State == api.SessionEstablished {
				up = 1
			}
			gauge(c.bgpUp, up, n.Name)
			gauge(c.bgpReceived, float64(n.Received), n.Name)
			gauge(c.bgpAccepted, float64(n.Accepted), n.Name)
			gauge(c.bgpRejected, float64(n.Rejected), n.Name)
			counter(c.bgpRejectedTotal, float64(n.RejectedTotal), n.Name)
			gauge(c.bgpAdvertised, float64(n.Advertised), n.Name)
			gauge(c.bgpMaxPrefixes, float64(n.MaxPrefixes), n.Name)
			counter(c.bgpRecoveries, float64(n.Recoveries), n.Name)
		}
		for _, p := range b.Probes {
			up := 0.0
			if p.Alive {
				up = 1
			}
			gauge(c.probeUp, up, p.Peering)
			gauge(c.probeRTT, p.RTT.Seconds(), p.Peering)
		}
		for _, f := range b.BFD {
			up := 0.0
			if f.State == "up" {
				up = 1
			}
			gauge(c.bfdUp, up, f.Peering)
			counter(c.bfdDowns, float64(f.Downs), f.Peering)
		}
		for reason, n := range b.BFDDropped {
			counter(c.bfdDropped, float64(n), reason)
		}
	}

	if p := m.P2S; p != nil { // point_to_site configured
		gauge(c.p2sRegistered, float64(p.Registered))
		gauge(c.p2sConnected, float64(p.Connected))
		gauge(c.p2sLimit, float64(p.MaxClients))
		gauge(c.p2sPoolFree, float64(p.PoolFree))
		for verdict, n := range p.Packets {
			counter(c.p2sPackets, float64(n), verdict)
		}
	}
	if d := m.DNS; d != nil { // dns configured
		for _, o := range api.DNSOutcomes {
			counter(c.dnsQueries, float64(d.Queries[o]), o)
		}
	}
	if e := m.Enroll; e != nil { // point_to_site.enroll configured
		for _, r := range api.EnrollResults {
			counter(c.enrollAttempts, float64(e.Attempts[r]), r)
		}
		gauge(c.invitesPending, float64(e.Pending))
	}
	// Every registered client keeps its series while disconnected, so an
	// alert can fire on a client that never came up.
	for _, cl := range m.Clients {
		up, hs := 0.0, 0.0
		if cl.Connected {
			up = 1
		}
		if !cl.LastHandshake.IsZero() {
			hs = float64(cl.LastHandshake.UnixNano()) / 1e9
		}
		gauge(c.p2sClientUp, up, cl.Name)
		counter(c.p2sClientRx, float64(cl.RxBytes), cl.Name)
		counter(c.p2sClientTx, float64(cl.TxBytes), cl.Name)
		gauge(c.p2sClientHandshake, hs, cl.Name)
		heard := 0.0
		if !cl.LastHeard.IsZero() {
			heard = float64(cl.LastHeard.UnixNano()) / 1e9
		}
		gauge(c.p2sClientHeard, heard, cl.Name)
		counter(c.p2sClientDenied, float64(cl.Denied), cl.Name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// reasonsOf are the down reasons a peering of p's type can have (its
// series of vgate_peering_down_reason).
func reasonsOf(p api.PeeringStatus) []api.DownReason {
	if p.Type == api.PeeringIPsec {
		return api.IPsecDownReasons
	}
	return api.WireGuardDownReasons
}
