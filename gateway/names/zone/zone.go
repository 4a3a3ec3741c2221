// Package zone is what the gateway's name server (gateway/names) answers,
// as values: the gateway's zone, its peers and upstreams. The planner
// builds a Zone from the config; the server answers from it. It touches
// no socket.
package zone

import (
	"net/netip"

	"github.com/vgate-project/vgate/nat"
)

// Zone is the static part of what the server answers, planned from the
// config (gateway/plan).
type Zone struct {
	// Zone is the gateway's zone, canonical: lower case with the root's
	// dot ("east.vnet.internal.").
	Zone string
	// Gateway is the gateway's name: Gateway.Zone is TunnelAddress.
	Gateway       string
	TunnelAddress netip.Addr
	// Local are the gateway's own address spaces: askers there may use
	// the forwarders.
	Local []netip.Prefix
	// Peers are the peerings, with the zone each forwards (if any).
	Peers []Peer
	// Upstream resolvers for every other name.
	Upstream []netip.AddrPort
}

// Peer is one peering as the name server sees it.
type Peer struct {
	Name string
	// Zone is the remote gateway's zone (canonical), "" if not declared.
	Zone string
	// Addr is the remote gateway's tunnel address, where its zone is
	// served.
	Addr netip.Addr
	// Spaces are the addresses the peering's side may send from (its
	// AllowedIPs): a query from there is that peer's.
	Spaces []netip.Prefix
	// Ingress are the peering's NAT ingress rules: answers from its zone
	// are mapped through them (names.MapForwarded).
	Ingress []nat.Rule
}
