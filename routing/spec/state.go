package spec

import (
	"net/netip"
	"time"
)

// State is everything a speaker should do: the prefixes it originates,
// its import policy and its sessions. The speaker (routing.Speaker.Set)
// takes it whole.
type State struct {
	Originate []netip.Prefix
	Protected []Protected
	Neighbors []Neighbor
	// Drain announces every route as least preferred (RFC 8326): the
	// GRACEFUL_SHUTDOWN community and DrainPrepend more copies of the
	// speaker's AS, re-sent to established sessions without a reset.
	Drain bool
}

// DrainPrepend is how many extra times a draining speaker prepends its AS.
const DrainPrepend = 3

// GracefulShutdown is the GRACEFUL_SHUTDOWN community (RFC 8326).
const GracefulShutdown = "65535:0"

// DefaultMaxPrefixes is the per-session limit when a Neighbor sets none.
const DefaultMaxPrefixes = 1000

// Neighbor is one eBGP session.
type Neighbor struct {
	Name         string // the peering's name; routes are reported by it
	Address      netip.Addr
	ASN          uint32
	LocalAddress netip.Addr // source address of the session; zero: any
	Port         uint16     // remote port; 0 means 179
	Passive      bool       // only accept, never dial
	// MaxPrefixes per address family; more received tears the session
	// down (and it stays down until the limit changes). 0 means
	// DefaultMaxPrefixes.
	MaxPrefixes int
	// Allowed, when not nil, is the set of prefixes routes from this
	// neighbor must lie within.
	Allowed []netip.Prefix
	// Prepend is how many extra times the speaker's AS is prepended to
	// the routes it sends this neighbor (to make a path less preferred).
	Prepend int
	// Ingress are the ingress NAT rules of the neighbor's peering: its
	// routes are imported translated (Import.Seen, nat.go).
	Ingress []Translation
	// Hide are prefixes never advertised to this neighbor, nor anything
	// overlapping them (with NAT: what it must not see in this side's
	// numbering).
	Hide []netip.Prefix
	// GracefulRestart, when RestartTime is set, announces graceful
	// restart (RFC 4724) and, with LongLived, long-lived graceful restart
	// (RFC 9494): a neighbor that helps keeps this speaker's routes while
	// it restarts (routing.Speaker.Close(true)). The speaker never claims
	// to have kept its forwarding state (the F bit stays clear).
	GracefulRestart GracefulRestart
}

// GracefulRestart is what a speaker announces of graceful restart.
type GracefulRestart struct {
	RestartTime time.Duration // whole seconds, at most 4095
	LongLived   time.Duration // the long-lived stale time; 0: none
}

// Protected is a prefix no peer may announce, nor anything overlapping it
// (a more-specific or a covering prefix): the gateway's own address spaces,
// its tunnel address, the point-to-site pool, the underlay endpoints of its
// tunnels. Owner names it in rejection reasons.
type Protected struct {
	Prefix netip.Prefix
	Owner  string
}
