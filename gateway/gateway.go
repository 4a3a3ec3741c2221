package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/kernel"
	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/gateway/wgbind"
	"golang.zx2c4.com/wireguard/conn"
)

// Gateway is one running vgate gateway. Its methods are safe for
// concurrent use; they are serialized on one mutex, the single owner of
// control-plane state.
type Gateway struct {
	log *slog.Logger
	env Env

	mu      sync.Mutex
	cfg     *config.Config
	kern    *kernel.Kernel
	mux     *wgbind.Mux
	plane   *dataplane.Plane
	started time.Time
	reloads ReloadStats
	closed  bool
	// refusals counts refused reloads by reason (metrics.go).
	refusals map[string]uint64
	// p2s is the point-to-site server, nil without point_to_site (p2s.go).
	p2s *p2s.Server
	// p2sDisabled says why point_to_site is configured but not running
	// (a corrupt registry), "" otherwise (p2s.go).
	p2sDisabled string
	// bgp is the BGP speaker and tunnel probe, nil without bgp (bgp.go).
	bgp *bgpRuntime
}

// ReloadStats counts reloads by result.
type ReloadStats struct {
	OK        int       `json:"ok"`
	Failed    int       `json:"failed"`
	LastError string    `json:"last_error,omitempty"`
	Last      time.Time `json:"last,omitempty"`
}

// runtimeState is what a gateway records in state_dir so that a restart
// after a crash can remove what the crashed run left in the kernel.
type runtimeState struct {
	TunnelAddress netip.Addr `json:"tunnel_address"`
}

func runtimePath(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "runtime.json") }

// Start brings up the gateway described by cfg (already validated by
// config.Load). If any step fails, everything done so far is undone and the
// error says which step.
func Start(cfg *config.Config, log *slog.Logger) (_ *Gateway, err error) {
	g := &Gateway{
		log:     log,
		cfg:     cfg,
		started: time.Now(),
	}
	g.kern, err = kernel.New()
	if err != nil {
		return nil, err
	}
	g.env = Env{Resolve: ResolveUDP, UnderlayMTU: g.kern.UnderlayMTU}
	defer func() {
		if err != nil {
			g.teardown()
		}
	}()

	if v4, v6 := kernel.Forwarding(); !v4 || !v6 {
		log.Warn("IP forwarding is off: hosts behind this gateway cannot reach peered networks until it is on (sysctl -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1)",
			"ipv4_forwarding", v4, "ipv6_forwarding", v6)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}

	g.mux = wgbind.NewMux(conn.NewStdNetBind(), log.With("component", "bind"))
	port, err := g.mux.Open(cfg.ListenPort)
	if err != nil {
		g.mux = nil
		return nil, fmt.Errorf("listen_port %d: open UDP socket: %w", cfg.ListenPort, err)
	}
	log.Info("listening for tunnels", "port", port, "public_key", cfg.PrivateKey.Public().String())

	g.plane = &dataplane.Plane{
		NewBind: g.mux.NewBind,
		NewTUN:  dataplane.CreateTUN,
		LinkUp:  g.kern.LinkUp,
		Log:     log,
	}
	if err := g.plane.SetPrivateKey(cfg.PrivateKey); err != nil {
		return nil, err
	}

	// A crashed run may have left its tunnel address on lo.
	var prev runtimeState
	if b, err := os.ReadFile(runtimePath(cfg)); err == nil {
		_ = json.Unmarshal(b, &prev)
	}
	if err := g.apply(cfg, prev.TunnelAddress); err != nil {
		return nil, err
	}
	log.Info("gateway started", "name", cfg.Name, "peerings", len(cfg.Peerings), "max_tunnels", cfg.MaxTunnels)
	return g, nil
}

// apply moves the data plane and the kernel to cfg. oldAddr is the tunnel
// address currently on lo (to be replaced if it differs).
func (g *Gateway) apply(cfg *config.Config, oldAddr netip.Addr) error {
	tunnels, routes, errs := Desired(cfg, g.env)
	tunnels, routes = g.withBGP(cfg, tunnels, routes) // bgp.go: learned routes, AllowedIPs
	for _, e := range errs {
		g.log.Warn("peering endpoint not usable; the tunnel waits for the remote side to dial in", "error", e)
	}
	if err := g.plane.SetPrivateKey(cfg.PrivateKey); err != nil {
		return err
	}
	if _, err := g.plane.Set(tunnels); err != nil {
		return err
	}
	p2sRoutes, err := g.applyP2S(cfg) // p2s.go
	if err != nil {
		return err
	}
	routes = append(routes, p2sRoutes...)
	if err := g.kern.SetLocalAddress(cfg.TunnelAddress, oldAddr); err != nil {
		return err
	}
	if err := writeRuntime(cfg); err != nil {
		return err
	}
	if err := g.kern.SetRoutes(routes); err != nil {
		return err
	}
	return g.applyBGP(cfg) // bgp.go
}

func writeRuntime(cfg *config.Config) error {
	b, _ := json.Marshal(runtimeState{TunnelAddress: cfg.TunnelAddress})
	tmp := runtimePath(cfg) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	if err := os.Rename(tmp, runtimePath(cfg)); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	return nil
}

// Reload applies a new, validated config. Changes that need a restart are
// refused. Only what differs is applied: unchanged tunnels keep their
// sessions. If applying fails, the old config is applied again and the
// error is returned; the gateway keeps running the old config.
func (g *Gateway) Reload(cfg *config.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	err := g.reloadLocked(cfg)
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

func (g *Gateway) reloadLocked(cfg *config.Config) error {
	if g.closed {
		return errors.New("gateway is stopped")
	}
	old := g.cfg
	if err := checkReload(old, cfg); err != nil {
		return err
	}
	if err := g.apply(cfg, old.TunnelAddress); err != nil {
		if rerr := g.apply(old, cfg.TunnelAddress); rerr != nil {
			return fmt.Errorf("%w; rolling back also failed: %v", err, rerr)
		}
		return fmt.Errorf("%w (rolled back)", err)
	}
	g.cfg = cfg
	g.log.Info("reload applied", "peerings", len(cfg.Peerings))
	return nil
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
	err := g.teardown()
	g.log.Info("gateway stopped", "name", g.cfg.Name)
	return err
}

func (g *Gateway) teardown() error {
	var errs []error
	g.closeBGP() // bgp.go: sessions end before their tunnels
	if g.plane != nil {
		g.plane.Close()
	}
	g.closeP2S()
	if g.kern != nil {
		errs = append(errs, g.kern.SetRoutes(nil))
		errs = append(errs, g.kern.RemoveLocalAddress(g.cfg.TunnelAddress))
		g.kern.Close()
	}
	if g.mux != nil {
		errs = append(errs, g.mux.Close())
	}
	if g.cfg.StateDir != "" {
		if err := os.Remove(runtimePath(g.cfg)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
