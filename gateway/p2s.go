package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/relay"
	"golang.zx2c4.com/wireguard/conn"
)

// ErrNoP2S is returned by the client operations when point_to_site is not
// configured. It has api.CodeNoP2S.
var ErrNoP2S = api.WithCode(api.CodeNoP2S, errors.New("point_to_site is not configured on this gateway"))

// ErrP2SDisabled is returned by the client operations when point_to_site
// is configured but could not start (Status.P2S.Disabled says why). It has
// api.CodeNoP2S.
var ErrP2SDisabled = api.WithCode(api.CodeNoP2S, errors.New("point_to_site is disabled"))

// applyP2S moves the point-to-site server to the plan: opens it when
// point_to_site appears, updates it in place (sessions stay) when the
// planned device changes, closes it when it goes. A change it cannot
// apply (registered clients outside a new pool) is refused before
// anything changes. The pool's kernel routes are in the plan's routes. A
// corrupt registry returns an error matching p2s.ErrCorruptRegistry: the
// caller (applyConfig) then plans without point-to-site. g.mu is held.
func (g *Gateway) applyP2S(st plan.State) error {
	want := st.P2S
	switch {
	case want == nil && g.p2s == nil:
		return nil
	case want == nil:
		g.p2s.Close()
		g.p2s = nil
		g.setP2SRelay(st.Host.PrivateKey, want)
		g.log.Info("point-to-site stopped (point_to_site removed from the config)")
		return nil
	case g.p2s == nil:
		var bind *relay.Bind
		s, err := p2s.Open(p2s.Options{
			Config:     want.Config,
			PrivateKey: want.PrivateKey,
			StateDir:   want.StateDir,
			MTU:        want.MTU,
			NewTUN:     dataplane.CreateTUN,
			NewBind: func() conn.Bind { // the relay transport (relays.go)
				bind = relay.NewBind(conn.NewStdNetBind(), nil)
				return bind
			},
			LinkUp:    g.kern.LinkUp,
			Log:       g.log,
			Self:      want.Self,
			OnClients: g.pubKeys.setClients, // pubkeys.go
		})
		if err != nil {
			return err
		}
		g.p2s, g.p2sBind = s, bind
		g.setP2SRelay(want.PrivateKey, want)
		return nil
	case g.applied.P2S.Same(want):
		g.setP2SRelay(want.PrivateKey, want)
		return nil // unchanged (a re-plan after a RIB change)
	default:
		g.p2s.SetSelf(want.Self)
		g.setP2SRelay(want.PrivateKey, want)
		return g.p2s.Update(want.Config, want.PrivateKey)
	}
}

// hostAddrs are the host's own addresses the point-to-site policy closes
// to clients (plan.Input.HostAddrs), gathered at start and reload; none
// without point_to_site.
func hostAddrs(cfg *config.Config) ([]netip.Addr, error) {
	if cfg.PointToSite == nil {
		return nil, nil
	}
	local, err := p2s.LocalAddrs()
	if err != nil {
		return nil, fmt.Errorf("point_to_site: list the host's addresses: %w", err)
	}
	return local, nil
}

// setP2SRelay gives the point-to-site device the plan's relay (none when
// want is nil), through the tunnels' relay connections (relays.go). g.mu
// is held.
func (g *Gateway) setP2SRelay(key keys.PrivateKey, want *plan.P2S) {
	if g.relays == nil {
		return
	}
	var target plan.RelayTarget
	if want != nil {
		target = want.Relay
	}
	var b *relay.Bind
	if g.p2s != nil {
		b = g.p2sBind
	}
	g.relays.setP2S(key, b, target)
}

func (g *Gateway) closeP2S() {
	if g.p2s != nil {
		g.p2s.Close()
		g.p2s = nil
		g.setP2SRelay(g.applied.Host.PrivateKey, nil) // the device is gone: no relay
	}
}

func (g *Gateway) p2sServer() (*p2s.Server, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errStopped
	}
	if g.p2s == nil && g.p2sDisabled != "" {
		return nil, fmt.Errorf("%w: %s", ErrP2SDisabled, g.p2sDisabled)
	}
	if g.p2s == nil {
		return nil, ErrNoP2S
	}
	return g.p2s, nil
}

// AddClient registers a point-to-site client and returns its config.
func (g *Gateway) AddClient(ctx context.Context, req api.AddClientRequest) (api.AddedClient, error) {
	s, err := g.p2sServer()
	if err != nil {
		return api.AddedClient{}, err
	}
	if g.pendingInvite(req.Name) { // invite.go
		return api.AddedClient{}, api.WithCode(api.CodeConflict, fmt.Errorf("client %q: a pending invite holds this name (revoke it first: vgate client revoke %s)", req.Name, req.Name))
	}
	return s.Add(req)
}

// Clients lists the point-to-site clients.
func (g *Gateway) Clients(ctx context.Context) ([]api.ClientInfo, error) {
	s, err := g.p2sServer()
	if err != nil {
		return nil, err
	}
	return s.Clients()
}

// RevokeClient removes a point-to-site client at once.
func (g *Gateway) RevokeClient(ctx context.Context, name string) (api.ClientInfo, error) {
	s, err := g.p2sServer()
	if err != nil {
		return api.ClientInfo{}, err
	}
	return s.Revoke(name)
}

// p2sStatus is the point-to-site section of Status, or nil.
func (g *Gateway) p2sStatus() *api.P2SStatus {
	g.mu.Lock()
	s, disabled := g.p2s, g.p2sDisabled
	rs := g.relays
	g.mu.Unlock()
	if s == nil && disabled != "" {
		return &api.P2SStatus{Disabled: disabled}
	}
	if s == nil {
		return nil
	}
	st := s.Status()
	if rs != nil {
		st.Relay = rs.p2sRelay() // relays.go
	}
	q := s.QueueStats()
	st.Queue = queueStatus(&q) // apiconv.go
	return &st
}
