// Package gateway is the vgate appliance's lifecycle: it starts, reloads
// and stops one gateway, and keeps the running state equal to the plan.
//
// The flow, one file per step (docs/architecture.md has the whole picture):
//
//	gateway.go  Start / Reload / Close: load-validated config in, all or nothing
//	plan/       Plan: (config, environment, BGP RIB, P2S state) → desired State (pure)
//	apply.go    apply: moves each running part to the State by diff, in order
//	tunnels.go  TunnelKind: the one interface every tunnel kind implements
//
// The parts that apply drives, and what the views read of them:
//
//	bgp.go      the embedded speaker, its tunnel probe and the RIB loop (re-plans on change)
//	p2s.go      the point-to-site server and its client operations
//	observe.go  the one read surface: what each running part reports (gateway/observe)
//	capture.go  Tap: attaches a capture to a tunnel or a point-to-site client
//	reloads.go  refusal reasons by error type
//
// The views (`vgate status`, the metrics, `vgate capture`, the watcher)
// are gateway/view's; this package imports none of them (internal/quality).
//
// Effects live in the sub-packages:
//
//	config/    the YAML schema and its validation (nothing is applied there)
//	keys/      WireGuard keys and key files
//	wgbind/    one UDP socket shared by all WireGuard tunnel devices
//	dataplane/ wireguard-go devices on TUNs, MSS clamping, MTU, UAPI, capture
//	kernel/    routes, the tunnel address, link state (netlink)
//	p2s/       the point-to-site device, address pool, registry, group policy
//	control/   the control socket (HTTP+JSON on a unix socket)
//	metrics/   the Prometheus collector
//	observe/   the snapshots the gateway hands its views
//	view/      status, metrics, capture and the watcher, from those snapshots
package gateway
