package netlab

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// RouterConf is what the admin of a third-party router writes about its
// one eBGP session to vgate, over a tunnel whose local end is numbered
// point-to-point (see BIRD.UpWireGuard, FRR.UpWireGuard). BIRD and FRR
// render it in each router's own config language: bird.conf and frr.conf
// as an admin would write them, nothing vgate-specific.
type RouterConf struct {
	RouterID netip.Addr // also the session's local address (the router's tunnel address)
	ASN      uint32
	// Neighbor is vgate's tunnel address, NeighborASN its AS.
	Neighbor    netip.Addr
	NeighborASN uint32
	// Interface is the tunnel interface; empty means %IF%, which
	// BIRD.Start and FRR.Start replace with theirs.
	Interface string
	// Originate are the prefixes the router announces.
	Originate []netip.Prefix
	// Hold and Keepalive default to 9 s and 3 s.
	Hold, Keepalive time.Duration

	BFD *BFDConf
	GR  *GRConf
	// HonorGracefulShutdown: routes received with the GRACEFUL_SHUTDOWN
	// community (65535:0, RFC 8326) get LOCAL_PREF 0. FRR does this for
	// eBGP routes without being told; BIRD needs an import filter,
	// which this adds.
	HonorGracefulShutdown bool
}

// BFDConf is single-hop BFD (RFC 5880/5881) on the session.
type BFDConf struct {
	// Interval is the desired transmit and required receive interval,
	// Multiplier the detection multiplier (the router's defaults when 0).
	Interval   time.Duration
	Multiplier int
	// Graceful: a BFD down is not a BGP failure while the session's graceful
	// restart may apply (BIRD `bfd graceful`: the session restarts
	// gracefully, keeping routes as stale; FRR `bfd
	// check-control-plane-failure`: a BFD down with the peer's control
	// plane independent bit clear, i.e. its BGP restarting, is ignored
	// while graceful restart is negotiated).
	Graceful bool
}

// GRConf is BGP graceful restart (RFC 4724) and long-lived graceful
// restart (RFC 9494). Without it (nil) the routers keep their defaults:
// both are helpers (they keep a restarting peer's routes as stale) and
// never restart gracefully themselves.
type GRConf struct {
	// Disable turns graceful restart off entirely (not even a helper).
	Disable bool
	// Restarter: the router also preserves forwarding across its own
	// restarts and announces so.
	Restarter bool
	// RestartTime is the restart time it announces (0: its default).
	RestartTime time.Duration
	// StaleTime bounds how long stale routes are kept once the session
	// is back (FRR stalepath-time; BIRD has no such knob).
	StaleTime time.Duration
	// LongLivedStale, when not 0, enables long-lived graceful restart
	// with this stale time.
	LongLivedStale time.Duration
}

func (c RouterConf) iface() string {
	if c.Interface == "" {
		return "%IF%"
	}
	return c.Interface
}

func (c RouterConf) timers() (hold, keepalive int) {
	hold, keepalive = 9, 3
	if c.Hold > 0 {
		hold = int(c.Hold / time.Second)
	}
	if c.Keepalive > 0 {
		keepalive = int(c.Keepalive / time.Second)
	}
	return hold, keepalive
}

func ms(d time.Duration) int { return int(d / time.Millisecond) }

