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

// rememberEvery is how often a running gateway records endpoints that
// changed (read from its devices; nothing is written when none changed).
// A clean stop records them too.
const rememberEvery = 5 * time.Second

// memory is the content of endpointsFile.
type memory struct {
	Version  int              `json:"version"`
	Peerings []peerEndpoint   `json:"peerings,omitempty"`
	Clients  []clientEndpoint `json:"clients,omitempty"`
}

type peerEndpoint struct {
	Peering   string         `json:"peering"`
	PublicKey keys.PublicKey `json:"public_key"`
	Endpoint  netip.AddrPort `json:"endpoint"`
}

type clientEndpoint struct {
	PublicKey keys.PublicKey `json:"public_key"`
	Endpoint  netip.AddrPort `json:"endpoint"`
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

// sorted puts m in a canonical order, so equal memories marshal equally.
func (m memory) sorted() memory {
	slices.SortFunc(m.Peerings, func(a, b peerEndpoint) int { return strings.Compare(a.Peering, b.Peering) })
	slices.SortFunc(m.Clients, func(a, b clientEndpoint) int { return bytes.Compare(a.PublicKey[:], b.PublicKey[:]) })
	return m
}

// loadMemory reads the remembered endpoints at start. A corrupt file never
// blocks a start: it is warned about and ignored (and replaced by the next
// write).
func (g *Gateway) loadMemory(cfg *config.Config) {
	m, err := readMemory(endpointsPath(cfg))
	if err != nil {
		g.log.Warn("remembered endpoints unreadable; starting without them (peers reconnect on their own timers)", "error", err)
		m = memory{Version: 1}
	}
	g.memory = m
}

// recall is what the devices know now: each running tunnel's peer
// endpoint and each registered point-to-site client's. Peerings removed
// and clients revoked are no longer in the devices, so they drop out.
// While point-to-site is disabled (its registry unreadable) the clients
// remembered at start are kept. g.mu is held.
func (g *Gateway) recall() memory {
	m := memory{Version: 1}
	for _, p := range g.cfg.Peerings {
		t := g.tunnel(p.Name)
		if t == nil {
			continue
		}
		st, err := t.Stats()
		if err != nil {
			continue
		}
		if ap, err := netip.ParseAddrPort(st.Endpoint); err == nil {
			m.Peerings = append(m.Peerings, peerEndpoint{Peering: p.Name, PublicKey: p.PublicKey, Endpoint: unmapAP(ap)})
		}
	}
	switch {
	case g.p2s != nil:
		eps, err := g.p2s.Endpoints()
		if err != nil {
			m.Clients = g.memory.Clients
			break
		}
		for k, ep := range eps {
			m.Clients = append(m.Clients, clientEndpoint{PublicKey: k, Endpoint: ep})
		}
	case g.cfg.PointToSite != nil:
		m.Clients = g.memory.Clients
	}
	return m.sorted()
}

// remember writes what the devices know now to state_dir if it changed
// since the last write. A failed write is logged and tried again at the
// next tick. g.mu is held.
func (g *Gateway) remember() {
	if g.cfg.StateDir == "" {
		return
	}
	b, err := json.MarshalIndent(g.recall(), "", "  ")
	if err != nil {
		g.log.Error("remembered endpoints: encode", "error", err)
		return
	}
	b = append(b, '\n')
	if bytes.Equal(b, g.memSaved) {
		return
	}
	if err := statefile.WriteAtomic(endpointsPath(g.cfg), b); err != nil {
		g.log.Warn("remembered endpoints: write state_dir", "error", err)
		return
	}
	g.memSaved = b
}

// rememberLoop records changed endpoints every rememberEvery until the
// gateway closes.
func (g *Gateway) rememberLoop() {
	t := time.NewTicker(rememberEvery)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		g.mu.Lock()
		if !g.closed {
			g.remember()
		}
		g.mu.Unlock()
	}
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
	if g.p2s != nil && len(g.memory.Clients) > 0 {
		var err error
		clients, err = g.p2s.Resume(g.memory.clients())
		if err != nil {
			g.log.Warn("point-to-site: could not dial every remembered client", "error", err)
		}
	}
	g.log.Info("dialing peers after start", "tunnels", tunnels, "remembered_peerings", len(g.memory.Peerings), "p2s_clients", len(clients))
}
