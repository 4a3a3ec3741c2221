package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/bgp"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/enroll"
	"github.com/vgate-project/vgate/gateway/environ"
	"github.com/vgate-project/vgate/gateway/kernel"
	"github.com/vgate-project/vgate/gateway/names"
	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/relay"
	"github.com/vgate-project/vgate/gateway/remember"
	"github.com/vgate-project/vgate/gateway/tunaddr"
	"github.com/vgate-project/vgate/gateway/tunnel"
	"github.com/vgate-project/vgate/gateway/tunnel/wireguard"
)

// Gateway is one running vgate gateway. Its methods are safe for
// concurrent use; changes are serialized on one mutex, mu, the single
// owner of control-plane state.
//
// Locks: mu is taken first; the components' own locks (bgp, p2s, names,
// enroll, remember, environ, the relays) only after it, never before.
// A component with a loop reaches the gateway only through the callbacks
// it was given (bgp.Replan: replan; environ.Follow: followRunning and
// followMoved; remember's recall: recallOpen), which it calls holding
// none of its own locks, and which take mu. One path takes mu under
// another lock: an enrollment request redeems an invite holding the
// invite store's lock and asks for the point-to-site server (redeem,
// P2SServer); nothing holding mu waits for that store, and stopping the
// listener waits for its requests at most a bounded time.
type Gateway struct {
	log *slog.Logger
	// env is the resolved endpoint names and the underlay MTUs the
	// planner reads (environ.Facts, followed by its loop: follow.go); it
	// has its own locks.
	env *environ.Facts
	// hostAddrs are the host's own addresses, gathered at start and
	// reload (p2s.go); g.mu guards them.
	hostAddrs []netip.Addr
	// ctx lives as long as the gateway: its background loops (the BGP
	// RIB loop, the probe) end with it.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	cfg     *config.Config
	started time.Time
	reloads api.ReloadStats
	closed  bool
	// refusals counts refused reloads by reason (reloads.go).
	refusals map[api.RefusalReason]uint64

	// The running parts, moved to each plan by apply (apply.go).
	kern  *kernel.Kernel
	kinds map[plan.Kind]tunnel.Kind // gateway/tunnel
	// relays are the WireGuard kind's relay connections, which the
	// point-to-site device shares (relay.Transport); nil once it is closed.
	relays  *relay.Transport
	p2s     *p2s.Component    // point-to-site (p2s.go)
	bgp     *bgp.Component    // the speaker, probe, BFD, drain (bgp.go)
	dns     *names.Component  // the name server (dns.go)
	enroll  *enroll.Component // invites (invite.go)
	addr    *tunaddr.Address  // the tunnel address on lo and its record
	applied plan.State        // the last plan applied
	// mem is the peers' remembered endpoints (remember.go); it has its
	// own lock.
	mem *remember.Memory
	// pubKeys is the public keys a relay reads (pubkeys.go); it has its
	// own lock.
	pubKeys *relay.Publisher
}

// Format prints a gateway as its address only: fmt would otherwise walk
// its fields, and the last plan holds the private keys.
func (g *Gateway) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "gateway(%p)", g) }

// Start brings up the gateway described by cfg (already validated by
// config.Load): it plans the whole state and applies it. If any step fails,
// everything done so far is undone and the error says which step. ctx
// bounds the start; the gateway's background work lives until Close.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *Gateway, err error) {
	g := &Gateway{log: log, cfg: cfg, started: time.Now(), kinds: map[plan.Kind]tunnel.Kind{}, pubKeys: relay.NewPublisher(log)}
	g.ctx, g.cancel = context.WithCancel(context.WithoutCancel(ctx))
	g.dns = names.NewComponent(g.directory, log)                                                    // dns.go
	g.enroll = enroll.NewComponent(enroll.Invites{Pending: g.pendingSecret, Redeem: g.redeem}, log) // invite.go
	g.bgp = bgp.New(g.ctx, g.replan, log)                                                           // bgp.go
	g.kern, err = kernel.New()
	if err != nil {
		g.cancel()
		return nil, err
	}
	g.p2s = p2s.NewComponent(g.ctx, g.p2sHooks(), log) // p2s.go
	g.env = environ.New(dataplane.ResolveUDP, g.kern.UnderlayMTU)
	g.env.Refresh(cfg) // names and MTUs, before planning
	defer func() {
		if err != nil {
			g.teardown()
		}
	}()
	if g.hostAddrs, err = hostAddrs(cfg); err != nil { // p2s.go
		return nil, err
	}

	kernel.WarnForwarding(log)
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	// Every kind's listener opens at start: the port is the gateway's
	// identity to its peers, not something a reload changes.
	wg, err := wireguard.New(cfg.ListenPort, g.kern, log)
	if err != nil {
		return nil, err
	}
	g.kinds[plan.KindWireGuard], g.relays = wg, wg.Relays()
	log.Info("gateway key", "public_key", cfg.PrivateKey.Public().String())

	// A crashed run may have left its tunnel address on lo.
	g.addr = tunaddr.Recover(cfg.StateDir, cfg.TunnelAddress, g.kern, log)
	g.mem = remember.Load(cfg.StateDir, log) // remember.go
	g.bgp.LoadDrain(cfg)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.applyConfig(ctx, cfg); err != nil {
		return nil, err
	}
	g.resume()                                                                          // remember.go
	go g.mem.Run(g.ctx, g.recallOpen)                                                   // records the endpoints from now on
	go g.env.Run(g.ctx, environ.Follow{Running: g.followRunning, Moved: g.followMoved}) // follow.go
	log.Info("gateway started", "name", cfg.Name, "peerings", len(cfg.Peerings), "max_tunnels", cfg.MaxTunnels)
	return g, nil
}

