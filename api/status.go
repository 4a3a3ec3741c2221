package api

import (
	"net/netip"
	"time"
)

// Status is what `vgate status` shows: the gateway, its tunnels used
// against the limit, and every configured peering. It never contains key
// material other than public keys.
type Status struct {
	Name          string          `json:"name"`
	PublicKey     string          `json:"public_key"`
	AddressSpaces []netip.Prefix  `json:"address_spaces"`
	TunnelAddress netip.Addr      `json:"tunnel_address"`
	ListenPort    uint16          `json:"listen_port"`
	Tunnels       TunnelCount     `json:"tunnels"`
	Peerings      []PeeringStatus `json:"peerings"`
	Started       time.Time       `json:"started"`
	Reloads       ReloadStats     `json:"reloads"`
	ConfigFile    string          `json:"config_file,omitempty"`
	// Port counts what the shared UDP port did with received datagrams.
	Port PortStats `json:"port"`
	// P2S is the point-to-site server; nil when not configured.
	P2S *P2SStatus `json:"point_to_site,omitempty"`
	// Forwarding is whether the machine forwards packets: without it
	// tunnels come up but nothing behind the gateway gets through.
	Forwarding Forwarding `json:"ip_forwarding"`
	// DNS and Enroll are the name server and the invite enrollment
	// listener; nil when not configured (names.go).
	DNS    *DNSStatus    `json:"dns,omitempty"`
	Enroll *EnrollStatus `json:"enroll,omitempty"`
	// Drain is the gateway's drain (vgate drain); nil when it does not
	// drain.
	Drain *DrainStatus `json:"drain,omitempty"`
}

// Forwarding is the kernel's IP forwarding switches
// (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding).
type Forwarding struct {
	IPv4 bool `json:"ipv4"`
	IPv6 bool `json:"ipv6"`
}

// TunnelCount is tunnels in use against the limit.
type TunnelCount struct {
	Used  int `json:"used"`
	Up    int `json:"up"`
	Limit int `json:"limit"`
}

// PeeringState is a peering's tunnel state as status and metrics show it.
type PeeringState string

const (
	// StateDown: configured, but no handshake has completed yet.
	StateDown PeeringState = "down"
	// StateUp: the last handshake is recent.
	StateUp PeeringState = "up"
	// StateStale: the last handshake is too old for a live session.
	StateStale PeeringState = "stale"
)

// PeeringStatus is one configured peering and its tunnel.
type PeeringStatus struct {
	Name          string         `json:"name"`
	Network       string         `json:"network"`
	PublicKey     string         `json:"public_key"`
	Interface     string         `json:"interface"`
	MTU           int            `json:"mtu"`
	State         PeeringState   `json:"state"`
	Reason        DownReason     `json:"reason,omitempty"` // why it is not up (DownReasons); "" when up
	Endpoint      string         `json:"endpoint,omitempty"`
	LastHandshake time.Time      `json:"last_handshake,omitzero"`
	RxBytes       uint64         `json:"rx_bytes"`
	TxBytes       uint64         `json:"tx_bytes"`
	AddressSpaces []netip.Prefix `json:"address_spaces"`
	AllowedIPs    []netip.Prefix `json:"allowed_ips"`
	Error         string         `json:"error,omitempty"`
	// DroppedSource counts packets from the peer dropped because their
	// source is not in AllowedIPs (the source check).
	DroppedSource uint64 `json:"dropped_source"`
	// DroppedSourceLastMinute is how many of those were in the last
	// minute; absent when the gateway cannot tell yet.
	DroppedSourceLastMinute *uint64 `json:"dropped_source_last_minute,omitempty"`
	// Hint is what to check when the peering is not up, or when P2S clients
	// send toward it and nothing comes back, for people (never
	// matched by code; Reason is the code), "" when there is none.
	Hint string `json:"hint,omitempty"`
	// EndpointMoved is when the endpoint's DNS name last pointed somewhere
	// new while the gateway ran (the tunnel followed it), and
	// EndpointPrevious where it pointed before; zero and "" if it never
	// moved.
	EndpointMoved    time.Time `json:"endpoint_moved,omitzero"`
	EndpointPrevious string    `json:"endpoint_previous,omitempty"`
	// Path is how the tunnel's datagrams travel now: "direct" (UDP) or
	// "relay" (TCP/443 through Relay).
	Path string `json:"path,omitempty"`
	// Relay is the peering's relay, when it has one.
	Relay *RelayStatus `json:"relay,omitempty"`
	// Type is the peering's kind.
	Type PeeringType `json:"type,omitempty"`
	// IPsec is an IPsec peering's SAs; nil for WireGuard.
	IPsec *IPsecStatus `json:"ipsec,omitempty"`
	// NAT is the peering's translation rules with their counters; nil
	// without rules (docs/nat.md).
	NAT *NATStatus `json:"nat,omitempty"`
	// Queue is how a WireGuard tunnel's queues are managed; nil for IPsec.
	Queue *QueueStatus `json:"queue,omitempty"`
}

