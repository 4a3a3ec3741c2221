package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/plan"
	"github.com/vgate-project/vgate/gateway/statefile"
)

// Restart without a client-visible outage: the gateway remembers the last
// underlay endpoint of every peer (site-to-site peerings and point-to-site
// clients) in state_dir, and on start dials them, so a peer that still
// holds a session with the previous run — which the new devices cannot
// decrypt — gets a new one at once, not after its own timers (a stock
// client without a keepalive waits 15 s or more).

// endpointsFile is the file in state_dir holding the remembered endpoints.
const endpointsFile = "endpoints.json"

const (
	// rememberEvery is how often a running gateway reads its devices'
	// endpoints; a changed endpoint is written at once.
	rememberEvery = 5 * time.Second
	// handshakeRefresh: when only handshake times changed, the file is
	// rewritten at most this often.
	handshakeRefresh = time.Minute
	// rememberFor: at start, peers whose last handshake is older than
	// this are not dialed. A peer idle that long has no session left to
	// resume (WireGuard rejects keys after 180 s) and dials by itself when
	// it has something to send; its NAT mapping, if any, is likely gone.
	rememberFor = 15 * time.Minute
)

// memoryState is the gateway's memory of endpoints. g.mu guards it.
type memoryState struct {
	loaded  memory // read at start: what the planner and resume use
	saved   memory // last written
	savedAt time.Time
}

// memory is the content of endpointsFile. Only peers that completed a
// handshake are in it.
type memory struct {
	Version  int              `json:"version"`
	Peerings []peerEndpoint   `json:"peerings,omitempty"`
	Clients  []clientEndpoint `json:"clients,omitempty"`
}

type peerEndpoint struct {
	Peering       string         `json:"peering"`
	PublicKey     keys.PublicKey `json:"public_key"`
	Endpoint      netip.AddrPort `json:"endpoint"`
	LastHandshake time.Time      `json:"last_handshake"`
}

type clientEndpoint struct {
	PublicKey     keys.PublicKey `json:"public_key"`
	Endpoint      netip.AddrPort `json:"endpoint"`
	LastHandshake time.Time      `json:"last_handshake"`
}

func endpointsPath(cfg *config.Config) string { return filepath.Join(cfg.StateDir, endpointsFile) }

// readMemory reads the remembered endpoints at path; a missing file is an
// empty memory. Anything else that is not a memory is an error (the
// caller warns and starts without).
func readMemory(path string) (memory, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return memory{Version: 1}, nil
	}
	if err != nil {
		return memory{}, err
	}
	var m memory
	if err := json.Unmarshal(b, &m); err != nil {
		return memory{}, fmt.Errorf("%s: %w", path, err)
	}
	if m.Version != 1 {
		return memory{}, fmt.Errorf("%s: unknown version %d", path, m.Version)
	}
	return m, nil
}

// fresh keeps the entries whose last handshake is at most maxAge before
// now (one in the future, from a clock step, counts as fresh).
func (m memory) fresh(now time.Time, maxAge time.Duration) memory {
	out := memory{Version: 1}
	for _, p := range m.Peerings {
		if now.Sub(p.LastHandshake) <= maxAge && p.Endpoint.IsValid() {
			out.Peerings = append(out.Peerings, p)
		}
	}
	for _, c := range m.Clients {
		if now.Sub(c.LastHandshake) <= maxAge && c.Endpoint.IsValid() {
			out.Clients = append(out.Clients, c)
		}
	}
	return out
}

// settle turns what the devices report (m, with zero handshake times for
// peers not heard from since this start) into what to remember: a peer
// without a handshake keeps its entry in prev if the device still has the
// endpoint prev gave it (it was dialed but has not answered yet);
// otherwise it is dropped. Peers not in m (removed peerings, revoked
// clients) are gone. The result is in canonical order.
func (m memory) settle(prev memory) memory {
	out := memory{Version: 1}
	for _, p := range m.Peerings {
		if p.LastHandshake.IsZero() {
			i := slices.IndexFunc(prev.Peerings, func(q peerEndpoint) bool {
				return q.Peering == p.Peering && q.PublicKey == p.PublicKey && q.Endpoint == p.Endpoint
			})
			if i < 0 {
				continue
			}
			p.LastHandshake = prev.Peerings[i].LastHandshake
		}
		p.LastHandshake = p.LastHandshake.UTC()
		out.Peerings = append(out.Peerings, p)
	}
	for _, c := range m.Clients {
		if c.LastHandshake.IsZero() {
			i := slices.IndexFunc(prev.Clients, func(q clientEndpoint) bool {
				return q.PublicKey == c.PublicKey && q.Endpoint == c.Endpoint
			})
			if i < 0 {
				continue
			}
			c.LastHandshake = prev.Clients[i].LastHandshake
		}
		c.LastHandshake = c.LastHandshake.UTC()
		out.Clients = append(out.Clients, c)
	}
	slices.SortFunc(out.Peerings, func(a, b peerEndpoint) int { return strings.Compare(a.Peering, b.Peering) })
	slices.SortFunc(out.Clients, func(a, b clientEndpoint) int { return bytes.Compare(a.PublicKey[:], b.PublicKey[:]) })
	return out
}

