package environ

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/plan"
)

// Endpoints that move: a peering whose endpoint is a DNS name is looked up
// again while the gateway runs — every reresolveEvery, and soon after its
// handshake initiations go unanswered (the peer may have moved). A changed
// address is applied by re-planning the running config: the tunnel diff
// (dataplane.PlanTunnels) updates that one tunnel's endpoint with UAPI and
// touches no other tunnel. Each move is logged and shown in status.

const (
	// followTick is how often the loop checks what is due.
	followTick = 2 * time.Second
	// reresolveEvery is the periodic lookup of every endpoint name: with
	// followTick it bounds how long a moved name takes to be followed.
	reresolveEvery = 20 * time.Second
	// reresolveUnanswered: a name whose peering has had a handshake
	// initiation unanswered this long (two attempts; wireguard-go retries
	// every 5 s) is looked up again at once, and then at most this often.
	reresolveUnanswered = 10 * time.Second
)

// peerProbe is what dueNames needs to know of one peering.
type peerProbe struct {
	Endpoint        string    // as configured
	UnansweredSince time.Time // zero: none pending
	LastLookup      time.Time // of Endpoint
}

// dueNames decides which endpoint names to look up now: those not looked up
// for reresolveEvery, and those of peerings whose initiation has waited
// reresolveUnanswered without an answer and that were not looked up within
// reresolveUnanswered. Each name once, in the order of peers.
func dueNames(peers []peerProbe, now time.Time) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range peers {
		if p.Endpoint == "" || seen[p.Endpoint] {
			continue
		}
		since := now.Sub(p.LastLookup)
		due := since >= reresolveEvery
		if !p.UnansweredSince.IsZero() && now.Sub(p.UnansweredSince) >= reresolveUnanswered && since >= reresolveUnanswered {
			due = true
		}
		if due {
			seen[p.Endpoint] = true
			out = append(out, p.Endpoint)
		}
	}
	return out
}

// Facts are the facts of the outside world the planner reads (package
// doc): the resolved endpoint names and the underlay MTUs. It has its own
// locks; Env's functions never look anything up.
type Facts struct {
	eps   *endpoints
	under *underlays
}

// New returns Facts that look names up with lookup (dataplane.ResolveUDP)
// and ask the kernel the underlay MTU toward an address with probe
// (kernel.UnderlayMTU). Nothing is gathered until Refresh.
func New(lookup func(hostport string) (netip.AddrPort, error), probe func(dst netip.Addr) int) *Facts {
	return &Facts{eps: &endpoints{lookup: lookup}, under: &underlays{probe: probe}}
}

// Env is what the planner reads (plan.Env): the last lookups and MTUs.
func (f *Facts) Env() plan.Env {
	return plan.Env{Resolve: f.eps.Resolve, UnderlayMTU: f.under.MTU}
}

// Refresh gathers the facts for cfg: at start and reload, outside the
// gateway's lock. It forgets what cfg does not name.
func (f *Facts) Refresh(cfg *config.Config) {
	f.eps.refresh(cfg)
	f.under.refresh(underlayAddrs(cfg, f.eps.Resolve), true)
}

// MovedAt is when endpoint name last moved while running, and from
// where (zero if it never moved).
func (f *Facts) MovedAt(name string) (time.Time, netip.AddrPort) { return f.eps.movedAt(name) }

// Follow is what Run needs of the gateway. Both take the gateway's lock.
type Follow struct {
	// Running is the running config and, by peering, since when a
	// handshake initiation has been unanswered (the shared port's
	// devices); ok false once the gateway is closed (Run ends).
	Running func() (cfg *config.Config, unanswered map[string]time.Time, ok bool)
	// Moved re-plans cfg after names moved (moves) or an underlay MTU
	// changed (moves empty), if cfg still runs.
	Moved func(cfg *config.Config, moves []Move)
}

// Run looks endpoint names up again every followTick as they are due
// (dueNames), and the underlay MTUs with them, outside the gateway's
// lock; what moved goes to fw.Moved. It ends with ctx or when the gateway
// is closed.
func (f *Facts) Run(ctx context.Context, fw Follow) {
	t := time.NewTicker(followTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if !f.follow(now, fw) {
				return
			}
		}
	}
}

// follow is one tick of Run; false: the gateway is closed.
func (f *Facts) follow(now time.Time, fw Follow) bool {
	cfg, unanswered, ok := fw.Running()
	if !ok {
		return false
	}
	var moves []Move
	if due := dueNames(f.probes(cfg, unanswered), now); len(due) > 0 {
		moves = f.eps.reresolve(due) // DNS outside the lock
	}
	mtuChanged := false
	if len(moves) > 0 || f.under.due(now, reresolveEvery) {
		mtuChanged = f.under.refresh(underlayAddrs(cfg, f.eps.Resolve), false)
	}
	if len(moves) > 0 || mtuChanged {
		fw.Moved(cfg, moves)
	}
	return true
}

// probes gathers dueNames' input for cfg.
func (f *Facts) probes(cfg *config.Config, unanswered map[string]time.Time) []peerProbe {
	names := endpointNames(cfg)
	var out []peerProbe
	for _, p := range cfg.Peerings {
		if !slices.Contains(names, p.Endpoint) {
			continue // no endpoint, or a literal address
		}
		at, _ := f.eps.lookedUp(p.Endpoint)
		out = append(out, peerProbe{Endpoint: p.Endpoint, UnansweredSince: unanswered[p.Name], LastLookup: at})
	}
	return out
}
