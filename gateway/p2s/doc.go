// Package p2s owns vgate's point-to-site clients: the registry of clients
// persisted in state_dir (public keys only, written atomically), address
// allocation from the pool (IPv4 and IPv6, stable per client, revoked
// addresses quarantined before reuse), the group access policy and the
// zero-allocation packet filter that enforces it at the P2S device's TUN
// seam, wg-quick client configs (render, parse, strip), and the Server that
// runs the one wireguard-go device all clients dial.
//
// The decisions (Pool, Registry, NewPolicy, Render) are pure or touch only
// their own file; Server applies them to a wireguard-go device through
// seams (NewTUN, NewBind, LinkUp) so that tests run it in memory.
//
// Component is the gateway's running point-to-site side (component.go):
// Set moves the Server to the plan's device (plan.State.P2S), Observe is
// its status, Close stops it; it also owns the watch of peerings that do
// not route the pool back (returnwatch.go), with its own loop.
package p2s
