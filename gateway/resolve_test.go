package gateway

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/vgate-project/vgate/gateway/plan"
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
	cfg := baseConfig(t)
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
