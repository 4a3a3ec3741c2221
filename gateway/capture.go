package gateway

import (
	"errors"
	"fmt"

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

// Tap attaches c to the tunnel of q.Peering (or, when q.Client is set, to
// that point-to-site client at the P2S device's seam, denied packets
// included) until stop is called. Nothing is attached when it fails
// (unknown peering, no tunnel, another capture running on it). Other
// tunnels are not touched; the tapped one pays a copy per packet.
// translated says the peering runs NAT rules: the seam taps what crosses
// the tunnel (nat.go). The capture itself is gateway/view's.
func (g *Gateway) Tap(q api.CaptureQuery, c *dataplane.Capture) (stop func(), translated bool, err error) {
	if q.Client != "" {
		srv, err := g.P2SServer()
		if err != nil {
			return nil, false, err
		}
		if err := srv.StartCapture(q.Client, c); err != nil {
			return nil, false, captureErr(err)
		}
		return func() { srv.StopCapture(c) }, false, nil
	}
	g.mu.Lock()
	known := false
	for _, p := range g.cfg.Peerings {
		known = known || p.Name == q.Peering
		translated = translated || p.Name == q.Peering && !p.NATRules().Empty()
	}
	closed := g.closed
	t := g.tunnel(q.Peering)
	g.mu.Unlock()
	switch {
	case closed:
		return nil, false, errStopped
	case !known:
		return nil, false, &ErrNoSuchPeering{q.Peering}
	}
	if t == nil {
		return nil, false, api.WithCode(api.CodeNotFound, fmt.Errorf("peering %q has no running tunnel", q.Peering))
	}
	if err := t.StartCapture(c); err != nil {
		return nil, false, captureErr(err)
	}
	return func() { t.StopCapture(c) }, translated, nil
}

// captureErr gives a capture that cannot start its code: another capture
// is running on the same tunnel.
func captureErr(err error) error {
	if errors.Is(err, dataplane.ErrCaptureBusy) && api.CodeOf(err) == "" {
		return api.WithCode(api.CodeConflict, err)
	}
	return err
}
