package api

import (
	"net/netip"
	"strconv"
	"time"
)

// P2SStatus is the point-to-site section of `vgate status`.
type P2SStatus struct {
	Interface  string         `json:"interface"`
	ListenPort uint16         `json:"listen_port"`
	Endpoint   string         `json:"endpoint"`
	Pool       []netip.Prefix `json:"address_pool"`
	Registered int            `json:"clients_registered"`
	Connected  int            `json:"clients_connected"`
	MaxClients int            `json:"max_clients"`
	// PoolFree is how many more clients the pool can address (the
	// scarcer family; saturating), PoolFree4/6 per family. An IPv6 pool
	// holds more than JSON numbers carry exactly (a /64: 2^64 − 7 free):
	// in JSON these saturate at 2^53 (MaxExactJSON), and the _exact
	// fields carry the exact count as a decimal string.
	PoolFree       Count  `json:"pool_free"`
	PoolFree4      Count  `json:"pool_free_ipv4"`
	PoolFree6      Count  `json:"pool_free_ipv6"`
	PoolFreeExact  string `json:"pool_free_exact,omitempty"`
	PoolFree6Exact string `json:"pool_free_ipv6_exact,omitempty"`
	// Relay is point_to_site.relay's connection, when configured.
	Relay *RelayStatus `json:"relay,omitempty"`
	// Packets the group policy handled, by verdict.
	Packets map[string]uint64 `json:"packets"`
	Denied  uint64            `json:"denied_packets"`
	// PacketsLastMinute and DeniedLastMinute are the growth of Packets and
	// Denied over the last minute, where the gateway can tell.
	PacketsLastMinute map[string]uint64 `json:"packets_last_minute,omitempty"`
	DeniedLastMinute  *uint64           `json:"denied_packets_last_minute,omitempty"`
	Error             string            `json:"error,omitempty"`
	// Disabled says why point_to_site is configured but not running
	// (e.g. a corrupt registry); the other fields are then empty.
	Disabled string `json:"disabled,omitempty"`
	// Queue is how the device's queues are managed.
	Queue *QueueStatus `json:"queue,omitempty"`
}

// AddClientRequest asks to register a point-to-site client.
type AddClientRequest struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
	// PublicKey is the client's own key (base64); empty: the gateway
	// generates a key pair and puts the private key in the returned config
	// (only).
	PublicKey string `json:"public_key,omitempty"`
}

// AddedClient is a registered client and its config.
type AddedClient struct {
	Client ClientInfo `json:"client"`
	// Config is the wg-quick config; it holds the private key when the
	// gateway generated it.
	Config string `json:"config"`
}

// ClientInfo is a client as `vgate client list` shows it; never a private
// key.
type ClientInfo struct {
	Name         string       `json:"name"`
	PublicKey    string       `json:"public_key"` // base64
	Groups       []string     `json:"groups"`
	Addresses    []netip.Addr `json:"addresses"`
	KeyGenerated bool         `json:"key_generated,omitempty"`
	Created      time.Time    `json:"created"`
	// Connected says State is active: the client was heard from (traffic
	// or keepalive) in the last ActiveWindow of gateway/p2s.
	Connected bool `json:"connected"`
	// State is active, idle (heard from earlier: LastHeard), gone (not
	// heard from for longer than a session lasts) or never.
	State         ClientState `json:"state"`
	LastHeard     time.Time   `json:"last_heard,omitzero"`
	Endpoint      string      `json:"endpoint,omitempty"`
	LastHandshake time.Time   `json:"last_handshake,omitzero"`
	RxBytes       uint64      `json:"rx_bytes"`
	TxBytes       uint64      `json:"tx_bytes"`
	// Denied counts packets of this client the group policy dropped.
	Denied uint64 `json:"denied_packets"`
	Error  string `json:"error,omitempty"`
	// QuarantinedUntil is set on a revoked client: its addresses return
	// to the pool after this time.
	QuarantinedUntil time.Time `json:"quarantined_until,omitzero"`
}

// ClientState is what the gateway knows of a point-to-site client's
// presence.
type ClientState string

// Client states, from when the client was last heard from.
const (
	ClientActive ClientState = "active"
	ClientIdle   ClientState = "idle"
	ClientGone   ClientState = "gone"
	ClientNever  ClientState = "never"
)

// MaxExactJSON is 2^53, the largest integer up to which every integer
// has an exact JSON number (an IEEE 754 double).
const MaxExactJSON = 1 << 53

// Count is a count that may exceed MaxExactJSON: it marshals as a JSON
// number saturated at MaxExactJSON, so that no reader gets a rounded
// value it takes for exact.
type Count uint64

// MarshalJSON writes c, saturated at MaxExactJSON.
func (c Count) MarshalJSON() ([]byte, error) {
	return strconv.AppendUint(nil, min(uint64(c), MaxExactJSON), 10), nil
}
