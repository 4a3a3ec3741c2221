package main

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/internal/netlab"
)

// Third-party failover: FRR (bgpd, bfdd) with a stock WireGuard tunnel to
// gw1 and one to gw2, gw1 and gw2 peering with each other:
//
//	h1 ── gw1 ═══ FRR (10.8.1.1 on lo)
//	       ║       ║
//	      gw2 ═════╝
//
// host1 and FRR ping each other every 20 ms; the gw1-FRR tunnel's UDP is
// dropped (nftables in FRR's namespace) and the longest gap between
// replies, less one interval, is the outage in each direction. With BFD
// (100 ms × 5 on both ends) both ends move to the path through gw2 within
// the detection time; without it FRR keeps sending into the dead tunnel
// until its BGP hold time (9 s here) while vgate's probe moves its own
// side at once.

type thirdPartyResult struct {
	Name          string    `json:"name"`
	ForwardMS     []float64 `json:"forward_outage_ms"` // host1 -> FRR's host address
	ReturnMS      []float64 `json:"return_outage_ms"`  // FRR -> host1
	ForwardMedian float64   `json:"forward_outage_median_ms"`
	ReturnMedian  float64   `json:"return_outage_median_ms"`
	Error         string    `json:"error,omitempty"`
}

var (
	tpTunnel1 = netip.MustParseAddr("10.8.255.254")
	tpTunnel2 = netip.MustParseAddr("10.8.255.253")
	tpHost    = netip.MustParseAddr("10.8.1.1")
)

// tpFRRConf is FRR's frr.conf: a session to each gateway, with BFD
// 100 ms × 5 when bfd.
func tpFRRConf(gw1, gw2 netip.Addr, bfd bool) string {
	var b strings.Builder
	b.WriteString("frr defaults traditional\nhostname benchfrr\nlog stdout informational\nservice integrated-vtysh-config\n!\n")
	if bfd {
		b.WriteString("bfd\n profile vgate\n  detect-multiplier 5\n  receive-interval 100\n  transmit-interval 100\n exit\n !\nexit\n!\n")
	}
	fmt.Fprintf(&b, "router bgp 65008\n bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp network import-check\n", tpTunnel1)
	for _, n := range []struct {
		addr, src netip.Addr
		asn       int
	}{{gw1, tpTunnel1, 65001}, {gw2, tpTunnel2, 65002}} {
		a := n.addr.String()
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s update-source %s\n neighbor %s timers 3 9\n neighbor %s timers connect 1\n", a, n.asn, a, n.src, a, a)
		if bfd {
			fmt.Fprintf(&b, " neighbor %s bfd\n neighbor %s bfd profile vgate\n", a, a)
		}
	}
	b.WriteString(" !\n address-family ipv4 unicast\n  network 10.8.0.0/16\n exit-address-family\nexit\n!\n")
	return b.String()
}

func thirdParty(bin string, bfd bool, runs int) (r thirdPartyResult) {
	r.Name = "FRR, vgate probe only (FRR: BGP hold 9s)"
	if bfd {
		r.Name = "FRR, BFD 100ms x 5 both ends"
	}
	if missing := netlab.LookFRR(); len(missing) > 0 {
		r.Error = "needs " + strings.Join(missing, ", ")
		return r
	}
	if err := thirdPartyRuns(bin, bfd, runs, &r); err != nil {
		r.Error = err.Error()
	}
	r.ForwardMedian, r.ReturnMedian = median(r.ForwardMS), median(r.ReturnMS)
	return r
}