// Reload applies a new, validated config. Changes that need a restart are
// refused. Only what differs is applied: unchanged tunnels keep their
// sessions. If applying fails, the old config is applied again and the
// error is returned; the gateway keeps running the old config.
func (g *Gateway) Reload(ctx context.Context, cfg *config.Config) error {
	g.env.Refresh(cfg) // DNS and MTUs outside the lock
	kernel.WarnForwarding(g.log)
	addrs, err := hostAddrs(cfg) // p2s.go
	g.mu.Lock()
	defer g.mu.Unlock()
	if err == nil {
		err = g.reloadLocked(ctx, cfg, addrs)
	}
	g.reloads.Last = time.Now()
	if err != nil {
		g.reloads.Failed++
		g.reloads.LastError = err.Error()
		g.log.Error("reload rejected; still running the previous config", "error", err)
		g.countRefusals(err)
		return err
	}
	g.reloads.OK++
	g.reloads.LastError = ""
	return nil
}

func (g *Gateway) reloadLocked(ctx context.Context, cfg *config.Config, addrs []netip.Addr) error {
	if g.closed {
		return errStopped
	}
	old := g.cfg
	if err := plan.CheckReload(old, cfg); err != nil {
		return err
	}
	g.hostAddrs = addrs
	undoDrain := g.bgp.ReloadDrain(old, cfg)
	if err := g.applyConfig(ctx, cfg); err != nil {
		undoDrain()
		if rerr := g.applyConfig(ctx, old); rerr != nil {
			return fmt.Errorf("%w; rolling back also failed: %v", err, rerr)
		}
		return fmt.Errorf("%w (rolled back)", err)
	}
	g.log.Info("reload applied", "peerings", len(cfg.Peerings))
	return nil
}

// input is what the planner needs now for cfg. With bgp it includes the
// running system's facts the import filter protects (route_safety.go).
// g.mu is held.
func (g *Gateway) input(cfg *config.Config) plan.Input {
	in := plan.Input{Config: cfg, Env: g.env.Env(), Learned: g.bgp.Learned(), P2SDown: g.p2s.Disabled() != "", Remembered: g.mem.Remembered(),
		HostAddrs: g.hostAddrs}
	if cfg.BGP != nil {
		in.Endpoints = g.currentEndpoints()
		in.Connected = g.connectedPrefixes()
		in.ProbeDead, in.VgatePeers, in.PlainPeers, in.DrainingPeers = g.bgp.ProbeFacts()
		in.Drain = g.bgp.Draining()
	}
	return in
}

// applyConfig plans cfg and applies the plan: every change goes through
// it (Start, Reload and its rollback, and the re-plans of a RIB change, a
// probe verdict, an import refresh, a moved endpoint, a drain, charon's
// restart). A corrupt point-to-site registry plans again without
// point-to-site and applies that: everything else runs, without the pool's
// routes, until a reload finds the registry fixed. On success cfg becomes
// the running config. g.mu is held.
func (g *Gateway) applyConfig(ctx context.Context, cfg *config.Config) error {
	if cfg != g.cfg {
		g.p2s.Retry() // a new config tries a disabled point-to-site again
	}
	in := g.input(cfg)
	g.bgp.Planning() // the import filter's facts (route_safety.go)
	st := plan.Plan(in)
	if !sameProblems(st.Problems, g.applied.Problems) { // say it once, not on every re-plan
		for _, e := range st.Problems {
			g.log.Warn("peering endpoint not usable; the tunnel waits for the remote side to dial in", "error", e)
		}
	}
	err := g.apply(ctx, st)                     // apply.go
	if errors.Is(err, p2s.ErrCorruptRegistry) { // the component is disabled now
		g.log.Error("point-to-site disabled; site-to-site tunnels keep running", "error", err)
		in.P2SDown = true
		err = g.apply(ctx, plan.Plan(in))
	}
	if err != nil {
		return err
	}
	g.cfg = cfg
	g.bgp.Planned(bgp.ImportFacts{Endpoints: in.Endpoints, Connected: in.Connected})
	publishConfig(g.pubKeys, cfg) // pubkeys.go
	return nil
}

func sameProblems(a, b []plan.Problem) bool {
	return slices.EqualFunc(a, b, plan.Problem.Same)
}

// RecordReloadFailure counts a reload that never reached Reload because the
// new config did not load or validate.
func (g *Gateway) RecordReloadFailure(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reloads.Failed++
	g.reloads.LastError = err.Error()
	g.reloads.Last = time.Now()
	g.countRefusals(err)
}

// Closed reports whether the gateway has been closed.
func (g *Gateway) Closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// Config returns the running config.
func (g *Gateway) Config() *config.Config {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg
}

// Close stops every tunnel and removes vgate's routes and tunnel address.
func (g *Gateway) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	g.mem.Close(g.recall()) // remember.go
	err := g.teardown()
	g.log.Info("gateway stopped", "name", g.cfg.Name)
	return err
}
