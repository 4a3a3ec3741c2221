package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vgate-project/vgate/gateway/connlimit"
)

// Connections of a metrics endpoint: a scraper holds one; beyond these
// bounds a connection is closed as it is accepted (connlimit), so one
// source cannot hold the descriptors and goroutines of many.
const (
	MaxConns      = 16
	MaxConnsPerIP = 4
)

// Timeouts of a metrics endpoint: a scrape is one small GET, so a client
// that is slower than this is cut off instead of holding a connection.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second // the collector itself may take up to 10s
	idleTimeout       = 60 * time.Second
)

// Serve serves reg at GET /metrics on ln (plain HTTP: bind it to loopback
// or a private address) until the returned server is shut down. It is the
// one HTTP server of the gateway's and the relay's metrics endpoints.
func Serve(ln net.Listener, reg prometheus.Gatherer, log *slog.Logger) *http.Server {
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
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
	}
	limited := connlimit.New(ln, MaxConns, MaxConnsPerIP)
	go func() {
		if err := srv.Serve(limited); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "error", err)
		}
	}()
	return srv
}
