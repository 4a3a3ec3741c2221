package metrics

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/vgate-project/vgate/api"
)

const secretKey = "SECRETKEYSECRETKEYSECRETKEYSECRETKEYSECRE="

// sample is a gateway with one tunnel up and one that never shook hands.
func sample() api.Metrics {
	hs := time.Unix(1_800_000_000, 500_000_000)
	return api.Metrics{
		Status: api.Status{
			Name:          "vnet-east",
			PublicKey:     "pubEAST=",
			AddressSpaces: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
			ListenPort:    51820,
			Tunnels:       api.TunnelCount{Used: 2, Up: 1, Limit: 10},
			Peerings: []api.PeeringStatus{
				{Name: "west", Network: "vnet-west", PublicKey: "pubWEST=", Interface: "vg-west",
					State: api.StateUp, LastHandshake: hs, RxBytes: 1000, TxBytes: 2000,
					Path: "relay", Relay: &api.RelayStatus{URL: "wss://relay.example/", State: "connected"}},
				{Name: "north", Network: "vnet-north", PublicKey: "pubNORTH=", Interface: "vg-north",
					State: api.StateDown, Reason: api.ReasonNoHandshake},
			},
			Reloads: api.ReloadStats{OK: 2, Failed: 1, LastError: "boom", Last: time.Unix(1_800_000_100, 0)},
			Port: api.PortStats{Dispatched: 50, DroppedUnknownIndex: 3, DroppedQueueFull: 1, DroppedResponseBadMAC: 9, DroppedResponseLater: 2,
				Devices: []api.PortDevice{{Name: "west", Open: true, QueueDepth: 7, QueueCap: 1024, Dispatched: 50, DroppedQueueFull: 1, SendRefused: 12}}},
			P2S: &api.P2SStatus{Registered: 3, Connected: 1, MaxClients: 128, PoolFree: 250,
				Packets: map[string]uint64{"allow": 10, "deny": 2}},
		},
		RoutesInstalled: 4,
		Clients: []api.ClientInfo{
			{Name: "alice", Connected: true, LastHandshake: hs, LastHeard: time.Unix(1700000100, 0), RxBytes: 300, TxBytes: 400, Denied: 2},
			{Name: "bob"}, // registered, never connected: its series still exist
		},
		Refusals: map[api.RefusalReason]uint64{api.RefusedTunnelLimit: 1},
		BGP: &api.BGPStatus{Enabled: true, ASN: 65001,
			Neighbors:  []api.NeighborStatus{{Name: "west", State: "established", Received: 5, Accepted: 4, Rejected: 1, RejectedTotal: 7, Advertised: 2, MaxPrefixes: 100, Recoveries: 3}},
			Probes:     []api.ProbeStatus{{Peering: "west", Alive: true, RTT: 1500 * time.Microsecond}},
			BFD:        []api.BFDStatus{{Peering: "west", State: "up", Downs: 2}},
			BFDDropped: map[string]uint64{"ttl": 4, "interface": 0}},
	}
}

