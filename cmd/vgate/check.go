package main

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/kernel"
	"github.com/vgate-project/vgate/overlap"
)

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	path := fs.String("config", "/etc/vgate/vgate.yaml", "config file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return configError(err)
	}
	bgp := "off"
	if cfg.BGP != nil {
		bgp = fmt.Sprintf("AS%d", cfg.BGP.ASN)
		if r, ll := cfg.BGP.GracefulRestart.Timing(); r > 0 {
			bgp += fmt.Sprintf(" (graceful restart %v", r)
			if ll > 0 {
				bgp += fmt.Sprintf(", long-lived %v", ll)
			}
			bgp += ")"
		}
		if cfg.BGP.Drain {
			bgp += ", starts drained"
		}
	}
	p2s := "off"
	if cfg.PointToSite != nil {
		p2s = fmt.Sprintf("%d group(s)", len(cfg.PointToSite.Groups))
	}
	fmt.Fprintf(stdout, "%s: OK: gateway %s, %d address space(s), %d/%d tunnels, public key %s, bgp %s, point-to-site %s\n",
		*path, cfg.Name, len(cfg.AddressSpaces), len(cfg.Peerings), cfg.MaxTunnels, cfg.PrivateKey.Public(), bgp, p2s)
	fw := kernel.Forwarding()
	printCheckDetails(stdout, cfg, fw.IPv4, fw.IPv6)
	return nil
}

// printCheckDetails prints the effective values a first run needs (where
// the control socket, the state and the metrics are, whether this machine
// forwards) and, per peering, where its routes come from: on a BGP peering
// address_spaces is the import allow-list and routes come from BGP, plus
// static_routes if any.
func printCheckDetails(w io.Writer, cfg *config.Config, v4, v6 bool) {
	metrics := cfg.Metrics.Listen
	if metrics == "" {
		metrics = "off (metrics.listen is empty)"
	}
	fmt.Fprintf(w, "  control_socket  %s\n", cfg.ControlSocket)
	fmt.Fprintf(w, "  state_dir       %s\n", cfg.StateDir)
	fmt.Fprintf(w, "  metrics.listen  %s\n", metrics)
	fmt.Fprintf(w, "  ip forwarding   %s\n", forwardingText(v4, v6))
	if d := cfg.DNS; d != nil {
		up := "none: other names REFUSED"
		if len(d.Upstream) > 0 {
			up = strings.Join(d.Upstream, ", ")
		}
		fmt.Fprintf(w, "  dns             zone %s on %s:53 (UDP, TCP); upstream %s\n", d.Zone, cfg.TunnelAddress, up)
		for _, p := range cfg.Peerings {
			if p.DNSZone != "" {
				fmt.Fprintf(w, "  dns             %s forwarded to peering %s at %s:53\n", p.DNSZone, p.Name, p.PeerTunnelAddress())
			}
		}
	}
	if p := cfg.PointToSite; p != nil && p.Enroll != nil {
		fmt.Fprintf(w, "  enrollment      %s (listen %s/tcp, certificate in state_dir)\n", config.EnrollURL(cfg), p.Enroll.Listen)
	}
	for _, p := range cfg.Peerings {
		if p.IsIPsec() {
			fmt.Fprintf(w, "  peering %s: %s\n", p.Name, ipsecCheckText(&p))
		}
		printNAT(w, &p)
		if p.BGP == nil {
			routes := prefixList(p.AddressSpaces)
			if seen := p.Seen(p.AddressSpaces); prefixList(seen) != routes {
				routes = prefixList(seen) + " (address_spaces " + routes + " as this side sees them)"
			}
			fmt.Fprintf(w, "  peering %s: static, routes %s through the tunnel\n", p.Name, routes)
			continue
		}
		static := "no static_routes"
		if len(p.StaticRoutes) > 0 {
			static = "static_routes " + prefixList(p.StaticRoutes) + " installed beside BGP"
		}
		fmt.Fprintf(w, "  peering %s: bgp AS%d, address_spaces %s is the import allow-list (routes come from BGP); %s\n",
			p.Name, p.BGP.ASN, prefixList(p.AddressSpaces), static)
		fmt.Fprintf(w, "  peering %s: %s\n", p.Name, livenessText(&p))
		if note := bfdNote(&p); note != "" {
			fmt.Fprintf(w, "  note: peering %s: %s\n", p.Name, note)
		}
	}
}