// sameEndpoints reports whether a and b remember the same peers at the
// same endpoints (handshake times aside). Both are canonical (settle).
func sameEndpoints(a, b memory) bool {
	return slices.EqualFunc(a.Peerings, b.Peerings, func(x, y peerEndpoint) bool {
		return x.Peering == y.Peering && x.PublicKey == y.PublicKey && x.Endpoint == y.Endpoint
	}) && slices.EqualFunc(a.Clients, b.Clients, func(x, y clientEndpoint) bool {
		return x.PublicKey == y.PublicKey && x.Endpoint == y.Endpoint
	})
}

// planInput is the memory as the planner takes it (plan.Input.Remembered).
func (m memory) planInput() []plan.RememberedEndpoint {
	out := make([]plan.RememberedEndpoint, 0, len(m.Peerings))
	for _, p := range m.Peerings {
		out = append(out, plan.RememberedEndpoint{Peering: p.Peering, PublicKey: p.PublicKey, Endpoint: p.Endpoint})
	}
	return out
}

// clients is the memory of point-to-site clients by public key.
func (m memory) clients() map[keys.PublicKey]netip.AddrPort {
	out := make(map[keys.PublicKey]netip.AddrPort, len(m.Clients))
	for _, c := range m.Clients {
		out[c.PublicKey] = c.Endpoint
	}
	return out
}

// loadMemory reads the remembered endpoints at start, keeping those seen
// within rememberFor. A corrupt file never blocks a start: it is warned
// about and ignored (and replaced by the next write).
func (g *Gateway) loadMemory(cfg *config.Config) {
	m, err := readMemory(endpointsPath(cfg))
	if err != nil {
		g.log.Warn("remembered endpoints unreadable; starting without them (peers reconnect on their own timers)", "error", err)
		m = memory{Version: 1}
	}
	g.mem = memoryState{loaded: m.fresh(time.Now(), rememberFor)}
	g.mem.saved = g.mem.loaded
}

// recall is what the devices know now, settled against what was last
// saved (memory.settle). While point-to-site is configured but not
// readable (disabled, or its device does not answer) the clients last
// saved are kept. g.mu is held.
func (g *Gateway) recall() memory {
	m := memory{Version: 1}
	for _, e := range g.tunnelEndpoints() { // route_safety.go
		m.Peerings = append(m.Peerings, peerEndpoint{Peering: e.peering.Name, PublicKey: e.peering.PublicKey, Endpoint: e.endpoint, LastHandshake: e.handshake})
	}
	keepClients := g.cfg.PointToSite != nil
	if s := g.p2s.Current(); s != nil {
		if seen, err := s.Endpoints(); err == nil {
			keepClients = false
			for k, s := range seen {
				m.Clients = append(m.Clients, clientEndpoint{PublicKey: k, Endpoint: s.Endpoint, LastHandshake: s.LastHandshake})
			}
		}
	}
	m = m.settle(g.mem.saved)
	if keepClients {
		m.Clients = g.mem.saved.Clients
	}
	return m
}

// remember writes what the devices know now to state_dir: at once when an
// endpoint changed, at most every handshakeRefresh when only handshake
// times did, and always when force (a clean stop). A failed write is
// logged and tried again at the next tick. g.mu is held.
func (g *Gateway) remember(force bool) {
	if g.cfg.StateDir == "" {
		return
	}
	now := time.Now()
	m := g.recall()
	if !force && sameEndpoints(m, g.mem.saved) && now.Sub(g.mem.savedAt) < handshakeRefresh {
		return
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		g.log.Error("remembered endpoints: encode", "error", err)
		return
	}
	if err := statefile.WriteAtomic(endpointsPath(g.cfg), append(b, '\n')); err != nil {
		g.log.Warn("remembered endpoints: write state_dir", "error", err)
		return
	}
	g.mem.saved, g.mem.savedAt = m, now
}

// rememberLoop records endpoints every rememberEvery until the gateway
// closes.
func (g *Gateway) rememberLoop() {
	g.everyTick(rememberEvery, func(time.Time) bool {
		g.mu.Lock()
		if !g.closed {
			g.remember(false)
		}
		g.mu.Unlock()
		return true
	})
}

// initiator is a tunnel that can start a handshake on demand (a WireGuard
// tunnel, dataplane.Tunnel).
type initiator interface{ InitiateHandshake() error }

// resume dials every peer right after start: each tunnel with an endpoint
// (configured, or remembered for a dial-in-only peering: plan.Input)
// initiates a handshake, and so does the point-to-site device toward each
// client with a remembered endpoint. Failures are logged; the peers then
// reconnect on their own timers. g.mu is held.
func (g *Gateway) resume() {
	tunnels := 0
	for _, p := range g.cfg.Peerings {
		t, ok := g.tunnel(p.Name).(initiator)
		if !ok {
			continue
		}
		if err := t.InitiateHandshake(); err != nil {
			g.log.Warn("could not initiate a handshake after start", "peering", p.Name, "error", err)
			continue
		}
		tunnels++
	}
	var clients []string
	if s := g.p2s.Current(); s != nil && len(g.mem.loaded.Clients) > 0 {
		var err error
		clients, err = s.Resume(g.mem.loaded.clients())
		if err != nil {
			g.log.Warn("point-to-site: could not dial every remembered client", "error", err)
		}
	}
	g.log.Info("dialing peers after start", "tunnels", tunnels, "remembered_peerings", len(g.mem.loaded.Peerings), "p2s_clients", len(clients))
}
