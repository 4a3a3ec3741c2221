// Package plan is vgate's one planner: Plan turns (config, environment,
// routes accepted by BGP, point-to-site state) into the whole desired state
// of a gateway — tunnels of every kind, kernel routes, the tunnel address,
// the BGP speaker's sessions and import policy, the tunnel probes and the
// point-to-site device. It is pure: it touches no netlink, socket or file,
// so every decision is table-tested here. The gateway's applier
// (gateway/apply.go) moves the running state to a plan by diff.
//
// Start, reload, a BGP RIB change and the `vgate routes` view all call
// Plan; nothing else assembles desired state. docs/architecture.md shows
// the flow config → plan → apply → data plane.
//
// Adding a tunnel kind (WireGuard and IPsec exist) means: a Kind constant
// and its spec field on Tunnel, one branch in desired() for the config's
// peering type, and one implementation of tunnel.Kind (gateway/tunnel).
// Routes, admission, BGP and status stay as they are: they only see
// Tunnel's common fields.
package plan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/vgate-project/vgate/api"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/names/zone"
	"github.com/vgate-project/vgate/gateway/route"
	"github.com/vgate-project/vgate/gateway/wgspec"
	"github.com/vgate-project/vgate/ipsec"
	"github.com/vgate-project/vgate/routing/bfd"
	"github.com/vgate-project/vgate/routing/spec"
)

// Input is everything a plan depends on.
type Input struct {
	Config *config.Config
	Env    Env
	// Learned is the speaker's last RIB snapshot: every route received,
	// accepted or rejected (only accepted ones are used).
	Learned []spec.Route
	// P2SDown: point_to_site is configured but its server is not running
	// (e.g. a corrupt registry); the pool is then not routed to it.
	P2SDown bool
	// Endpoints and Connected are facts of the running system that the
	// BGP import filter protects (only read with bgp): the underlay
	// endpoints tunnels and connected point-to-site clients use now, and
	// the subnets on the host's own (non-vgate) interfaces. A learned route
	// covering one would carry a tunnel into itself, or an underlay or LAN
	// into a tunnel.
	Endpoints []UnderlayEndpoint
	Connected []route.Connected
	// Remembered are the underlay endpoints the peers had when this
	// gateway last ran (state_dir, gateway/remember). A peering without
	// a configured endpoint (dial-in only) gets its remembered one, so
	// that the restarted side can dial. A configured endpoint always wins,
	// even one that does not resolve; an entry for another public key or
	// a peering the config no longer has is ignored. The tunnel's MTU does
	// not depend on it.
	Remembered []RememberedEndpoint
	// ProbeDead are the BGP peerings whose in-tunnel probe says dead: their
	// learned routes leave the kernel and AllowedIPs at once (bgp.go),
	// without waiting for the speaker's withdrawal.
	ProbeDead map[string]bool
	// VgatePeers are the BGP peerings whose peer is known to run vgate
	// (its tunnel probes arrive); PlainPeers those whose peer answers the
	// probe but sends none (another router). Which end of a session
	// dials depends on them (routing.Passive).
	VgatePeers map[string]bool
	PlainPeers map[string]bool
	// DrainingPeers are the BGP peerings whose peer's probes say it
	// drains: routed around where another path exists.
	DrainingPeers map[string]bool
	// Drain: this gateway drains (vgate drain, bgp.drain): its speaker
	// announces every route as least preferred.
	Drain bool
	// HostAddrs are the host's own addresses (gathered at start and
	// reload, with point_to_site): the point-to-site policy closes them to
	// clients, with the tunnel address.
	HostAddrs []netip.Addr
}

// RememberedEndpoint is the last underlay endpoint of a peering's peer.
type RememberedEndpoint struct {
	Peering   string
	PublicKey keys.PublicKey
	Endpoint  netip.AddrPort
}

// UnderlayEndpoint is an underlay address a tunnel or a point-to-site
// client uses now.
type UnderlayEndpoint struct {
	AddrPort netip.AddrPort
	// Peering names the tunnel; Client the point-to-site client.
	Peering, Client string
}

// Kind is a tunnel implementation.
type Kind string

// KindWireGuard: one wireguard-go device with one peer on the shared UDP
// port (gateway/dataplane).
const KindWireGuard Kind = "wireguard"

