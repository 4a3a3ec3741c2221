package main

import (
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
)

func TestStatusShowsReasonsAndDrops(t *testing.T) {
	now := time.Now()
	st := api.Status{
		Name: "east", Started: now, Tunnels: api.TunnelCount{Used: 2, Limit: 10},
		Peerings: []api.PeeringStatus{
			{Name: "west", Network: "west", State: api.StateDown, Reason: api.ReasonNoHandshake},
			{Name: "north", Network: "north", State: api.StateStale, Reason: api.ReasonHandshakeStale, LastHandshake: now.Add(-5 * time.Minute)},
		},
		Port: api.PortStats{Dispatched: 10, DroppedUnknownIndex: 3, DroppedQueueFull: 1},
	}
	var b strings.Builder
	printStatus(&b, &st, now)
	out := b.String()
	for _, want := range []string{"down (no handshake)", "stale ", "5m00s ago", "port drops      3 unknown index, 1 queue full"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "stale (") {
		t.Errorf("stale peering repeats its reason:\n%s", out)
	}
	st.Port = api.PortStats{Dispatched: 10}
	b.Reset()
	printStatus(&b, &st, now)
	if strings.Contains(b.String(), "port drops") {
		t.Errorf("port drops shown with none:\n%s", b.String())
	}
}

// A peering whose handshakes go unanswered shows the reason and its hint;
// forwarding off is shown with the fix.
func TestStatusShowsHintAndForwarding(t *testing.T) {
	now := time.Now()
	hint := "handshake not answered for 25s: check the public keys, the endpoint and that UDP 51820 is open"
	st := api.Status{
		Name: "east", Started: now, Tunnels: api.TunnelCount{Used: 1, Limit: 10},
		Forwarding: api.Forwarding{IPv4: true},
		Peerings: []api.PeeringStatus{
			{Name: "west", Network: "west", State: api.StateDown, Reason: api.ReasonHandshakeUnanswered, Hint: hint, LastHandshake: now.Add(-time.Minute)},
		},
	}
	var b strings.Builder
	printStatus(&b, &st, now)
	out := b.String()
	for _, want := range []string{"down (handshake unanswered)", "west: " + hint, "ip forwarding   ipv4 on, ipv6 OFF (hosts behind"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// The enrollment line shows the listener's certificate pin (what a token
// pins; README "Onboarding with an invite").
func TestStatusShowsEnrollPin(t *testing.T) {
	now := time.Now()
	pin := "sha256:" + strings.Repeat("ab", 32)
	st := api.Status{
		Name: "east", Started: now, Tunnels: api.TunnelCount{Limit: 10},
		Enroll: &api.EnrollStatus{Listen: "198.18.0.10:8443", URL: "https://198.18.0.10:8443/", Pin: pin, Pending: 1, Attempts: map[string]uint64{"enrolled": 2}},
	}
	var b strings.Builder
	printStatus(&b, &st, now)
	want := "enrollment      https://198.18.0.10:8443/ (listen 198.18.0.10:8443, certificate " + pin + "), 1 invites pending"
	if !strings.Contains(b.String(), want) {
		t.Errorf("status lacks %q:\n%s", want, b.String())
	}
}

// Drop counters read with their last minute beside the total, and the
// point-to-site line names the denied verdicts and shows a /64 pool as a
// power of two.
func TestStatusCountersWithWindow(t *testing.T) {
	now := time.Now()
	u := func(n uint64) *uint64 { return &n }
	st := api.Status{
		Name: "east", Started: now, Tunnels: api.TunnelCount{Used: 2, Limit: 10},
		Peerings: []api.PeeringStatus{
			{Name: "west", Network: "west", State: api.StateUp, DroppedSource: 12, DroppedSourceLastMinute: u(0)},
			{Name: "north", Network: "north", State: api.StateUp, DroppedSource: 7, DroppedSourceLastMinute: u(3)},
			{Name: "south", Network: "south", State: api.StateUp, DroppedSource: 2}, // window unknown yet
		},
		Port: api.PortStats{DroppedUnknownIndex: 3, DroppedMalformed: 1, DroppedLastMinute: map[string]uint64{"unknown_index": 0, "malformed": 1}},
		P2S: &api.P2SStatus{
			Registered: 2, MaxClients: 8, Connected: 1, ListenPort: 51821,
			PoolFree: api.MaxExactJSON, PoolFreeExact: "18446744073709551609",
			Packets: map[string]uint64{"allow": 90, "destination": 4, "gateway_service": 2},
			Denied:  6, DeniedLastMinute: u(2),
			PacketsLastMinute: map[string]uint64{"destination": 0, "gateway_service": 2},
		},
		DNS: &api.DNSStatus{Zone: "east.internal", Queries: map[string]uint64{"answer": 40, "refused": 3, "dropped": 9},
			QueriesLastMinute: map[string]uint64{"answer": 5, "refused": 1, "dropped": 0}},
		Enroll: &api.EnrollStatus{Attempts: map[string]uint64{"enrolled": 2, "invite_unknown": 7},
			AttemptsLastMinute: map[string]uint64{"enrolled": 0, "invite_unknown": 7}},
	}
	var b strings.Builder
	printStatus(&b, &st, now)
	out := b.String()
	for _, want := range []string{
		"west: 12 packet(s) from the peer dropped since start (none in the last minute): source not in its allowed IPs",
		"north: 7 packet(s) from the peer dropped since start (3 in the last minute): ",
		"south: 2 packet(s) from the peer dropped since start: ",
		"port drops      3 unknown index (none in the last minute), 1 malformed (1 in the last minute)",
		"1 connected, pool ~2^64 free, port 51821/udp, 6 packets denied (2 in the last minute): destination 4, gateway_service 2 (2 in the last minute)",
		"answer 40, refused 3 (1 in the last minute), dropped 9 (none in the last minute)",
		"attempts: enrolled 2, invite_unknown 7 (7 in the last minute)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	st.P2S.Denied, st.P2S.Packets = 0, map[string]uint64{"allow": 5}
	b.Reset()
	printStatus(&b, &st, now)
	if !strings.Contains(b.String(), "no packets denied") {
		t.Errorf("status with nothing denied:\n%s", b.String())
	}
}

func TestCountText(t *testing.T) {
	for _, tc := range []struct {
		n     uint64
		exact string
		want  string
	}{
		{250, "", "250"},
		{1<<20 - 1, "", "1048575"},
		{api.MaxExactJSON, "18446744073709551609", "~2^64"}, // a /64 pool less 7
		{1 << 40, "", "~2^40"},
		{3 << 40, "", "~2^41.6"},
		{api.MaxExactJSON, "", "~2^53"},
	} {
		if got := countText(tc.n, tc.exact); got != tc.want {
			t.Errorf("countText(%d, %q) = %q, want %q", tc.n, tc.exact, got, tc.want)
		}
	}
}

func TestRejectedText(t *testing.T) {
	for _, tc := range []struct {
		now, total uint64
		want       string
	}{{0, 0, "0"}, {3, 3, "3"}, {0, 15, "0 (15 total)"}, {2, 15, "2 (15 total)"}} {
		if got := rejectedText(tc.now, tc.total); got != tc.want {
			t.Errorf("rejectedText(%d, %d) = %q, want %q", tc.now, tc.total, got, tc.want)
		}
	}
}
