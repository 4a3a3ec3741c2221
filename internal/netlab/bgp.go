package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vgate-project/vgate/api"
)

// PeerBGP is a peering's bgp section.
type PeerBGP struct {
	ASN         uint32
	Address     netip.Addr
	MaxPrefixes int
	Prepend     int
	// ProbeInterval and ProbeMultiplier, when set, render bgp.probe.
	ProbeInterval   time.Duration
	ProbeMultiplier int
	// ProbeOff renders `probe: off`.
	ProbeOff bool
	// BFD, when set, renders bgp.bfd (zero fields: vgate's defaults).
	BFD *BFDConf
}

// ASNOf is the AS number lab gateway i uses: 65000+i.
func ASNOf(n *Network) uint32 { return 65000 + uint32(n.Index) }

// BGPPeeringTo is the peering from g to other with a BGP session and no
// static address spaces: everything other's network has is learned.
func (g *Gateway) BGPPeeringTo(other *Gateway) Peering {
	p := g.PeeringTo(other)
	p.Spaces = nil
	p.BGP = &PeerBGP{ASN: ASNOf(other.Net), Address: other.TunnelAddress}
	return p
}

// LinkBGP gives a and b a BGP peering to each other (and each a bgp
// section).
func LinkBGP(a, b *Gateway) {
	a.ASN, b.ASN = ASNOf(a.Net), ASNOf(b.Net)
	a.Peerings = append(a.Peerings, a.BGPPeeringTo(b))
	b.Peerings = append(b.Peerings, b.BGPPeeringTo(a))
}

// Peering returns g's peering named name (to change it before a reload).
func (g *Gateway) Peering(name string) *Peering {
	for i := range g.Peerings {
		if g.Peerings[i].Name == name {
			return &g.Peerings[i]
		}
	}
	return nil
}

func (g *Gateway) renderBGP(b *strings.Builder) {
	if g.ASN != 0 {
		fmt.Fprintf(b, "bgp: { asn: %d", g.ASN)
		if g.Multipath {
			b.WriteString(", multipath: true")
		}
		if g.Drain {
			b.WriteString(", drain: true")
		}
		if g.GracefulRestart > 0 {
			fmt.Fprintf(b, ", graceful_restart: { restart_time: %s, long_lived: %s }", g.GracefulRestart, g.LongLivedStale)
		}
		b.WriteString(" }\n")
	}
}

func renderPeerBGP(b *strings.Builder, p Peering) {
	if p.BGP == nil {
		return
	}
	fmt.Fprintf(b, "    bgp: { asn: %d, address: %s", p.BGP.ASN, p.BGP.Address)
	if p.BGP.MaxPrefixes > 0 {
		fmt.Fprintf(b, ", max_prefixes: %d", p.BGP.MaxPrefixes)
	}
	if p.BGP.Prepend > 0 {
		fmt.Fprintf(b, ", prepend: %d", p.BGP.Prepend)
	}
	if p.BGP.ProbeInterval > 0 || p.BGP.ProbeMultiplier > 0 {
		fmt.Fprintf(b, ", probe: { interval: %s, multiplier: %d }", p.BGP.ProbeInterval, p.BGP.ProbeMultiplier)
	}
	if p.BGP.ProbeOff {
		b.WriteString(", probe: off")
	}
	if f := p.BGP.BFD; f != nil {
		fmt.Fprintf(b, ", bfd: { interval: %s, multiplier: %d }", f.Interval, f.Multiplier)
	}
	b.WriteString(" }\n")
}

// BGP asks the running gateway for its BGP sessions.
func (g *Gateway) BGP() (api.BGPStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return g.control().BGP(ctx)
}

// Routes asks the running gateway for its effective routes.
func (g *Gateway) Routes() (api.RoutesView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return g.control().Routes(ctx)
}
