package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vgate-project/vgate/gateway"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/control"
)

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, &exitError{2, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, &exitError{2, fmt.Errorf("--log-format %q: want text or json", format)}
}

// configError prints every problem of an invalid config, one per line.
func configError(err error) error {
	var errs config.Errors
	if errors.As(err, &errs) {
		lines := make([]string, 0, len(errs)+1)
		lines = append(lines, fmt.Sprintf("config has %d problem(s):", len(errs)))
		for _, e := range errs {
			lines = append(lines, "  "+e.Error())
		}
		return &exitError{1, errors.New(strings.Join(lines, "\n"))}
	}
	return &exitError{1, err}
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	path := fs.String("config", "/etc/vgate/vgate.yaml", "config file")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		log.Error("config refused; gateway not started", "config", *path)
		return configError(err)
	}
	gw, err := gateway.Start(context.Background(), cfg, log.With("gateway", cfg.Name))
	if err != nil {
		return &exitError{1, fmt.Errorf("start: %w", err)}
	}
	api := &apiAdapter{gw: gw, path: *path, log: log}
	srv, err := control.Listen(cfg.ControlSocket, control.Handler(api))
	if err != nil {
		gw.Close()
		return &exitError{1, err}
	}
	stopOps, err := startOps(cfg.Metrics.Listen, gw, log) // metrics.go
	if err != nil {
		srv.Close()
		gw.Close()
		return &exitError{1, err}
	}
	sdNotify("READY=1")

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			log.Info("SIGHUP: reloading config", "config", *path)
			_ = api.Reload()
			continue
		}
		log.Info("shutting down", "signal", sig.String())
		break
	}
	sdNotify("STOPPING=1")
	stopOps()
	srv.Close()
	if err := gw.Close(); err != nil {
		return &exitError{1, fmt.Errorf("shutdown: %w", err)}
	}
	return nil
}

// apiAdapter serves the control socket from a running gateway; a reload
// re-reads the config file the gateway was started with.
type apiAdapter struct {
	gw   *gateway.Gateway
	path string
	log  *slog.Logger
}

func (a *apiAdapter) Status() any { return a.gw.Status(context.Background()) }

func (a *apiAdapter) Reload() error {
	sdNotify("RELOADING=1")
	defer sdNotify("READY=1")
	cfg, err := config.Load(a.path)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				a.log.Error("reload rejected: invalid config; still running the previous config", "problem", e.Error())
			}
		}
		// Count it as a failed reload on the gateway too.
		a.gw.RecordReloadFailure(err)
		return err
	}
	return a.gw.Reload(context.Background(), cfg)
}

// sdNotify tells systemd (Type=notify) about state changes; a no-op
// outside systemd.
func sdNotify(state string) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(state))
}
