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
// The parts that apply drives, and the views that read them:
//
//	bgp/        the BGP component: speaker, tunnel probe, BFD, drain, the loop that asks for re-plans
//	bgp.go      its re-plan callback, `vgate bgp`, `vgate routes`, `vgate drain`
//	p2s.go      the point-to-site component's hooks and its client operations
//	status.go   `vgate status`, with peering states from peering.Evaluate
//	metrics.go  what a Prometheus scrape reads; refusal reasons by error type
//	capture.go  `vgate capture`: decrypted packets of a tunnel or a client
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
package gateway
