package gateway

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/routing"
	"github.com/vgate-project/vgate/routing/bfd"
)

// applyDebounce gathers a burst of RIB changes into one re-plan.
const applyDebounce = 50 * time.Millisecond

// bgpRuntime is the gateway's speaker, its tunnel probe and the loop that
// re-plans on RIB changes. It exists while the plan has a BGP part.
type bgpRuntime struct {
	id      plan.BGPIdentity
	speaker *routing.Speaker
	probe   *routing.Prober
	kick    chan struct{}
	// urgent re-plans at once, without reading the RIB: a probe verdict
	// (a dead tunnel's routes go now, not after the speaker withdraws).
	urgent  chan struct{}
	cancel  context.CancelFunc
	applied *routing.State // the speaker state last set
	probes  map[string]routing.ProbeTarget
	bfd     *bfd.Runner
	bfds    map[string]bfd.Target

	pmu  sync.Mutex // guards what the probe and BFD learned
	dead map[string]bool
	// held: dead after having answered, so vgate holds the session down
	// (the peering's probe_dead state); a tunnel that never answered is
	// not held.
	held     map[string]bool
	vgate    map[string]bool
	plain    map[string]bool
	draining map[string]bool // the peer's probes say it drains
	// bfdDown are the peerings whose BFD session went down after being
	// up, with the diagnostic; bfdUp those whose BFD session has been up
	// (BFD then decides for a peer that is not vgate).
	bfdDown map[string]bfd.Diag
	bfdUp   map[string]bool
}

// probeFacts is what the probe and BFD learned, for the planner (copies):
// a path is dead when either says so.
func (b *bgpRuntime) probeFacts() (dead, vgate, plain, draining map[string]bool) {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	dead = maps.Clone(b.dead)
	if dead == nil {
		dead = map[string]bool{}
	}
	for name := range b.bfdDown {
		dead[name] = true
	}
	return dead, maps.Clone(b.vgate), maps.Clone(b.plain), maps.Clone(b.draining)
}

// heldTunnels is the peerings whose tunnel the probe found dead after it
// had answered (a copy).
func (b *bgpRuntime) heldTunnels() map[string]bool {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	return maps.Clone(b.held)
}

// probeDecides reports whether a probe verdict on peering name may hold
// its session: not once BFD has come up with a peer that is not known to
// run vgate (a router's control plane may drop or rate-limit echo; BFD is
// what both ends agree on). BFD configured but never up (the router has
// none) leaves the probe in charge. b.pmu is held.
func (b *bgpRuntime) probeDecides(name string) bool {
	return !b.bfdUp[name] || b.vgate[name]
}

func (b *bgpRuntime) hurry() {
	select {
	case b.urgent <- struct{}{}:
	default:
	}
}

func (b *bgpRuntime) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// withDemand is the plan's probe targets with each tunnel's demand
// counter (gateway/dataplane/demand.go), so that the probe echoes every
// interval only while user traffic goes into the tunnel. A tunnel kind
// without one (IPsec) is probed at the configured interval all the time.
// g.mu is held.
func (g *Gateway) withDemand(st plan.State) map[string]routing.ProbeTarget {
	kindOf := map[string]plan.Kind{}
	for _, t := range st.Tunnels {
		kindOf[t.Name] = t.Kind
	}
	out := make(map[string]routing.ProbeTarget, len(st.BGP.Probes))
	for name, t := range st.BGP.Probes {
		if k, ok := g.kinds[kindOf[name]]; ok {
			if d := k.Demand(name); d != nil {
				t.Demand = d
			}
		}
		out[name] = t
	}
	return out
}

