package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/daemon"
)

// newLogger logs to w in format at level; on systemd's journal stream
// each line carries its syslog priority (journal.go).
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	return buildLogger(w, format, level, onJournal(w))
}

func buildLogger(w io.Writer, format, level string, journal bool) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, &exitError{2, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	var pw *priorityWriter
	if journal {
		pw = &priorityWriter{w: w}
		w = pw
	}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, &exitError{2, fmt.Errorf("--log-format %q: want text or json", format)}
	}
	if journal {
		h = &priorityHandler{mu: new(sync.Mutex), w: pw, next: h}
	}
	return slog.New(h), nil
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

// cmdRun runs the gateway in the foreground (gateway/daemon) until SIGINT
// or SIGTERM; SIGHUP reloads its config.
func cmdRun(args []string, stderr io.Writer) error {
	path, log, err := serviceFlags("run", "/etc/vgate/vgate.yaml", "config file", args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, daemon.Options{ConfigPath: path, Log: log, Version: buildVersion()}); err != nil {
		return configError(err)
	}
	return nil
}

// serviceFlags parses the flags the long-running commands (run, relay)
// share: --config (default def), --log-format, --log-level, no
// arguments. It returns the config path and the logger.
func serviceFlags(name, def, configHelp string, args []string, stderr io.Writer) (string, *slog.Logger, error) {
	fs := newFlags(name, stderr)
	path := fs.String("config", def, configHelp)
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return "", nil, err
	}
	if err := noArgs(fs); err != nil {
		return "", nil, err
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	return *path, log, err
}
