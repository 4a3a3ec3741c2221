package gateway

import (
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/gateway/relay"
)

// The public keys a relay on this machine reads (relay.Publisher): the
// gateway's and its peerings' from the running config, at every apply,
// and the point-to-site clients' from the server, at every change.

// publishConfig hands p the keys of cfg.
func publishConfig(p *relay.Publisher, cfg *config.Config) {
	var peerings []relay.NamedKey
	for _, pr := range cfg.Peerings {
		if !pr.PublicKey.IsZero() { // IPsec peerings have none
			peerings = append(peerings, relay.NamedKey{Name: pr.Name, PublicKey: pr.PublicKey})
		}
	}
	p.SetGateway(cfg.StateDir, cfg.PrivateKey.Public(), peerings, cfg.PointToSite != nil)
}

// clientKeys are the registered clients' keys (p2s.Options.OnClients).
func clientKeys(cs []p2s.Client) []relay.NamedKey {
	out := make([]relay.NamedKey, 0, len(cs))
	for _, c := range cs {
		out = append(out, relay.NamedKey{Name: c.Name, PublicKey: c.PublicKey})
	}
	return out
}
