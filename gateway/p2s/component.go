package p2s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/relay"
	"golang.zx2c4.com/wireguard/conn"
)

// ErrNoP2S is returned by the client operations when point_to_site is not
// configured. It has api.CodeNoP2S.
var ErrNoP2S = api.WithCode(api.CodeNoP2S, errors.New("point_to_site is not configured on this gateway"))

// ErrDisabled is returned by the client operations when point_to_site is
// configured but could not start (Observe's Disabled says why). It has
// api.CodeNoP2S.
var ErrDisabled = api.WithCode(api.CodeNoP2S, errors.New("point_to_site is disabled"))

// Hooks are what the Component needs of the rest of the gateway.
type Hooks struct {
	// LinkUp sets the device's interface up (kernel).
	LinkUp func(ifname string, mtu int) error
	// OnClients receives the registered clients after every change
	// (Options.OnClients).
	OnClients func([]Client)
	// SetRelay gives the device's bind the plan's relay through the
	// tunnels' relay connections, or none (b nil, target zero). It is
	// called from Set and Close, with the gateway's lock held.
	SetRelay func(key keys.PrivateKey, b *relay.Bind, target relay.Target)
}

// Want is the point-to-site device a gateway should run: the plan's
// (plan.P2S), which the gateway converts; nil for none.
type Want struct {
	Config *config.PointToSite
	MTU    int
	// Relay is point_to_site.relay, which the device shares with the
	// tunnels' relay connections; zero for none.
	Relay relay.Target
	// PrivateKey is the device's key (the gateway's); StateDir holds the
	// client registry.
	PrivateKey keys.PrivateKey
	StateDir   string
	// Self are the gateway's own addresses, closed to clients but for
	// ping, DNS and the groups' gateway_services.
	Self []netip.Addr
}

// same reports whether a and b are the same device state: an equal
// point_to_site section (by value, not by address), MTU, relay, key,
// registry and own addresses. Either may be nil (no device).
func same(a, b *Want) bool {
	if a == nil || b == nil {
		return a == b
	}
	return reflect.DeepEqual(*a, *b) // follows Config: its content
}

// Component is the point-to-site server as one running part of the
// gateway: Set moves it to the plan's device (a Want), Observe is
// its status section, Close stops it. It also watches whether the
// peerings route the pool back (returnwatch.go), in a loop of its own.
//
// Locks: Set, Close and SetReturns are called with the gateway's lock
// held and take c.mu; Current is lock-free (an atomic pointer), so the
// name server (per query), the return loop and the client operations
// never wait for a Set.
type Component struct {
	log   *slog.Logger
	hooks Hooks

	mu       sync.Mutex
	s        *Server
	bind     *relay.Bind // the device's bind: its relay transport
	applied  *Want       // the device state last set; nil without one
	disabled string      // why point_to_site is configured but not running ("" otherwise)

	cur     atomic.Pointer[Server]
	returns returnWatch
}

// NewComponent returns a stopped point-to-site side; its return watch
// runs until ctx ends.
func NewComponent(ctx context.Context, hooks Hooks, log *slog.Logger) *Component {
	c := &Component{log: log, hooks: hooks}
	go c.returnLoop(ctx)
	return c
}

