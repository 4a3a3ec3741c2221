// Package remember is the gateway's crash memory: the last underlay
// endpoint of every peer (site-to-site peerings and point-to-site
// clients), kept in state_dir/endpoints.json while the gateway runs, so
// that the next start dials them (plan.Input.Remembered, and the
// point-to-site device's Resume).
package remember

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

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

// memory is the content of endpointsFile. Only peers that completed a
// handshake are in it.
type memory struct {
	Version  int              `json:"version"`
	Peerings []PeerEndpoint   `json:"peerings,omitempty"`
	Clients  []ClientEndpoint `json:"clients,omitempty"`
}

// PeerEndpoint is a peering's peer at an underlay endpoint.
type PeerEndpoint struct {
	Peering       string         `json:"peering"`
	PublicKey     keys.PublicKey `json:"public_key"`
	Endpoint      netip.AddrPort `json:"endpoint"`
	LastHandshake time.Time      `json:"last_handshake"`
}

// ClientEndpoint is a point-to-site client at an underlay endpoint.
type ClientEndpoint struct {
	PublicKey     keys.PublicKey `json:"public_key"`
	Endpoint      netip.AddrPort `json:"endpoint"`
	LastHandshake time.Time      `json:"last_handshake"`
}

func endpointsPath(stateDir string) string { return filepath.Join(stateDir, endpointsFile) }

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
			i := slices.IndexFunc(prev.Peerings, func(q PeerEndpoint) bool {
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
			i := slices.IndexFunc(prev.Clients, func(q ClientEndpoint) bool {
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
	slices.SortFunc(out.Peerings, func(a, b PeerEndpoint) int { return strings.Compare(a.Peering, b.Peering) })
	slices.SortFunc(out.Clients, func(a, b ClientEndpoint) int { return bytes.Compare(a.PublicKey[:], b.PublicKey[:]) })
	return out
}

// sameEndpoints reports whether a and b remember the same peers at the
// same endpoints (handshake times aside). Both are canonical (settle).
func sameEndpoints(a, b memory) bool {
	return slices.EqualFunc(a.Peerings, b.Peerings, func(x, y PeerEndpoint) bool {
		return x.Peering == y.Peering && x.PublicKey == y.PublicKey && x.Endpoint == y.Endpoint
	}) && slices.EqualFunc(a.Clients, b.Clients, func(x, y ClientEndpoint) bool {
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

// Memory is the running gateway's memory of endpoints: what was read at
// start (for the planner and the first dials) and what was written last.
// It has its own lock; Record is called with the gateway's lock held (it
// gathers Seen from the devices), Remembered and Clients too.
type Memory struct {
	log *slog.Logger

	mu      sync.Mutex
	loaded  memory // read at start: what the planner and resume use
	saved   memory // last written
	savedAt time.Time
	closed  bool // Close wrote the last record
}

// Load reads the remembered endpoints in stateDir at start, keeping those
// seen within rememberFor. A corrupt file never blocks a start: it is
// warned about and ignored (and replaced by the next write).
func Load(stateDir string, log *slog.Logger) *Memory {
	mem := &Memory{log: log}
	m, err := readMemory(endpointsPath(stateDir))
	if err != nil {
		log.Warn("remembered endpoints unreadable; starting without them (peers reconnect on their own timers)", "error", err)
		m = memory{Version: 1}
	}
	mem.loaded = m.fresh(time.Now(), rememberFor)
	mem.saved = mem.loaded
	return mem
}

// Remembered is the memory read at start as the planner takes it
// (plan.Input.Remembered).
func (m *Memory) Remembered() []plan.RememberedEndpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loaded.planInput()
}

// Clients is the point-to-site clients read at start, by public key.
func (m *Memory) Clients() map[keys.PublicKey]netip.AddrPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loaded.clients()
}

// Peerings is how many peerings were read at start.
func (m *Memory) Peerings() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.loaded.Peerings)
}

// Seen is what the devices know now: a peer not heard from since this
// start has a zero handshake time. KeepClients: point-to-site is
// configured but its device could not be read (disabled, or not
// answering), so the clients last saved are kept. StateDir is the running
// config's state_dir, where the record goes ("" : nowhere).
type Seen struct {
	StateDir    string
	Peerings    []PeerEndpoint
	Clients     []ClientEndpoint
	KeepClients bool
}

// Record writes what the devices know now (settled against what was last
// saved) to state_dir: at once when an endpoint changed, at most every
// handshakeRefresh when only handshake times did, and always when force.
// A failed write is logged and tried again at the next tick. After Close
// it does nothing.
func (m *Memory) Record(seen Seen, force bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recordLocked(seen, force)
}

// Close writes the last record (a clean stop); later Records do nothing.
func (m *Memory) Close(seen Seen) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recordLocked(seen, true)
	m.closed = true
}

func (m *Memory) recordLocked(seen Seen, force bool) {
	if seen.StateDir == "" || m.closed {
		return
	}
	now := time.Now()
	cur := memory{Version: 1, Peerings: seen.Peerings, Clients: seen.Clients}.settle(m.saved)
	if seen.KeepClients {
		cur.Clients = m.saved.Clients
	}
	if !force && sameEndpoints(cur, m.saved) && now.Sub(m.savedAt) < handshakeRefresh {
		return
	}
	b, err := json.MarshalIndent(cur, "", "  ")
	if err != nil {
		m.log.Error("remembered endpoints: encode", "error", err)
		return
	}
	if err := statefile.WriteAtomic(endpointsPath(seen.StateDir), append(b, '\n')); err != nil {
		m.log.Warn("remembered endpoints: write state_dir", "error", err)
		return
	}
	m.saved, m.savedAt = cur, now
}

// Run records every rememberEvery until ctx ends. recall gathers what the
// devices know (it takes the gateway's lock); ok false skips the tick
// (the gateway is closed).
func (m *Memory) Run(ctx context.Context, recall func() (seen Seen, ok bool)) {
	t := time.NewTicker(rememberEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if seen, ok := recall(); ok {
				m.Record(seen, false)
			}
		}
	}
}
