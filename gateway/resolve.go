package gateway

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/vgate-project/vgate/gateway/config"
)

// endpoints resolves the peerings' endpoint names ahead of planning, so
// that the planner — which runs under the gateway lock, on every RIB
// change — never waits on DNS: a flapping BGP peer causes no lookups.
// Names are looked up when a config is started or reloaded (refresh,
// outside the lock); Resolve only reads the results.
type endpoints struct {
	lookup func(hostport string) (netip.AddrPort, error) // plan.ResolveUDP in production

	mu   sync.Mutex
	seen map[string]resolved
}

type resolved struct {
	ap  netip.AddrPort
	err error
}

// refresh looks up every endpoint of cfg and forgets the others. Literal
// addresses cost no lookup.
func (e *endpoints) refresh(cfg *config.Config) {
	next := make(map[string]resolved, len(cfg.Peerings))
	for _, p := range cfg.Peerings {
		if p.Endpoint == "" {
			continue
		}
		if _, err := netip.ParseAddrPort(p.Endpoint); err == nil {
			continue // a literal: Resolve parses it
		}
		if _, ok := next[p.Endpoint]; ok {
			continue
		}
		ap, err := e.lookup(p.Endpoint)
		next[p.Endpoint] = resolved{ap, err}
	}
	e.mu.Lock()
	e.seen = next
	e.mu.Unlock()
}

// Resolve is plan.Env.Resolve: the result of the last refresh for
// hostport. It never looks anything up.
func (e *endpoints) Resolve(hostport string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	e.mu.Lock()
	r, ok := e.seen[hostport]
	e.mu.Unlock()
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%s has not been resolved yet", hostport)
	}
	return r.ap, r.err
}