func newTestRegistry(t *testing.T, src func() api.Metrics) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(New(SourceFunc(func(context.Context) api.Metrics { return src() }), "v1.2.3")); err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestCollector(t *testing.T) {
	reg := newTestRegistry(t, sample)
	want := `
# HELP vgate_peering_up 1 if the peering's tunnel is up, 0 if not (see vgate_peering_down_reason).
# TYPE vgate_peering_up gauge
vgate_peering_up{network="vnet-north",peering="north"} 0
vgate_peering_up{network="vnet-west",peering="west"} 1
# HELP vgate_peering_receive_bytes_total Bytes received from the peer (its WireGuard device, or an IPsec peering's child SAs).
# TYPE vgate_peering_receive_bytes_total counter
vgate_peering_receive_bytes_total{network="vnet-north",peering="north"} 0
vgate_peering_receive_bytes_total{network="vnet-west",peering="west"} 1000
# HELP vgate_peering_transmit_bytes_total Bytes sent to the peer (its WireGuard device, or an IPsec peering's child SAs).
# TYPE vgate_peering_transmit_bytes_total counter
vgate_peering_transmit_bytes_total{network="vnet-north",peering="north"} 0
vgate_peering_transmit_bytes_total{network="vnet-west",peering="west"} 2000
# HELP vgate_peering_last_handshake_timestamp_seconds Unix time of the last completed WireGuard handshake; 0 if none yet.
# TYPE vgate_peering_last_handshake_timestamp_seconds gauge
vgate_peering_last_handshake_timestamp_seconds{network="vnet-north",peering="north"} 0
vgate_peering_last_handshake_timestamp_seconds{network="vnet-west",peering="west"} 1.8000000005e+09
# HELP vgate_peering_queue_packets Received packets waiting in the peering's queue on the shared tunnel port for its WireGuard device.
# TYPE vgate_peering_queue_packets gauge
vgate_peering_queue_packets{network="vnet-north",peering="north"} 0
vgate_peering_queue_packets{network="vnet-west",peering="west"} 7
# HELP vgate_peering_queue_dropped_packets_total Received packets for the peering dropped because its queue on the shared tunnel port was full: its device does not keep up (CPU, or a flood aimed at it); other peerings are not affected.
# TYPE vgate_peering_queue_dropped_packets_total counter
vgate_peering_queue_dropped_packets_total{network="vnet-north",peering="north"} 0
vgate_peering_queue_dropped_packets_total{network="vnet-west",peering="west"} 1
# HELP vgate_peering_send_refused_packets_total Datagrams of the peering's tunnel this host refused to send (EPERM: a local firewall's output rule); while sends keep failing the peering is down for send_blocked.
# TYPE vgate_peering_send_refused_packets_total counter
vgate_peering_send_refused_packets_total{network="vnet-north",peering="north"} 0
vgate_peering_send_refused_packets_total{network="vnet-west",peering="west"} 12
# HELP vgate_tunnels_limit The most site-to-site tunnels this gateway may run (max_tunnels).
# TYPE vgate_tunnels_limit gauge
vgate_tunnels_limit 10
# HELP vgate_tunnels_configured Peerings configured, each one tunnel.
# TYPE vgate_tunnels_configured gauge
vgate_tunnels_configured 2
# HELP vgate_tunnels_up Peerings that are up, as vgate_peering_up counts them (tunnel up and, with BGP, its session established).
# TYPE vgate_tunnels_up gauge
vgate_tunnels_up 1
# HELP vgate_port_packets_dropped_total Datagrams received on the shared tunnel port and dropped, by reason.
# TYPE vgate_port_packets_dropped_total counter
vgate_port_packets_dropped_total{reason="malformed"} 0
vgate_port_packets_dropped_total{reason="not_open"} 0
vgate_port_packets_dropped_total{reason="queue_full"} 1
vgate_port_packets_dropped_total{reason="response_bad_mac"} 9
vgate_port_packets_dropped_total{reason="response_later"} 2
vgate_port_packets_dropped_total{reason="unknown_index"} 3
# HELP vgate_routes_installed Kernel routes owned by vgate (protocol 76).
# TYPE vgate_routes_installed gauge
vgate_routes_installed 4
# HELP vgate_reloads_total Config reloads, by result.
# TYPE vgate_reloads_total counter
vgate_reloads_total{result="error"} 1
vgate_reloads_total{result="ok"} 2
# HELP vgate_refusals_total Reloads refused because the new config was invalid or needs a restart, by reason.
# TYPE vgate_refusals_total counter
vgate_refusals_total{reason="invalid"} 0
vgate_refusals_total{reason="overlap"} 0
vgate_refusals_total{reason="restart_required"} 0
vgate_refusals_total{reason="tunnel_limit"} 1
# HELP vgate_last_reload_failed 1 if the last reload attempt failed (the previous config still runs).
# TYPE vgate_last_reload_failed gauge
vgate_last_reload_failed 1
# HELP vgate_bgp_session_up 1 if the BGP session over the peering's tunnel is established, 0 if not.
# TYPE vgate_bgp_session_up gauge
vgate_bgp_session_up{peering="west"} 1
# HELP vgate_bgp_routes_accepted Announced routes accepted by the import policy.
# TYPE vgate_bgp_routes_accepted gauge
vgate_bgp_routes_accepted{peering="west"} 4
# HELP vgate_bgp_rejected_routes_total Route announcements rejected by the import policy since start.
# TYPE vgate_bgp_rejected_routes_total counter
vgate_bgp_rejected_routes_total{peering="west"} 7
# HELP vgate_bgp_session_recoveries_total Times vgate's watchdog started the BGP session afresh because it was not established for 30 s while its tunnel probe answered.
# TYPE vgate_bgp_session_recoveries_total counter
vgate_bgp_session_recoveries_total{peering="west"} 3
# HELP vgate_peering_probe_rtt_seconds Round-trip time of the last liveness probe answer.
# TYPE vgate_peering_probe_rtt_seconds gauge
vgate_peering_probe_rtt_seconds{peering="west"} 0.0015
# HELP vgate_bfd_up 1 if the peering's BFD session is up, 0 if not.
# TYPE vgate_bfd_up gauge
vgate_bfd_up{peering="west"} 1
# HELP vgate_bfd_down_total Times the peering's BFD session went down after being up.
# TYPE vgate_bfd_down_total counter
vgate_bfd_down_total{peering="west"} 2
# HELP vgate_bfd_dropped_total Received BFD packets dropped, by reason (ttl, interface, unknown_source, malformed, discriminator).
# TYPE vgate_bfd_dropped_total counter
vgate_bfd_dropped_total{reason="interface"} 0
vgate_bfd_dropped_total{reason="ttl"} 4
# HELP vgate_p2s_clients_registered Point-to-site clients registered (vgate client add).
# TYPE vgate_p2s_clients_registered gauge
vgate_p2s_clients_registered 3
# HELP vgate_p2s_pool_free_addresses Clients the point-to-site pool can still address (the scarcer IP family).
# TYPE vgate_p2s_pool_free_addresses gauge
vgate_p2s_pool_free_addresses 250
# HELP vgate_p2s_policy_packets_total Packets of point-to-site clients handled by the group policy, by verdict.
# TYPE vgate_p2s_policy_packets_total counter
vgate_p2s_policy_packets_total{verdict="allow"} 10
vgate_p2s_policy_packets_total{verdict="deny"} 2
# HELP vgate_p2s_client_up 1 if the registered point-to-site client is active (heard from in the last 27 s), 0 if not.
# TYPE vgate_p2s_client_up gauge
vgate_p2s_client_up{client="alice"} 1
vgate_p2s_client_up{client="bob"} 0
# HELP vgate_p2s_client_receive_bytes_total Bytes received from the point-to-site client.
# TYPE vgate_p2s_client_receive_bytes_total counter
vgate_p2s_client_receive_bytes_total{client="alice"} 300
vgate_p2s_client_receive_bytes_total{client="bob"} 0
# HELP vgate_p2s_client_last_heard_timestamp_seconds Unix time the client was last heard from (traffic or keepalive); 0 if never.
# TYPE vgate_p2s_client_last_heard_timestamp_seconds gauge
vgate_p2s_client_last_heard_timestamp_seconds{client="alice"} 1.7000001e+09
vgate_p2s_client_last_heard_timestamp_seconds{client="bob"} 0
# HELP vgate_p2s_client_denied_packets_total Packets of the client dropped by its groups' policy.
# TYPE vgate_p2s_client_denied_packets_total counter
vgate_p2s_client_denied_packets_total{client="alice"} 2
vgate_p2s_client_denied_packets_total{client="bob"} 0
# HELP vgate_peering_path 1 for the path the tunnel's datagrams take now (direct: UDP; relay: TCP/443 through its relay), 0 for the other.
# TYPE vgate_peering_path gauge
vgate_peering_path{network="vnet-west",path="direct",peering="west"} 0
vgate_peering_path{network="vnet-west",path="relay",peering="west"} 1
# HELP vgate_peering_relay_connected 1 if the peering's relay accepted this gateway and is connected, 0 if not; only for peerings with a relay.
# TYPE vgate_peering_relay_connected gauge
vgate_peering_relay_connected{network="vnet-west",peering="west"} 1
`
	names := []string{
		"vgate_peering_path", "vgate_peering_relay_connected",
		"vgate_peering_up", "vgate_peering_receive_bytes_total", "vgate_peering_transmit_bytes_total",
		"vgate_peering_last_handshake_timestamp_seconds", "vgate_peering_queue_packets", "vgate_peering_queue_dropped_packets_total", "vgate_peering_send_refused_packets_total", "vgate_tunnels_limit", "vgate_tunnels_configured",
		"vgate_tunnels_up", "vgate_port_packets_dropped_total", "vgate_routes_installed", "vgate_reloads_total",
		"vgate_refusals_total", "vgate_last_reload_failed",
		"vgate_p2s_clients_registered", "vgate_p2s_pool_free_addresses", "vgate_p2s_policy_packets_total",
		"vgate_p2s_client_up", "vgate_p2s_client_receive_bytes_total", "vgate_p2s_client_denied_packets_total", "vgate_p2s_client_last_heard_timestamp_seconds",
		"vgate_bgp_session_up", "vgate_bgp_routes_accepted", "vgate_bgp_rejected_routes_total", "vgate_bgp_session_recoveries_total", "vgate_peering_probe_rtt_seconds",
		"vgate_bfd_up", "vgate_bfd_down_total", "vgate_bfd_dropped_total",
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}

// A down peering has exactly one reason set, and every reason has a series
// (stable across state changes, so alerts and graphs have no gaps).
func TestDownReasonStateSet(t *testing.T) {
	reg := newTestRegistry(t, sample)
	n, err := testutil.GatherAndCount(reg, "vgate_peering_down_reason")
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * len(api.WireGuardDownReasons); n != want {
		t.Fatalf("vgate_peering_down_reason has %d series, want %d", n, want)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	set := map[string][]string{}
	for _, mf := range mfs {
		if mf.GetName() != "vgate_peering_down_reason" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetGauge().GetValue() != 1 {
				continue
			}
			var p, r string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "peering":
					p = l.GetValue()
				case "reason":
					r = l.GetValue()
				}
			}
			set[p] = append(set[p], r)
		}
	}
	if len(set["west"]) != 0 || len(set["north"]) != 1 || set["north"][0] != string(api.ReasonNoHandshake) {
		t.Fatalf("reasons set to 1 = %v, want only north=no_handshake", set)
	}
}