// applyBGP starts, reconfigures or stops the speaker to match the plan.
// g.mu is held; the tunnels and the tunnel address are in place.
func (g *Gateway) applyBGP(ctx context.Context, st plan.State) error {
	if st.BGP == nil {
		g.closeBGP()
		return nil
	}
	if g.bgp != nil && g.bgp.id != st.BGP.Identity {
		g.log.Info("bgp identity or tunnel address changed: restarting the speaker")
		g.closeBGP()
	}
	if g.bgp == nil {
		if err := g.startBGP(ctx, st.BGP.Identity); err != nil {
			return err
		}
	}
	b := g.bgp
	if probes := g.withDemand(st); !maps.Equal(b.probes, probes) {
		old := b.probes
		b.probe.SetTargets(probes)
		b.probes = probes
		b.pmu.Lock()
		for _, m := range []map[string]bool{b.dead, b.vgate, b.plain, b.draining} {
			for name := range m {
				if t, ok := probes[name]; !ok || old[name].Address != t.Address {
					delete(m, name) // a peering gone or re-addressed starts unknown
				}
			}
		}
		b.pmu.Unlock()
	}
	// The probe tells the peers whether this gateway drains, and the
	// draining ones whether this gateway's routes avoid them now.
	b.probe.SetDraining(st.BGP.Speaker.Drain)
	b.probe.SetAvoiding(st.BGP.Avoided)
	if !maps.Equal(b.bfds, st.BGP.BFD) {
		old := b.bfds
		b.bfd.SetTargets(st.BGP.BFD)
		b.bfds = st.BGP.BFD
		var release []string
		b.pmu.Lock()
		for name := range b.bfdUp {
			if t, ok := st.BGP.BFD[name]; !ok || old[name].Address != t.Address || old[name].Interface != t.Interface {
				delete(b.bfdUp, name)
			}
		}
		for name := range b.bfdDown {
			if t, ok := st.BGP.BFD[name]; !ok || old[name].Address != t.Address || old[name].Interface != t.Interface {
				delete(b.bfdDown, name) // BFD gone or started afresh: it holds nothing
				release = append(release, name)
			}
		}
		b.pmu.Unlock()
		for _, name := range release {
			if err := b.speaker.SetDown(ctx, name, routing.HoldBFD, ""); err != nil {
				g.log.Error("bgp: releasing a bfd hold", "peering", name, "error", err)
			}
		}
	}
	if b.applied != nil && reflect.DeepEqual(*b.applied, st.BGP.Speaker) {
		return nil // a RIB change re-plans; the speaker's own state is unchanged
	}
	if err := b.speaker.Set(ctx, st.BGP.Speaker); err != nil {
		b.applied = nil
		return err
	}
	sp := st.BGP.Speaker
	b.applied = &sp
	b.poke()
	return nil
}

func (g *Gateway) startBGP(ctx context.Context, id plan.BGPIdentity) error {
	b := &bgpRuntime{id: id, kick: make(chan struct{}, 1), urgent: make(chan struct{}, 1), dead: map[string]bool{}, held: map[string]bool{},
		vgate: map[string]bool{}, plain: map[string]bool{}, draining: map[string]bool{},
		bfdDown: map[string]bfd.Diag{}, bfdUp: map[string]bool{}}
	sp, err := routing.Start(ctx, routing.Config{
		ASN:             id.ASN,
		RouterID:        id.RouterID,
		ListenAddresses: []netip.Addr{id.Listen},
		Log:             g.log.With("component", "bgp"),
		OnChange:        b.poke,
	})
	if err != nil {
		return err
	}
	b.speaker = sp
	var lctx context.Context
	lctx, b.cancel = context.WithCancel(g.ctx)
	pr, err := routing.NewProber(id.Listen, g.log.With("component", "probe"), func(ev routing.ProbeEvent) {
		b.pmu.Lock()
		ignore := false
		switch {
		case ev.Drain:
			if ev.Draining {
				b.draining[ev.Peering] = true
			} else {
				delete(b.draining, ev.Peering)
			}
		case ev.Vgate:
			b.vgate[ev.Peering] = true
			delete(b.plain, ev.Peering)
		case ev.Plain:
			if !b.vgate[ev.Peering] {
				b.plain[ev.Peering] = true
			}
		case ev.Alive:
			delete(b.dead, ev.Peering)
			delete(b.held, ev.Peering)
		case ev.Never:
			// A tunnel that never answered echo is not known dead: a
			// router may drop echo while its session and routes work.
		case !b.probeDecides(ev.Peering):
			ignore = true // BFD decides for this router
		default:
			b.dead[ev.Peering] = true
			b.held[ev.Peering] = true
		}
		b.pmu.Unlock()
		if ignore {
			g.log.Info("bgp: probe verdict left to bfd", "peering", ev.Peering, "why", ev.Why)
			return
		}
		// Re-plan first: a dead tunnel's routes leave the kernel now;
		// the speaker's hold (which tells the peer, and withdraws what
		// was learned through it from the other sessions) follows.
		b.hurry()
		if ev.Vgate || ev.Plain || ev.Never || ev.Drain {
			// What the peer runs decides only which end dials (the
			// re-plan above). A tunnel that never answered has no
			// routes to withdraw; its session is not held (a hold and
			// its release would restart GoBGP's 1.5-2 s wait before its
			// first dial).
			return
		}
		reason := ""
		if !ev.Alive {
			reason = ev.Why
		}
		// Released: the session starts afresh at once (routing/retry.go).
		if err := sp.SetDown(lctx, ev.Peering, routing.HoldProbe, reason); err != nil && lctx.Err() == nil {
			g.log.Error("bgp: probe hold", "peering", ev.Peering, "error", err)
		}
		b.poke()
	})
	if err != nil {
		b.cancel()
		sp.Close()
		return fmt.Errorf("bgp: tunnel probe: %w", err)
	}
	b.probe = pr
	br, err := bfd.New(id.Listen, g.log.With("component", "bfd"), func(ev bfd.PeerEvent) {
		g.bfdEvent(lctx, b, ev)
	})
	if err != nil {
		b.cancel()
		pr.Close()
		sp.Close()
		return fmt.Errorf("bgp: bfd: %w", err)
	}
	b.bfd = br
	// The watchdog (routing/watchdog.go): a session whose tunnel answers
	// is established again within a bound, whatever kept it down.
	sp.StartWatchdog(func() map[string]bool {
		alive := map[string]bool{}
		for _, p := range pr.Status() {
			if p.Alive {
				alive[p.Peering] = true
			}
		}
		return alive
	})
	go pr.Run(lctx)
	go br.Run(lctx)
	go g.ribLoop(lctx, b)
	g.bgp = b
	return nil
}