// NATStatus is a peering's NAT rules and what they translated. Out is
// into the tunnel (toward the peer), In out of it. Totals count each
// translated packet once; a packet whose two addresses two rules
// translate counts for both rules.
type NATStatus struct {
	Rules []NATRuleStatus `json:"rules"`
	Out   NATCounts       `json:"out"`
	In    NATCounts       `json:"in"`
	// DroppedOut and DroppedIn count packets a rule applied to but that
	// could not be translated, by reason (malformed, ambiguous,
	// source-routed).
	DroppedOut map[string]uint64 `json:"dropped_out,omitempty"`
	DroppedIn  map[string]uint64 `json:"dropped_in,omitempty"`
}

// NATRuleStatus is one rule: Rule names it as the config does
// ("ingress[0]").
type NATRuleStatus struct {
	Rule     string       `json:"rule"`
	Internal netip.Prefix `json:"internal"`
	External netip.Prefix `json:"external"`
	Out      NATCounts    `json:"out"`
	In       NATCounts    `json:"in"`
}

// NATCounts are translated packets and their bytes (IP lengths).
type NATCounts struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// QueueStatus is a WireGuard tunnel's queue management: vgate's own
// flow-fair queue with CoDel between the TUN and the device on the send
// side, and budgets (like BQL) on what the device holds in flight.
type QueueStatus struct {
	Discipline    string `json:"discipline"`      // "fq_codel": vgate's, on the send side
	Qdisc         string `json:"qdisc,omitempty"` // the kernel's qdisc on the interface ("" unknown)
	Queued        int    `json:"queued"`          // packets in the send queue now
	SendInFlight  int    `json:"send_in_flight"`  // read by the device, not yet sent
	SendBudget    int    `json:"send_budget"`     // the most it may hold (plus one batch)
	RecvInFlight  int    `json:"recv_in_flight"`  // received by the device, not yet written to the TUN
	RecvBudget    int    `json:"recv_budget"`     //
	DroppedCoDel  uint64 `json:"dropped_codel"`   // dropped for their time in the send queue
	MarkedCE      uint64 `json:"marked_ce"`       // ECN-capable: marked CE instead of dropped
	DroppedLimit  uint64 `json:"dropped_limit"`   // send queue full: the longest flow's oldest packet
	BudgetResyncs uint64 `json:"budget_resyncs"`  // the send budget reset after a stall, or a received batch freed unwritten after one (packets the device dropped itself)
}

// RelayStatus is a peering's relay connection.
type RelayStatus struct {
	URL       string    `json:"url"`
	State     string    `json:"state"` // connecting, connected, refused, failed
	Error     string    `json:"error,omitempty"`
	Since     time.Time `json:"since"`
	TxPackets uint64    `json:"tx_packets"` // datagrams the tunnel sent over the relay
	RxPackets uint64    `json:"rx_packets"` // and received
}

// IPsecStatus is what vgate's charon says of an IPsec peering.
type IPsecStatus struct {
	// ESPMode is where ESP runs: "libipsec" (userspace ESP in charon's
	// kernel-libipsec plugin, on one TUN); ESPModeText says it for people.
	ESPMode     string `json:"esp_mode"`
	ESPModeText string `json:"esp_mode_text"`
	// IKEState and ChildState are charon's SA states ("ESTABLISHED",
	// "INSTALLED", ...), "" when there is none.
	IKEState   string    `json:"ike_state"`
	ChildState string    `json:"child_state"`
	UpSince    time.Time `json:"up_since,omitzero"`
	// IKERekeys and ChildRekeys count completed rekeyings since start.
	IKERekeys   uint64 `json:"ike_rekeys"`
	ChildRekeys uint64 `json:"child_rekeys"`
	// LastAlert is charon's text of the last failure (for people; Reason
	// is the code).
	LastAlert string `json:"last_alert,omitempty"`
}

// ReloadStats counts reloads by result.
type ReloadStats struct {
	OK        int       `json:"ok"`
	Failed    int       `json:"failed"`
	LastError string    `json:"last_error,omitempty"`
	Last      time.Time `json:"last,omitempty"`
}

