package api

import (
	"net/netip"
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
	// scarcer family; saturating), PoolFree4/6 per family.
	PoolFree  uint64 `json:"pool_free"`
	PoolFree4 uint64 `json:"pool_free_ipv4"`
	PoolFree6 uint64 `json:"pool_free_ipv6"`
	// Relay is point_to_site.relay's connection, when configured.
	Relay *RelayStatus `json:"relay,omitempty"`
	// Packets the group policy handled, by verdict.
	Packets map[string]uint64 `json:"packets"`
	Denied  uint64            `json:"denied_packets"`
	Error   string            `json:"error,omitempty"`
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
	Name          string       `json:"name"`
	PublicKey     string       `json:"public_key"` // base64
	Groups        []string     `json:"groups"`
	Addresses     []netip.Addr `json:"addresses"`
	KeyGenerated  bool         `json:"key_generated,omitempty"`
	Created       time.Time    `json:"created"`
	Connected     bool         `json:"connected"`
	Endpoint      string       `json:"endpoint,omitempty"`
	LastHandshake time.Time    `json:"last_handshake,omitzero"`
	RxBytes       uint64       `json:"rx_bytes"`
	TxBytes       uint64       `json:"tx_bytes"`
	// Denied counts packets of this client the group policy dropped.
	Denied uint64 `json:"denied_packets"`
	Error  string `json:"error,omitempty"`
	// QuarantinedUntil is set on a revoked client: its addresses return
	// to the pool after this time.
	QuarantinedUntil time.Time `json:"quarantined_until,omitzero"`
}
