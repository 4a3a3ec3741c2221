// Package wireguard is the WireGuard tunnel kind (tunnel.Kind): one
// wireguard-go device per peering (gateway/dataplane), all on the
// gateway's one UDP listen_port through the demultiplexing bind
// (gateway/wgbind), each device's bind wrapped by the relay transport
// (gateway/relay) so that it can fall back to a relay.
package wireguard

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/kernel"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/relay"
	"github.com/vgate-project/vgate/gateway/tunnel"
	"github.com/vgate-project/vgate/gateway/wgbind"
)

// Kind runs the gateway's WireGuard tunnels.
type Kind struct {
	mux    *wgbind.Mux
	plane  *dataplane.Plane
	relays *relay.Transport
}

// New opens the UDP socket on listenPort and the relay transport over it.
func New(listenPort uint16, kern *kernel.Kernel, log *slog.Logger) (*Kind, error) {
	mux := wgbind.NewMux(conn.NewStdNetBind(), log.With("component", "bind"))
	port, err := mux.Open(listenPort)
	if err != nil {
		return nil, fmt.Errorf("listen_port %d: open UDP socket: %w", listenPort, err)
	}
	log.Info("listening for tunnels", "port", port)
	rs := relay.NewTransport(mux, log)
	return &Kind{
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

// Relays is the kind's relay connections, which the point-to-site device
// shares; they close with the kind.
func (w *Kind) Relays() *relay.Transport { return w.relays }

// Set tells the front door (the mux) the gateway key and which device's
// peer has which public key before the devices change, so that a new
// device gets its peer's handshake initiations at once.
func (w *Kind) Set(_ context.Context, key keys.PrivateKey, want []plan.Tunnel) error {
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

func (w *Kind) Tunnel(name string) tunnel.Tunnel {
	if t := w.plane.Tunnel(name); t != nil {
		return t
	}
	return nil
}

func (w *Kind) Close() error {
	w.plane.Close()
	w.relays.Close()
	return w.mux.Close()
}

func (w *Kind) Port() *api.PortStats {
	s := w.mux.Stats()
	return &s
}

func (w *Kind) Demand(name string) *atomic.Uint64 { return w.plane.Demand(name) }

// View: a WireGuard tunnel's state is its handshakes, which status reads
// from the Tunnel's counters.
func (w *Kind) View(string) tunnel.View { return tunnel.View{} }
