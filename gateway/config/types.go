// Package config owns the gateway's configuration file: the YAML schema
// (documented in README.md), strict decoding with line numbers, defaults, and validation of
// every invariant a config alone can violate (tunnel limit, overlapping
// address spaces, key file permissions). Load returns either a complete,
// validated *Config or an Errors listing every problem; nothing is applied
// here.
package config

import (
	"net/netip"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/keys"
)

// Defaults of the config contract (the tunnel limit itself lives in
// peering.HardLimit).
const (
	DefaultMaxTunnels    = 10
	DefaultListenPort    = 51820
	DefaultControlSocket = "/run/vgate/vgate.sock"
	DefaultStateDir      = "/var/lib/vgate"
	DefaultMaxClients    = 128
	DefaultP2SPort       = 51821
)

// Config is one gateway's validated configuration.
type Config struct {
	Name           string         `yaml:"name" json:"name"`
	AddressSpaces  []netip.Prefix `yaml:"address_spaces" json:"address_spaces"`
	TunnelAddress  netip.Addr     `yaml:"tunnel_address" json:"tunnel_address"`
	PrivateKeyFile string         `yaml:"private_key_file" json:"private_key_file"`
	ListenPort     uint16         `yaml:"listen_port" json:"listen_port"`
	MaxTunnels     int            `yaml:"max_tunnels" json:"max_tunnels"`
	// MTU of the tunnel interfaces; 0 derives it from the underlay MTU
	// minus WireGuard overhead (60 bytes over IPv4, 80 over IPv6).
	MTU         int          `yaml:"mtu,omitempty" json:"mtu,omitempty"`
	BGP         *BGP         `yaml:"bgp,omitempty" json:"bgp,omitempty"`
	Peerings    []Peering    `yaml:"peerings" json:"peerings"`
	PointToSite *PointToSite `yaml:"point_to_site,omitempty" json:"point_to_site,omitempty"`
	// DNS serves names on the tunnel address (gateway/names); nil: off.
	DNS           *DNS    `yaml:"dns,omitempty" json:"dns,omitempty"`
	Metrics       Metrics `yaml:"metrics" json:"metrics"`
	ControlSocket string  `yaml:"control_socket" json:"control_socket"`
	StateDir      string  `yaml:"state_dir" json:"state_dir"`

	// PrivateKey is loaded from PrivateKeyFile by Load; it is never
	// serialized (keys.PrivateKey redacts itself).
	PrivateKey keys.PrivateKey `yaml:"-" json:"-"`
	// Path is the file the config was read from ("" for LoadBytes).
	Path string `yaml:"-" json:"-"`
}

// BGP is the gateway's own BGP speaker.
type BGP struct {
	ASN      uint32     `yaml:"asn" json:"asn"`
	RouterID netip.Addr `yaml:"router_id" json:"router_id,omitempty"`
	// Multipath installs equal-cost paths (same AS path length, from
	// different peerings) as one multipath kernel route (ECMP).
	Multipath bool `yaml:"multipath,omitempty" json:"multipath,omitempty"`
	// Drain starts the gateway drained: its routes are announced least
	// preferred (vgate drain) until `vgate drain --undo`. A reload that
	// changes it drains or undrains.
	Drain bool `yaml:"drain,omitempty" json:"drain,omitempty"`
	// GracefulRestart announces BGP graceful restart to every peer (nil:
	// not announced): a planned stop ends the sessions without a
	// NOTIFICATION, and peers that help keep this gateway's routes for
	// restart_time. Changing it restarts the sessions.
	GracefulRestart *GracefulRestart `yaml:"graceful_restart,omitempty" json:"graceful_restart,omitempty"`
}

// GracefulRestart is bgp.graceful_restart: RFC 4724's restart time and
// RFC 9494's long-lived stale time (0: no long-lived graceful restart).
type GracefulRestart struct {
	RestartTime time.Duration `yaml:"restart_time,omitempty" json:"restart_time,omitempty"`
	LongLived   time.Duration `yaml:"long_lived,omitempty" json:"long_lived,omitempty"`
}

