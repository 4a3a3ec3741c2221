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
	// BFD are the peerings' BFD sessions (peerings[].bgp.bfd).
	BFD []BFDStatus `json:"bfd,omitempty"`
	// BFDDropped counts received BFD packets dropped, by reason: ttl (not
	// 255: from further than one hop), interface (not through the
	// session's tunnel), unknown_source, malformed, discriminator.
	BFDDropped map[string]uint64 `json:"bfd_dropped,omitempty"`
}

// BFDStatus is one peering's BFD session (RFC 5880).
type BFDStatus struct {
	Peering   string     `json:"peering"`
	Address   netip.Addr `json:"address"`
	Interface string     `json:"interface,omitempty"`
	// State and RemoteState: admin_down, down, init, up. LocalDiag is why
	// this end last took the session down (e.g.
	// control_detection_time_expired), RemoteDiag what the peer says.
	State       string `json:"state"`
	RemoteState string `json:"remote_state"`
	LocalDiag   string `json:"local_diag"`
	RemoteDiag  string `json:"remote_diag"`
	// Interval and Multiplier are the configured timing; TxInterval the
	// negotiated transmit interval, Detect the detection time (0 while
	// the peer is not heard), and the Remote fields what the peer asks.
	Interval         time.Duration `json:"interval_ns"`
	Multiplier       int           `json:"multiplier"`
	TxInterval       time.Duration `json:"tx_interval_ns"`
	Detect           time.Duration `json:"detect_ns,omitempty"`
	RemoteMultiplier int           `json:"remote_multiplier,omitempty"`
	RemoteMinRx      time.Duration `json:"remote_min_rx_ns,omitempty"`
	RemoteDesiredTx  time.Duration `json:"remote_desired_tx_ns,omitempty"`
	// EverUp: the session has been up since vgate started it; one that
	// never was (BFD not configured on the router) holds nothing.
	EverUp   bool      `json:"ever_up"`
	UpSince  time.Time `json:"up_since,omitzero"`
	LastDown time.Time `json:"last_down,omitzero"`
	Downs    int       `json:"downs"`
	// PeerAdminDown: the peer took BFD administratively down; vgate
	// does not treat it as a failure.
	PeerAdminDown bool   `json:"peer_admin_down,omitempty"`
	Received      uint64 `json:"received"`
	Sent          uint64 `json:"sent"`
}

// SessionState is a BGP session's finite-state-machine state (RFC 4271
// section 8.2.2).
type SessionState string

// Session states; SessionEstablished is a session that is up.
const (
	SessionIdle        SessionState = "idle"
	SessionConnect     SessionState = "connect"
	SessionActive      SessionState = "active"
	SessionOpenSent    SessionState = "opensent"
	SessionOpenConfirm SessionState = "openconfirm"
	SessionEstablished SessionState = "established"
)

// SessionDownCode says why a BGP session is (or last went) down. Callers
// compare it with ==; the human text is in NeighborStatus.Down and
// LastDown.
type SessionDownCode string

const (
	// SessionDownNone: the session is established, or has never been up
	// and no reason is known yet.
	SessionDownNone SessionDownCode = ""
	// SessionDownMaxPrefix: the neighbor sent more prefixes than its
	// limit; the session is held down until the limit changes.
	SessionDownMaxPrefix SessionDownCode = "max_prefix"
	// SessionDownProbe: vgate holds the session down because its tunnel
	// does not answer.
	SessionDownProbe SessionDownCode = "probe"
	// SessionDownBFD: vgate holds the session down because its BFD
	// session went down (the Down text carries the diagnostic).
	SessionDownBFD SessionDownCode = "bfd_down"
	// SessionDownAdmin: held down administratively for another reason.
	SessionDownAdmin SessionDownCode = "admin"
	// SessionDownNotificationReceived: the neighbor closed the session
	// with a NOTIFICATION (see NeighborStatus.Notification).
	SessionDownNotificationReceived SessionDownCode = "notification_received"
	// SessionDownNotificationSent: this speaker closed the session with a
	// NOTIFICATION, e.g. on a malformed UPDATE or a bad peer AS.
	SessionDownNotificationSent SessionDownCode = "notification_sent"
	// SessionDownHoldTimerExpired: nothing heard from the neighbor for
	// the hold time.
	SessionDownHoldTimerExpired SessionDownCode = "hold_timer_expired"
	// SessionDownConnectionLost: the TCP connection failed (read or write
	// error, or the neighbor closed it without a NOTIFICATION).
	SessionDownConnectionLost SessionDownCode = "connection_lost"
	// SessionDownOther: a reason none of the above covers.
	SessionDownOther SessionDownCode = "other"
)

