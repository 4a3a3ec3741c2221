package environ

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/overlap"
)

// endpoints resolves the peerings' endpoint names ahead of planning, so
// that the planner — which runs under the gateway lock, on every RIB
// change — never waits on DNS: a flapping BGP peer causes no lookups.
// Names are looked up when a config is started or reloaded (refresh,
// outside the lock), and again while it runs (Facts.Run: every
// reresolveEvery, and soon after a peering's handshakes go unanswered);
// Resolve only reads the results.
type endpoints struct {
	lookup func(hostport string) (netip.AddrPort, error) // dataplane.ResolveUDP in production

	mu   sync.Mutex
	seen map[string]resolved
}

type resolved struct {
	ap  netip.AddrPort
	err error
	at  time.Time // when it was looked up
	// moved is when a lookup while running last changed ap, and from the
	// address it had before (zero if it never moved).
	moved time.Time
	from  netip.AddrPort
}

// Move is an endpoint name that now points somewhere else.
type Move struct {
	Name     string
	From, To netip.AddrPort
}

// names is every endpoint name of cfg (literals excluded), once each.
func endpointNames(cfg *config.Config) []string {
	var out []string
	for _, p := range cfg.Peerings {
		if p.Endpoint == "" {
			continue
		}
		if _, err := netip.ParseAddrPort(p.Endpoint); err == nil {
			continue // a literal: Resolve parses it
		}
		if !slices.Contains(out, p.Endpoint) {
			out = append(out, p.Endpoint)
		}
	}
	return out
}

// refresh looks up every endpoint of cfg and forgets the others. Literal
// addresses cost no lookup.
func (e *endpoints) refresh(cfg *config.Config) {
	now := time.Now()
	next := make(map[string]resolved, len(cfg.Peerings))
	for _, name := range endpointNames(cfg) {
		ap, err := e.lookup(name)
		next[name] = resolved{ap: ap, err: err, at: now}
	}
	e.mu.Lock()
	for name, r := range next { // what moved while running stays visible
		if old, ok := e.seen[name]; ok && old.ap == r.ap {
			r.moved, r.from = old.moved, old.from
			next[name] = r
		}
	}
	e.seen = next
	e.mu.Unlock()
}

// reresolve looks names up again while running (outside the gateway lock)
// and returns the ones whose address changed. A failed lookup keeps the
// last good address: a resolver that is down for a while does not take a
// working tunnel's endpoint away. Names no longer refreshed (a reload
// removed them meanwhile) are ignored.
func (e *endpoints) reresolve(names []string) []Move {
	type result struct {
		ap  netip.AddrPort
		err error
	}
	got := make(map[string]result, len(names))
	for _, n := range names {
		ap, err := e.lookup(n)
		got[n] = result{ap, err}
	}
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	var moves []Move
	for _, n := range names {
		old, ok := e.seen[n]
		if !ok {
			continue
		}
		r := got[n]
		if mv, changed := decideMove(n, old.ap, old.err, r.ap, r.err); changed {
			moves = append(moves, mv)
			old.moved, old.from = now, old.ap
			old.ap, old.err = r.ap, nil
		} else if r.err == nil {
			old.err = nil
		}
		old.at = now
		e.seen[n] = old
	}
	return moves
}

// decideMove is the rule reresolve applies to one name: a new good address
// that differs from the current one (or replaces a failed lookup) is a
// move; a failed lookup never is.
func decideMove(name string, cur netip.AddrPort, curErr error, next netip.AddrPort, nextErr error) (Move, bool) {
	if nextErr != nil || !next.IsValid() {
		return Move{}, false
	}
	if curErr == nil && cur == next {
		return Move{}, false
	}
	return Move{Name: name, From: cur, To: next}, true
}

// lookedUp is when name was last looked up, and whether it is known.
func (e *endpoints) lookedUp(name string) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.seen[name]
	return r.at, ok
}

// movedAt is when name last moved while running, and from where.
func (e *endpoints) movedAt(name string) (time.Time, netip.AddrPort) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.seen[name]
	return r.moved, r.from
}

// Resolve is plan.Env.Resolve: the result of the last lookup for
// hostport. It never looks anything up.
func (e *endpoints) Resolve(hostport string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return overlap.UnmapAddrPort(ap), nil
	}
	e.mu.Lock()
	r, ok := e.seen[hostport]
	e.mu.Unlock()
	if !ok {
		return netip.AddrPort{}, notResolved(hostport)
	}
	return r.ap, r.err
}

// notResolved is a name Resolve has no lookup for yet; a comparable value,
// so that plan.Problem.Same finds it again on the next plan.
type notResolved string

func (n notResolved) Error() string { return string(n) + " has not been resolved yet" }