// PortStats counts what the shared tunnel port did with received
// datagrams.
type PortStats struct {
	Dispatched          uint64 `json:"dispatched"`            // handed to a device queue
	DroppedUnknownIndex uint64 `json:"dropped_unknown_index"` // response, cookie or transport with an index no device registered
	DroppedMalformed    uint64 `json:"dropped_malformed"`     // too short, wrong size for its type, or unknown type
	DroppedQueueFull    uint64 `json:"dropped_queue_full"`    // a device's queue was full (the sum over Devices)
	DroppedNotOpen      uint64 `json:"dropped_not_open"`      // the packet's device is closed

	// Handshake responses to a tunnel's own handshake.
	DroppedResponseBadMAC uint64 `json:"dropped_response_bad_mac"` // MAC1 wrong
	DroppedResponseLater  uint64 `json:"dropped_response_later"`   // another response to the same handshake waits, or a copy of one the device holds

	// The front door: handshake initiations, checked once for all tunnels.
	Initiations          uint64 `json:"initiations"`            // received, of the right size
	DroppedHandshakeBusy uint64 `json:"dropped_handshake_busy"` // the front door's queue was full
	DroppedBadMAC        uint64 `json:"dropped_bad_mac"`        // MAC1 wrong
	DroppedRateLimited   uint64 `json:"dropped_rate_limited"`   // under load, valid MAC2, source over its rate
	DroppedBadHandshake  uint64 `json:"dropped_bad_handshake"`  // static key or timestamp did not decrypt
	DroppedReplay        uint64 `json:"dropped_replay"`         // timestamp not after the last admitted from that peer
	DroppedUnknownPeer   uint64 `json:"dropped_unknown_peer"`   // static key is no tunnel's peer
	CookieReplies        uint64 `json:"cookie_replies"`         // sent under load to initiations without a valid MAC2
	X25519               uint64 `json:"x25519"`                 // X25519 operations on received initiations
	UnderLoad            bool   `json:"under_load"`             // MAC2 is required now

	// Devices are each tunnel device's share of the port, by name.
	Devices []PortDevice `json:"devices,omitempty"`
	// DroppedLastMinute is, by the name of a dropped_ counter above
	// without its prefix (unknown_index, malformed, queue_full, not_open),
	// its growth over the last minute, where the gateway can tell.
	DroppedLastMinute map[string]uint64 `json:"dropped_last_minute,omitempty"`
}

// PortDevice is one tunnel device's queue on the shared port.
type PortDevice struct {
	Name             string `json:"name"`
	Open             bool   `json:"open"`
	QueueDepth       int    `json:"queue_depth"` // packets waiting for the device now
	QueueCap         int    `json:"queue_cap"`
	Dispatched       uint64 `json:"dispatched"`
	DroppedQueueFull uint64 `json:"dropped_queue_full"`
	// InitiationsSent counts the handshake initiations the device sent;
	// UnansweredSince is when the oldest one its peer has not answered
	// yet was sent (zero when none waits).
	InitiationsSent uint64    `json:"initiations_sent"`
	UnansweredSince time.Time `json:"unanswered_since,omitzero"`
	// SendRefused counts the datagrams this host refused to send (EPERM:
	// a local firewall's output rule); SendBlockedSince is when the
	// refusals began (zero once a send went out), SendBlockedTo where they
	// went.
	SendRefused      uint64    `json:"send_refused"`
	SendBlockedSince time.Time `json:"send_blocked_since,omitzero"`
	SendBlockedTo    string    `json:"send_blocked_to,omitempty"`
	// DroppedCoDel counts transport packets dropped because they waited
	// in the queue too long (CoDel).
	DroppedCoDel uint64 `json:"dropped_codel"`
}

// Metrics is what the Prometheus collector reads at scrape time: the
// status plus figures `vgate status` does not show.
type Metrics struct {
	Status
	// RoutesInstalled is the number of kernel routes vgate owns (protocol
	// 76), or -1 if they could not be listed.
	RoutesInstalled int
	// Refusals counts refused reloads by reason (RefusalReasons).
	Refusals map[RefusalReason]uint64
	// BGP is the speaker's sessions and tunnel probes; nil without bgp or
	// when the speaker could not be read.
	BGP *BGPStatus
	// Clients are the registered point-to-site clients (nil without
	// point_to_site), each with its device counters.
	Clients []ClientInfo
}

// PeeringType is a peering's tunnel kind, as the config's `type` names it.
type PeeringType string

// Peering types.
const (
	PeeringWireGuard PeeringType = "wireguard" // the default, also ""
	PeeringIPsec     PeeringType = "ipsec"
)
