package relay

import (
	"log/slog"
	"sync"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/wgbind"
)

// Transport is the gateway's side of the relay transport, which the
// WireGuard tunnel kind owns: every device's bind is a Bind over its share
// of the UDP port, and each peering with a relay gets that relay's
// connection (one per relay URL and pin, shared by the peerings and the
// point-to-site device that name it, proving the gateway's key). It has
// its own lock; the tunnel kind calls Set, the point-to-site component
// SetP2S, both with the gateway's lock held.
type Transport struct {
	mux *wgbind.Mux
	log *slog.Logger

	mu      sync.Mutex
	binds   map[string]*Bind // by peering: the latest device's
	clients map[clientKey]*Client
	// The point-to-site device's bind and its relay (SetP2S).
	p2sBind   *Bind
	p2sTarget clientKey
}

// Target is a relay by URL and certificate pin (the plan's
// plan.RelayTarget, converted); zero for none.
type Target struct {
	URL, Pin string
}

// Peer is one tunnel's relay: the peering, its relay (zero: none) and its
// peer's public key, which the relay forwards to.
type Peer struct {
	Name      string
	Relay     Target
	PublicKey keys.PublicKey
}

type clientKey struct {
	target Target
	key    keys.PublicKey // the gateway's: a new key needs a new connection
}

// NewTransport returns the transport of the devices on mux's port.
func NewTransport(mux *wgbind.Mux, log *slog.Logger) *Transport {
	return &Transport{mux: mux, log: log, binds: map[string]*Bind{}, clients: map[clientKey]*Client{}}
}

// NewBind is the Plane's NewBind: the device's share of the UDP port,
// wrapped by the relay transport.
func (r *Transport) NewBind(name string) conn.Bind {
	inner := r.mux.NewBind(name)
	b := NewLazyBind(inner, func(msg []byte) { wgbind.Learn(inner, msg) })
	b.SetFrontDoor(FrontDoor{
		Receive: func(msg []byte, ep conn.Endpoint) { wgbind.Receive(inner, msg, ep) },
		Hold:    func(msg []byte, send func([]byte)) bool { return wgbind.HoldCrossing(inner, msg, send) },
	})
	r.mu.Lock()
	if old := r.binds[name]; old != nil { // a recreated device: the old one is closed
		old.SetRelay(nil, keys.PublicKey{})
	}
	r.binds[name] = b
	r.mu.Unlock()
	return b
}

// Set gives each planned tunnel its relay (or none) and the probe that makes
// its device initiate a handshake, opens the relays newly named and closes
// those no longer named.
func (r *Transport) Set(priv keys.PrivateKey, want []Peer, pl *dataplane.Plane) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pub := priv.Public()
	used := map[clientKey]bool{}
	names := map[string]bool{}
	for _, t := range want {
		names[t.Name] = true
		b := r.binds[t.Name]
		if b == nil {
			continue
		}
		if dt := pl.Tunnel(t.Name); dt != nil {
			b.SetProbe(dt.SendInitiation)
		}
		if t.Relay.URL == "" {
			b.SetRelay(nil, keys.PublicKey{})
			continue
		}
		k := clientKey{t.Relay, pub}
		c, err := r.client(k, priv)
		if err != nil { // validated config: not expected
			r.log.Error("relay not usable", "peering", t.Name, "url", t.Relay.URL, "error", err)
			b.SetRelay(nil, keys.PublicKey{})
			continue
		}
		used[k] = true
		b.SetRelay(c, t.PublicKey)
		if dt := pl.Tunnel(t.Name); dt != nil && b.NeedsRebind() {
			// Opened without the relay's ReceiveFunc (NewLazyBind).
			if err := dt.Rebind(); err != nil {
				r.log.Error("relay: could not rebind the tunnel to receive from the relay", "peering", t.Name, "error", err)
			}
		}
	}
	for name := range r.binds {
		if !names[name] {
			r.binds[name].SetRelay(nil, keys.PublicKey{})
			delete(r.binds, name)
		}
	}
	r.closeUnused(used)
}

// client returns the connection for k, opening it if needed. r.mu is held.
func (r *Transport) client(k clientKey, priv keys.PrivateKey) (*Client, error) {
	if c := r.clients[k]; c != nil {
		return c, nil
	}
	c, err := NewClient(k.target.URL, k.target.Pin, priv, r.log.With("component", "relay"))
	if err != nil {
		return nil, err
	}
	r.clients[k] = c
	return c, nil
}

// closeUnused closes the connections neither a tunnel (used) nor the
// point-to-site device needs. r.mu is held.
func (r *Transport) closeUnused(used map[clientKey]bool) {
	if r.p2sBind != nil && r.p2sTarget.target.URL != "" {
		used[r.p2sTarget] = true
	}
	for k, c := range r.clients {
		if !used[k] {
			c.Close()
			delete(r.clients, k)
		}
	}
}

// SetP2S gives the point-to-site device's bind b (nil: none) its relay
// (zero: none), sharing the connection of tunnels that name the same
// relay: one connection per relay and gateway key, as the relay keeps one
// per key.
func (r *Transport) SetP2S(priv keys.PrivateKey, b *Bind, target Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p2sBind != nil && r.p2sBind != b {
		r.p2sBind.SetRelay(nil, keys.PublicKey{})
	}
	r.p2sBind, r.p2sTarget = b, clientKey{target, priv.Public()}
	used := map[clientKey]bool{}
	for _, c := range r.binds {
		if rc := c.Relay(); rc != nil {
			for k, v := range r.clients {
				if v == rc {
					used[k] = true
				}
			}
		}
	}
	if b == nil {
		r.closeUnused(used)
		return
	}
	if target.URL == "" {
		b.SetRelay(nil, keys.PublicKey{})
		r.closeUnused(used)
		return
	}
	c, err := r.client(r.p2sTarget, priv)
	if err != nil {
		r.log.Error("point_to_site relay not usable", "url", target.URL, "error", err)
		b.SetRelay(nil, keys.PublicKey{})
		return
	}
	b.SetRelay(c, keys.PublicKey{}) // many peers: every client
	r.closeUnused(used)
}

// P2SRelay is the point-to-site relay's state, nil without one.
func (r *Transport) P2SRelay() *api.RelayStatus {
	r.mu.Lock()
	b := r.p2sBind
	r.mu.Unlock()
	if b == nil || b.Relay() == nil {
		return nil
	}
	st := b.Relay().Status()
	bs := b.Stats()
	return &api.RelayStatus{URL: st.URL, State: string(st.State), Error: st.Error, Since: st.Since, TxPackets: bs.TxRelay, RxPackets: bs.RxRelay}
}

// Path is a peering's transport now for status and metrics: its path
// (PathDirect or PathRelay) and its relay's state (nil without
// a relay).
func (r *Transport) Path(name string) (string, *api.RelayStatus) {
	r.mu.Lock()
	b := r.binds[name]
	r.mu.Unlock()
	if b == nil {
		return PathDirect, nil
	}
	c := b.Relay()
	if c == nil {
		return b.Path(), nil
	}
	st := c.Status()
	bs := b.Stats()
	return b.Path(), &api.RelayStatus{
		URL: st.URL, State: string(st.State), Error: st.Error, Since: st.Since,
		TxPackets: bs.TxRelay, RxPackets: bs.RxRelay,
	}
}

// Close drops every device's relay and closes the connections.
func (r *Transport) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.binds {
		b.SetRelay(nil, keys.PublicKey{})
	}
	for k, c := range r.clients {
		c.Close()
		delete(r.clients, k)
	}
}
