package p2s

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
)

// clientTap is a capture of one client's packets: those it sends (source
// is one of its addresses, captured before the policy decides, so denied
// packets show up too) and those sent to it.
type clientTap struct {
	c     *dataplane.Capture
	addrs []netip.Addr
}

// tapFrom feeds pkt to the tap if the client sent it.
func (t *clientTap) tapFrom(pkt []byte, now time.Time) {
	if src, _, ok := addrs(pkt); ok && slices.Contains(t.addrs, src) {
		t.c.Tap(dataplane.Inbound, pkt, now)
	}
}

// tapTo feeds pkt to the tap if it is for the client.
func (t *clientTap) tapTo(pkt []byte, now time.Time) {
	if _, dst, ok := addrs(pkt); ok && slices.Contains(t.addrs, dst) {
		t.c.Tap(dataplane.Outbound, pkt, now)
	}
}

// StartCapture attaches c to the P2S seam for the packets of the client
// with the given addresses. One capture at a time.
func (f *FilterTUN) StartCapture(c *dataplane.Capture, addrs []netip.Addr) error {
	if !f.tap.CompareAndSwap(nil, &clientTap{c: c, addrs: addrs}) {
		return fmt.Errorf("point_to_site: %w", dataplane.ErrCaptureBusy)
	}
	return nil
}

// StopCapture detaches c if it is the attached capture.
func (f *FilterTUN) StopCapture(c *dataplane.Capture) {
	if t := f.tap.Load(); t != nil && t.c == c {
		f.tap.CompareAndSwap(t, nil)
	}
}

// ErrNoSuchClient: the named client is not registered.
var ErrNoSuchClient = api.WithCode(api.CodeNotFound, errors.New("no such point-to-site client"))

// StartCapture captures the decrypted packets of the registered client
// name until StopCapture.
func (s *Server) StartCapture(name string, c *dataplane.Capture) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("point_to_site is stopped")
	}
	cl, ok := s.reg.Get(name)
	if !ok {
		return fmt.Errorf("client %q: %w", name, ErrNoSuchClient)
	}
	return s.filter.StartCapture(c, slices.Clone(cl.Addresses))
}

// StopCapture ends a capture started by StartCapture.
func (s *Server) StopCapture(c *dataplane.Capture) { s.filter.StopCapture(c) }
