// Package spec holds the routing leaf's plain values, apart from the GoBGP
// speaker and the tunnel probe that act on them: what the planner asks of
// the speaker (State: originated prefixes, protected prefixes, neighbors
// with their graceful restart and ingress NAT rules), which end of a
// session dials (Passive), what the probe watches (ProbeTarget), the
// routes the speaker reports (Route), and the import policy's reference
// semantics (Import.Decide), which the speaker's GoBGP prefix sets
// implement. It imports only the standard library and api, so the planner
// can compute with these values without linking GoBGP or netlink; package
// routing names each of them by an alias.
package spec
