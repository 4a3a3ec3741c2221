// Package ipsec runs IKEv2/IPsec peerings to standard VPN devices
// (strongSwan, Cisco, Fortinet, Azure VPN Gateway, AWS VGW): vgate starts
// its own strongSwan charon as a child process (Daemon) with a private
// strongswan.conf, a VICI socket and an error-notify socket in vgate's
// runtime directory, loads connections and pre-shared keys over VICI
// (github.com/strongswan/govici), initiates them, and follows charon's
// events (ike-updown, child-updown, ike-rekey, child-rekey) and typed
// alerts (the error-notify plugin) to decide each peering's state and
// down reason (Decide). charon stays a separate process: no GPL code is
// linked into vgate.
//
// ESP runs in charon's kernel-libipsec plugin (ESPLibipsec: userspace ESP
// on one TUN, IfName) because the machines vgate is tested on have no
// XFRM; the kernel routes vgate installs through that TUN choose IPsec,
// and each child SA's traffic selectors choose the peer. An XFRM mode
// (an XFRM interface per peering) plugs in beside it later; it does not
// ship untested. docs/architecture.md ("IPsec peerings") has the design.
//
// It imports no vgate package but api; pure decisions (the charon config,
// the VICI messages, proposal checks, the down reason, the error-notify
// message format) are table-tested and fuzzed here.
package ipsec
