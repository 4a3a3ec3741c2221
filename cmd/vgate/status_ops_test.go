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
