package p2s

import (
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/keys"
)

func TestClientState(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		heard time.Time
		want  api.ClientState
	}{
		{time.Time{}, api.ClientNever},
		{now, api.ClientActive},
		{now.Add(-ActiveWindow), api.ClientActive},
		{now.Add(-ActiveWindow - time.Second), api.ClientIdle},
		{now.Add(-3 * time.Minute), api.ClientIdle},
		{now.Add(-3*time.Minute - time.Second), api.ClientGone},
		{now.Add(time.Second), api.ClientActive}, // clock step back
	} {
		if got := ClientState(tc.heard, now); got != tc.want {
			t.Errorf("heard %v before now: %s, want %s", now.Sub(tc.heard), got, tc.want)
		}
	}
	// A laptop present but idle sends a keepalive every DefaultKeepalive:
	// sampled late by up to SampleEvery, it stays active between two.
	if ClientState(now, now.Add(DefaultKeepalive*time.Second+SampleEvery)) != api.ClientActive {
		t.Error("an idle laptop sending keepalives flaps to idle")
	}
	if ActiveWindow+SampleEvery > 30*time.Second {
		t.Errorf("a departed laptop stays active for up to %v, more than 30 s", ActiveWindow+SampleEvery)
	}
}

func TestActivityObserve(t *testing.T) {
	k1, k2 := keys.PublicKey{1}, keys.PublicKey{2}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	hs := t0.Add(-40 * time.Second)
	var a Activity
	stats := map[keys.PublicKey]*dataplane.PeerStats{
		k1: {RxBytes: 1000, LastHandshake: hs},
		k2: {}, // never connected
	}
	// First sight: heard at the last handshake, not "now".
	a.Observe(stats, t0)
	if got := a.LastHeard(k1); !got.Equal(hs) {
		t.Errorf("first sample: heard %v, want the handshake %v", got, hs)
	}
	if !a.LastHeard(k2).IsZero() {
		t.Error("a client that never connected is heard")
	}
	// Unchanged counters: still the old time.
	a.Observe(stats, t0.Add(time.Second))
	if got := a.LastHeard(k1); !got.Equal(hs) {
		t.Errorf("no new bytes: heard %v, want %v", got, hs)
	}
	// A keepalive (32 bytes): heard at this sample.
	stats[k1] = &dataplane.PeerStats{RxBytes: 1032, LastHandshake: hs}
	a.Observe(stats, t0.Add(2*time.Second))
	if got := a.LastHeard(k1); !got.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("after a keepalive: heard %v", got)
	}
	// A revoked client leaves the device and is forgotten.
	delete(stats, k1)
	a.Observe(stats, t0.Add(3*time.Second))
	if !a.LastHeard(k1).IsZero() {
		t.Error("a removed peer is still remembered")
	}
}