// KindIPsec: an IKEv2/IPsec peering run by vgate's charon (ipsec/); with
// kernel-libipsec every IPsec peering's routes go through its one TUN
// (ipsec.IfName) and the child SA's traffic selectors pick the peering.
const KindIPsec Kind = "ipsec"

// Tunnel is the desired state of one peering's tunnel. The common fields
// are what every kind has; the kind's own spec says how to run it.
type Tunnel struct {
	Kind   Kind
	Name   string // the peering's name
	IfName string // its interface: IfNamePrefix + Name
	MTU    int
	// WireGuard is the peer of a KindWireGuard tunnel. Its AllowedIPs are
	// everything the peer may send from or receive at: declared spaces,
	// its tunnel address and every prefix accepted from it by BGP.
	WireGuard wgspec.PeerSpec
	// IPsec is the peering of a KindIPsec tunnel.
	IPsec ipsec.Peer
	// Relay is the relay the tunnel falls back to; zero for none.
	Relay RelayTarget
}

// RelayTarget is a relay by URL and certificate pin (config.PeerRelay).
type RelayTarget struct {
	URL, Pin string
}

// State is a gateway's whole desired state.
type State struct {
	Tunnels []Tunnel
	// Routes are every kernel route vgate owns: static peering spaces,
	// the point-to-site pool, and BGP best paths.
	Routes []route.Route
	// TunnelAddress is the gateway's overlay address (on lo).
	TunnelAddress netip.Addr
	BGP           *BGP // nil: no speaker
	P2S           *P2S // nil: no point-to-site device
	// DNS is the name server on the tunnel address; nil: none (dns.go).
	DNS *zone.Zone
	// Enroll is the invite enrollment listener; nil: none (it needs
	// point_to_site.enroll and a running point-to-site device).
	Enroll *Enroll
	// Host is what the running parts are made with and write to.
	Host Host
	// Problems are what did not stop the plan but an operator should
	// see, e.g. an endpoint name that does not resolve (that tunnel waits
	// for the remote side to dial in).
	Problems []Problem
}

// Problem is a peering endpoint the plan could not use.
type Problem struct {
	Peering  string
	Endpoint string
	Err      error
}

func (p Problem) Error() string {
	return fmt.Sprintf("peering %q: endpoint %s: %v", p.Peering, p.Endpoint, p.Err)
}

func (p Problem) Unwrap() error { return p.Err }

// Same reports whether p and q are the same problem: the same endpoint of
// the same peering, failing the same way (the same error, or a DNS answer
// of the same kind for the same name).
func (p Problem) Same(q Problem) bool {
	if p.Peering != q.Peering || p.Endpoint != q.Endpoint {
		return false
	}
	if errors.Is(p.Err, q.Err) {
		return true
	}
	var a, b *net.DNSError
	if !errors.As(p.Err, &a) || !errors.As(q.Err, &b) {
		return false
	}
	return a.Err == b.Err && a.Name == b.Name && a.Server == b.Server &&
		a.IsNotFound == b.IsNotFound && a.IsTimeout == b.IsTimeout && a.IsTemporary == b.IsTemporary
}

// BGP is the speaker's desired state.
type BGP struct {
	// Identity cannot change without restarting the speaker.
	Identity BGPIdentity
	// Speaker is the sessions, the import policy and the originated
	// prefixes, applied to a running speaker by diff.
	Speaker spec.State
	// Probes are the in-tunnel liveness targets: peering → the remote
	// tunnel address its BGP session runs to, with the probe's timing.
	Probes map[string]spec.ProbeTarget
	// Avoided are the draining peerings (Input.DrainingPeers) no kernel
	// route goes through: the probe tells them so.
	Avoided map[string]bool
	// BFD are the peerings' BFD sessions (peerings[].bgp.bfd), to the same
	// tunnel addresses through the same tunnels.
	BFD map[string]bfd.Target
	// GracefulStop: the gateway's stop ends the sessions without a
	// NOTIFICATION (bgp.graceful_restart), so the peers that help keep
	// its routes while it restarts.
	GracefulStop bool
}

