package gateway

import "github.com/vgate-project/vgate/gateway/names"

// The name server (config dns) is a names.Component: apply hands it the
// plan's zone after the tunnel address is on lo. It reads the
// point-to-site directory per query, so a client added or revoked is
// answered (or not) from the next query on.

// directory is the point-to-site clients as the name server sees them.
func (g *Gateway) directory() names.Directory {
	if s := g.p2s.Current(); s != nil {
		if d := s.Directory(); d != nil {
			return d
		}
	}
	return names.NoClients
}
