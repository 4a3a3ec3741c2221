package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
)

// ErrNoSuchPeering: a capture named a peering that is not configured. It
// has api.CodeNotFound.
type ErrNoSuchPeering struct{ Name string }

func (e *ErrNoSuchPeering) Error() string {
	return fmt.Sprintf("no peering %q is configured", e.Name)
}

func (e *ErrNoSuchPeering) Unwrap() error { return api.CodeNotFound }

// Capture writes the plaintext packets entering and leaving the tunnel of
// q.Peering (or of the point-to-site client q.Client) to w as a pcap file
// until a limit of q is reached or ctx ends. Nothing is written if the
// capture cannot start (unknown peering, no tunnel, another capture
// running on it). Other tunnels are not touched; the captured one pays a
// copy per packet while the capture runs.
func (g *Gateway) Capture(ctx context.Context, q api.CaptureQuery, w io.Writer) (api.CaptureSummary, error) {
	if (q.Peering == "") == (q.Client == "") {
		return api.CaptureSummary{}, api.WithCode(api.CodeBadRequest, errors.New("capture: name a peering or a point-to-site client"))
	}
	limits := dataplane.CaptureLimits{Count: q.Count, Duration: q.Duration, Bytes: q.MaxBytes}
	if q.Client != "" {
		return g.captureClient(ctx, q, limits, w)
	}
	g.mu.Lock()
	known, translated := false, false
	for _, p := range g.cfg.Peerings {
		known = known || p.Name == q.Peering
		translated = translated || p.Name == q.Peering && !p.NATRules().Empty()
	}
	closed := g.closed
	t := g.tunnel(q.Peering)
	g.mu.Unlock()
	switch {
	case closed:
		return api.CaptureSummary{}, errStopped
	case !known:
		return api.CaptureSummary{}, &ErrNoSuchPeering{q.Peering}
	}
	if t == nil {
		return api.CaptureSummary{}, api.WithCode(api.CodeNotFound, fmt.Errorf("peering %q has no running tunnel", q.Peering))
	}
	c := dataplane.NewCapture(q.Snaplen, 0)
	if err := t.StartCapture(c); err != nil {
		return api.CaptureSummary{}, captureErr(err)
	}
	defer t.StopCapture(c)
	g.log.Info("capture started", "peering", q.Peering, "count", q.Count, "duration", q.Duration.String(), "max_bytes", q.MaxBytes)
	res, err := c.WritePcap(ctx, w, limits)
	g.log.Info("capture ended", "peering", q.Peering, "packets", res.Packets, "bytes", res.Bytes, "dropped", res.Dropped, "stop", res.Stop)
	sum := captureSummary(res)
	sum.Translated = translated // the seam taps what crosses the tunnel (nat.go)
	return sum, err
}

// captureClient captures one point-to-site client's packets at the P2S
// device's seam, denied ones included.
func (g *Gateway) captureClient(ctx context.Context, q api.CaptureQuery, limits dataplane.CaptureLimits, w io.Writer) (api.CaptureSummary, error) {
	srv, err := g.p2sServer()
	if err != nil {
		return api.CaptureSummary{}, err
	}
	c := dataplane.NewCapture(q.Snaplen, 0)
	if err := srv.StartCapture(q.Client, c); err != nil {
		return api.CaptureSummary{}, captureErr(err)
	}
	defer srv.StopCapture(c)
	g.log.Info("capture started", "client", q.Client, "count", q.Count, "duration", q.Duration.String(), "max_bytes", q.MaxBytes)
	res, err := c.WritePcap(ctx, w, limits)
	g.log.Info("capture ended", "client", q.Client, "packets", res.Packets, "bytes", res.Bytes, "dropped", res.Dropped, "stop", res.Stop)
	return captureSummary(res), err
}

// captureErr gives a capture that cannot start its code: another capture
// is running on the same tunnel.
func captureErr(err error) error {
	if errors.Is(err, dataplane.ErrCaptureBusy) && api.CodeOf(err) == "" {
		return api.WithCode(api.CodeConflict, err)
	}
	return err
}

func captureSummary(r dataplane.CaptureResult) api.CaptureSummary {
	return api.CaptureSummary{Packets: r.Packets, Dropped: r.Dropped, Stop: api.CaptureStop(r.Stop)}
}
