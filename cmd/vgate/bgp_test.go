package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
)

// vgate bgp shows, per session not up, its down code and the last
// NOTIFICATION with its text and when; an established session without
// history gets no line.
func TestPrintBGPLastError(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	st := &api.BGPStatus{Enabled: true, ASN: 65001, RouterID: netip.MustParseAddr("10.255.0.1"), Neighbors: []api.NeighborStatus{
		{Name: "east", Address: netip.MustParseAddr("10.255.0.2"), ASN: 65003, State: "idle",
			LastDown: "bad peer AS", LastDownCode: "notification_sent", LastDownAt: now.Add(-12 * time.Second),
			Notification: &api.Notification{Direction: "sent", Code: 2, Subcode: 2, Text: "open message error: bad peer AS", At: now.Add(-12 * time.Second)},
			NextAttempt:  now.Add(1400 * time.Millisecond)},
		{Name: "west", Address: netip.MustParseAddr("10.255.0.5"), ASN: 65006, State: "active", Passive: true,
			LastDownCode: "connection_lost", LastDownAt: now.Add(-3 * time.Second)},
		{Name: "south", Address: netip.MustParseAddr("10.255.0.3"), ASN: 65004, State: api.SessionEstablished, Since: now.Add(-time.Minute)},
		{Name: "north", Address: netip.MustParseAddr("10.255.0.4"), ASN: 65005, State: api.SessionEstablished, Since: now.Add(-time.Minute),
			LastDownCode: "hold_timer_expired", LastDownAt: now.Add(-2 * time.Minute)},
	}}
	var b bytes.Buffer
	printBGP(&b, st, now)
	out := b.String()
	for _, want := range []string{
		"east: down: notification_sent (12s ago, 07:59:48Z); last NOTIFICATION sent: open message error: bad peer AS (12s ago, 07:59:48Z); next attempt in 1.4s",
		"west: down: connection_lost (3s ago, 07:59:57Z); waiting for the peer to connect (it dials: higher tunnel address)",
		"north: last down: hold_timer_expired (2m0s ago, 07:58:00Z)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "south:") {
		t.Errorf("an established session without history got a line:\n%s", out)
	}
}
