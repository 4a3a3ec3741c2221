package daemon

import "github.com/vgate-project/vgate/gateway/kernel"

// Forwarding reports whether this machine forwards IPv4 and IPv6 packets,
// for `vgate check` (the CLI reaches the gateway's packages only through
// this one).
func Forwarding() (v4, v6 bool) { return kernel.Forwarding() }
