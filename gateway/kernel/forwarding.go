package kernel

import (
	"log/slog"
	"os"
	"strings"

	"github.com/vgate-project/vgate/api"
)

// Forwarding reports whether IPv4 and IPv6 forwarding are enabled in this
// network namespace. Without it a gateway's tunnels come up but hosts
// behind it reach nothing through them, so status, check and the metrics
// show it, and start and every reload warn while it is off
// (WarnForwarding).
func Forwarding() api.Forwarding {
	read := func(p string) bool {
		b, err := os.ReadFile(p)
		return err == nil && strings.TrimSpace(string(b)) == "1"
	}
	return api.Forwarding{IPv4: read("/proc/sys/net/ipv4/ip_forward"), IPv6: read("/proc/sys/net/ipv6/conf/all/forwarding")}
}

// WarnForwarding logs a warning when IPv4 or IPv6 forwarding is off.
func WarnForwarding(log *slog.Logger) {
	if f := Forwarding(); !f.IPv4 || !f.IPv6 {
		log.Warn("IP forwarding is off: hosts behind this gateway cannot reach peered networks until it is on (sysctl -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1)",
			"ipv4_forwarding", f.IPv4, "ipv6_forwarding", f.IPv6)
	}
}
