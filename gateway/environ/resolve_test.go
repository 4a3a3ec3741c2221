package environ

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/internal/testcfg"
)

// Planning (what a RIB change does, under the gateway lock) never looks a
// name up; only refresh (start and reload, outside the lock) does.
func TestEndpointsResolveOnlyOnRefresh(t *testing.T) {
	lookups := 0
	e := &endpoints{lookup: func(hp string) (netip.AddrPort, error) {
		lookups++
		if hp == "gone.example:51820" {
			return netip.AddrPort{}, errors.New("no such host")
		}
		return netip.MustParseAddrPort("198.18.7.7:51820"), nil
	}}
	cfg := testcfg.East(t)
	cfg.Peerings[0].Endpoint = "west.example:51820"
	cfg.Peerings[1].Endpoint = "gone.example:51820"
	cfg.Peerings[2].Endpoint = "west.example:51820" // the same name once
	cfg.Peerings[3].Endpoint = "198.18.0.9:51820"   // a literal: no lookup
	e.refresh(cfg)
	if lookups != 2 {
		t.Fatalf("refresh looked up %d names, want 2", lookups)
	}
	env := plan.Env{Resolve: e.Resolve, UnderlayMTU: func(netip.Addr) int { return 1500 }}
	for i := 0; i < 100; i++ { // a flapping peer: 100 re-plans
		plan.Plan(plan.Input{Config: cfg, Env: env})
	}
	if lookups != 2 {
		t.Fatalf("planning looked up names: %d lookups, want 2", lookups)
	}
	st := plan.Plan(plan.Input{Config: cfg, Env: env})
	if got := st.Tunnels[0].WireGuard.Endpoint.String(); got != "198.18.7.7:51820" {
		t.Errorf("west endpoint %s", got)
	}
	if got := st.Tunnels[3].WireGuard.Endpoint.String(); got != "198.18.0.9:51820" {
		t.Errorf("literal endpoint %s", got)
	}
	if len(st.Problems) != 1 {
		t.Errorf("problems = %v, want the one unresolvable name", st.Problems)
	}
	if _, err := e.Resolve("never.example:1"); err == nil {
		t.Error("an unrefreshed name resolved")
	}
}

// While running, a name that moves is reported once; a failed lookup
// keeps the last good address; Resolve (what the planner reads) follows.
func TestEndpointsReresolve(t *testing.T) {
	addr := netip.MustParseAddrPort("198.18.7.7:51820")
	fail := false
	e := &endpoints{lookup: func(string) (netip.AddrPort, error) {
		if fail {
			return netip.AddrPort{}, errors.New("server failure")
		}
		return addr, nil
	}}
	cfg := testcfg.East(t)
	cfg.Peerings[0].Endpoint = "west.example:51820"
	e.refresh(cfg)
	if mv := e.reresolve([]string{"west.example:51820"}); len(mv) != 0 {
		t.Fatalf("unchanged name moved: %v", mv)
	}
	addr = netip.MustParseAddrPort("198.18.9.9:51820")
	mv := e.reresolve([]string{"west.example:51820", "unknown.example:1"})
	if len(mv) != 1 || mv[0].From.String() != "198.18.7.7:51820" || mv[0].To != addr {
		t.Fatalf("moves = %v, want one from 198.18.7.7 to %s", mv, addr)
	}
	if got, _ := e.Resolve("west.example:51820"); got != addr {
		t.Errorf("Resolve = %s after the move", got)
	}
	if at, from := e.movedAt("west.example:51820"); at.IsZero() || from.String() != "198.18.7.7:51820" {
		t.Errorf("movedAt = %v, %s", at, from)
	}
	fail = true
	if mv := e.reresolve([]string{"west.example:51820"}); len(mv) != 0 {
		t.Fatalf("a failed lookup moved the endpoint: %v", mv)
	}
	if got, err := e.Resolve("west.example:51820"); got != addr || err != nil {
		t.Errorf("after a failed lookup Resolve = %s, %v; want the last good %s", got, err, addr)
	}
	// A reload that keeps the address keeps the move visible.
	fail = false
	e.refresh(cfg)
	if at, _ := e.movedAt("west.example:51820"); at.IsZero() {
		t.Error("refresh forgot the move")
	}
}

func TestDecideMove(t *testing.T) {
	a := netip.MustParseAddrPort("198.18.0.1:51820")
	b := netip.MustParseAddrPort("198.18.0.2:51820")
	bad := errors.New("no such host")
	tests := []struct {
		name    string
		cur     netip.AddrPort
		curErr  error
		next    netip.AddrPort
		nextErr error
		moved   bool
	}{
		{"same", a, nil, a, nil, false},
		{"changed", a, nil, b, nil, true},
		{"lookup fails", a, nil, netip.AddrPort{}, bad, false},
		{"first success after failures", netip.AddrPort{}, bad, a, nil, true},
		{"still failing", netip.AddrPort{}, bad, netip.AddrPort{}, bad, false},
	}
	for _, tt := range tests {
		mv, moved := decideMove("x:1", tt.cur, tt.curErr, tt.next, tt.nextErr)
		if moved != tt.moved || moved && (mv.From != tt.cur || mv.To != tt.next) {
			t.Errorf("%s: decideMove = %+v, %v; want moved=%v", tt.name, mv, moved, tt.moved)
		}
	}
}

func TestDueNames(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name  string
		peers []peerProbe
		want  []string
	}{
		{"just looked up", []peerProbe{{Endpoint: "a:1", LastLookup: now.Add(-time.Second)}}, nil},
		{"periodic", []peerProbe{{Endpoint: "a:1", LastLookup: now.Add(-reresolveEvery)}}, []string{"a:1"}},
		{"unanswered for two attempts", []peerProbe{{Endpoint: "a:1", LastLookup: now.Add(-reresolveUnanswered), UnansweredSince: now.Add(-reresolveUnanswered)}}, []string{"a:1"}},
		{"unanswered, just looked up", []peerProbe{{Endpoint: "a:1", LastLookup: now.Add(-time.Second), UnansweredSince: now.Add(-time.Minute)}}, nil},
		{"unanswered only briefly", []peerProbe{{Endpoint: "a:1", LastLookup: now.Add(-15 * time.Second), UnansweredSince: now.Add(-3 * time.Second)}}, nil},
		{"one name, two peerings", []peerProbe{
			{Endpoint: "a:1", LastLookup: now.Add(-time.Hour)},
			{Endpoint: "a:1", LastLookup: now.Add(-time.Hour)},
			{Endpoint: "b:1", LastLookup: now},
		}, []string{"a:1"}},
	}
	for _, tt := range tests {
		if got := dueNames(tt.peers, now); !slices.Equal(got, tt.want) {
			t.Errorf("%s: dueNames = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// An endpoint not looked up yet is the same problem on every plan, so it
// is logged once.
func TestNotResolvedIsStable(t *testing.T) {
	e := &endpoints{}
	_, err1 := e.Resolve("hq.example:51820")
	_, err2 := e.Resolve("hq.example:51820")
	a := plan.Problem{Peering: "hq", Endpoint: "hq.example:51820", Err: err1}
	b := plan.Problem{Peering: "hq", Endpoint: "hq.example:51820", Err: err2}
	if err1 == nil || !a.Same(b) {
		t.Errorf("errors %v, %v: not the same problem", err1, err2)
	}
}
