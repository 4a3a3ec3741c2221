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
			LastDownCode: "connection_lost", LastDownAt: now.Add(-3 * time.Second), Recoveries: 2},
		{Name: "south", Address: netip.MustParseAddr("10.255.0.3"), ASN: 65004, State: api.SessionEstablished, Since: now.Add(-time.Minute)},
		{Name: "north", Address: netip.MustParseAddr("10.255.0.4"), ASN: 65005, State: api.SessionEstablished, Since: now.Add(-time.Minute),
			LastDownCode: "hold_timer_expired", LastDownAt: now.Add(-2 * time.Minute)},
	}}
	st.Probes = []api.ProbeStatus{
		{Peering: "east", Vgate: true, PeerASN: 65001, PeerExpects: 65009}, // east is AS65001, not 65003; it expects 65009 of us
		{Peering: "south", Vgate: true, PeerASN: 65004, PeerExpects: 65001, Alive: true, RTT: 1200 * time.Microsecond, Idle: true},
		{Peering: "north", Alive: true, RTT: 800 * time.Microsecond},
	}
	withBFD := *st
	withBFD.BFD = []api.BFDStatus{
		{Peering: "west", Address: netip.MustParseAddr("10.255.0.5"), State: "down", LocalDiag: "control_detection_time_expired", RemoteDiag: "none",
			Interval: 100 * time.Millisecond, Multiplier: 5, TxInterval: time.Second, EverUp: true, Downs: 1, LastDown: now.Add(-4 * time.Second)},
		{Peering: "north", Address: netip.MustParseAddr("10.255.0.4"), State: "down", LocalDiag: "none", RemoteDiag: "none",
			Interval: 100 * time.Millisecond, Multiplier: 5, TxInterval: time.Second},
		{Peering: "south", Address: netip.MustParseAddr("10.255.0.3"), State: "up", LocalDiag: "none", RemoteDiag: "none",
			Interval: 100 * time.Millisecond, Multiplier: 5, TxInterval: 100 * time.Millisecond, Detect: 500 * time.Millisecond,
			RemoteMultiplier: 5, RemoteMinRx: 100 * time.Millisecond, RemoteDesiredTx: 100 * time.Millisecond, EverUp: true},
	}
	var bb bytes.Buffer
	printBGP(&bb, &withBFD, now)
	for _, want := range []string{
		"west: bfd down (100ms × 5; sending every 1s), diagnostic control_detection_time_expired, down 1 time(s), last 4s ago",
		"north: bfd down (100ms × 5; sending every 1s); never up: is BFD configured on the router for 10.255.0.4?",
		"south: bfd up (100ms × 5; peer 100ms × 5, asks ≥ 100ms; sending every 100ms, detect 500ms)",
	} {
		if !strings.Contains(bb.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, bb.String())
		}
	}
	var b bytes.Buffer
	printBGP(&b, st, now)
	out := b.String()
	if strings.Contains(out, "south: AS mismatch") {
		t.Errorf("a matching peer got a mismatch line:\n%s", out)
	}
	for _, want := range []string{
		"east: AS mismatch: the peer (vgate) says it is AS65001; this peering's bgp.asn is 65003",
		"east: AS mismatch: the peer (vgate) expects AS65009 of this gateway, which is AS65001 (bgp.asn): fix the peer's peering bgp.asn",
		"east: down: notification_sent (12s ago, 07:59:48Z); last NOTIFICATION sent: open message error: bad peer AS (12s ago, 07:59:48Z); next attempt in 1.4s",
		"west: down: connection_lost (3s ago, 07:59:57Z); waiting for the peer to connect (it dials: higher tunnel address)",
		"north: last down: hold_timer_expired (2m0s ago, 07:58:00Z)",
		"west: started afresh 2 time(s) by the session watchdog (not established for 30s while its tunnel answered)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The probe column: alive with its RTT, and "(idle)" when no user
	// traffic uses the tunnel (probed once a second).
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "south ") && !strings.Contains(line, "alive 1.2ms (idle)"),
			strings.HasPrefix(line, "north ") && (!strings.Contains(line, "alive 800µs") || strings.Contains(line, "idle")):
			t.Errorf("probe column: %q", line)
		}
	}
	if strings.Contains(out, "south:") {
		t.Errorf("an established session without history got a line:\n%s", out)
	}
}
