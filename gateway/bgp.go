package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/kernel"
	"github.com/vgate-project/vgate/routing"
)

// applyDebounce gathers a burst of RIB changes into one re-apply.
const applyDebounce = 50 * time.Millisecond

// bgpRuntime is the gateway's speaker, the loop that applies RIB changes
// and the tunnel probe. It exists while the config has a bgp section.
type bgpRuntime struct {
	key     bgpKey
	speaker *routing.Speaker
	probe   *prober
	kick    chan struct{}
	cancel  context.CancelFunc

	// learned is the last RIB snapshot applied (guarded by Gateway.mu).
	learned []routing.Route
}

// bgpKey is what cannot change without restarting the speaker.
type bgpKey struct {
	asn      uint32
	routerID netip.Addr
	addr     netip.Addr
}

func (b *bgpRuntime) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// withBGP adds the last learned routes to the static desired state. Called
// with g.mu held (or before the gateway is shared).
func (g *Gateway) withBGP(cfg *config.Config, tunnels []dataplane.TunnelSpec, routes []kernel.Route) ([]dataplane.TunnelSpec, []kernel.Route) {
	if g.bgp == nil || cfg.BGP == nil {
		return tunnels, routes
	}
	return DesiredBGP(cfg, tunnels, routes, g.bgp.learned)
}

// applyBGP starts, reconfigures or stops the speaker to match cfg. Called
// with g.mu held, after the tunnels and the tunnel address are in place.
func (g *Gateway) applyBGP(cfg *config.Config) error {
	if cfg.BGP == nil {
		g.closeBGP()
		return nil
	}
	key := bgpKey{cfg.BGP.ASN, cfg.BGP.RouterID, cfg.TunnelAddress}
	if g.bgp != nil && g.bgp.key != key {
		g.log.Info("bgp identity or tunnel address changed: restarting the speaker")
		g.closeBGP()
	}
	if g.bgp == nil {
		if err := g.startBGP(cfg, key); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := BGPImport(cfg, g.env)
	if err := g.bgp.speaker.Set(ctx, st); err != nil {
		return err
	}
	targets := map[string]netip.Addr{}
	for _, n := range st.Neighbors {
		targets[n.Name] = n.Address
	}
	g.bgp.probe.setTargets(targets)
	g.bgp.poke()
	return nil
}

func (g *Gateway) startBGP(cfg *config.Config, key bgpKey) error {
	b := &bgpRuntime{key: key, kick: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sp, err := routing.Start(ctx, routing.Config{
		ASN:             cfg.BGP.ASN,
		RouterID:        cfg.BGP.RouterID,
		ListenAddresses: []netip.Addr{cfg.TunnelAddress},
		Log:             g.log.With("component", "bgp"),
		OnChange:        b.poke,
	})
	if err != nil {
		return err
	}
	b.speaker = sp
	pr, err := newProber(cfg.TunnelAddress, g.log.With("component", "probe"), func(name string, alive bool, why string) {
		reason := ""
		if !alive {
			reason = why
		}
		if err := sp.SetDown(context.Background(), name, routing.HoldProbe, reason); err != nil {
			g.log.Error("bgp: probe hold", "peering", name, "error", err)
		}
		b.poke()
	})
	if err != nil {
		sp.Close()
		return fmt.Errorf("bgp: tunnel probe: %w", err)
	}
	b.probe = pr
	var lctx context.Context
	lctx, b.cancel = context.WithCancel(context.Background())
	go pr.run(lctx)
	go g.ribLoop(lctx, b)
	g.bgp = b
	return nil
}

// closeBGP stops the probe, the loop and the speaker (its sessions end;
// the routes they gave are removed by the next apply). Called with g.mu
// held. The loop may be waiting for g.mu: it is not waited for; once it
// gets the lock it sees the cancelled context and ends without effect.
func (g *Gateway) closeBGP() {
	b := g.bgp
	if b == nil {
		return
	}
	g.bgp = nil
	b.cancel()
	b.probe.close()
	b.speaker.Close()
}

// ribLoop re-applies the data plane and routes when the RIB changes:
// debounced, serialized on g.mu like every other change.
func (g *Gateway) ribLoop(ctx context.Context, b *bgpRuntime) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(applyDebounce):
		}
		g.mu.Lock()
		if ctx.Err() == nil && !g.closed && g.bgp == b {
			if err := g.applyRIBLocked(ctx, b); err != nil {
				g.log.Error("bgp: applying learned routes", "error", err)
			}
		}
		g.mu.Unlock()
	}
}

func (g *Gateway) applyRIBLocked(ctx context.Context, b *bgpRuntime) error {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rib, err := b.speaker.Snapshot(sctx)
	if err != nil {
		return err
	}
	b.learned = rib.Routes
	cfg := g.cfg
	tunnels, routes, _ := Desired(cfg, g.env)
	routes = append(routes, g.p2sKernelRoutes(cfg)...)
	tunnels, routes = DesiredBGP(cfg, tunnels, routes, b.learned)
	g.log.Debug("bgp: applying learned routes", "learned", len(b.learned), "kernel_routes", len(routes))
	var errs []error
	if _, err := g.plane.Set(tunnels); err != nil {
		errs = append(errs, err)
	}
	if err := g.kern.SetRoutes(routes); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// p2sKernelRoutes are the routes applyP2S installed (p2s.go), so that a
// re-apply from the RIB loop keeps them.
func (g *Gateway) p2sKernelRoutes(cfg *config.Config) []kernel.Route {
	if g.p2s == nil {
		return nil
	}
	var routes []kernel.Route
	for _, q := range g.p2s.Routes() {
		routes = append(routes, kernel.Route{Dst: q, Dev: g.p2s.IfName(), Src: cfg.TunnelAddress})
	}
	return routes
}

// BGP reports the speaker's sessions and the tunnel probes.
func (g *Gateway) BGP(ctx context.Context) (api.BGPStatus, error) {
	g.mu.Lock()
	cfg, b := g.cfg, g.bgp
	g.mu.Unlock()
	if cfg.BGP == nil || b == nil {
		return api.BGPStatus{Neighbors: []api.NeighborStatus{}, Probes: []api.ProbeStatus{}}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rib, err := b.speaker.Snapshot(ctx)
	if err != nil {
		return api.BGPStatus{}, err
	}
	return api.BGPStatus{Enabled: true, ASN: cfg.BGP.ASN, RouterID: cfg.BGP.RouterID,
		Neighbors: neighborStatuses(rib.Neighbors), Probes: b.probe.status()}, nil // apiconv.go
}

// Routes reports the effective routes: local, static and BGP.
func (g *Gateway) Routes(ctx context.Context) (api.RoutesView, error) {
	g.mu.Lock()
	cfg, b := g.cfg, g.bgp
	_, static, _ := Desired(cfg, g.env)
	static = append(static, g.p2sKernelRoutes(cfg)...)
	kern, kerr := g.kern.Routes()
	g.mu.Unlock()
	if kerr != nil {
		return api.RoutesView{}, kerr
	}
	var learned []routing.Route
	if b != nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rib, err := b.speaker.Snapshot(ctx)
		if err != nil {
			return api.RoutesView{}, err
		}
		learned = rib.Routes
	}
	v := api.RoutesView{Routes: RouteTable(cfg, static, learned, kern)}
	if v.Routes == nil {
		v.Routes = []api.RouteEntry{}
	}
	return v, nil
}
