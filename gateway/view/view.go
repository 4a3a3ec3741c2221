package view

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/observe"
)

// Gateway is what the views read of a running gateway
// (*gateway.Gateway): its observations and, for a capture, a tap.
type Gateway interface {
	// Observe is what each running part reports now.
	Observe(ctx context.Context) observe.Observation
	// ObserveCounts is what only the metrics read.
	ObserveCounts() observe.Counts
	Clients(ctx context.Context) ([]api.ClientInfo, error)
	BGP(ctx context.Context) (api.BGPStatus, error)
	// Tap attaches c to a peering's tunnel or a point-to-site client
	// until stop; translated says the peering runs NAT rules.
	Tap(q api.CaptureQuery, c *dataplane.Capture) (stop func(), translated bool, err error)
	// Closed reports whether the gateway has been closed.
	Closed() bool
}

// View serves status, metrics and captures of one running gateway. It
// keeps the drop counters' recent history, so one View serves every
// reader of a gateway. Its methods are safe for concurrent use.
type View struct {
	gw  Gateway
	log *slog.Logger
	// recent tells the growth of drop counters over the last minute
	// (recent.go).
	recent recentCounters
}

// New returns the view of gw; log is the gateway's logger (captures log
// their start and end).
func New(gw Gateway, log *slog.Logger) *View {
	return &View{gw: gw, log: log}
}

// Status reports the gateway's current state (the pure Status) with the
// drop counters' last-minute growth.
func (v *View) Status(ctx context.Context) (api.Status, error) {
	o := v.gw.Observe(ctx)
	st := Status(o)
	v.recent.fill(&st, o.Now) // recent.go
	return st, nil
}

// Closed reports whether the gateway has been closed.
func (v *View) Closed() bool { return v.gw.Closed() }

// Metrics gathers the gateway's metrics now: per-peer figures are read from
// the WireGuard devices, sessions from the BGP speaker, routes from the
// kernel. It is called per scrape; nothing polls in between. Peering
// states and reasons are Status's (peering.Evaluate).
func (v *View) Metrics(ctx context.Context) api.Metrics {
	st, _ := v.Status(ctx)
	m := api.Metrics{Status: st, RoutesInstalled: -1}
	if m.P2S != nil {
		if cs, err := v.gw.Clients(ctx); err == nil {
			m.Clients = cs
		}
	}
	if b, err := v.gw.BGP(ctx); err == nil && b.Enabled {
		m.BGP = &b
	}
	c := v.gw.ObserveCounts()
	m.Refusals, m.RoutesInstalled = c.Refusals, c.RoutesInstalled
	return m
}

// Capture writes the plaintext packets entering and leaving the tunnel of
// q.Peering (or of the point-to-site client q.Client) to w as a pcap file
// until a limit of q is reached or ctx ends. Nothing is written if the
// capture cannot start (unknown peering, no tunnel, another capture
// running on it). Other tunnels are not touched; the captured one pays a
// copy per packet while the capture runs.
func (v *View) Capture(ctx context.Context, q api.CaptureQuery, w io.Writer) (api.CaptureSummary, error) {
	if (q.Peering == "") == (q.Client == "") {
		return api.CaptureSummary{}, api.WithCode(api.CodeBadRequest, errors.New("capture: name a peering or a point-to-site client"))
	}
	limits := dataplane.CaptureLimits{Count: q.Count, Duration: q.Duration, Bytes: q.MaxBytes}
	c := dataplane.NewCapture(q.Snaplen, 0)
	stop, translated, err := v.gw.Tap(q, c)
	if err != nil {
		return api.CaptureSummary{}, err
	}
	defer stop()
	who, name := "peering", q.Peering
	if q.Client != "" {
		who, name = "client", q.Client
	}
	v.log.Info("capture started", who, name, "count", q.Count, "duration", q.Duration.String(), "max_bytes", q.MaxBytes)
	res, err := c.WritePcap(ctx, w, limits)
	v.log.Info("capture ended", who, name, "packets", res.Packets, "bytes", res.Bytes, "dropped", res.Dropped, "stop", res.Stop)
	sum := api.CaptureSummary{Packets: res.Packets, Dropped: res.Dropped, Stop: api.CaptureStop(res.Stop)}
	sum.Translated = translated // the seam taps what crosses the tunnel
	return sum, err
}