// Graceful restart defaults and bounds (the capability's fields: 12 bits
// of seconds, 24 bits for the long-lived stale time).
const (
	DefaultRestartTime = 120 * time.Second
	MaxRestartTime     = 4095 * time.Second
	MaxLongLivedStale  = 16777215 * time.Second
)

// Timing is the restart and long-lived stale time in effect.
func (g *GracefulRestart) Timing() (restart, longLived time.Duration) {
	if g == nil {
		return 0, 0
	}
	restart = DefaultRestartTime
	if g.RestartTime > 0 {
		restart = g.RestartTime
	}
	return restart, g.LongLived
}

// Peering is one declared site-to-site tunnel.
type Peering struct {
	Name      string         `yaml:"name" json:"name"`
	Network   string         `yaml:"network" json:"network"`
	PublicKey keys.PublicKey `yaml:"public_key" json:"public_key"`
	// Endpoint is host:port of the remote gateway, or "" when only the
	// remote side dials.
	Endpoint      string         `yaml:"endpoint,omitempty" json:"endpoint,omitempty"`
	AddressSpaces []netip.Prefix `yaml:"address_spaces" json:"address_spaces"`
	// TunnelAddress is the remote gateway's tunnel address (an extension
	// of the contract). Defaults to BGP.Address; it is added to the peer's
	// AllowedIPs and routed through the tunnel.
	TunnelAddress netip.Addr `yaml:"tunnel_address" json:"tunnel_address,omitempty"`
	BGP           *PeerBGP   `yaml:"bgp,omitempty" json:"bgp,omitempty"`
	// StaticRoutes are routes installed through this peering's tunnel
	// beside its BGP session (only with bgp, each inside address_spaces).
	// On a BGP peering, address_spaces is only the import allow-list:
	// routes come from BGP alone unless listed here.
	StaticRoutes        []netip.Prefix `yaml:"static_routes,omitempty" json:"static_routes,omitempty"`
	PersistentKeepalive time.Duration  `yaml:"persistent_keepalive,omitempty" json:"persistent_keepalive,omitempty"`
	// DNSZone is the remote gateway's dns.zone: names in it are forwarded
	// to the remote tunnel address through the tunnel (needs dns).
	DNSZone string `yaml:"dns_zone,omitempty" json:"dns_zone,omitempty"`
	// Relay, when set, is the TCP/443 relay (`vgate relay`) the tunnel
	// falls back to when UDP does not get through (gateway/relay).
	Relay *PeerRelay `yaml:"relay,omitempty" json:"relay,omitempty"`
	// Type is the tunnel kind: "wireguard" (the default, also "") or
	// "ipsec" (IKEv2/IPsec to a standard VPN device; ipsec.go).
	Type api.PeeringType `yaml:"type,omitempty" json:"type,omitempty"`
	// IPsec configures a type: ipsec peering.
	IPsec *IPsec `yaml:"ipsec,omitempty" json:"ipsec,omitempty"`
	// NAT are 1:1 prefix rules for networks that overlap (nat.go); the
	// peering's address_spaces are the peer's own addresses, and its
	// tunnel address is written as this side sees it.
	NAT *NAT `yaml:"nat,omitempty" json:"nat,omitempty"`

	// Line is where the peering starts in the file (0 if unknown).
	Line int `yaml:"-" json:"-"`
}

// PeerRelay is a relay a peering can reach its peer through. Both sides
// of the peering name the same relay.
type PeerRelay struct {
	// URL is the relay's WebSocket URL, wss://host[:port]/[path].
	URL string `yaml:"url" json:"url"`
	// Pin is the SHA-256 of the relay's certificate, "sha256:<64 hex>",
	// for a self-signed one; "" verifies it with the system's roots.
	Pin string `yaml:"pin,omitempty" json:"pin,omitempty"`
}