// Values follow the gateway between scrapes: the collector holds no state.
func TestCollectorReadsAtScrapeTime(t *testing.T) {
	m := sample()
	calls := 0
	reg := newTestRegistry(t, func() api.Metrics { calls++; return m })
	rx := func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "vgate_peering_receive_bytes_total" {
				for _, x := range mf.GetMetric() {
					for _, l := range x.GetLabel() {
						if l.GetName() == "peering" && l.GetValue() == "west" {
							return x.GetCounter().GetValue()
						}
					}
				}
			}
		}
		t.Fatal("no rx series for west")
		return 0
	}
	if v := rx(); v != 1000 {
		t.Fatalf("rx = %v, want 1000", v)
	}
	m.Peerings[0].RxBytes = 5000
	if v := rx(); v != 5000 {
		t.Fatalf("rx after traffic = %v, want 5000", v)
	}
	if calls != 2 {
		t.Fatalf("source called %d times for 2 scrapes, want 2", calls)
	}
}

// Unknown route count (kernel not listable) leaves the series out rather
// than exporting a wrong 0 or -1.
func TestRoutesUnknown(t *testing.T) {
	reg := newTestRegistry(t, func() api.Metrics { m := sample(); m.RoutesInstalled = -1; return m })
	n, err := testutil.GatherAndCount(reg, "vgate_routes_installed")
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("vgate_routes_installed exported %d series with an unknown count", n)
	}
}

