package relay

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vgate-project/vgate/gateway/metrics"
)

// collector exports a Server's counters, read at scrape time.
type collector struct {
	s                                         *Server
	conns, accepted, refused, forwarded, fwdB *prometheus.Desc
	open, pending, queued, replaced, dropped  *prometheus.Desc
}

func newCollector(s *Server) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("vgate_relay_"+name, help, labels, nil)
	}
	return &collector{
		s:         s,
		conns:     d("connections", "Parties connected and authenticated now."),
		open:      d("open_connections", "TCP connections open now, counted from accept (bounded by max_connections)."),
		pending:   d("pending_connections", "Open connections that have not proved a key yet (bounded by max_pending, and per source by max_pending_per_source)."),
		accepted:  d("accepted_keys", "Public keys the relay accepts (accept, accept_gateway)."),
		refused:   d("refused_connections_total", "Connections refused or closed before they proved a key, by reason: key (not accepted, or the proof did not verify), full (max_connections), pending (max_pending), source (max_pending_per_source), timeout (no proof in time).", "reason"),
		forwarded: d("forwarded_datagrams_total", "Datagrams queued to their destination party."),
		fwdB:      d("forwarded_bytes_total", "Bytes of the datagrams forwarded (WireGuard ciphertext, without framing)."),
		queued:    d("queued_bytes", "Buffer bytes in every party's send queue now (each bounded by queue_bytes)."),
		replaced:  d("replaced_connections_total", "Connections closed because a newer one proved the same key."),
		dropped:   d("dropped_datagrams_total", "Datagrams dropped, by reason: no_peer (destination not connected), queue_full (the destination's queue was full), rate (the sender's key exceeded rate_limit_mbit), malformed.", "reason"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.open, c.pending, c.accepted, c.refused, c.forwarded, c.fwdB, c.queued, c.replaced, c.dropped} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	n := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	g(c.conns, float64(st.Connections))
	g(c.open, float64(st.Open))
	g(c.pending, float64(st.Pending))
	g(c.accepted, float64(len(*c.s.accepted.Load())))
	n(c.refused, st.Refused, "key")
	n(c.refused, st.RefusedFull, "full")
	n(c.refused, st.RefusedPending, "pending")
	n(c.refused, st.RefusedSource, "source")
	n(c.refused, st.ProofTimeouts, "timeout")
	n(c.forwarded, st.Forwarded)
	n(c.fwdB, st.ForwardedBytes)
	g(c.queued, float64(st.QueuedBytes))
	n(c.replaced, st.Replaced)
	n(c.dropped, st.DroppedNoPeer, "no_peer")
	n(c.dropped, st.DroppedQueueFull, "queue_full")
	n(c.dropped, st.DroppedRate, "rate")
	n(c.dropped, st.DroppedMalformed, "malformed")
}

// newRegistry holds the relay's metrics and the Go runtime and process
// collectors.
func newRegistry(s *Server) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{newCollector(s), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// serveMetrics serves /metrics on addr (plain HTTP: bind it to loopback or
// a private address) until the returned server is closed.
func serveMetrics(addr string, s *Server, log *slog.Logger) (*http.Server, error) {
	reg, err := newRegistry(s)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	hs := metrics.Serve(ln, reg, log)
	log.Info("serving relay metrics", "listen", ln.Addr().String(), "path", "/metrics")
	return hs, nil
}
