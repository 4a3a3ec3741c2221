package view

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/observe"
	"github.com/vgate-project/vgate/gateway/relay"
	"github.com/vgate-project/vgate/routing"
)

// Status turns what the parts report into each peering's state, reason
// and hint, and the tunnel counts; the cases vary one report at a time.
func TestStatusPeeringStates(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	priv, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	wg := config.Peering{Name: "west", Network: "west", Endpoint: "198.18.0.2:51821"}
	withBGP := wg
	withBGP.BGP = &config.PeerBGP{ASN: 65002, Address: netip.MustParseAddr("169.254.10.2")}
	ipsecP := config.Peering{Name: "dev", Network: "dev", Endpoint: "198.18.0.9", Type: config.TypeIPsec}
	fresh := &observe.Tunnel{MTU: 1420, Stats: dataplane.PeerStats{LastHandshake: now.Add(-time.Minute)}}
	never := &observe.Tunnel{MTU: 1420}
	device := func(d api.PortDevice) api.PortStats {
		d.Name = "west"
		return api.PortStats{Devices: []api.PortDevice{d}}
	}

	for _, tc := range []struct {
		name       string
		peering    config.Peering
		bgp        bool // the gateway runs BGP
		obs        observe.Observation
		peer       observe.Peering
		wantState  api.PeeringState
		wantReason api.DownReason
		wantHint   string // a part of the hint ("" for none)
		wantUsed   int
	}{
		{name: "no tunnel", peering: wg, wantState: api.StateDown, wantReason: api.ReasonNoHandshake},
		{name: "never a handshake", peering: wg, peer: observe.Peering{Tunnel: never},
			wantState: api.StateDown, wantReason: api.ReasonNoHandshake, wantUsed: 1},
		{name: "fresh handshake", peering: wg, peer: observe.Peering{Tunnel: fresh},
			wantState: api.StateUp, wantUsed: 1},
		{name: "stale handshake", peering: wg,
			peer:      observe.Peering{Tunnel: &observe.Tunnel{Stats: dataplane.PeerStats{LastHandshake: now.Add(-time.Hour)}}},
			wantState: api.StateStale, wantReason: api.ReasonHandshakeStale, wantUsed: 1},
		{name: "handshake unanswered", peering: wg, peer: observe.Peering{Tunnel: never},
			obs:       observe.Observation{Port: device(api.PortDevice{UnansweredSince: now.Add(-30 * time.Second)})},
			wantState: api.StateDown, wantReason: api.ReasonHandshakeUnanswered, wantHint: "UDP 51821 is open", wantUsed: 1},
		{name: "unanswered without a tunnel is no_handshake", peering: wg,
			obs:       observe.Observation{Port: device(api.PortDevice{UnansweredSince: now.Add(-30 * time.Second)})},
			wantState: api.StateDown, wantReason: api.ReasonNoHandshake},
		{name: "send blocked on the direct path", peering: wg,
			peer:      observe.Peering{Tunnel: &observe.Tunnel{Stats: fresh.Stats, Relays: true, Path: relay.PathDirect}},
			obs:       observe.Observation{Port: device(api.PortDevice{SendBlockedSince: now.Add(-5 * time.Second), SendBlockedTo: "198.18.0.2:51821"})},
			wantState: api.StateDown, wantReason: api.ReasonSendBlocked, wantHint: "refuses UDP to 198.18.0.2:51821", wantUsed: 1},
		{name: "send blocked does not matter on the relay", peering: wg,
			peer:      observe.Peering{Tunnel: &observe.Tunnel{Stats: fresh.Stats, Relays: true, Path: relay.PathRelay}},
			obs:       observe.Observation{Port: device(api.PortDevice{SendBlockedSince: now.Add(-5 * time.Second)})},
			wantState: api.StateUp, wantUsed: 1},
		{name: "probe dead", peering: wg, peer: observe.Peering{Tunnel: fresh},
			obs:       observe.Observation{Held: map[string]bool{"west": true}},
			wantState: api.StateDown, wantReason: api.ReasonProbeDead, wantHint: "probe gets no answer", wantUsed: 1},
		{name: "bgp established", peering: withBGP, bgp: true, peer: observe.Peering{Tunnel: fresh},
			obs:       observe.Observation{Sessions: map[string]routing.NeighborStatus{"west": {Name: "west", State: api.SessionEstablished}}},
			wantState: api.StateUp, wantUsed: 1},
		{name: "bgp down", peering: withBGP, bgp: true, peer: observe.Peering{Tunnel: fresh},
			wantState: api.StateDown, wantReason: api.ReasonBGPDown, wantUsed: 1},
		{name: "bgp configured on the peering only", peering: withBGP, peer: observe.Peering{Tunnel: fresh},
			wantState: api.StateUp, wantUsed: 1},
		{name: "prefix limit", peering: withBGP, bgp: true, peer: observe.Peering{Tunnel: fresh},
			obs:       observe.Observation{Sessions: map[string]routing.NeighborStatus{"west": {Name: "west", State: "idle", DownCode: routing.DownMaxPrefix}}},
			wantState: api.StateDown, wantReason: api.ReasonPrefixLimit, wantUsed: 1},
		{name: "bfd down", peering: withBGP, bgp: true, peer: observe.Peering{Tunnel: fresh},
			obs:       observe.Observation{Sessions: map[string]routing.NeighborStatus{"west": {Name: "west", State: "idle", DownCode: routing.DownBFD, Down: "bfd_down: control detection time expired"}}},
			wantState: api.StateDown, wantReason: api.ReasonBFDDown, wantHint: "bfd_down: control detection time expired: BFD with 169.254.10.2", wantUsed: 1},
		{name: "return hint when nothing else is said", peering: wg, peer: observe.Peering{Tunnel: fresh, ReturnHint: "none came back"},
			wantState: api.StateUp, wantHint: "none came back", wantUsed: 1},
		{name: "return hint yields to the reason's hint", peering: wg, peer: observe.Peering{Tunnel: fresh, ReturnHint: "none came back"},
			obs:       observe.Observation{Held: map[string]bool{"west": true}},
			wantState: api.StateDown, wantReason: api.ReasonProbeDead, wantHint: "probe gets no answer", wantUsed: 1},
		{name: "ipsec without charon", peering: ipsecP,
			wantState: api.StateDown, wantReason: api.ReasonCharonNotRunning, wantHint: "charon is not running"},
		{name: "ipsec kind says why", peering: ipsecP, peer: observe.Peering{Tunnel: &observe.Tunnel{Down: api.ReasonAuthFailed}},
			wantState: api.StateDown, wantReason: api.ReasonAuthFailed, wantHint: "authentication failed", wantUsed: 1},
		{name: "ipsec up", peering: ipsecP, peer: observe.Peering{Tunnel: &observe.Tunnel{IPsec: &api.IPsecStatus{}}},
			wantState: api.StateUp, wantUsed: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{Name: "east", PrivateKey: priv, ListenPort: 51820, MaxTunnels: 10, Peerings: []config.Peering{tc.peering}}
			if tc.bgp {
				cfg.BGP = &config.BGP{ASN: 65001}
			}
			o := tc.obs
			o.Now, o.Config, o.Peerings = now, cfg, []observe.Peering{tc.peer}
			st := Status(o)
			if len(st.Peerings) != 1 {
				t.Fatalf("%d peerings, want 1", len(st.Peerings))
			}
			ps := st.Peerings[0]
			if ps.State != tc.wantState || ps.Reason != tc.wantReason {
				t.Errorf("state %s (%s), want %s (%s)", ps.State, ps.Reason, tc.wantState, tc.wantReason)
			}
			if tc.wantHint == "" && ps.Hint != "" || !strings.Contains(ps.Hint, tc.wantHint) {
				t.Errorf("hint %q, want one with %q", ps.Hint, tc.wantHint)
			}
			wantUp := 0
			if tc.wantState == api.StateUp {
				wantUp = 1
			}
			if st.Tunnels.Used != tc.wantUsed || st.Tunnels.Up != wantUp || st.Tunnels.Limit != 10 {
				t.Errorf("tunnels %+v, want used %d, up %d, limit 10", st.Tunnels, tc.wantUsed, wantUp)
			}
			if st.PublicKey != priv.Public().String() {
				t.Errorf("public key %q, want the config key's %q", st.PublicKey, priv.Public())
			}
		})
	}
}