// Metric names and help follow Prometheus conventions (CoreDNS-style
// naming test): promlint finds nothing in everything the gateway exports.
func TestMetricNamingLint(t *testing.T) {
	reg := newTestRegistry(t, sample)
	problems, err := promlint.NewWithMetricFamilies(mustGather(t, reg)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	for _, mf := range mustGather(t, reg) {
		if !strings.HasPrefix(mf.GetName(), Namespace+"_") {
			t.Errorf("%s: missing the %s_ prefix", mf.GetName(), Namespace)
		}
	}
}

// Keys never appear in a label or value (invariant 5): not even public
// keys, which are identities an operator should not have to graph by.
func TestNoKeysExported(t *testing.T) {
	reg := newTestRegistry(t, func() api.Metrics {
		m := sample()
		m.Reloads.LastError = "private key " + secretKey
		return m
	})
	for _, mf := range mustGather(t, reg) {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, bad := range []string{secretKey, "pubEAST=", "pubWEST=", "pubNORTH="} {
					if strings.Contains(l.GetValue(), bad) {
						t.Errorf("%s{%s=%q} exports key material", mf.GetName(), l.GetName(), l.GetValue())
					}
				}
			}
		}
	}
}

func mustGather(t *testing.T, reg *prometheus.Registry) []*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// The lint test above can fail: promlint does flag a badly named metric.
func TestMetricNamingLintCatches(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "vgate_peering_rx_bytes", Help: "x"})
	reg.MustRegister(c)
	problems, err := promlint.NewWithMetricFamilies(mustGather(t, reg)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) == 0 {
		t.Fatal("promlint accepted a counter without _total")
	}
}

