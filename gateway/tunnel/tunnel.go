// Package tunnel is the seam between the gateway and its tunnel kinds:
// the one interface every kind implements (Kind), what a running tunnel
// offers status, metrics and capture (Tunnel), and a kind's own account
// of a tunnel (View). The kinds live beside it, one package each, on
// their data planes:
//
//	wireguard/  wireguard-go devices on TUNs (gateway/dataplane), one UDP
//	            port (gateway/wgbind), relay fallback (gateway/relay)
//	ipsec/      one charon for all IPsec peerings (ipsec/), its TUN and
//	            the capture tap on it
//
// The gateway reaches a kind and its tunnels only through these
// interfaces (internal/quality: TestNoTunnelKindAssertions).
package tunnel

import (
	"context"
	"sync/atomic"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/plan"
)

// Tunnel is one running tunnel, whatever its kind: what status, metrics
// and capture need of it.
type Tunnel interface {
	Name() string
	IfName() string
	MTU() int
	// Stats reads the tunnel's counters now.
	Stats() (dataplane.PeerStats, error)
	// StartCapture taps the tunnel's plaintext packets into c until
	// StopCapture; one capture at a time.
	StartCapture(c *dataplane.Capture) error
	StopCapture(c *dataplane.Capture)
}

// Kind runs every tunnel of one plan.Kind. Set is declarative, as a
// whole desired set, and may be called again with the same value (a
// no-op). The gateway's applier hands each kind its tunnels of the plan;
// it knows nothing else about a kind.
type Kind interface {
	// Set makes the running tunnels of this kind exactly want, touching
	// only what differs. key is the gateway's private key.
	Set(ctx context.Context, key keys.PrivateKey, want []plan.Tunnel) error
	// Tunnel returns the running tunnel of a peering, or nil.
	Tunnel(name string) Tunnel
	// Port is the counters of the kind's shared UDP port; nil for a kind
	// without one.
	Port() *api.PortStats
	// Demand is a tunnel's user-traffic counter, which the probe reads so
	// that it echoes only while there is demand; nil for a kind without
	// one (its tunnels are probed all the time).
	Demand(name string) *atomic.Uint64
	// View is what the kind tells status of a tunnel beyond its counters.
	View(name string) View
	// Close stops every tunnel of the kind and releases what it holds.
	Close() error
}

// View is a kind's own account of one tunnel, for status: why it is down
// ("" when the kind has no say, or it is up) and the kind's section of
// the peering's status (nil when the kind has none).
type View struct {
	Down  api.DownReason
	IPsec *api.IPsecStatus
}
