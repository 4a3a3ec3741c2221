package gateway

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/gateway/relay"
	"github.com/vgate-project/vgate/gateway/statefile"
)

// publishedKeys keeps state_dir/public-keys.json (relay.PublicKeysFile):
// the public keys of the gateway, its peerings and its point-to-site
// clients, which a relay on this machine accepts (accept_gateway) without
// reading the gateway's config or private key. The file is rewritten
// atomically when they change: at every apply (start, reload) and every
// client added or revoked, so that the relay, which watches it, follows
// within a second. It has its own lock: the point-to-site server calls
// setClients with its lock held.
type publishedKeys struct {
	log *slog.Logger

	mu      sync.Mutex
	path    string
	keys    relay.PublicKeys
	clients []relay.NamedKey
	p2s     bool
	written []byte
}

// setConfig takes the gateway's and its peerings' keys from cfg.
func (p *publishedKeys) setConfig(cfg *config.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.path = filepath.Join(cfg.StateDir, relay.PublicKeysFile)
	p.keys = relay.PublicKeys{Gateway: cfg.PrivateKey.Public()}
	for _, pr := range cfg.Peerings {
		if !pr.PublicKey.IsZero() { // IPsec peerings have none
			p.keys.Peerings = append(p.keys.Peerings, relay.NamedKey{Name: pr.Name, PublicKey: pr.PublicKey})
		}
	}
	p.p2s = cfg.PointToSite != nil
	p.write()
}

// setClients takes the registered point-to-site clients.
func (p *publishedKeys) setClients(cs []p2s.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients = p.clients[:0]
	for _, c := range cs {
		p.clients = append(p.clients, relay.NamedKey{Name: c.Name, PublicKey: c.PublicKey})
	}
	p.write()
}

// write replaces the file if its content changed (p.mu held).
func (p *publishedKeys) write() {
	if p.path == "" || p.keys.Gateway.IsZero() {
		return
	}
	k := p.keys
	if p.p2s {
		k.Clients = append([]relay.NamedKey(nil), p.clients...)
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
