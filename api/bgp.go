package api

import (
	"net/netip"
	"time"
)

// BGPStatus is what `vgate bgp` shows.
type BGPStatus struct {
	Enabled   bool             `json:"enabled"`
	ASN       uint32           `json:"asn,omitempty"`
	RouterID  netip.Addr       `json:"router_id,omitzero"`
	Neighbors []NeighborStatus `json:"neighbors"`
	Probes    []ProbeStatus    `json:"probes"`
}

// SessionEstablished is the State of a BGP session that is up.
const SessionEstablished = "established"

// NeighborStatus is one BGP session.
type NeighborStatus struct {
	Name        string     `json:"name"`
	Address     netip.Addr `json:"address"`
	ASN         uint32     `json:"asn"`
	State       string     `json:"state"` // idle, connect, active, opensent, openconfirm, established
	Since       time.Time  `json:"since,omitzero"`
	Received    int        `json:"received"`
	Accepted    int        `json:"accepted"`
	Rejected    int        `json:"rejected"`
	Advertised  int        `json:"advertised"`
	MaxPrefixes int        `json:"max_prefixes"`
	// RejectedTotal counts every (prefix, announcement) rejected since
	// the speaker started, including routes withdrawn since.
	RejectedTotal uint64 `json:"rejected_total"`
	// Down says why the session is held down by vgate ("" when not).
	Down string `json:"down,omitempty"`
	// LastDown is why the session last went down.
	LastDown string `json:"last_down,omitempty"`
}

// ProbeStatus is one probed peering.
type ProbeStatus struct {
	Peering   string        `json:"peering"`
	Address   netip.Addr    `json:"address"`
	Alive     bool          `json:"alive"`
	LastReply time.Time     `json:"last_reply,omitzero"`
	RTT       time.Duration `json:"rtt_ns,omitempty"`
}

// RoutesView is what `vgate routes` shows.
type RoutesView struct {
	Routes []RouteEntry `json:"routes"`
}

// RouteEntry is one line of `vgate routes`.
type RouteEntry struct {
	Prefix  netip.Prefix `json:"prefix"`
	Source  string       `json:"source"` // local, static, bgp, point-to-site
	Peering string       `json:"peering,omitempty"`
	// Peerings, for a BGP path installed in a multipath (ECMP) route, are
	// all the peerings the kernel route goes through, sorted.
	Peerings  []string `json:"peerings,omitempty"`
	ASPath    []uint32 `json:"as_path,omitempty"`
	Installed bool     `json:"installed"`
	// Status says why a route is not installed (or "installed").
	Status string `json:"status"`
}