// PeerBGP is the BGP session run over a peering's tunnel.
type PeerBGP struct {
	ASN     uint32     `yaml:"asn" json:"asn"`
	Address netip.Addr `yaml:"address" json:"address"`
	// MaxPrefixes per address family received on the session; more tears
	// it down until the limit changes. 0 means the default (1000).
	MaxPrefixes int `yaml:"max_prefixes,omitempty" json:"max_prefixes,omitempty"`
	// Prepend makes paths through this peering less preferred by the
	// remote side: our AS is prepended this many extra times (0-10) to the
	// routes sent to it.
	Prepend int `yaml:"prepend,omitempty" json:"prepend,omitempty"`
	// Probe times the in-tunnel liveness probe that guards the session
	// (nil: the defaults, DefaultProbeInterval × DefaultProbeMultiplier;
	// `probe: off`: no probe, for a router that is not vgate).
	Probe *Probe `yaml:"probe,omitempty" json:"probe,omitempty"`
	// BFD runs standard BFD (RFC 5880/5881, single hop) with the peer
	// through the tunnel (nil or `bfd: off`: none; `bfd: {}`: the
	// defaults, DefaultBFDInterval × DefaultBFDMultiplier).
	BFD *BFD `yaml:"bfd,omitempty" json:"bfd,omitempty"`
}

// BFD times a peering's BFD session: vgate sends a control packet every
// Interval and asks the peer for no faster; Multiplier intervals without
// one declare the path down. Zero fields take the defaults.
type BFD struct {
	Interval   time.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	Multiplier int           `yaml:"multiplier,omitempty" json:"multiplier,omitempty"`
	// Off is `bfd: off`, the same as no bfd.
	Off bool `yaml:"-" json:"-"`
}

// BFD defaults (bounds: the probe's). 100 ms × 5 detects a dead path in
// 0.5 s at both ends when the router is configured alike.
const (
	DefaultBFDInterval   = 100 * time.Millisecond
	DefaultBFDMultiplier = 5
)

// BFDTiming is the peering's BFD interval and multiplier with the
// defaults applied; ok is false when BFD is off.
func (b *PeerBGP) BFDTiming() (iv time.Duration, m int, ok bool) {
	if b == nil || b.BFD == nil || b.BFD.Off {
		return 0, 0, false
	}
	iv, m = DefaultBFDInterval, DefaultBFDMultiplier
	if b.BFD.Interval > 0 {
		iv = b.BFD.Interval
	}
	if b.BFD.Multiplier > 0 {
		m = b.BFD.Multiplier
	}
	return iv, m, true
}

// ProbeOff reports `probe: off`: the peering's tunnel is not probed.
func (b *PeerBGP) ProbeOff() bool { return b != nil && b.Probe != nil && b.Probe.Off }

// Probe is the BFD-like liveness probe through a peering's tunnel: an ICMP
// echo every Interval; Multiplier intervals without a reply declare the
// tunnel dead (its BGP routes are withdrawn at once). Zero fields take the
// defaults.
type Probe struct {
	Interval   time.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	Multiplier int           `yaml:"multiplier,omitempty" json:"multiplier,omitempty"`
	// Off is `probe: off`: no probe (a router that drops ICMP echo).
	Off bool `yaml:"-" json:"-"`
}

// Probe defaults and bounds. 50 ms × 8 detects a dead tunnel in 0.4 s and
// does not flap under 10 % random loss each way: a probe round trip is
// lost with p = 1 - 0.9² = 0.19, eight in a row with 0.19⁸ ≈ 1.7e-6, so at
// 20 probes a second a false "dead" comes about once in 8 hours of such
// loss (README.md, "Liveness probe").
const (
	DefaultProbeInterval   = 50 * time.Millisecond
	DefaultProbeMultiplier = 8
	MinProbeInterval       = 10 * time.Millisecond
	MaxProbeInterval       = 10 * time.Second
	MinProbeMultiplier     = 3
	MaxProbeMultiplier     = 50
	MaxProbeDetection      = 30 * time.Second
)

// ProbeTiming is the peering's probe interval and multiplier with the
// defaults applied.
func (b *PeerBGP) ProbeTiming() (time.Duration, int) {
	iv, m := DefaultProbeInterval, DefaultProbeMultiplier
	if b != nil && b.Probe != nil {
		if b.Probe.Interval > 0 {
			iv = b.Probe.Interval
		}
		if b.Probe.Multiplier > 0 {
			m = b.Probe.Multiplier
		}
	}
	return iv, m
}