// closeBGP stops the probe, the loop and the speaker (its sessions end;
// the routes they gave are removed by the next apply). g.mu is held. The
// loop may be waiting for g.mu: it is not waited for; once it gets the
// lock it sees the cancelled context and ends without effect.
func (g *Gateway) closeBGP() { g.closeBGPWith(false) }

// closeBGPWith is closeBGP, the speaker closed gracefully (graceful
// restart: the peers keep its routes) when graceful.
func (g *Gateway) closeBGPWith(graceful bool) {
	b := g.bgp
	if b == nil {
		return
	}
	g.bgp = nil
	g.learned = nil
	b.cancel()
	b.probe.Close()
	// A planned stop: the routers' BFD sees AdminDown, not a failure
	// (with graceful restart too: they keep the routes and wait).
	b.bfd.Close(true)
	if graceful {
		g.log.Info("bgp: stopping for a graceful restart: peers that help keep this gateway's routes")
		b.speaker.CloseGraceful()
		return
	}
	b.speaker.Close()
}

// bfdEvent takes a BFD session's change the way the probe's verdicts go:
// down after being up marks the path dead and re-plans at once (its
// routes leave the kernel and AllowedIPs), then holds the session down
// with the diagnostic; up again releases it. The peer's AdminDown is not
// a failure (RFC 5882 3.2) and a session never up holds nothing (BFD not
// configured on the router).
func (g *Gateway) bfdEvent(ctx context.Context, b *bgpRuntime, ev bfd.PeerEvent) {
	reason := ""
	switch {
	case ev.State == bfd.Up:
	case ev.State != bfd.Down || ev.RemoteAdminDown || !ev.EverUp:
		return
	default:
		reason = "bfd_down: " + ev.Diag.String()
	}
	b.pmu.Lock()
	_, was := b.bfdDown[ev.Peering]
	// BFD up with a router proves the path: from now on BFD decides, and
	// a probe verdict still standing (echo dropped or rate-limited) goes.
	probeHeld := false
	if reason == "" {
		delete(b.bfdDown, ev.Peering)
		b.bfdUp[ev.Peering] = true
		if !b.vgate[ev.Peering] {
			probeHeld = b.dead[ev.Peering]
			delete(b.dead, ev.Peering)
			delete(b.held, ev.Peering)
		}
	} else {
		b.bfdDown[ev.Peering] = ev.Diag
	}
	b.pmu.Unlock()
	if reason == "" && !was && !probeHeld {
		return
	}
	b.hurry()
	if probeHeld {
		if err := b.speaker.SetDown(ctx, ev.Peering, routing.HoldProbe, ""); err != nil && ctx.Err() == nil {
			g.log.Error("bgp: releasing a probe hold for bfd", "peering", ev.Peering, "error", err)
		}
	}
	if reason != "" || was {
		if err := b.speaker.SetDown(ctx, ev.Peering, routing.HoldBFD, reason); err != nil && ctx.Err() == nil {
			g.log.Error("bgp: bfd hold", "peering", ev.Peering, "error", err)
		}
	}
	b.poke()
}