// Host is the gateway's own part of the plan: what a tunnel kind is
// created with at its first tunnel (ListenPort, RunDir: restart-only,
// CheckReload), the key every tunnel and the point-to-site device use,
// and state_dir, where the tunnel address is recorded for crash recovery.
type Host struct {
	ListenPort uint16
	// RunDir is the control socket's directory, where vgate's charon
	// keeps its files (the IPsec kind).
	RunDir     string
	PrivateKey keys.PrivateKey
	StateDir   string
}

// BGPIdentity is the speaker's AS, router ID and listen address.
type BGPIdentity struct {
	ASN      uint32
	RouterID netip.Addr
	Listen   netip.Addr
}

// Enroll is the enrollment listener's desired state.
type Enroll struct {
	Listen string // point_to_site.enroll.listen
	URL    string // where invites send laptops (config.EnrollURL)
	// StateDir holds the invite store and the listener's certificate;
	// Gateway is the gateway's name, which the certificate carries.
	StateDir, Gateway string
}

// P2S is the point-to-site device's desired state.
type P2S struct {
	Config *config.PointToSite
	MTU    int
	// Relay is point_to_site.relay, which the device shares with the
	// tunnels' relay connections; zero for none.
	Relay RelayTarget
	// PrivateKey is the device's key (the gateway's); StateDir holds its
	// client registry.
	PrivateKey keys.PrivateKey
	StateDir   string
	// Self are the gateway's own addresses, closed to clients but for
	// ping, DNS and the groups' gateway_services: the host's
	// (Input.HostAddrs) and the tunnel address.
	Self []netip.Addr
}

// PeeringRoutes maps each peering of kind k to the prefixes the plan
// routes through its tunnel alone (Route.Peering: a multipath route and
// the point-to-site pool have no owner).
func (s State) PeeringRoutes(k Kind) map[string][]netip.Prefix {
	of := map[string]bool{}
	for _, t := range s.Tunnels {
		of[t.Name] = t.Kind == k
	}
	m := map[string][]netip.Prefix{}
	for _, r := range s.Routes {
		if of[r.Peering] {
			m[r.Peering] = append(m[r.Peering], r.Dst)
		}
	}
	return m
}

// Plan builds the desired state for in. It is deterministic: the same
// input gives an equal State.
func Plan(in Input) State {
	cfg := in.Config
	st := State{TunnelAddress: cfg.TunnelAddress, Host: Host{ListenPort: cfg.ListenPort, RunDir: filepath.Dir(cfg.ControlSocket),
		PrivateKey: cfg.PrivateKey, StateDir: cfg.StateDir}}
	tunnels, routes, problems := static(in)
	st.Problems = problems
	if cfg.PointToSite != nil && !in.P2SDown {
		st.P2S = &P2S{Config: cfg.PointToSite, MTU: p2sMTU(cfg, in.Env),
			PrivateKey: cfg.PrivateKey, StateDir: cfg.StateDir,
			Self: append(slices.Clone(in.HostAddrs), cfg.TunnelAddress)}
		if r := cfg.PointToSite.Relay; r != nil {
			st.P2S.Relay = RelayTarget{URL: r.URL, Pin: r.Pin}
		}
		if e := cfg.PointToSite.Enroll; e != nil {
			st.Enroll = &Enroll{Listen: e.Listen, URL: config.EnrollURL(cfg), StateDir: cfg.StateDir, Gateway: cfg.Name}
		}
	}
	if cfg.BGP != nil {
		speaker := bgpImport(in, tunnels)
		speaker.Drain = in.Drain
		probes := make(map[string]spec.ProbeTarget, len(speaker.Neighbors))
		bfds := map[string]bfd.Target{}
		for _, p := range cfg.Peerings {
			if p.BGP == nil {
				continue
			}
			if !p.BGP.ProbeOff() {
				iv, m := p.BGP.ProbeTiming()
				t := spec.ProbeTarget{Address: p.BGP.Address, Interval: iv, Multiplier: m,
					LocalASN: cfg.BGP.ASN, PeerASN: p.BGP.ASN, Interface: IfNameOf(&p)}
				if local, peer := wireAddrs(cfg, &p); local != cfg.TunnelAddress || peer != p.BGP.Address {
					t.LocalWire, t.PeerWire = local, peer // nat.go
				}
				probes[p.Name] = t
			}
			if iv, m, ok := p.BGP.BFDTiming(); ok {
				bfds[p.Name] = bfd.Target{Address: p.BGP.Address, Interface: IfNameOf(&p),
					Timing: bfd.Timing{Interval: iv, Multiplier: m}}
			}
		}
		st.BGP = &BGP{
			Identity: BGPIdentity{ASN: cfg.BGP.ASN, RouterID: cfg.BGP.RouterID, Listen: cfg.TunnelAddress},
			Speaker:  speaker,
			Probes:   probes,
			BFD:      bfds,
			// bgp.graceful_restart: a planned stop keeps the peers' routes.
			GracefulStop: cfg.BGP.GracefulRestart != nil,
		}
		// Static routes (the pool included) are in routes already, so
		// "static wins over BGP" sees every one of them.
		tunnels, routes, st.BGP.Avoided = desiredBGPDraining(cfg, tunnels, routes, in.Learned, in.ProbeDead, in.DrainingPeers)
	}
	st.Tunnels, st.Routes = tunnels, routes
	st.DNS = dnsZone(cfg, tunnels) // dns.go
	return st
}

