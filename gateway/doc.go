// Package gateway is the vgate appliance's lifecycle: it starts, reloads
// and stops one gateway, and keeps the running state equal to the plan.
//
// The flow, one file per step (docs/architecture.md has the whole picture
// and the components in start order):
//
//	gateway.go  Start / Reload (with rollback) / Close, and applyConfig:
//	            the planner's input, plan.Plan, then apply
//	plan/       Plan: (config, environment, BGP RIB, P2S state) → desired State (pure)
//	apply.go    apply: moves each running part to the State by diff, in order;
//	            the map of tunnel kinds and the one switch that opens them
//
// The parts apply sets, in its order. Each is a component: Set to its
// part of the plan, Observe, Close, its own locks and loops.
//
//	tunnel/     tunnel.Kind, the seam; tunnel/wireguard (over dataplane/,
//	            wgbind/, relay/) and tunnel/ipsec (over ipsec/) are the kinds
//	p2s/        point-to-site server, its relay hook and the return watch (p2s.go)
//	enroll/     enrollment listener and invites (invite.go)
//	tunaddr/    the tunnel address on lo and its crash record
//	names/      the name server (dns.go)
//	kernel/     the routes (kernel.SetRoutes)
//	bgp/        speaker, tunnel probe, BFD, drain, the loop that asks for re-plans (bgp.go)
//
// Beside them, with loops of their own: environ/ (the planner's outside
// facts: resolved names, underlay MTUs; follow.go), remember/ (the crash
// memory; remember.go) and relay.Publisher (the keys a local relay reads;
// pubkeys.go). route_safety.go gathers the running facts the BGP import
// filter protects. What the views read of them:
//
//	observe.go  the one read surface: what each running part reports (gateway/observe)
//	capture.go  Tap: attaches a capture to a tunnel or a point-to-site client
//	reloads.go  refusal reasons by error type
//
// The views (`vgate status`, the metrics, `vgate capture`, the watcher)
// are gateway/view's; this package imports none of them (internal/quality).
// The control API's client, invite and BGP calls go to the components
// through P2SServer, Enroll and Speaker (gateway/daemon).
//
// Effects live in the sub-packages:
//
//	config/    the YAML schema and its validation (nothing is applied there)
//	keys/      WireGuard keys and key files
//	wgbind/    one UDP socket shared by all WireGuard tunnel devices
//	dataplane/ wireguard-go devices on TUNs, MSS clamping, MTU, UAPI, capture
//	kernel/    routes, the tunnel address, link state, IP forwarding (netlink, /proc)
//	p2s/       the point-to-site device, address pool, registry, group policy
//	control/   the control socket (HTTP+JSON on a unix socket)
//	metrics/   the Prometheus collector
//	observe/   the snapshots the gateway hands its views
//	view/      status, metrics, capture and the watcher, from those snapshots
package gateway
