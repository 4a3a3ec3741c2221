package peering

import (
	"errors"
	"fmt"
	"github.com/vgate-project/vgate/api"
	"strings"
	"testing"
	"time"
)

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("p%d", i+1)
	}
	return out
}

func TestCheckLimit(t *testing.T) {
	tests := []struct {
		max   int
		names []string
		want  string // error substring; "" means admitted
	}{
		{10, nil, ""},
		{10, names(10), ""},
		{1, names(1), ""},
		{10, names(11), `tunnel limit: max_tunnels is 10 and 11 peerings are declared; refused: peering "p11"`},
		{2, names(4), `max_tunnels is 2 and 4 peerings are declared; refused: peering "p3", peering "p4"`},
		{0, nil, "max_tunnels must be between 1 and 10, got 0"},
		{11, names(11), "max_tunnels must be between 1 and 10, got 11"},
		{-1, nil, "got -1"},
	}
	for _, tt := range tests {
		err := CheckLimit(tt.max, tt.names)
		if tt.want == "" {
			if err != nil {
				t.Errorf("CheckLimit(%d, %d names) = %v, want nil", tt.max, len(tt.names), err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckLimit(%d, %d names) = %v, want %q", tt.max, len(tt.names), err, tt.want)
		}
	}
	var le *LimitError
	if err := CheckLimit(10, names(12)); !errors.As(err, &le) || le.Max != 10 || le.Declared != 12 || strings.Join(le.Refused, ",") != "p11,p12" {
		t.Errorf("CheckLimit(10, 12 names) = %#v, want LimitError refusing p11,p12", err)
	}
}

func TestStateFor(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		last time.Time
		want api.PeeringState
	}{
		{time.Time{}, api.StateDown},
		{now, api.StateUp},
		{now.Add(-5 * time.Second), api.StateUp},
		{now.Add(-180 * time.Second), api.StateUp},
		{now.Add(-180*time.Second - time.Nanosecond), api.StateStale},
		{now.Add(-time.Hour), api.StateStale},
		{now.Add(time.Minute), api.StateUp}, // clock skew
	}
	for _, tt := range tests {
		if got := StateFor(tt.last, now); got != tt.want {
			t.Errorf("StateFor(%v) = %q, want %q", tt.last, got, tt.want)
		}
	}
}

func TestEvaluate(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	fresh, old := now.Add(-10*time.Second), now.Add(-time.Hour)
	tests := []struct {
		name   string
		o      Observation
		state  api.PeeringState
		reason api.DownReason
	}{
		{"never", Observation{}, api.StateDown, api.ReasonNoHandshake},
		{"never, bgp", Observation{BGP: true, BGPEstablished: true}, api.StateDown, api.ReasonNoHandshake},
		{"fresh", Observation{LastHandshake: fresh}, api.StateUp, api.DownReason("")},
		{"stale", Observation{LastHandshake: old}, api.StateStale, api.ReasonHandshakeStale},
		{"stale beats bgp", Observation{LastHandshake: old, BGP: true}, api.StateStale, api.ReasonHandshakeStale},
		{"bgp established", Observation{LastHandshake: fresh, BGP: true, BGPEstablished: true}, api.StateUp, api.DownReason("")},
		{"bgp down", Observation{LastHandshake: fresh, BGP: true}, api.StateDown, api.ReasonBGPDown},
		{"prefix limit", Observation{LastHandshake: fresh, BGP: true, PrefixLimit: true}, api.StateDown, api.ReasonPrefixLimit},
		{"bfd down", Observation{LastHandshake: fresh, BGP: true, BFDDown: true}, api.StateDown, api.ReasonBFDDown},
		{"bfd down, established again", Observation{LastHandshake: fresh, BGP: true, BGPEstablished: true, BFDDown: true}, api.StateUp, ""},
		// An initiation waits for an answer: up until UnansweredAfter.
		{"fresh, initiation just sent", Observation{LastHandshake: fresh, UnansweredSince: now.Add(-time.Second)}, api.StateUp, api.DownReason("")},
		{"fresh, unanswered", Observation{LastHandshake: now.Add(-time.Minute), UnansweredSince: now.Add(-UnansweredAfter)}, api.StateDown, api.ReasonHandshakeUnanswered},
		{"never, unanswered", Observation{UnansweredSince: old}, api.StateDown, api.ReasonHandshakeUnanswered},
		{"never, waiting", Observation{UnansweredSince: now.Add(-time.Second)}, api.StateDown, api.ReasonNoHandshake},
		{"stale, unanswered", Observation{LastHandshake: old, UnansweredSince: now.Add(-30 * time.Second)}, api.StateDown, api.ReasonHandshakeUnanswered},
		{"unanswered beats bgp", Observation{LastHandshake: now.Add(-time.Minute), BGP: true, BGPEstablished: true, UnansweredSince: now.Add(-30 * time.Second)}, api.StateDown, api.ReasonHandshakeUnanswered},
		{"handshake since the initiation", Observation{LastHandshake: now.Add(-time.Second), UnansweredSince: now.Add(-time.Minute)}, api.StateUp, api.DownReason("")},
		{"clock skew", Observation{LastHandshake: fresh, UnansweredSince: now.Add(time.Minute)}, api.StateUp, api.DownReason("")},
		// IPsec: the SAs decide, not a handshake time.
		{"ipsec up", Observation{IPsec: true}, api.StateUp, api.DownReason("")},
		{"ipsec down", Observation{IPsec: true, IPsecDown: api.ReasonNoProposalChosen, BGP: true, BGPEstablished: true}, api.StateDown, api.ReasonNoProposalChosen},
		{"ipsec up, bgp down", Observation{IPsec: true, BGP: true}, api.StateDown, api.ReasonBGPDown},
		{"ipsec up, bgp up", Observation{IPsec: true, BGP: true, BGPEstablished: true}, api.StateUp, api.DownReason("")},
	}
	for _, tt := range tests {
		tt.o.Now = now
		s, r := Evaluate(tt.o)
		if s != tt.state || r != tt.reason {
			t.Errorf("%s: Evaluate = %q, %q; want %q, %q", tt.name, s, r, tt.state, tt.reason)
		}
		if (s == api.StateUp) != (r == "") {
			t.Errorf("%s: state %q with reason %q: up exactly when there is no reason", tt.name, s, r)
		}
	}
}

func TestErrTunnelLimit(t *testing.T) {
	for _, err := range []error{CheckLimit(10, names(11)), CheckLimit(0, nil)} {
		if !errors.Is(err, ErrTunnelLimit) {
			t.Errorf("%v does not match ErrTunnelLimit", err)
		}
	}
}
