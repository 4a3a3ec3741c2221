package gateway

import (
	"context"
	"fmt"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/bgp"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/routing"
)

// replan is the BGP component's request to plan again (bgp.Replan): a RIB
// change, a probe or BFD verdict, or the import filter's facts due for a
// check. The component calls it holding none of its locks; it takes g.mu
// like every other change. ctx is the speaker's run: done once that
// speaker stopped (under g.mu), and then the request is stale.
func (g *Gateway) replan(ctx context.Context, why bgp.Why) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ctx.Err() != nil || g.closed {
		return
	}
	if why == bgp.ImportFactsDue && !g.importFactsChanged() { // route_safety.go
		return
	}
	if err := g.applyConfig(ctx, g.cfg); err != nil {
		g.log.Error(why.String(), "error", err)
	}
}

// withDemand is the plan's BGP part with each probe target's demand
// counter (gateway/dataplane/demand.go), so that the probe echoes every
// interval only while user traffic goes into the tunnel. A tunnel kind
// without one (IPsec) is probed at the configured interval all the time.
// g.mu is held.
func (g *Gateway) withDemand(st plan.State) *plan.BGP {
	if st.BGP == nil {
		return nil
	}
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
	want := *st.BGP
	want.Probes = out
	return &want
}

// Speaker is the BGP component, for the control API's BGP report.
func (g *Gateway) Speaker() *bgp.Component { return g.bgp }

// Routes reports the effective routes — local, static, point-to-site and
// BGP — as the planner sees them, marked installed from the kernel.
func (g *Gateway) Routes(ctx context.Context) (api.RoutesView, error) {
	g.mu.Lock()
	in := g.input(g.cfg)
	in.Learned = nil
	kern, kerr := g.kern.Routes()
	conflicts := g.kern.Conflicts()
	g.mu.Unlock()
	if kerr != nil {
		return api.RoutesView{}, kerr
	}
	rib, _, err := g.bgp.RIB(ctx)
	if err != nil {
		return api.RoutesView{}, err
	}
	in.Learned = rib
	v := api.RoutesView{Routes: plan.Routes(in, kern, conflicts)}
	if v.Routes == nil {
		v.Routes = []api.RouteEntry{}
	}
	return v, nil
}

// Drain starts (req.Drain) or ends a drain, records it in state_dir and
// applies it: the speaker re-sends its routes without a session reset.
func (g *Gateway) Drain(ctx context.Context, req api.DrainRequest) (api.DrainStatus, error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return api.DrainStatus{}, errStopped
	}
	cfg := g.cfg
	undo, changed, err := g.bgp.SetDrain(cfg, req.Drain) // bgp/drain.go
	if err != nil {
		g.mu.Unlock()
		return api.DrainStatus{}, err
	}
	if err := g.applyConfig(ctx, cfg); err != nil {
		undo()
		if rerr := g.applyConfig(ctx, cfg); rerr != nil {
			err = fmt.Errorf("%w; restoring the previous drain also failed: %v", err, rerr)
		}
		g.mu.Unlock()
		return api.DrainStatus{}, fmt.Errorf("drain: %w", err)
	}
	if changed {
		g.log.Warn("drain changed", "draining", req.Drain)
	}
	g.mu.Unlock()
	st := g.Observe(ctx) // observe.go
	if st.Drain == nil {
		return api.DrainStatus{State: api.DrainOff}, nil
	}
	return *st.Drain, nil
}
