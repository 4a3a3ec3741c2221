package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strings"
	"time"
)

// pprofEnv names the environment variable that turns on Go's profiling
// endpoints (net/http/pprof) for debugging a running gateway: a unix socket
// path (absolute) or a loopback host:port. Off when unset. It is an
// environment variable, not a config field, on purpose: it is for a
// developer or support session, never for production configs.
const pprofEnv = "VGATE_DEBUG_PPROF"

// pprofListener parses the value of VGATE_DEBUG_PPROF: an absolute path is
// a unix socket (a stale socket file is replaced); anything else must be a
// loopback address with a port. Profiles show memory contents such as
// addresses and keys in flight, so nothing else is accepted.
func pprofListener(v string) (network, address string, err error) {
	if strings.HasPrefix(v, "/") {
		return "unix", v, nil
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		return "", "", fmt.Errorf("%s=%q: want an absolute unix socket path or a loopback address:port (127.0.0.1:6060, [::1]:6060): %v", pprofEnv, v, err)
	}
	if !ap.Addr().IsLoopback() {
		return "", "", fmt.Errorf("%s=%q: %s is not a loopback address; profiles must not be reachable from the network", pprofEnv, v, ap.Addr())
	}
	return "tcp", ap.String(), nil
}

// startPprof serves /debug/pprof/ when VGATE_DEBUG_PPROF is set and
// returns the function that stops it. A bad value is logged and ignored:
// a debugging aid never keeps the gateway from starting.
func startPprof(log *slog.Logger) func() {
	v := os.Getenv(pprofEnv)
	if v == "" {
		return func() {}
	}
	network, addr, err := pprofListener(v)
	if err != nil {
		log.Error("debug profiling not started", "err", err)
		return func() {}
	}
	if network == "unix" {
		if err := os.Remove(addr); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Error("debug profiling not started", "socket", addr, "err", err)
			return func() {}
		}
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		log.Error("debug profiling not started", "listen", addr, "err", err)
		return func() {}
	}
	if network == "unix" {
		_ = os.Chmod(addr, 0o600)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Warn("debug profiling endpoint open (VGATE_DEBUG_PPROF); not for production", "listen", addr)
	return func() {
		_ = srv.Close()
		if network == "unix" {
			_ = os.Remove(addr)
		}
	}
}