// BIRD renders c as bird.conf for BIRD 2: a single-hop eBGP session named
// vgate on the tunnel interface, the originated prefixes as unreachable
// static routes, BGP routes exported to the kernel, and a bfd protocol
// when c.BFD is set.
func (c RouterConf) BIRD() string {
	var b strings.Builder
	fmt.Fprintf(&b, "log stderr all;\nrouter id %s;\ndebug protocols { states, events };\n\n", c.RouterID)
	b.WriteString("protocol device {\n\tscan time 2;\n}\n\n")
	if len(c.Originate) > 0 {
		b.WriteString("protocol static {\n\tipv4;\n")
		for _, p := range c.Originate {
			fmt.Fprintf(&b, "\troute %s unreachable;\n", p)
		}
		b.WriteString("}\n\n")
	}
	b.WriteString("protocol kernel {\n\tipv4 {\n\t\timport none;\n\t\texport where source = RTS_BGP;\n\t};\n}\n\n")
	if c.BFD != nil {
		fmt.Fprintf(&b, "protocol bfd {\n\tinterface %q {\n", c.iface())
		if c.BFD.Interval > 0 {
			fmt.Fprintf(&b, "\t\tinterval %d ms;\n", ms(c.BFD.Interval))
		}
		if c.BFD.Multiplier > 0 {
			fmt.Fprintf(&b, "\t\tmultiplier %d;\n", c.BFD.Multiplier)
		}
		b.WriteString("\t};\n}\n\n")
	}
	hold, keepalive := c.timers()
	fmt.Fprintf(&b, "protocol bgp vgate {\n\tlocal %s as %d;\n\tneighbor %s as %d;\n\tinterface %q;\n\tdirect;\n",
		c.RouterID, c.ASN, c.Neighbor, c.NeighborASN, c.iface())
	fmt.Fprintf(&b, "\thold time %d;\n\tkeepalive time %d;\n", hold, keepalive)
	b.WriteString("\tconnect delay time 1;\n\tconnect retry time 2;\n\terror wait time 1, 10;\n")
	if c.BFD != nil {
		if c.BFD.Graceful {
			b.WriteString("\tbfd graceful;\n")
		} else {
			b.WriteString("\tbfd on;\n")
		}
	}
	if gr := c.GR; gr != nil {
		switch {
		case gr.Disable:
			b.WriteString("\tgraceful restart off;\n")
		case gr.Restarter:
			b.WriteString("\tgraceful restart on;\n")
		default:
			b.WriteString("\tgraceful restart aware;\n")
		}
		if gr.RestartTime > 0 {
			fmt.Fprintf(&b, "\tgraceful restart time %d;\n", int(gr.RestartTime/time.Second))
		}
		if gr.LongLivedStale > 0 && !gr.Disable {
			fmt.Fprintf(&b, "\tlong lived graceful restart on;\n\tlong lived stale time %d;\n", int(gr.LongLivedStale/time.Second))
		}
	}
	b.WriteString("\tipv4 {\n")
	if c.HonorGracefulShutdown {
		b.WriteString("\t\timport filter {\n\t\t\tif (65535, 0) ~ bgp_community then bgp_local_pref = 0;\n\t\t\taccept;\n\t\t};\n")
	} else {
		b.WriteString("\t\timport all;\n")
	}
	b.WriteString("\t\texport all;\n\t};\n}\n")
	return b.String()
}

// FRR renders c as frr.conf for FRR 8 (bgpd, bfdd; zebra installs the
// learned routes): a single-hop eBGP session from the tunnel address,
// the originated prefixes as network statements, and a bfd profile
// named vgate when c.BFD is set.
func (c RouterConf) FRR() string {
	var b strings.Builder
	b.WriteString("frr defaults traditional\nhostname labfrr\nlog stdout informational\nservice integrated-vtysh-config\n!\n")
	if c.BFD != nil {
		b.WriteString("bfd\n profile vgate\n")
		if c.BFD.Multiplier > 0 {
			fmt.Fprintf(&b, "  detect-multiplier %d\n", c.BFD.Multiplier)
		}
		if c.BFD.Interval > 0 {
			fmt.Fprintf(&b, "  receive-interval %d\n  transmit-interval %d\n", ms(c.BFD.Interval), ms(c.BFD.Interval))
		}
		b.WriteString(" exit\n !\nexit\n!\n")
	}
	hold, keepalive := c.timers()
	n := c.Neighbor.String()
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp network import-check\n", c.ASN, c.RouterID)
	if gr := c.GR; gr != nil {
		switch {
		case gr.Disable:
			b.WriteString(" bgp graceful-restart-disable\n")
		case gr.Restarter:
			b.WriteString(" bgp graceful-restart\n")
		}
		if gr.RestartTime > 0 {
			fmt.Fprintf(&b, " bgp graceful-restart restart-time %d\n", int(gr.RestartTime/time.Second))
		}
		if gr.StaleTime > 0 {
			fmt.Fprintf(&b, " bgp graceful-restart stalepath-time %d\n", int(gr.StaleTime/time.Second))
		}
		if gr.LongLivedStale > 0 && !gr.Disable {
			fmt.Fprintf(&b, " bgp long-lived-graceful-restart stale-time %d\n", int(gr.LongLivedStale/time.Second))
		}
	}
	fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s update-source %s\n neighbor %s timers %d %d\n neighbor %s timers connect 1\n",
		n, c.NeighborASN, n, c.RouterID, n, keepalive, hold, n)
	if c.BFD != nil {
		fmt.Fprintf(&b, " neighbor %s bfd\n neighbor %s bfd profile vgate\n", n, n)
		if c.BFD.Graceful {
			fmt.Fprintf(&b, " neighbor %s bfd check-control-plane-failure\n", n)
		}
	}
	b.WriteString(" !\n address-family ipv4 unicast\n")
	for _, p := range c.Originate {
		fmt.Fprintf(&b, "  network %s\n", p)
	}
	b.WriteString(" exit-address-family\nexit\n!\n")
	return b.String()
}
