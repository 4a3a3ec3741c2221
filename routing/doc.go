// Package routing owns vgate's dynamic routing: one embedded GoBGP v4
// speaker per gateway, its eBGP sessions (one per peering that runs bgp, over
// that peering's tunnel), what it originates, and its import policy
// (invariant 3: no route overlapping a protected prefix, nothing outside a
// peering's declared address spaces, a per-session prefix limit). It reports
// received routes (accepted or rejected, with the best path marked) and
// sessions as plain Go values on net/netip types; GoBGP's protobuf types
// stay inside this package. Those values (and the import policy's
// reference semantics) are in the pure routing/spec, named here by
// aliases, so that the planner computes with them without linking GoBGP.
// Turning routes into kernel routes and WireGuard AllowedIPs is the
// gateway's job.
package routing