// printNAT lists a peering's NAT rules, saying which side sees which
// prefix (docs/nat.md).
func printNAT(w io.Writer, p *config.Peering) {
	if p.NAT == nil {
		return
	}
	for i, r := range p.NAT.Ingress {
		fmt.Fprintf(w, "  peering %s: nat.ingress[%d] the peer's %s is %s on this side\n", p.Name, i, r.Internal, r.External)
	}
	for i, r := range p.NAT.Egress {
		fmt.Fprintf(w, "  peering %s: nat.egress[%d] this side's %s is %s to the peer\n", p.Name, i, r.Internal, r.External)
	}
}

// ipsecCheckText describes an IPsec peering: the device, the proposals
// (or that the defaults apply), DPD and the traffic selectors
// (docs/architecture.md, "IPsec peerings").
func ipsecCheckText(p *config.Peering) string {
	x := p.IPsec
	list := func(v []string) string {
		if len(v) == 0 {
			return "defaults"
		}
		return strings.Join(v, ", ")
	}
	dpd := "10s"
	if x.DPD != 0 {
		dpd = x.DPD.String()
	}
	remote := prefixList(p.AddressSpaces)
	if p.BGP != nil && !slices.ContainsFunc(p.AddressSpaces, func(q netip.Prefix) bool { return q.Contains(p.BGP.Address) }) {
		remote = prefixList(append(slices.Clone(p.AddressSpaces), netip.PrefixFrom(p.BGP.Address, p.BGP.Address.BitLen())))
	}
	legacy := ""
	if x.Legacy {
		legacy = "; legacy algorithms allowed"
	}
	return fmt.Sprintf("ipsec (IKEv2, PSK) to %s, ike %s, esp %s, dpd %s, traffic selectors 0.0.0.0/0, ::/0 === %s%s",
		p.Endpoint, list(x.IKE), list(x.ESP), dpd, remote, legacy)
}

// forwardingText says whether IPv4 and IPv6 forwarding are on, and how to
// turn them on when not.
func forwardingText(v4, v6 bool) string {
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "OFF"
	}
	s := fmt.Sprintf("ipv4 %s, ipv6 %s", onOff(v4), onOff(v6))
	if !v4 || !v6 {
		s += " (hosts behind this gateway cannot reach peered networks: sysctl -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1)"
	}
	return s
}

func prefixList(ps []netip.Prefix) string {
	return cmp.Or(overlap.Join(ps), "(none)")
}

// livenessText is a BGP peering's effective probe and BFD timing.
func livenessText(p *config.Peering) string {
	probe := "probe off"
	if !p.BGP.ProbeOff() {
		iv, m := p.BGP.ProbeTiming()
		probe = fmt.Sprintf("probe %v × %d (dead after %v)", iv, m, iv*time.Duration(m))
	}
	b := "bfd off"
	if iv, m, ok := p.BGP.BFDTiming(); ok {
		b = fmt.Sprintf("bfd %v × %d (down after %v at the router's same setting), UDP %s:3784", iv, m, iv*time.Duration(m), p.BGP.Address)
	}
	return probe + ", " + b
}

// bfdNote recommends BFD for a BGP peering without it: toward a router
// that is not vgate only BFD lets the router fail over as fast as vgate
// (the probe acts on this side only). An IPsec peer is never vgate.
func bfdNote(p *config.Peering) string {
	if _, _, ok := p.BGP.BFDTiming(); ok {
		return ""
	}
	const set = "set bgp.bfd: { interval: 100ms, multiplier: 5 } (and BFD on the router) so that both ends fail over in 0.5 s, not the router's hold time"
	if p.IsIPsec() {
		return "the peer is an IPsec device, not vgate: " + set
	}
	return "if the peer is a router that is not vgate, " + set
}