// ribLoop re-plans when the RIB changes: debounced, serialized on g.mu
// like every other change, and through the same planner as start and
// reload. Every importRefresh it also re-plans for the facts the import
// filter protects (route_safety.go), when they changed.
func (g *Gateway) ribLoop(ctx context.Context, b *bgpRuntime) {
	refresh := time.NewTicker(importRefresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			g.mu.Lock()
			if ctx.Err() == nil && !g.closed && g.bgp == b && g.importFactsChanged() { // route_safety.go
				if err := g.applyConfig(ctx, g.cfg); err != nil {
					g.log.Error("bgp: refreshing the import filter", "error", err)
				}
			}
			g.mu.Unlock()
			continue
		case <-b.urgent:
			g.applyVerdict(ctx, b)
			continue
		case <-b.kick:
		}
		debounce := time.NewTimer(applyDebounce)
	wait:
		for {
			select {
			case <-ctx.Done():
				debounce.Stop()
				return
			case <-b.urgent: // a verdict does not wait for the debounce
				g.applyVerdict(ctx, b)
			case <-debounce.C:
				break wait
			}
		}
		rib, err := b.speaker.Snapshot(ctx)
		if err != nil {
			if ctx.Err() == nil {
				g.log.Error("bgp: reading the RIB", "error", err)
			}
			continue
		}
		g.mu.Lock()
		if ctx.Err() == nil && !g.closed && g.bgp == b {
			g.learned = rib.Routes
			g.log.Debug("bgp: applying learned routes", "learned", len(rib.Routes))
			if err := g.applyConfig(ctx, g.cfg); err != nil {
				g.log.Error("bgp: applying learned routes", "error", err)
			}
		}
		g.mu.Unlock()
	}
}

// applyVerdict re-plans at once for a tunnel probe verdict, with the RIB
// last read (the dead peering's routes are left out by the planner).
func (g *Gateway) applyVerdict(ctx context.Context, b *bgpRuntime) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ctx.Err() == nil && !g.closed && g.bgp == b {
		if err := g.applyConfig(ctx, g.cfg); err != nil {
			g.log.Error("bgp: applying a tunnel probe verdict", "error", err)
		}
	}
}

// BGP reports the speaker's sessions and the tunnel probes.
func (g *Gateway) BGP(ctx context.Context) (api.BGPStatus, error) {
	g.mu.Lock()
	cfg, b := g.cfg, g.bgp
	g.mu.Unlock()
	if cfg.BGP == nil || b == nil {
		return api.BGPStatus{Neighbors: []api.NeighborStatus{}, Probes: []api.ProbeStatus{}}, nil
	}
	rib, err := b.speaker.Snapshot(ctx)
	if err != nil {
		return api.BGPStatus{}, err
	}
	return api.BGPStatus{Enabled: true, ASN: cfg.BGP.ASN, RouterID: cfg.BGP.RouterID,
		Neighbors: rib.Neighbors, Probes: b.probe.Status(),
		BFD: bfdStatuses(b.bfd.Status()), BFDDropped: bfdDropped(b.bfd.Dropped())}, nil // apiconv.go
}

// Routes reports the effective routes — local, static, point-to-site and
// BGP — as the planner sees them, marked installed from the kernel.
func (g *Gateway) Routes(ctx context.Context) (api.RoutesView, error) {
	g.mu.Lock()
	in := g.input(g.cfg)
	in.Learned = nil
	b := g.bgp
	kern, kerr := g.kern.Routes()
	conflicts := g.kern.Conflicts()
	g.mu.Unlock()
	if kerr != nil {
		return api.RoutesView{}, kerr
	}
	if b != nil {
		rib, err := b.speaker.Snapshot(ctx)
		if err != nil {
			return api.RoutesView{}, err
		}
		in.Learned = rib.Routes
	}
	v := api.RoutesView{Routes: plan.Routes(in, kern, conflicts)}
	if v.Routes == nil {
		v.Routes = []api.RouteEntry{}
	}
	return v, nil
}
