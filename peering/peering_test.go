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
		// The lowest failing layer is the reason: this host's socket, then
		// the handshake, then the probe, then BGP.
		{"send blocked beats probe and bgp", Observation{LastHandshake: fresh, BGP: true, ProbeDead: true, SendBlockedSince: now.Add(-5 * time.Second)}, api.StateDown, api.ReasonSendBlocked},
		{"send blocked beats unanswered", Observation{LastHandshake: now.Add(-time.Minute), UnansweredSince: now.Add(-30 * time.Second), SendBlockedSince: now.Add(-30 * time.Second)}, api.StateDown, api.ReasonSendBlocked},
		{"send blocked, never shook hands", Observation{SendBlockedSince: old}, api.StateDown, api.ReasonSendBlocked},
		{"one refused send is no state", Observation{LastHandshake: fresh, SendBlockedSince: now.Add(-time.Second)}, api.StateUp, api.DownReason("")},
		{"probe dead beats bgp down", Observation{LastHandshake: fresh, BGP: true, ProbeDead: true}, api.StateDown, api.ReasonProbeDead},
		{"probe dead beats prefix limit", Observation{LastHandshake: fresh, BGP: true, PrefixLimit: true, ProbeDead: true}, api.StateDown, api.ReasonProbeDead},
		{"unanswered beats probe dead", Observation{LastHandshake: now.Add(-time.Minute), BGP: true, ProbeDead: true, UnansweredSince: now.Add(-30 * time.Second)}, api.StateDown, api.ReasonHandshakeUnanswered},
		{"session down, probe silent", Observation{LastHandshake: fresh, BGP: true, ProbeLastReply: now.Add(-ProbeSilentAfter)}, api.StateDown, api.ReasonProbeDead},
		{"session down, probe answers", Observation{LastHandshake: fresh, BGP: true, ProbeLastReply: now.Add(-time.Second)}, api.StateDown, api.ReasonBGPDown},
		{"session down, probe never answered", Observation{LastHandshake: fresh, BGP: true}, api.StateDown, api.ReasonBGPDown},
		{"session up, probe silent: the probe's verdict decides", Observation{LastHandshake: fresh, BGP: true, BGPEstablished: true, ProbeLastReply: now.Add(-5 * time.Second)}, api.StateUp, api.DownReason("")},
		{"stale beats probe dead", Observation{LastHandshake: old, BGP: true, ProbeDead: true}, api.StateStale, api.ReasonHandshakeStale},
		// IPsec: the SAs decide, not a handshake time.
		{"ipsec up", Observation{IPsec: true}, api.StateUp, api.DownReason("")},
		{"ipsec down", Observation{IPsec: true, IPsecDown: api.ReasonNoProposalChosen, BGP: true, BGPEstablished: true}, api.StateDown, api.ReasonNoProposalChosen},
		{"ipsec up, bgp down", Observation{IPsec: true, BGP: true}, api.StateDown, api.ReasonBGPDown},
		{"ipsec up, bgp up", Observation{IPsec: true, BGP: true, BGPEstablished: true}, api.StateUp, api.DownReason("")},
		{"ipsec up, probe dead", Observation{IPsec: true, BGP: true, ProbeDead: true}, api.StateDown, api.ReasonProbeDead},
		{"ipsec down beats probe dead", Observation{IPsec: true, IPsecDown: api.ReasonDPDTimeout, BGP: true, ProbeDead: true}, api.StateDown, api.ReasonDPDTimeout},
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

// Every reason has a layer, and Evaluate's order follows the layers: for
// each pair of failures at once, the lower layer's reason wins.
func TestLayer(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	failures := map[api.DownReason]func(*Observation){
		api.ReasonSendBlocked:         func(o *Observation) { o.SendBlockedSince = now.Add(-time.Minute) },
		api.ReasonHandshakeUnanswered: func(o *Observation) { o.UnansweredSince = now.Add(-time.Minute) },
		api.ReasonProbeDead:           func(o *Observation) { o.ProbeDead = true },
		api.ReasonBGPDown:             func(o *Observation) { o.BGPEstablished = false },
	}
	for a, fa := range failures {
		for b, fb := range failures {
			o := Observation{Now: now, LastHandshake: now.Add(-2 * time.Minute), BGP: true, BGPEstablished: true}
			fa(&o)
			fb(&o)
			want := a
			if Layer(b) < Layer(a) {
				want = b
			}
			if _, got := Evaluate(o); got != want {
				t.Errorf("%s and %s at once: %s, want %s (layers %d, %d)", a, b, got, want, Layer(a), Layer(b))
			}
		}
	}
	for _, r := range api.DownReasons {
		if l := Layer(r); l < 0 || l > 3 {
			t.Errorf("Layer(%s) = %d", r, l)
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
