package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/kernel"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/relay"
	"github.com/vgate-project/vgate/gateway/wgbind"
	"golang.zx2c4.com/wireguard/conn"
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

// TunnelKind runs every tunnel of one plan.Kind. Set is declarative, as a
// whole desired set, and may be called again with the same value (a
// no-op). The applier (apply.go) hands each kind its tunnels of the plan;
// it knows nothing else about a kind.
type TunnelKind interface {
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
	View(name string) TunnelView
	// Close stops every tunnel of the kind and releases what it holds.
	Close() error
}

// TunnelView is a kind's own account of one tunnel, for status: why it is
// down ("" when the kind has no say, or it is up) and the kind's section
// of the peering's status (nil when the kind has none).
type TunnelView struct {
	Down  api.DownReason
	IPsec *api.IPsecStatus
}

// newTunnelKind opens the implementation of kind k. The switch on the kind
// is the only place that names the implementations. runDir is the
// gateway's runtime directory; onRestart re-applies the running config
// (a kind whose interfaces were recreated needs its routes again).
func newTunnelKind(k plan.Kind, listenPort uint16, runDir string, onRestart func(), kern *kernel.Kernel, log *slog.Logger) (TunnelKind, error) {
	switch k {
	case plan.KindWireGuard:
		return newWireGuardKind(listenPort, kern, log)
	case plan.KindIPsec:
		return newIPsecKind(runDir, onRestart, log) // ipsec.go
	}
	return nil, fmt.Errorf("tunnel kind %q is not implemented", k)
}

// wireGuardKind runs WireGuard tunnels: one wireguard-go device per
// peering, all on the gateway's one UDP listen_port through the
// demultiplexing bind (gateway/wgbind), each device's bind wrapped by the
// relay transport (relay.Transport) so that it can fall back to a relay.
type wireGuardKind struct {
	mux    *wgbind.Mux
	plane  *dataplane.Plane
	relays *relay.Transport
}

func newWireGuardKind(listenPort uint16, kern *kernel.Kernel, log *slog.Logger) (*wireGuardKind, error) {
	mux := wgbind.NewMux(conn.NewStdNetBind(), log.With("component", "bind"))
	port, err := mux.Open(listenPort)
	if err != nil {
		return nil, fmt.Errorf("listen_port %d: open UDP socket: %w", listenPort, err)
	}
	log.Info("listening for tunnels", "port", port)
	rs := relay.NewTransport(mux, log)
	return &wireGuardKind{
		mux:    mux,
		relays: rs,
		plane: &dataplane.Plane{
			NewBind: rs.NewBind,
			NewTUN:  dataplane.CreateTUN,
			LinkUp:  kern.LinkUp,
			Log:     log,
		},
	}, nil
}

// Set tells the front door (the mux) the gateway key and which device's
// peer has which public key before the devices change, so that a new
// device gets its peer's handshake initiations at once.
func (w *wireGuardKind) Set(_ context.Context, key keys.PrivateKey, want []plan.Tunnel) error {
	w.mux.SetPrivateKey(key)
	if err := w.plane.SetPrivateKey(key); err != nil {
		return err
	}
	specs := make([]dataplane.TunnelSpec, 0, len(want))
	peers := make(map[string]keys.PublicKey, len(want))
	relays := make([]relay.Peer, 0, len(want))
	for _, t := range want {
		specs = append(specs, dataplane.TunnelSpec{Name: t.Name, IfName: t.IfName, MTU: t.MTU, Peer: t.WireGuard})
		peers[t.Name] = t.WireGuard.PublicKey
		relays = append(relays, relay.Peer{Name: t.Name, Relay: relay.Target(t.Relay), PublicKey: t.WireGuard.PublicKey})
	}
	if err := w.mux.SetPeers(peers); err != nil {
		return err
	}
	_, err := w.plane.Set(specs)
	w.relays.Set(key, relays, w.plane)
	return err
}

func (w *wireGuardKind) Tunnel(name string) Tunnel {
	if t := w.plane.Tunnel(name); t != nil {
		return t
	}
	return nil
}

func (w *wireGuardKind) Close() error {
	w.plane.Close()
	w.relays.Close()
	return w.mux.Close()
}

func (w *wireGuardKind) Port() *api.PortStats {
	s := w.mux.Stats()
	return &s
}

func (w *wireGuardKind) Demand(name string) *atomic.Uint64 { return w.plane.Demand(name) }

// View: a WireGuard tunnel's state is its handshakes, which status reads
// from the Tunnel's counters.
func (w *wireGuardKind) View(string) TunnelView { return TunnelView{} }
