package gateway

import (
	"log/slog"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/kernel"
)

// Forwarding is whether this machine forwards packets now. Without it a
// gateway's tunnels come up but hosts behind it reach nothing through
// them, so status, check and the metrics show it, and start and every
// reload warn while it is off.
func forwarding() api.Forwarding {
	v4, v6 := kernel.Forwarding()
	return api.Forwarding{IPv4: v4, IPv6: v6}
}

// warnForwarding logs a warning when IPv4 or IPv6 forwarding is off.
func warnForwarding(log *slog.Logger) {
	if f := forwarding(); !f.IPv4 || !f.IPv6 {
		log.Warn("IP forwarding is off: hosts behind this gateway cannot reach peered networks until it is on (sysctl -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1)",
			"ipv4_forwarding", f.IPv4, "ipv6_forwarding", f.IPv6)
	}
}
