package view

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/peering"
)

// reason sets the reason of peering name in ps.
func reason(ps []api.PeeringStatus, name string, r api.DownReason) []api.PeeringStatus {
	for i := range ps {
		if ps[i].Name == name {
			ps[i].Reason = r
		}
	}
	return ps
}

func TestPeeringTransitions(t *testing.T) {
	ps := func(states ...string) []api.PeeringStatus {
		var out []api.PeeringStatus
		for i := 0; i < len(states); i += 2 {
			st := api.PeeringState(states[i+1])
			_, reason := peering.Evaluate(peering.Observation{})
			if st == api.StateUp {
				reason = ""
			}
			out = append(out, api.PeeringStatus{Name: states[i], Network: "n-" + states[i], State: st, Reason: reason})
		}
		return out
	}
	prev := map[string]seenPeering{}
	steps := []struct {
		cur  []api.PeeringStatus
		want []string // peering:from>to
	}{
		// First look: down peerings are not news; an up one is.
		{ps("a", "down", "b", "up"), []string{"b:down>up"}},
		{ps("a", "down", "b", "up"), nil},
		{ps("a", "up", "b", "stale"), []string{"a:down>up", "b:up>stale"}},
		// b removed by a reload, c added already up.
		{ps("a", "up", "c", "up"), []string{"c:down>up"}},
		// b comes back: it starts from down again.
		{ps("a", "up", "b", "down", "c", "up"), nil},
		// b's reason changes while it stays down: news.
		{reason(ps("a", "up", "b", "down", "c", "up"), "b", api.ReasonHandshakeUnanswered), []string{"b:down>down"}},
		{reason(ps("a", "up", "b", "down", "c", "up"), "b", api.ReasonHandshakeUnanswered), nil},
	}
	for i, s := range steps {
		var got []string
		for _, tr := range peeringTransitions(prev, s.cur) {
			got = append(got, fmt.Sprintf("%s:%s>%s", tr.Peering, tr.From, tr.To))
			if tr.To != api.StateUp && tr.Reason == "" {
				t.Errorf("step %d: %s went %s without a reason", i, tr.Peering, tr.To)
			}
		}
		if !slices.Equal(got, s.want) {
			t.Fatalf("step %d: transitions = %q, want %q", i, got, s.want)
		}
	}
}

// A change of a peering's path (direct UDP or the relay) is reported once,
// with both ends; a first look, a peering without a path and a removed
// peering are not.
func TestPathChanges(t *testing.T) {
	prev := map[string]string{}
	look := func(ps ...api.PeeringStatus) []pathChange { return pathChanges(prev, ps) }
	west := func(path string) api.PeeringStatus {
		return api.PeeringStatus{Name: "west", Network: "west", Path: path}
	}
	hq := api.PeeringStatus{Name: "hq", Network: "hq"} // IPsec: no path
	if got := look(west("direct"), hq); len(got) != 0 {
		t.Fatalf("first look: %v, want none", got)
	}
	if got := look(west("direct"), hq); len(got) != 0 {
		t.Fatalf("no change: %v, want none", got)
	}
	got := look(west("relay"), hq)
	if want := (pathChange{Peering: "west", Network: "west", From: "direct", To: "relay"}); len(got) != 1 || got[0] != want {
		t.Fatalf("to relay: %v, want [%v]", got, want)
	}
	if got := look(west("relay")); len(got) != 0 {
		t.Fatalf("relay again: %v, want none", got)
	}
	if got := look(west("direct")); len(got) != 1 || got[0].From != "relay" || got[0].To != "direct" {
		t.Fatalf("back to direct: %v", got)
	}
	look() // west removed
	if got := look(west("relay")); len(got) != 0 {
		t.Fatalf("re-added peering: %v, want none (a first look)", got)
	}
}

// A tunnel going down, or down for a lower layer than before, is a
// warning; a recovery, or a reason of a higher layer while down (the
// lower layers came back), is info.
func TestLogTransitionLevels(t *testing.T) {
	for _, c := range []struct {
		tr    transition
		level string
	}{
		{transition{From: api.StateUp, To: api.StateDown, Reason: api.ReasonSendBlocked}, "WARN"},
		{transition{From: api.StateUp, To: api.StateStale, Reason: api.ReasonHandshakeStale}, "WARN"},
		{transition{From: api.StateDown, FromReason: api.ReasonProbeDead, To: api.StateDown, Reason: api.ReasonHandshakeUnanswered}, "WARN"},
		{transition{From: api.StateDown, FromReason: api.ReasonHandshakeUnanswered, To: api.StateDown, Reason: api.ReasonProbeDead}, "INFO"},
		{transition{From: api.StateDown, FromReason: api.ReasonProbeDead, To: api.StateDown, Reason: api.ReasonBGPDown}, "INFO"},
		{transition{From: api.StateDown, FromReason: api.ReasonBGPDown, To: api.StateUp}, "INFO"},
	} {
		var buf bytes.Buffer
		logTransition(slog.New(slog.NewTextHandler(&buf, nil)), c.tr)
		if !strings.Contains(buf.String(), "level="+c.level) {
			t.Errorf("%+v logged %q, want level %s", c.tr, buf.String(), c.level)
		}
	}
}