// PointToSite configures laptop and phone clients.
type PointToSite struct {
	ListenPort  uint16         `yaml:"listen_port" json:"listen_port"`
	Endpoint    string         `yaml:"endpoint" json:"endpoint"`
	AddressPool []netip.Prefix `yaml:"address_pool" json:"address_pool"`
	MaxClients  int            `yaml:"max_clients" json:"max_clients"`
	DNS         []netip.Addr   `yaml:"dns,omitempty" json:"dns,omitempty"`
	Groups      []Group        `yaml:"groups" json:"groups"`
	// DNSSearch are the search domains client configs get (DNS = also
	// lists them). It is not written in the file: with the gateway's dns
	// section, Load sets DNS to the tunnel address and DNSSearch to the
	// zone.
	DNSSearch []string `yaml:"-" json:"dns_search,omitempty"`
	// Enroll is the invite enrollment listener; nil: off.
	Enroll *Enroll `yaml:"enroll,omitempty" json:"enroll,omitempty"`
	// Relay, when set, is a relay (`vgate relay`) through which clients
	// behind firewalls that allow only HTTPS reach the gateway
	// (`vgate connect --relay`).
	Relay *PeerRelay `yaml:"relay,omitempty" json:"relay,omitempty"`
}

// DNS is the gateway's name server, served on its tunnel address (UDP
// and TCP port 53).
type DNS struct {
	// Zone is the gateway's own zone: <client>.<zone> and <name>.<zone>.
	Zone string `yaml:"zone" json:"zone"`
	// Upstream resolvers (IP or IP:port, default port 53) answer every
	// other name for clients and the local network; none: REFUSED.
	Upstream []string `yaml:"upstream,omitempty" json:"upstream,omitempty"`
}

// Enroll is the HTTPS listener that turns invite tokens into clients
// (gateway/enroll).
type Enroll struct {
	// Listen is host:port of the HTTPS listener.
	Listen string `yaml:"listen" json:"listen"`
	// URL is what invite tokens tell laptops to dial; default
	// https://<point_to_site.endpoint's host>:<listen's port>/.
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
}

// Group is a named set of P2S clients with an access policy.
type Group struct {
	Name           string         `yaml:"name" json:"name"`
	Allow          []netip.Prefix `yaml:"allow" json:"allow"`
	Interconnected bool           `yaml:"interconnected" json:"interconnected"`
	// GatewayServices opens ports on the gateway itself to members, on
	// the gateway addresses the group's allow list (or dns) reaches: each
	// entry is tcp/PORT, udp/PORT, tcp/FIRST-LAST, udp/FIRST-LAST or icmp
	// (see ParseService). Without it members reach only DNS (port 53) on
	// a point_to_site.dns address of the gateway and ICMP echo.
	GatewayServices []string `yaml:"gateway_services,omitempty" json:"gateway_services,omitempty"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Listen is host:port; "" disables the endpoint.
	Listen string `yaml:"listen" json:"listen"`
}

// PeerTunnelAddress returns the remote gateway's tunnel address, if known.
func (p *Peering) PeerTunnelAddress() netip.Addr {
	if p.TunnelAddress.IsValid() {
		return p.TunnelAddress
	}
	if p.BGP != nil {
		return p.BGP.Address
	}
	return netip.Addr{}
}

// AllowedIPs is everything the peering's remote gateway may send from or
// receive at: its declared address spaces and its tunnel address (as a host
// prefix), deduplicated, in declaration order.
func (p *Peering) AllowedIPs() []netip.Prefix {
	static := p.StaticSpaces()
	out := make([]netip.Prefix, 0, len(static)+1)
	seen := make(map[netip.Prefix]bool)
	add := func(q netip.Prefix) {
		if !seen[q] {
			seen[q] = true
			out = append(out, q)
		}
	}
	for _, q := range static {
		add(q.Masked())
	}
	if a := p.PeerTunnelAddress(); a.IsValid() {
		covered := false
		for _, q := range static {
			if q.Contains(a) {
				covered = true
				break
			}
		}
		if !covered {
			add(netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// StaticSpaces are the prefixes routed through the peering without BGP:
// its address_spaces when it runs no BGP, else only its static_routes
// (address_spaces of a BGP peering is the import allow-list).
func (p *Peering) StaticSpaces() []netip.Prefix {
	if p.BGP != nil {
		return p.StaticRoutes
	}
	return p.AddressSpaces
}
