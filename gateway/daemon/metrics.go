package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vgate-project/vgate/gateway"
	"github.com/vgate-project/vgate/gateway/connlimit"
	"github.com/vgate-project/vgate/gateway/metrics"
)

// Timeouts of the metrics endpoint: a scrape is one small GET, so a
// client that is slower than this is cut off instead of holding a
// connection.
const (
	metricsReadTimeout  = 10 * time.Second
	metricsWriteTimeout = 30 * time.Second // the collector itself may take up to 10s
	metricsIdleTimeout  = 60 * time.Second
)

// Connections of the metrics endpoint: a scraper holds one; beyond these
// bounds a connection is closed as it is accepted (connlimit), so one
// source cannot hold the descriptors and goroutines of many.
const (
	metricsMaxConns      = 16
	metricsMaxConnsPerIP = 4
)

// newRegistry returns a registry with the gateway's collector and the Go
// and process collectors. The registry is the caller's; nothing is
// registered globally.
func newRegistry(source metrics.Source, version string) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		metrics.New(source, version),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// metricsServer serves /metrics on metrics.listen.
type metricsServer struct {
	srv  *http.Server
	addr net.Addr // where it listens
}

// serveMetrics starts the Prometheus endpoint on addr ("" disables it and
// returns nil). The listening socket is open when it returns, so a port in
// use is a start error, not a log line.
func serveMetrics(addr string, source metrics.Source, version string, log *slog.Logger) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	reg, err := newRegistry(source, version)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "vgate: metrics at /metrics")
	})
	s := &metricsServer{srv: newMetricsHTTPServer(mux), addr: ln.Addr()}
	limited := connlimit.New(ln, metricsMaxConns, metricsMaxConnsPerIP)
	go func() {
		if err := s.srv.Serve(limited); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "error", err)
		}
	}()
	log.Info("serving metrics", "listen", ln.Addr().String(), "path", "/metrics")
	return s, nil
}

func newMetricsHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       metricsIdleTimeout,
	}
}

// Close stops the endpoint; nil-safe (metrics disabled).
func (s *metricsServer) Close() error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// startOps starts what a running gateway offers operators besides the
// control socket: the metrics endpoint (if metrics.listen is set) and the
// watcher that logs tunnel up/down transitions. stop ends both.
func startOps(metricsListen string, gw *gateway.Gateway, version string, log *slog.Logger) (stop func(), err error) {
	ms, err := serveMetrics(metricsListen, gw, version, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		gw.WatchPeerings(ctx, time.Second)
	}()
	return func() {
		cancel()
		<-done
		ms.Close()
	}, nil
}
