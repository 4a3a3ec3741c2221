// Package observe holds the snapshots a running gateway hands to its
// views (gateway/view): what each running part reports of itself, copied
// under the gateway's lock, in api types and plain values. It decides and
// formats nothing. The gateway and the views both import it; neither
// imports the other.
package observe

import (
	"net/netip"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/routing"
)

// Observation is one look at a running gateway, everything `vgate status`
// is made of.
type Observation struct {
	// Now is when the look was taken; time-based states are judged at it.
	Now time.Time
	// Config is the running config; views only read it.
	Config  *config.Config
	Started time.Time
	Reloads api.ReloadStats
	// Forwarding is the machine's IP forwarding now.
	Forwarding api.Forwarding
	// Port is the counters of the shared WireGuard port (zero without).
	Port api.PortStats
	// P2S is the point-to-site server's report, nil without one.
	P2S    *api.P2SStatus
	DNS    *api.DNSStatus
	Enroll *api.EnrollStatus
	// Sessions are the BGP speaker's sessions by peering (empty without
	// BGP, or when the speaker did not answer).
	Sessions map[string]routing.NeighborStatus
	// Probes are the tunnel probes by peering; Held the peerings whose
	// tunnel the probe found dead after it had answered.
	Probes map[string]api.ProbeStatus
	Held   map[string]bool
	// Drain is the drain's report, nil when not draining.
	Drain *api.DrainStatus
	// Peerings has one entry per Config.Peerings, in the same order.
	Peerings []Peering
}

// Peering is what the running parts report of one configured peering.
type Peering struct {
	// Tunnel is its running tunnel, nil when none runs.
	Tunnel *Tunnel
	// EndpointMoved is when its endpoint name last moved while running
	// (zero: never), and EndpointPrevious the address it moved from.
	EndpointMoved    time.Time
	EndpointPrevious netip.AddrPort
	// ReturnHint is the point-to-site "nothing comes back" hint ("" when
	// the peering is not flagged, or without point-to-site).
	ReturnHint string
}

// Tunnel is one running tunnel's report.
type Tunnel struct {
	MTU int
	// Stats are its counters; StatsErr is why they could not be read
	// ("" when they were). Stats.Queue is left to Queue.
	Stats    dataplane.PeerStats
	StatsErr string
	Queue    *api.QueueStatus
	// Down and IPsec are the tunnel kind's own account (tunnel.View).
	Down  api.DownReason
	IPsec *api.IPsecStatus
	// Relays says the relay transport runs; Path and Relay are then the
	// tunnel's path and its relay's state.
	Relays bool
	Path   string
	Relay  *api.RelayStatus
}

// Counts are the gateway's counters that only the metrics read.
type Counts struct {
	// Refusals counts refused reloads by reason.
	Refusals map[api.RefusalReason]uint64
	// RoutesInstalled is the number of vgate's routes in the kernel, -1
	// when it cannot be read.
	RoutesInstalled int
}