// NeighborStatus is one BGP session.
type NeighborStatus struct {
	Name        string       `json:"name"`
	Address     netip.Addr   `json:"address"`
	ASN         uint32       `json:"asn"`
	State       SessionState `json:"state"`
	Since       time.Time    `json:"since,omitzero"`
	Received    int          `json:"received"`
	Accepted    int          `json:"accepted"`
	Rejected    int          `json:"rejected"`
	Advertised  int          `json:"advertised"`
	MaxPrefixes int          `json:"max_prefixes"`
	// RejectedTotal counts every (prefix, announcement) rejected since
	// the speaker started, including routes withdrawn since.
	RejectedTotal uint64 `json:"rejected_total"`
	// Down says why the session is held down by vgate ("" when not).
	Down string `json:"down,omitempty"`
	// LastDown is why the session last went down.
	LastDown string `json:"last_down,omitempty"`
	// DownCode is the typed reason the session is not established (vgate's
	// own hold first, else how it last went down; SessionDownNone when
	// established); LastDownCode how it last went down, at LastDownAt
	// (kept after it comes back up).
	DownCode     SessionDownCode `json:"down_code,omitempty"`
	LastDownCode SessionDownCode `json:"last_down_code,omitempty"`
	LastDownAt   time.Time       `json:"last_down_at,omitzero"`
	// Notification is the last BGP NOTIFICATION sent or received on the
	// session (e.g. bad peer AS), nil if none.
	Notification *Notification `json:"notification,omitempty"`
	// NextAttempt is when vgate starts a down session afresh (zero: no
	// attempt scheduled, e.g. established, held down, or dialing now).
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Passive: this end only listens; the peer (a vgate gateway with the
	// higher tunnel address) dials.
	Passive bool `json:"passive,omitempty"`
	// Recoveries counts the times vgate's watchdog started the session
	// afresh because it was not established for 30 s while its tunnel
	// answered.
	Recoveries uint64 `json:"recoveries,omitempty"`
}

// Notification is a BGP NOTIFICATION message (RFC 4271 section 4.5).
type Notification struct {
	Direction string    `json:"direction"` // "sent" or "received"
	Code      uint8     `json:"code"`
	Subcode   uint8     `json:"subcode"`
	Text      string    `json:"text,omitempty"` // e.g. "open message error: bad peer AS"
	At        time.Time `json:"at,omitzero"`
}

// ProbeStatus is one probed peering.
type ProbeStatus struct {
	Peering   string        `json:"peering"`
	Address   netip.Addr    `json:"address"`
	Alive     bool          `json:"alive"`
	LastReply time.Time     `json:"last_reply,omitzero"`
	RTT       time.Duration `json:"rtt_ns,omitempty"`
	// Interval and Multiplier are the probe's timing (peerings[].bgp.probe):
	// Multiplier intervals without a reply declare the tunnel dead.
	Interval   time.Duration `json:"interval_ns,omitempty"`
	Multiplier int           `json:"multiplier,omitempty"`
	// Idle: no user traffic goes into the tunnel, so it is probed once a
	// second and its detection time is Multiplier seconds; traffic makes
	// it use Interval again at once.
	Idle bool `json:"idle,omitempty"`
	// Vgate: the peer's own probes arrive, so it runs vgate. Plain: none
	// has arrived while it answered for 5 s (or never answered for 30
	// s), so it does not, and this end dials its session.
	Vgate bool `json:"vgate,omitempty"`
	Plain bool `json:"plain,omitempty"`
	// PeerASN and PeerExpects are what a vgate peer's probes say: its own
	// AS and the AS it is configured to expect of this gateway (0 when
	// not known). `vgate bgp` compares them with the config on both sides.
	PeerASN     uint32 `json:"peer_asn,omitempty"`
	PeerExpects uint32 `json:"peer_expects,omitempty"`
	// Draining: the vgate peer's probes say it drains (vgate drain), so
	// this gateway routes around it where another path exists; Avoiding:
	// this gateway's routes no longer go through it. Avoids: the peer's
	// probes say its routes no longer go through this gateway (which
	// drains).
	Draining bool `json:"draining,omitempty"`
	Avoiding bool `json:"avoiding,omitempty"`
	Avoids   bool `json:"avoids,omitempty"`
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
	// PeerPrefix is the prefix as the peering's peer numbers it, when its
	// NAT ingress rules show it to this side as Prefix (docs/nat.md).
	PeerPrefix netip.Prefix `json:"peer_prefix,omitzero"`
	// Peerings, for a BGP path installed in a multipath (ECMP) route, are
	// all the peerings the kernel route goes through, sorted.
	Peerings  []string `json:"peerings,omitempty"`
	ASPath    []uint32 `json:"as_path,omitempty"`
	Installed bool     `json:"installed"`
	// Status says why a route is not installed (or "installed").
	Status string `json:"status"`
	// Conflict is the route vgate did not install that holds the
	// destination, when that is why this one is not installed.
	Conflict *ForeignRoute `json:"conflict,omitempty"`
}

// ForeignRoute is a kernel route vgate did not install; vgate never
// replaces or removes one.
type ForeignRoute struct {
	Dst      netip.Prefix `json:"dst"`
	Dev      string       `json:"dev,omitempty"`
	Gateway  netip.Addr   `json:"gateway,omitzero"`
	Type     string       `json:"type,omitempty"`
	Protocol int          `json:"protocol"`
	Metric   int          `json:"metric"`
}

// RejectCode says why BGP import refused a route.
type RejectCode string

const (
	// RejectProtected: the route overlaps a prefix the gateway protects
	// (its address spaces, tunnel address, pool, underlay endpoints).
	RejectProtected RejectCode = "protected"
	// RejectOutsideAddressSpaces: the route lies outside the peering's
	// address_spaces.
	RejectOutsideAddressSpaces RejectCode = "outside_address_spaces"
	// RejectNATInternal: the route contains one of the peering's
	// nat.ingress internals, so it is not one route once translated.
	RejectNATInternal RejectCode = "nat_internal"
	// RejectNATExternal: the route lies, untranslated, in the peering's
	// own nat.ingress external.
	RejectNATExternal RejectCode = "nat_external"
	// RejectPeeringNATExternal: the route overlaps another peering's
	// nat.ingress external.
	RejectPeeringNATExternal RejectCode = "peering_nat_external"
)

// RouteRejection is why BGP import refused a route: a code and what its
// text names. The zero value is no rejection. In text and JSON it is the
// human reason (String), e.g. "overlaps local address space 10.1.0.0/16".
type RouteRejection struct {
	Code RejectCode
	// Conflict is the prefix the route overlaps or contains; Owner what
	// it is (RejectProtected) or the peering it belongs to
	// (RejectPeeringNATExternal).
	Conflict netip.Prefix
	Owner    string
	// Seen is the route as this side sees it, when the peering's
	// nat.ingress rules translated it.
	Seen netip.Prefix
}

// String is the human reason.
func (r RouteRejection) String() string {
	as := ""
	if r.Seen.IsValid() {
		as = "seen as " + r.Seen.String() + ", "
	}
	switch r.Code {
	case "":
		return ""
	case RejectProtected:
		return as + "overlaps " + r.Owner + " " + r.Conflict.String()
	case RejectOutsideAddressSpaces:
		return "outside the peering's address_spaces"
	case RejectNATInternal:
		return "contains nat.ingress internal " + r.Conflict.String() + "; not translatable as one route"
	case RejectNATExternal:
		return "overlaps nat.ingress external " + r.Conflict.String() + ", where this side sees translated addresses of the peer"
	case RejectPeeringNATExternal:
		return as + "overlaps peering " + r.Owner + "'s nat.ingress external " + r.Conflict.String()
	}
	return string(r.Code)
}

// MarshalText is String: the JSON of a rejection is its human reason.
func (r RouteRejection) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
