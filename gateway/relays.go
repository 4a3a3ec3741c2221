package gateway

import (
	"log/slog"
	"sync"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/relay"
	"github.com/vgate-project/vgate/gateway/wgbind"
)

// relays is the relay transport of the WireGuard tunnels: every device's
// bind is a relay.Bind over its share of the UDP port, and each peering with
// a relay gets that relay's connection (one per relay URL and pin, shared by
// the peerings that name it, proving the gateway's key).
type relays struct {
	mux *wgbind.Mux
	log *slog.Logger

	mu      sync.Mutex
	binds   map[string]*relay.Bind // by peering: the latest device's
	clients map[clientKey]*relay.Client
}

type clientKey struct {
	target plan.RelayTarget
	key    keys.PublicKey // the gateway's: a new key needs a new connection
}

func newRelays(mux *wgbind.Mux, log *slog.Logger) *relays {
	return &relays{mux: mux, log: log, binds: map[string]*relay.Bind{}, clients: map[clientKey]*relay.Client{}}
}

// newBind is the Plane's NewBind: the device's share of the UDP port,
// wrapped by the relay transport.
func (r *relays) newBind(name string) conn.Bind {
	inner := r.mux.NewBind(name)
	b := relay.NewBind(inner, func(msg []byte) { wgbind.Learn(inner, msg) })
	r.mu.Lock()
	r.binds[name] = b
	r.mu.Unlock()
	return b
}

// set gives each planned tunnel its relay (or none) and the probe that makes
// its device initiate a handshake, opens the relays newly named and closes
// those no longer named.
func (r *relays) set(priv keys.PrivateKey, want []plan.Tunnel, pl *dataplane.Plane) {
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
		c := r.clients[k]
		if c == nil {
			var err error
			c, err = relay.NewClient(t.Relay.URL, t.Relay.Pin, priv, r.log.With("component", "relay"))
			if err != nil { // validated config: not expected
				r.log.Error("relay not usable", "peering", t.Name, "url", t.Relay.URL, "error", err)
				b.SetRelay(nil, keys.PublicKey{})
				continue
			}
			r.clients[k] = c
		}
		used[k] = true
		b.SetRelay(c, t.WireGuard.PublicKey)
	}
	for name := range r.binds {
		if !names[name] {
			r.binds[name].SetRelay(nil, keys.PublicKey{})
			delete(r.binds, name)
		}
	}
	for k, c := range r.clients {
		if !used[k] {
			c.Close()
			delete(r.clients, k)
		}
	}
}

// path is a peering's transport now for status and metrics: its path
// (relay.PathDirect or relay.PathRelay) and its relay's state (nil without
// a relay).
func (r *relays) path(name string) (string, *api.RelayStatus) {
	r.mu.Lock()
	b := r.binds[name]
	r.mu.Unlock()
	if b == nil {
		return relay.PathDirect, nil
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

func (r *relays) close() {
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
