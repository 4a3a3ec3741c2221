package gateway

import (
	"context"
	"fmt"
	"io"

	"github.com/vgate-project/vgate/gateway/dataplane"
)

// CaptureRequest asks for the decrypted packets of one peering, or of one
// point-to-site client (exactly one of the two).
type CaptureRequest struct {
	Peering string
	Client  string
	Snaplen int // bytes kept per packet; 0 = dataplane.DefaultSnaplen
	dataplane.CaptureLimits
}

// ErrNoSuchPeering: a capture named a peering that is not configured.
type ErrNoSuchPeering struct{ Name string }

func (e *ErrNoSuchPeering) Error() string {
	return fmt.Sprintf("no peering %q is configured", e.Name)
}

// Capture writes the plaintext packets entering and leaving the tunnel of
// req.Peering to w as a pcap file until a limit of req is reached or ctx
// ends. Nothing is written if the capture cannot start (unknown peering,
// no tunnel, another capture running on it). Other tunnels are not
// touched; the captured one pays a copy per packet while the capture runs.
func (g *Gateway) Capture(ctx context.Context, req CaptureRequest, w io.Writer) (dataplane.CaptureResult, error) {
	if (req.Peering == "") == (req.Client == "") {
		return dataplane.CaptureResult{}, fmt.Errorf("capture: name a peering or a point-to-site client")
	}
	if req.Client != "" {
		return g.captureClient(ctx, req, w)
	}
	g.mu.Lock()
	known := false
	for _, p := range g.cfg.Peerings {
		known = known || p.Name == req.Peering
	}
	closed := g.closed
	t := g.tunnel(req.Peering)
	g.mu.Unlock()
	switch {
	case closed:
		return dataplane.CaptureResult{}, fmt.Errorf("gateway is stopped")
	case !known:
		return dataplane.CaptureResult{}, &ErrNoSuchPeering{req.Peering}
	}
	if t == nil {
		return dataplane.CaptureResult{}, fmt.Errorf("peering %q has no running tunnel", req.Peering)
	}
	c := dataplane.NewCapture(req.Snaplen, 0)
	if err := t.StartCapture(c); err != nil {
		return dataplane.CaptureResult{}, err
	}
	defer t.StopCapture(c)
	g.log.Info("capture started", "peering", req.Peering, "count", req.Count, "duration", req.Duration.String(), "max_bytes", req.Bytes)
	res, err := c.WritePcap(ctx, w, req.CaptureLimits)
	g.log.Info("capture ended", "peering", req.Peering, "packets", res.Packets, "bytes", res.Bytes, "dropped", res.Dropped, "stop", res.Stop)
	return res, err
}

// captureClient captures one point-to-site client's packets at the P2S
// device's seam, denied ones included.
func (g *Gateway) captureClient(ctx context.Context, req CaptureRequest, w io.Writer) (dataplane.CaptureResult, error) {
	srv, err := g.p2sServer()
	if err != nil {
		return dataplane.CaptureResult{}, err
	}
	c := dataplane.NewCapture(req.Snaplen, 0)
	if err := srv.StartCapture(req.Client, c); err != nil {
		return dataplane.CaptureResult{}, err
	}
	defer srv.StopCapture(c)
	g.log.Info("capture started", "client", req.Client, "count", req.Count, "duration", req.Duration.String(), "max_bytes", req.Bytes)
	res, err := c.WritePcap(ctx, w, req.CaptureLimits)
	g.log.Info("capture ended", "client", req.Client, "packets", res.Packets, "bytes", res.Bytes, "dropped", res.Dropped, "stop", res.Stop)
	return res, err
}