func thirdPartyRuns(bin string, bfd bool, runs int, r *thirdPartyResult) error {
	l, gws, err := lab(2, bin)
	if err != nil {
		return err
	}
	defer l.Close()
	gw1, gw2 := gws[0], gws[1]
	n1, n2 := l.Network(1), l.Network(2)
	frr, err := l.AddFRR()
	if err != nil {
		return err
	}
	defer frr.Stop()
	pub2, err := frr.AddWireGuard("2", frr.ListenPort+1, tpTunnel2, gw2.TunnelAddress, netlab.WGPeer{PublicKey: gw2.Pub,
		Endpoint: fmt.Sprintf("%s:51820", n2.GatewayUnderlay), AllowedIPs: []netip.Prefix{n2.Space, n1.Space}, Keepalive: 5 * time.Second})
	if err != nil {
		return err
	}
	netlab.LinkBGP(gw1, gw2)
	var conf *netlab.BFDConf
	if bfd {
		conf = &netlab.BFDConf{Interval: 100 * time.Millisecond, Multiplier: 5}
	}
	space := []netip.Prefix{netip.MustParsePrefix("10.8.0.0/16")}
	gw1.Peerings = append(gw1.Peerings, netlab.Peering{Name: "frr", Network: "frr", PublicKey: frr.Pub,
		Endpoint: fmt.Sprintf("%s:%d", frr.Underlay, frr.ListenPort), Spaces: space, TunnelAddress: tpTunnel1, Keepalive: 5 * time.Second,
		BGP: &netlab.PeerBGP{ASN: 65008, Address: tpTunnel1, BFD: conf}})
	gw2.Peerings = append(gw2.Peerings, netlab.Peering{Name: "frr", Network: "frr", PublicKey: pub2,
		Endpoint: fmt.Sprintf("%s:%d", frr.Underlay, frr.ListenPort+1), Spaces: space, TunnelAddress: tpTunnel2, Keepalive: 5 * time.Second,
		BGP: &netlab.PeerBGP{ASN: 65008, Address: tpTunnel2, BFD: conf}})
	for _, g := range gws {
		if err := g.Start(); err != nil {
			return err
		}
	}
	if err := frr.UpWireGuard(tpTunnel1, gw1.TunnelAddress, netlab.WGPeer{PublicKey: gw1.Pub,
		Endpoint: fmt.Sprintf("%s:51820", n1.GatewayUnderlay), AllowedIPs: []netip.Prefix{n1.Space, n2.Space}, Keepalive: 5 * time.Second}); err != nil {
		return err
	}
	for _, c := range [][]string{
		{"ip", "addr", "add", tpHost.String() + "/32", "dev", "lo"},
		{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"},
		{"sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0"},
	} {
		if out, err := l.Run(frr.NS, c...); err != nil {
			return fmt.Errorf("%v: %w\n%s", c, err, out)
		}
	}
	if err := frr.Start(tpFRRConf(gw1.TunnelAddress, gw2.TunnelAddress, bfd)); err != nil {
		return err
	}
	// ready: both sessions up (and BFD), FRR's route to h1 direct again.
	ready := func() error {
		deadline := time.Now().Add(90 * time.Second)
		last := ""
		for time.Now().Before(deadline) {
			ok := true
			last = ""
			for _, g := range gws {
				st, err := g.BGP()
				ok = ok && err == nil && neighborUp(st, "frr") && (!bfd || bfdUp(st, "frr"))
				last += fmt.Sprintf("%s: %v %+v %+v\n", g.Name, err, st.Neighbors, st.BFD)
			}
			out, _ := frr.Vtysh("show ip route 10.1.0.0/16")
			last += out
			if ok && strings.Contains(out, gw1.TunnelAddress.String()+", via "+frr.IfName+",") {
				return installedVia(l, gw1, "10.8.0.0/16", "frr", 30*time.Second)
			}
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Errorf("sessions with FRR not up within 90s:\n%s", last)
	}
	for i := 0; i < runs; i++ {
		if err := ready(); err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		if err := l.WaitPing(n1.HostNS, tpHost, 20*time.Second); err != nil {
			return err
		}
		time.Sleep(2 * time.Second) // settle
		d := 8 * time.Second
		if !bfd {
			d = 16 * time.Second // FRR's hold time
		}
		fwd := l.StartPing(n1.HostNS, tpHost, pingInterval, d)
		back := l.StartPing(frr.NS, n1.HostAddr, pingInterval, d)
		time.Sleep(2 * time.Second)
		restore, err := l.CutUDP(frr.NS, frr.ListenPort)
		if err != nil {
			return err
		}
		f, b := fwd.Wait(), back.Wait()
		if err := restore(); err != nil {
			return err
		}
		if f.Received == 0 || b.Received == 0 {
			return fmt.Errorf("run %d: no ping reply at all", i)
		}
		r.ForwardMS = append(r.ForwardMS, ms(f.Outage(pingInterval)))
		r.ReturnMS = append(r.ReturnMS, ms(b.Outage(pingInterval)))
	}
	return nil
}

func neighborUp(st api.BGPStatus, name string) bool {
	for _, n := range st.Neighbors {
		if n.Name == name {
			return n.State == api.SessionEstablished
		}
	}
	return false
}

func bfdUp(st api.BGPStatus, name string) bool {
	for _, f := range st.BFD {
		if f.Peering == name {
			return f.State == "up"
		}
	}
	return false
}
