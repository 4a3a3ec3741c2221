package gateway

import (
	"context"
	"maps"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/kernel"
	"github.com/vgate-project/vgate/gateway/observe"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/tunnel"
	"github.com/vgate-project/vgate/overlap"
	"github.com/vgate-project/vgate/routing"
)

// The gateway's one read surface for its views (gateway/view: status,
// metrics, capture): each method copies what the running parts report,
// taking g.mu only to copy, and decides nothing.

// Observe is what each running part reports now: the config, the tunnels
// and their kind's view, the port, BGP sessions and probes, point-to-site,
// the name server, invites and the drain.
func (g *Gateway) Observe(ctx context.Context) observe.Observation {
	g.mu.Lock()
	cfg := g.cfg
	o := observe.Observation{
		Config:     cfg,
		Started:    g.started,
		Reloads:    g.reloads,
		Forwarding: kernel.Forwarding(),
		Sessions:   map[string]routing.NeighborStatus{},
		Probes:     map[string]api.ProbeStatus{},
		Peerings:   make([]observe.Peering, len(cfg.Peerings)),
	}
	for _, k := range g.kinds {
		if s := k.Port(); s != nil {
			o.Port = *s
		}
	}
	rs := g.relays
	tunnels := make([]tunnel.Tunnel, len(cfg.Peerings))
	views := make([]tunnel.View, len(cfg.Peerings))
	for i, p := range cfg.Peerings {
		tunnels[i] = g.tunnel(p.Name)
		if k := g.kinds[plan.KindOf(&p)]; k != nil && tunnels[i] != nil {
			views[i] = k.View(p.Name)
		}
	}
	b := g.bgp
	g.mu.Unlock()

	o.P2S = g.p2sStatus()
	o.DNS, o.Enroll = g.dns.Observe(), g.enroll.Observe() // names.Component, enroll.Component
	if b != nil {
		// Sessions, not Snapshot: status runs every second and needs no
		// route; reading every table would allocate on an idle hub.
		if ns, err := b.Sessions(ctx); err == nil {
			for _, n := range ns {
				o.Sessions[n.Name] = n
			}
		}
		o.Held = b.Held() // bgp.Component
		for _, p := range b.Probes() {
			o.Probes[p.Peering] = p
		}
	}
	pool := ""
	if o.P2S != nil {
		pool = overlap.Join(o.P2S.Pool)
	}
	o.Now = time.Now()
	for i := range cfg.Peerings {
		p := &cfg.Peerings[i]
		op := &o.Peerings[i]
		if t := tunnels[i]; t != nil {
			ot := &observe.Tunnel{MTU: t.MTU(), Down: views[i].Down, IPsec: views[i].IPsec}
			if s, err := t.Stats(); err != nil {
				ot.StatsErr = err.Error()
			} else {
				ot.Stats = s
				ot.Queue = s.Queue
			}
			if rs != nil {
				ot.Relays = true
				ot.Path, ot.Relay = rs.Path(p.Name) // relay.Transport
			}
			op.Tunnel = ot
		}
		op.EndpointMoved, op.EndpointPrevious = g.env.MovedAt(p.Endpoint) // environ.Facts
		if pool != "" {
			op.ReturnHint = g.p2s.ReturnHint(p.Name, pool, o.Now) // p2s.Component
		}
	}
	if b != nil {
		o.Drain = b.DrainStatus(o.Sessions) // bgp.Component
	}
	return o
}

// ObserveCounts is what only the metrics read: refused reloads by reason
// and the number of vgate's routes in the kernel.
func (g *Gateway) ObserveCounts() observe.Counts {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := observe.Counts{Refusals: maps.Clone(g.refusals), RoutesInstalled: -1}
	if !g.closed && g.kern != nil {
		if rs, err := g.kern.Routes(); err == nil {
			c.RoutesInstalled = len(rs)
		}
	}
	return c
}

// p2sStatus is the point-to-site section of Status, or nil: the
// component's, with the relay (relay.Transport) and the device's queue.
func (g *Gateway) p2sStatus() *api.P2SStatus {
	g.mu.Lock()
	rs := g.relays
	g.mu.Unlock()
	st := g.p2s.Observe()
	s := g.p2s.Current()
	if st == nil || s == nil {
		return st
	}
	if rs != nil {
		st.Relay = rs.P2SRelay()
	}
	q := s.QueueStats()
	st.Queue = &q
	return st
}