// static is the plan before BGP: a tunnel per peering, routes for the
// peerings' static spaces and for the point-to-site pool.
func static(in Input) ([]Tunnel, []route.Route, []Problem) {
	tunnels, routes, problems := desired(in.Config, in.Env)
	remembered(in.Config, tunnels, in.Remembered)
	if in.Config.PointToSite != nil && !in.P2SDown {
		routes = append(routes, p2sRoutes(in.Config)...)
	}
	return tunnels, routes, problems
}

// remembered gives each dial-in-only tunnel the endpoint its peer had
// when the gateway last ran (Input.Remembered).
func remembered(cfg *config.Config, tunnels []Tunnel, mem []RememberedEndpoint) {
	if len(mem) == 0 {
		return
	}
	for i := range tunnels {
		t := &tunnels[i]
		if t.Kind != KindWireGuard || t.WireGuard.Endpoint.IsValid() {
			continue
		}
		i := slices.IndexFunc(cfg.Peerings, func(p config.Peering) bool { return p.Name == t.Name })
		if i < 0 || cfg.Peerings[i].Endpoint != "" {
			continue // a configured endpoint wins, even one that does not resolve
		}
		for _, m := range mem {
			if m.Peering == t.Name && m.PublicKey == t.WireGuard.PublicKey && m.Endpoint.IsValid() {
				t.WireGuard.Endpoint = m.Endpoint
				break
			}
		}
	}
}

// Routes is the `vgate routes` view of in: the gateway's own spaces, the
// static routes Plan builds, and every route BGP received (accepted or
// rejected), each marked installed if kern (the kernel's vgate routes)
// has it through the planned interfaces.
//
// A route the kernel does not have because a route vgate did not install
// holds its destination (conflicts, from kernel.Kernel.Conflicts) says so.
func Routes(in Input, kern []route.Route, conflicts []route.Conflict) []api.RouteEntry {
	_, routes, _ := static(in)
	learned := withoutDead(in.Learned, in.ProbeDead)
	for _, r := range in.Learned {
		if in.ProbeDead[r.Neighbor] {
			learned = append(learned, r)
		}
	}
	out := routeTable(in.Config, routes, learned, kern, in.ProbeDead)
	markConflicts(out, conflicts)
	return out
}

// p2sRoutes are the kernel routes of the point-to-site pool, through the
// P2S device.
func p2sRoutes(cfg *config.Config) []route.Route {
	var routes []route.Route
	for _, q := range cfg.PointToSite.AddressPool { // as p2s.NewPool keeps them
		if q.IsValid() {
			routes = append(routes, route.Route{Dst: q.Masked(), Dev: wgspec.P2SIfName, Src: cfg.TunnelAddress})
		}
	}
	return routes
}

// p2sMTU is the MTU of the P2S interface: clients may dial over IPv4 or
// IPv6, so the IPv6 overhead is assumed (1420 on a 1500-byte underlay).
func p2sMTU(cfg *config.Config, env Env) int {
	if cfg.MTU != 0 {
		return cfg.MTU
	}
	under := 0
	if env.UnderlayMTU != nil {
		under = env.UnderlayMTU(netip.Addr{})
	}
	return wgspec.TunnelMTU(under, netip.Addr{})
}
