package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"time"

	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/routing"
	"github.com/vgate-project/vgate/routing/bfd"
)

// applyDebounce gathers a burst of RIB changes into one re-plan.
const applyDebounce = 50 * time.Millisecond

// ImportRefresh is how often a BGP gateway re-plans for what changes
// without a config or RIB change: the tunnels' current endpoints
// (roaming), the connected point-to-site clients and the host's connected
// subnets, which the import filter protects (plan.Input). The gateway
// checks those facts first (a device get per tunnel and one netlink
// dump); an unchanged plan costs nothing in the speaker or the kernel.
const ImportRefresh = 3 * time.Second

// runtime is one run of the speaker, its tunnel probe and BFD, and the
// loop that asks for re-plans. It exists while the plan has a BGP part
// with one identity. The fields but pmu's are guarded by Component.mu.
type runtime struct {
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
func (b *runtime) probeFacts() (dead, vgate, plain, draining map[string]bool) {
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
func (b *runtime) heldTunnels() map[string]bool {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	return maps.Clone(b.held)
}

// probeDecides reports whether a probe verdict on peering name may hold
// its session: not once BFD has come up with a peer that is not known to
// run vgate (a router's control plane may drop or rate-limit echo; BFD is
// what both ends agree on). BFD configured but never up (the router has
// none) leaves the probe in charge. b.pmu is held.
func (b *runtime) probeDecides(name string) bool {
	return !b.bfdUp[name] || b.vgate[name]
}

func (b *runtime) hurry() {
	select {
	case b.urgent <- struct{}{}:
	default:
	}
}

func (b *runtime) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// setTargets gives the probe and BFD the plan's targets. A peering gone
// or re-addressed starts unknown; a BFD session gone or started afresh
// releases its hold. Component.mu is held.
func (b *runtime) setTargets(ctx context.Context, want *plan.BGP, log *slog.Logger) {
	if probes := want.Probes; !maps.Equal(b.probes, probes) {
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
	b.probe.SetDraining(want.Speaker.Drain)
	b.probe.SetAvoiding(want.Avoided)
	if !maps.Equal(b.bfds, want.BFD) {
		old := b.bfds
		b.bfd.SetTargets(want.BFD)
		b.bfds = want.BFD
		var release []string
		b.pmu.Lock()
		for name := range b.bfdUp {
			if t, ok := want.BFD[name]; !ok || old[name].Address != t.Address || old[name].Interface != t.Interface {
				delete(b.bfdUp, name)
			}
		}
		for name := range b.bfdDown {
			if t, ok := want.BFD[name]; !ok || old[name].Address != t.Address || old[name].Interface != t.Interface {
				delete(b.bfdDown, name) // BFD gone or started afresh: it holds nothing
				release = append(release, name)
			}
		}
		b.pmu.Unlock()
		for _, name := range release {
			if err := b.speaker.SetDown(ctx, name, routing.HoldBFD, ""); err != nil {
				log.Error("bgp: releasing a bfd hold", "peering", name, "error", err)
			}
		}
	}
}

// start runs the speaker, the probe, BFD, the watchdog and the loop for
// id. Component.mu is held.
func (c *Component) start(id plan.BGPIdentity) (*runtime, error) {
	b := &runtime{id: id, kick: make(chan struct{}, 1), urgent: make(chan struct{}, 1), dead: map[string]bool{}, held: map[string]bool{},
		vgate: map[string]bool{}, plain: map[string]bool{}, draining: map[string]bool{},
		bfdDown: map[string]bfd.Diag{}, bfdUp: map[string]bool{}}
	sp, err := routing.Start(c.ctx, routing.Config{
		ASN:             id.ASN,
		RouterID:        id.RouterID,
		ListenAddresses: []netip.Addr{id.Listen},
		Log:             c.log.With("component", "bgp"),
		OnChange:        b.poke,
	})
	if err != nil {
		return nil, err
	}
	b.speaker = sp
	var lctx context.Context
	lctx, b.cancel = context.WithCancel(c.ctx)
	pr, err := routing.NewProber(id.Listen, c.log.With("component", "probe"), func(ev routing.ProbeEvent) {
		c.probeEvent(lctx, b, ev)
	})
	if err != nil {
		b.cancel()
		sp.Close()
		return nil, fmt.Errorf("bgp: tunnel probe: %w", err)
	}
	b.probe = pr
	br, err := bfd.New(id.Listen, c.log.With("component", "bfd"), func(ev bfd.PeerEvent) {
		c.bfdEvent(lctx, b, ev)
	})
	if err != nil {
		b.cancel()
		pr.Close()
		sp.Close()
		return nil, fmt.Errorf("bgp: bfd: %w", err)
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
	go c.loop(lctx, b)
	return b, nil
}

// stop ends the run: its context, the probe, BFD and the speaker.
func (b *runtime) stop(graceful bool, log *slog.Logger) {
	b.cancel()
	b.probe.Close()
	// A planned stop: the routers' BFD sees AdminDown, not a failure
	// (with graceful restart too: they keep the routes and wait).
	b.bfd.Close(true)
	if graceful {
		log.Info("bgp: stopping for a graceful restart: peers that help keep this gateway's routes")
		b.speaker.CloseGraceful()
		return
	}
	b.speaker.Close()
}

// probeEvent takes a tunnel probe's verdict: it records what the peer
// runs and whether the tunnel is dead, asks for a re-plan at once, and
// holds or releases the session.
func (c *Component) probeEvent(ctx context.Context, b *runtime, ev routing.ProbeEvent) {
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
		c.log.Info("bgp: probe verdict left to bfd", "peering", ev.Peering, "why", ev.Why)
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
	if err := b.speaker.SetDown(ctx, ev.Peering, routing.HoldProbe, reason); err != nil && ctx.Err() == nil {
		c.log.Error("bgp: probe hold", "peering", ev.Peering, "error", err)
	}
	b.poke()
}

// bfdEvent takes a BFD session's change the way the probe's verdicts go:
// down after being up marks the path dead and re-plans at once (its
// routes leave the kernel and AllowedIPs), then holds the session down
// with the diagnostic; up again releases it. The peer's AdminDown is not
// a failure (RFC 5882 3.2) and a session never up holds nothing (BFD not
// configured on the router).
func (c *Component) bfdEvent(ctx context.Context, b *runtime, ev bfd.PeerEvent) {
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
			c.log.Error("bgp: releasing a probe hold for bfd", "peering", ev.Peering, "error", err)
		}
	}
	if reason != "" || was {
		if err := b.speaker.SetDown(ctx, ev.Peering, routing.HoldBFD, reason); err != nil && ctx.Err() == nil {
			c.log.Error("bgp: bfd hold", "peering", ev.Peering, "error", err)
		}
	}
	b.poke()
}

// loop asks for re-plans while b runs: on a RIB change (debounced, after
// reading the RIB), at once on a verdict (with the RIB last read), and
// every ImportRefresh for the import filter's facts. Every request goes
// through Replan, which serializes it with every other change on the
// gateway's lock and plans with the same planner as start and reload.
func (c *Component) loop(ctx context.Context, b *runtime) {
	refresh := time.NewTicker(ImportRefresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			c.replan(ctx, ImportFactsDue)
			continue
		case <-b.urgent:
			c.replan(ctx, Verdict)
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
				c.replan(ctx, Verdict)
			case <-debounce.C:
				break wait
			}
		}
		rib, err := b.speaker.Snapshot(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Error("bgp: reading the RIB", "error", err)
			}
			continue
		}
		if ctx.Err() == nil && c.setLearned(b, rib.Routes) {
			c.log.Debug("bgp: applying learned routes", "learned", len(rib.Routes))
			c.replan(ctx, RIBChanged)
		}
	}
}
