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
