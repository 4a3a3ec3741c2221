package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vgate-project/vgate/gateway/metrics"
	"github.com/vgate-project/vgate/gateway/view"
)

// metricsMaxConnsPerIP is the endpoint's bound per source address.
const metricsMaxConnsPerIP = metrics.MaxConnsPerIP

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
	s := &metricsServer{srv: metrics.Serve(ln, reg, log), addr: ln.Addr()}
	log.Info("serving metrics", "listen", ln.Addr().String(), "path", "/metrics")
	return s, nil
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
// watcher that logs tunnel up/down transitions, both from the gateway's
// views v; name is the gateway's. stop ends both.
func startOps(metricsListen string, v *view.View, name, version string, log *slog.Logger) (stop func(), err error) {
	ms, err := serveMetrics(metricsListen, metrics.SourceFunc(v.Metrics), version, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The gateway's own logger carries its name (daemon.go).
		view.WatchPeerings(ctx, v, log.With("gateway", name), time.Second)
	}()
	return func() {
		cancel()
		<-done
		ms.Close()
	}, nil
}