// Set moves the server to want: opens it when point_to_site appears,
// updates it in place (sessions stay) when the planned device changes,
// closes it when it goes. A change it cannot apply (registered clients
// outside a new pool) is refused before anything changes. A corrupt
// registry returns an error matching ErrCorruptRegistry and the
// Component is disabled (Disabled) until Retry: the caller then plans
// without point-to-site. The pool's kernel routes are in the plan's
// routes. The gateway's own addresses (want.Self) are closed to clients
// but for ping, DNS and the groups' gateway_services. key is the
// gateway's (the relay's client key when want is nil).
func (c *Component) Set(ctx context.Context, key keys.PrivateKey, want *Want) (err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		if errors.Is(err, ErrCorruptRegistry) {
			c.disabled = err.Error()
		}
	}()
	switch {
	case want == nil && c.s == nil:
		c.applied = nil
		return nil
	case want == nil:
		c.closeLocked(key)
		c.log.Info("point-to-site stopped (point_to_site removed from the config)")
		return nil
	case c.s == nil:
		var bind *relay.Bind
		s, err := Open(Options{
			Config:     want.Config,
			PrivateKey: want.PrivateKey,
			StateDir:   want.StateDir,
			MTU:        want.MTU,
			NewTUN:     dataplane.CreateTUN,
			NewBind: func() conn.Bind { // the relay transport (relay.Transport)
				bind = relay.NewBind(conn.NewStdNetBind(), nil)
				return bind
			},
			LinkUp:    c.hooks.LinkUp,
			Log:       c.log,
			Self:      want.Self,
			OnClients: c.hooks.OnClients,
		})
		if err != nil {
			return err
		}
		c.s, c.bind, c.applied = s, bind, want
		c.cur.Store(s)
		c.hooks.SetRelay(want.PrivateKey, bind, want.Relay)
		return nil
	case same(c.applied, want):
		c.hooks.SetRelay(want.PrivateKey, c.bind, want.Relay)
		return nil // unchanged (a re-plan after a RIB change)
	default:
		c.s.SetSelf(want.Self)
		c.hooks.SetRelay(want.PrivateKey, c.bind, want.Relay)
		if err := c.s.Update(want.Config, want.PrivateKey); err != nil {
			// The server keeps its config: its own addresses go back too,
			// since the rollback's Set finds the old want unchanged.
			if c.applied != nil {
				c.s.SetSelf(c.applied.Self)
			}
			return err
		}
		c.applied = want
		return nil
	}
}

// SetReturns gives the return watch the plan's routes: each peering's
// own prefixes, those its tunnel alone carries (plan.State.PeeringRoutes).
// It runs after the kernel routes are set.
func (c *Component) SetReturns(routes map[string][]netip.Prefix) {
	if s := c.Current(); s != nil {
		s.Filter().Returns().SetRoutes(routes)
	}
}

// Close stops the server; key is the relay's client key.
func (c *Component) Close(key keys.PrivateKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s != nil {
		c.closeLocked(key)
	}
}

// closeLocked stops a running server and its relay. c.mu is held.
func (c *Component) closeLocked(key keys.PrivateKey) {
	c.s.Close()
	c.s, c.bind, c.applied = nil, nil, nil
	c.cur.Store(nil)
	c.hooks.SetRelay(key, nil, relay.Target{}) // the device is gone: no relay
}

// Current is the running server, nil when none. It does not wait for Set.
func (c *Component) Current() *Server { return c.cur.Load() }

// Disabled says why point_to_site is configured but not running (a
// corrupt registry), "" otherwise.
func (c *Component) Disabled() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.disabled
}

// Retry clears Disabled: a new config tries point-to-site again.
func (c *Component) Retry() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disabled = ""
}

// Server is the running server for the client operations, or why there
// is none (ErrNoP2S, ErrDisabled with the reason).
func (c *Component) Server() (*Server, error) {
	c.mu.Lock()
	s, disabled := c.s, c.disabled
	c.mu.Unlock()
	if s == nil && disabled != "" {
		return nil, fmt.Errorf("%w: %s", ErrDisabled, disabled)
	}
	if s == nil {
		return nil, ErrNoP2S
	}
	return s, nil
}

// Observe is the point-to-site section of status without the parts that
// other components own (the relay, the queue's conversion): nil without
// point_to_site, only Disabled while disabled.
func (c *Component) Observe() *api.P2SStatus {
	c.mu.Lock()
	s, disabled := c.s, c.disabled
	c.mu.Unlock()
	if s == nil && disabled != "" {
		return &api.P2SStatus{Disabled: disabled}
	}
	if s == nil {
		return nil
	}
	st := s.Status()
	return &st
}
