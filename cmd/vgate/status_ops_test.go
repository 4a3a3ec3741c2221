package main

import (
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway"
	"github.com/vgate-project/vgate/gateway/wgbind"
	"github.com/vgate-project/vgate/peering"
)

func TestStatusShowsReasonsAndDrops(t *testing.T) {
	now := time.Now()
	st := gateway.Status{
		Name: "east", Started: now, Tunnels: gateway.TunnelCount{Used: 2, Limit: 10},
		Peerings: []gateway.PeeringStatus{
			{Name: "west", Network: "west", State: peering.StateDown, Reason: string(peering.ReasonNoHandshake)},
			{Name: "north", Network: "north", State: peering.StateStale, Reason: string(peering.ReasonHandshakeStale), LastHandshake: now.Add(-5 * time.Minute)},
		},
		Port: wgbind.Stats{Dispatched: 10, DroppedUnknownIndex: 3, DroppedQueueFull: 1},
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
	st.Port = wgbind.Stats{Dispatched: 10}
	b.Reset()
	printStatus(&b, &st, now)
	if strings.Contains(b.String(), "port drops") {
		t.Errorf("port drops shown with none:\n%s", b.String())
	}
}