// A tunnel's report goes into its peering's status as is: counters, MTU,
// the path, an error reading the counters, an endpoint that moved.
func TestStatusTunnelFigures(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := &config.Config{Name: "east", Peerings: []config.Peering{{Name: "a"}, {Name: "b"}}}
	q := &api.QueueStatus{Discipline: "fq_codel", Queued: 3}
	o := observe.Observation{Now: now, Config: cfg, Peerings: []observe.Peering{
		{Tunnel: &observe.Tunnel{MTU: 1380, Queue: q, Relays: true, Path: relay.PathRelay, Relay: &api.RelayStatus{},
			Stats: dataplane.PeerStats{Endpoint: "198.18.0.2:51820", RxBytes: 7, TxBytes: 9, DroppedSource: 2}},
			EndpointMoved: now.Add(-time.Minute), EndpointPrevious: netip.MustParseAddrPort("198.18.7.7:51820")},
		{Tunnel: &observe.Tunnel{MTU: 1420, StatsErr: "uapi: device closed"}},
	}}
	st := Status(o)
	a, b := st.Peerings[0], st.Peerings[1]
	if a.MTU != 1380 || a.RxBytes != 7 || a.TxBytes != 9 || a.DroppedSource != 2 || a.Endpoint != "198.18.0.2:51820" || a.Queue != q {
		t.Errorf("peering a: %+v", a)
	}
	if a.Path != relay.PathRelay || a.Relay == nil {
		t.Errorf("peering a path %q relay %v, want the relay's", a.Path, a.Relay)
	}
	if !a.EndpointMoved.Equal(now.Add(-time.Minute)) || a.EndpointPrevious != "198.18.7.7:51820" {
		t.Errorf("peering a moved %v from %q", a.EndpointMoved, a.EndpointPrevious)
	}
	if b.Error != "uapi: device closed" || b.MTU != 1420 || b.Queue != nil {
		t.Errorf("peering b: error %q, MTU %d, queue %v", b.Error, b.MTU, b.Queue)
	}
	if b.Path != "" || !b.EndpointMoved.IsZero() {
		t.Errorf("peering b: path %q without relays, moved %v", b.Path, b.EndpointMoved)
	}
}

func TestPrefixLimited(t *testing.T) {
	for _, tc := range []struct {
		n    routing.NeighborStatus
		want bool
	}{
		{routing.NeighborStatus{State: "established"}, false},
		{routing.NeighborStatus{State: "active", DownCode: routing.DownHoldTimerExpired}, false},
		{routing.NeighborStatus{State: "idle", DownCode: routing.DownMaxPrefix, Down: "max-prefix: more than 100 prefixes received"}, true},
		// The text alone decides nothing.
		{routing.NeighborStatus{State: "idle", Down: "max-prefix: more than 100 prefixes received"}, false},
		{routing.NeighborStatus{State: "established", DownCode: routing.DownMaxPrefix}, false},
		{routing.NeighborStatus{State: "idle"}, false},
	} {
		if got := prefixLimited(tc.n); got != tc.want {
			t.Errorf("prefixLimited(%+v) = %v, want %v", tc.n, got, tc.want)
		}
	}
}
