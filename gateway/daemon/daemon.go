// Package daemon runs a gateway as the `vgate run` process: it loads the
// config, starts the gateway, serves the control socket and the metrics
// endpoint, logs tunnel transitions, reloads on SIGHUP and tells systemd
// (Type=notify) about each step. The CLI only parses flags and calls Run.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/control"
	"github.com/vgate-project/vgate/gateway/lograte"
	"github.com/vgate-project/vgate/gateway/view"
	"github.com/vgate-project/vgate/internal/sdnotify"
)

// Options configures Run.
type Options struct {
	ConfigPath string
	Log        *slog.Logger
	Version    string // exported in vgate_build_info
}

// Run runs the gateway of o.ConfigPath until ctx ends, then stops it. A
// config that does not load is returned as config.Load's error (a
// config.Errors lists every problem). SIGHUP reloads the config.
func Run(ctx context.Context, o Options) error {
	// Every repeating message is limited per subject (lograte): a
	// per-packet error cannot bury the state changes around it.
	log := slog.New(lograte.New(o.Log.Handler(), lograte.Window, lograte.Burst))
	setGCPercent()
	stopPprof := startPprof(log) // pprof.go: VGATE_DEBUG_PPROF
	defer stopPprof()
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		log.Error("config refused; gateway not started", "config", o.ConfigPath)
		return err
	}
	// Before any effect: a gateway already answering on this control
	// socket keeps its tunnels and its charon (charon/ beside the socket).
	if err := control.CheckFree(cfg.ControlSocket); err != nil {
		return err
	}
	gw, err := gateway.Start(ctx, cfg, log.With("gateway", cfg.Name))
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	// The views (status, metrics, capture) read the gateway's
	// observations, and the clients and BGP report as the control API
	// serves them (control.go); the gateway's own logger carries its name.
	srv := &server{Gateway: gw, path: o.ConfigPath, log: log}
	v := view.New(srv, log.With("gateway", cfg.Name))
	srv.view = v
	ctl, err := control.Listen(cfg.ControlSocket, control.Handler(srv))
	if err != nil {
		gw.Close()
		return err
	}
	stopOps, err := startOps(cfg.Metrics.Listen, v, cfg.Name, o.Version, log) // metrics.go
	if err != nil {
		ctl.Close()
		gw.Close()
		return err
	}
	sdnotify.Notify("READY=1")

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
loop:
	for {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading config", "config", o.ConfigPath)
			_ = srv.Reload(ctx)
		case <-ctx.Done():
			break loop
		}
	}
	log.Info("shutting down")
	sdnotify.Notify("STOPPING=1")
	stopOps()
	ctl.Close()
	if err := gw.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// server serves the control socket from a running gateway, its components
// (control.go) and its views (status, capture); a reload re-reads the
// config file the gateway was started with.
type server struct {
	*gateway.Gateway
	view *view.View
	path string
	log  *slog.Logger
}

var _ control.Gateway = (*server)(nil)

// Status is the gateway's status view.
func (s *server) Status(ctx context.Context) (api.Status, error) { return s.view.Status(ctx) }

// Capture is the gateway's capture view.
func (s *server) Capture(ctx context.Context, q api.CaptureQuery, w io.Writer) (api.CaptureSummary, error) {
	return s.view.Capture(ctx, q, w)
}

// Reload re-reads the config file and applies it; a failure has
// api.CodeReloadFailed and leaves the previous config running.
func (s *server) Reload(ctx context.Context) error {
	sdnotify.Notify("RELOADING=1")
	defer sdnotify.Notify("READY=1")
	cfg, err := config.Load(s.path)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				s.log.Error("reload rejected: invalid config; still running the previous config", "problem", e.Error())
			}
		}
		// Count it as a failed reload on the gateway too.
		s.Gateway.RecordReloadFailure(err)
		return api.WithCode(api.CodeReloadFailed, err)
	}
	return api.WithCode(api.CodeReloadFailed, s.Gateway.Reload(ctx, cfg))
}
