// Package gateway is the vgate appliance: it turns a validated
// config.Config into running state and keeps the two in step.
//
// Start builds everything (the shared UDP port, one tunnel per peering, the
// tunnel address, kernel routes) and undoes it all if any step fails.
// Reload applies a new config as a diff — unchanged tunnels are not touched —
// and rolls back to the old config if applying fails. Close removes every
// trace from the kernel. What the data plane should look like for a config
// is decided by the pure Desired; its effects live in the sub-packages:
//
//	config/    the YAML schema and its validation (nothing is applied there)
//	keys/      WireGuard keys and key files
//	wgbind/    one UDP socket shared by all tunnel devices
//	dataplane/ wireguard-go devices on TUNs, MSS clamping, MTU, UAPI
//	kernel/    routes, the tunnel address, link state (netlink)
//	control/   the control socket (HTTP+JSON on a unix socket)
package gateway
