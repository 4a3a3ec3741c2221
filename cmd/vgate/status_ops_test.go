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
