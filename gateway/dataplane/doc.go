// Package dataplane owns vgate's WireGuard data plane: one wireguard-go
// device on its own Linux TUN per site-to-site tunnel, each with exactly one
// peer, all sharing the gateway's UDP port through a wgbind.Mux.
//
// Decisions are pure functions with table tests: the UAPI text that
// configures a peer (uapi.go), the AllowedIPs diff applied on change, the
// tunnel MTU (mtu.go) and TCP MSS clamping of packets entering or leaving a
// tunnel (mss.go). A peering's NAT rules (package nat) translate what
// crosses its TUN seam (nat.go). The effects — creating TUNs, wireguard-go devices and
// calling IpcSet — live in tunnel.go and plane.go, at the edge.
package dataplane
