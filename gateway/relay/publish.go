package relay

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/statefile"
)

// Publisher keeps a gateway's state_dir/PublicKeysFile: the public keys
// of the gateway, its peerings and its point-to-site clients, which a
// relay on this machine accepts (accept_gateway) without reading the
// gateway's config or private key. The file is rewritten atomically when
// they change: at every apply (start, reload) and every client added or
// revoked, so that the relay, which watches it, follows within a second.
// It has its own lock: the point-to-site server calls SetClients with its
// lock held.
type Publisher struct {
	log *slog.Logger

	mu      sync.Mutex
	path    string
	keys    PublicKeys
	clients []NamedKey
	p2s     bool
	written []byte
}

// NewPublisher returns a Publisher that writes nothing before SetGateway.
func NewPublisher(log *slog.Logger) *Publisher { return &Publisher{log: log} }

// SetGateway takes the gateway's key and its peerings' (state_dir
// stateDir); without point-to-site (p2s false) no client is published.
func (p *Publisher) SetGateway(stateDir string, gateway keys.PublicKey, peerings []NamedKey, p2s bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.path = filepath.Join(stateDir, PublicKeysFile)
	p.keys = PublicKeys{Gateway: gateway, Peerings: peerings}
	p.p2s = p2s
	p.write()
}

// SetClients takes the registered point-to-site clients.
func (p *Publisher) SetClients(cs []NamedKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients = append(p.clients[:0], cs...)
	p.write()
}

// write replaces the file if its content changed (p.mu held).
func (p *Publisher) write() {
	if p.path == "" || p.keys.Gateway.IsZero() {
		return
	}
	k := p.keys
	if p.p2s {
		k.Clients = append([]NamedKey(nil), p.clients...)
	}
	b := k.Marshal()
	if bytes.Equal(b, p.written) {
		return
	}
	if err := statefile.WriteAtomic(p.path, b); err != nil {
		p.log.Error("state_dir: cannot write the public keys a relay reads (accept_gateway); it keeps the previous ones", "file", p.path, "error", err)
		return
	}
	p.written = b
}
