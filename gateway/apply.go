package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/tunnel"
	"github.com/vgate-project/vgate/gateway/tunnel/ipsec"
	"github.com/vgate-project/vgate/gateway/tunnel/wireguard"
)

// apply moves every running part to st, in order: tunnels (each kind),
// the point-to-site device, enrollment, the tunnel address, the name
// server, the kernel routes, the BGP speaker and its probes. Each part
// changes only what differs from what runs, so applying an unchanged plan
// is a no-op. It reads nothing but st and the running parts. On error the
// parts applied so far keep the new state: the caller applies the old
// plan again to roll back. g.mu is held.
func (g *Gateway) apply(ctx context.Context, st plan.State) error {
	if err := g.applyTunnels(ctx, st); err != nil {
		return err
	}
	if err := g.p2s.Set(ctx, st.Host.PrivateKey, p2sWant(st.P2S)); err != nil { // p2s.go
		return err
	}
	if err := g.applyEnroll(ctx, st); err != nil { // invite.go
		return err
	}
	if err := g.addr.Set(st.TunnelAddress, st.Host.StateDir); err != nil { // recorded for crash recovery
		return err
	}
	if err := g.dns.Set(ctx, st.DNS); err != nil { // after the address: it must be on lo
		return err
	}
	if err := g.kern.SetRoutes(st.Routes); err != nil {
		return err
	}
	g.p2s.SetReturns(st.PeeringRoutes(plan.KindWireGuard))
	if err := g.bgp.Set(ctx, g.withDemand(st)); err != nil { // bgp.go
		return err
	}
	g.applied = st
	return nil
}

// applyTunnels hands each tunnel kind its tunnels of the plan.
func (g *Gateway) applyTunnels(ctx context.Context, st plan.State) error {
	byKind := map[plan.Kind][]plan.Tunnel{}
	for _, t := range st.Tunnels {
		byKind[t.Kind] = append(byKind[t.Kind], t)
	}
	for k := range byKind {
		if g.kinds[k] == nil {
			kind, err := g.newKind(k, st.Host)
			if err != nil {
				return err
			}
			g.kinds[k] = kind
		}
	}
	var errs []error
	for k, kind := range g.kinds {
		errs = append(errs, kind.Set(ctx, st.Host.PrivateKey, byKind[k]))
	}
	return errors.Join(errs...)
}

// newKind opens the implementation of kind k (gateway/tunnel/...). This
// switch is the only place that names the implementations (Start opens
// the WireGuard kind itself: its port is the gateway's identity).
func (g *Gateway) newKind(k plan.Kind, h plan.Host) (tunnel.Kind, error) {
	switch k {
	case plan.KindWireGuard:
		return wireguard.New(h.ListenPort, g.kern, g.log)
	case plan.KindIPsec:
		// A restarted charon has a new TUN: the routes through it need
		// the running config applied again.
		return ipsec.New(h.RunDir, g.reapply, g.log)
	}
	return nil, fmt.Errorf("tunnel kind %q is not implemented", k)
}

// reapply applies the running config again, e.g. after charon restarted
// (its TUN, and the routes through it, are new).
func (g *Gateway) reapply() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	if err := g.applyConfig(g.ctx, g.cfg); err != nil {
		g.log.Error("re-applying the config after charon restarted", "error", err)
	}
}

// tunnel returns the running tunnel of a peering, of whatever kind, or nil.
// g.mu is held.
func (g *Gateway) tunnel(name string) tunnel.Tunnel {
	for _, k := range g.kinds {
		if t := k.Tunnel(name); t != nil {
			return t
		}
	}
	return nil
}

// teardown undoes every part in the reverse order of apply: BGP sessions
// end before their tunnels, routes and the address go before the devices.
// It works on a half-built gateway (Start failing part way). g.mu is held
// or the gateway is not shared yet.
func (g *Gateway) teardown() error {
	var errs []error
	// A planned stop with bgp.graceful_restart ends the sessions without
	// a NOTIFICATION, first, while the tunnels still carry the close.
	if g.bgp != nil {
		g.bgp.Close(g.closed && g.applied.BGP != nil && g.applied.BGP.GracefulStop)
	}
	if g.dns != nil {
		g.dns.Close()
	}
	if g.enroll != nil {
		g.enroll.Close()
	}
	if g.kern != nil {
		errs = append(errs, g.kern.SetRoutes(nil))
		if g.addr != nil {
			errs = append(errs, g.addr.Remove())
		}
	}
	if g.p2s != nil {
		g.p2s.Close(g.applied.Host.PrivateKey)
	}
	for k, kind := range g.kinds {
		errs = append(errs, kind.Close())
		delete(g.kinds, k)
	}
	g.relays = nil // closed with the WireGuard kind
	if g.kern != nil {
		g.kern.Close()
	}
	if g.addr != nil {
		errs = append(errs, g.addr.Forget())
	}
	g.cancel()
	return errors.Join(errs...)
}