// vgate_ip_forwarding has one series per family, 1 when on.
func TestIPForwarding(t *testing.T) {
	reg := newTestRegistry(t, func() api.Metrics {
		m := sample()
		m.Forwarding = api.Forwarding{IPv4: true}
		return m
	})
	want := `
# HELP vgate_ip_forwarding 1 if the kernel forwards packets of the family (ipv4, ipv6), 0 if not: without it nothing behind the gateway gets through its tunnels.
# TYPE vgate_ip_forwarding gauge
vgate_ip_forwarding{family="ipv4"} 1
vgate_ip_forwarding{family="ipv6"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "vgate_ip_forwarding"); err != nil {
		t.Fatal(err)
	}
}

// An IPsec peering has the IPsec reasons and its SA series.
func TestIPsecSeries(t *testing.T) {
	reg := newTestRegistry(t, func() api.Metrics {
		return api.Metrics{Status: api.Status{Peerings: []api.PeeringStatus{{
			Name: "hq", Network: "hq", Interface: "ipsec0", Type: "ipsec", State: api.StateDown, Reason: api.ReasonNoProposalChosen,
			IPsec: &api.IPsecStatus{ESPMode: "libipsec", IKEState: "", ChildState: "", IKERekeys: 3, ChildRekeys: 5},
		}}}}
	})
	want := `
# HELP vgate_ipsec_child_rekeys_total Child SA rekeyings of the IPsec peering since start.
# TYPE vgate_ipsec_child_rekeys_total counter
vgate_ipsec_child_rekeys_total{network="hq",peering="hq"} 5
# HELP vgate_ipsec_ike_sa_established 1 if the IPsec peering's IKE SA is established, 0 if not.
# TYPE vgate_ipsec_ike_sa_established gauge
vgate_ipsec_ike_sa_established{network="hq",peering="hq"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "vgate_ipsec_child_rekeys_total", "vgate_ipsec_ike_sa_established"); err != nil {
		t.Fatal(err)
	}
	n, err := testutil.GatherAndCount(reg, "vgate_peering_down_reason")
	if err != nil || n != len(api.IPsecDownReasons) {
		t.Fatalf("IPsec down_reason series: %d (%v), want %d", n, err, len(api.IPsecDownReasons))
	}
}
