package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/internal/netlab"
)

// Sub-second failover and fast recovery: the in-tunnel probe
// (50 ms × 8 by default) re-plans at once when a tunnel dies, on both
// ends, and a restarted peer's session is started afresh, with one end
// dialing. The bounds here are generous; the figures are logged (FIGURE
// lines) and measured in bench/bgp.

const pingEvery = 20 * time.Millisecond // 50 pps host to host

// outageWhile pings from a's host to b's host while kill runs, and returns
// the host-to-host outage (longest gap between replies, less one interval).
func outageWhile(t *testing.T, lab *netlab.Lab, a, b *netlab.Network, kill func()) time.Duration {
	t.Helper()
	p := lab.StartPing(a.HostNS, b.HostAddr, pingEvery, 5*time.Second)
	time.Sleep(1500 * time.Millisecond)
	kill()
	r := p.Wait()
	if r.Received == 0 {
		t.Fatalf("no reply at all from host %d to host %d", a.Index, b.Index)
	}
	return r.Outage(pingEvery)
}

// detectedAfter is how long after killed g's log says the tunnel of
// peering died ("tunnel dead"), or -1 if it does not.
func detectedAfter(g *netlab.Gateway, peering string, killed time.Time) time.Duration {
	for _, l := range strings.Split(g.Log(), "\n") {
		if !strings.Contains(l, `msg="tunnel dead"`) || !strings.Contains(l, "peering="+peering+" ") {
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 || !strings.HasPrefix(f[0], "time=") {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
		if err == nil && at.After(killed) {
			return at.Sub(killed)
		}
	}
	return -1
}

// waitVia waits until g's kernel route to prefix goes (only) through
// peering's tunnel.
func waitVia(t *testing.T, lab *netlab.Lab, g *netlab.Gateway, prefix, peering string, timeout time.Duration) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s: %s via %s", g.Name, prefix, peering), timeout, func() (bool, string) {
		out, _ := lab.Run(g.Net.GatewayNS, "ip", "route", "show", prefix, "proto", "76")
		return strings.Contains(out, "dev vg-"+peering+" ") && !strings.Contains(out, "nexthop"), out
	})
}

func established(t *testing.T, g *netlab.Gateway, peer string) (api.NeighborStatus, bool) {
	st, err := g.BGP()
	if err != nil {
		return api.NeighborStatus{}, false
	}
	n := neighborOf(st, peer)
	return n, n.State == api.SessionEstablished
}

// TestBGPDiamondOutage: the diamond (A→D via B, D→A via C), both
// directions. Killing the forward path's middle gateway (B) and, once B
// is back, the return path's (C): host-to-host traffic carries on within
// 2 s each time (the probe detects in 0.4 s; both ends of each dead
// tunnel re-plan on their own), and a restarted B is used again.
func TestBGPDiamondOutage(t *testing.T) {
	lab, gws := site(t, 4)
	diamond(t, gws)
	start(t, gws...)
	a, b, c, d := gws[0], gws[1], gws[2], gws[3]
	n1, n4 := lab.Network(1), lab.Network(4)
	waitVia(t, lab, a, "10.4.0.0/16", "net2", 30*time.Second)
	waitVia(t, lab, d, "10.1.0.0/16", "net3", 30*time.Second)
	mustReach(t, lab, n1, n4)

	// Forward middle.
	var killed time.Time
	out := outageWhile(t, lab, n1, n4, func() {
		killed = time.Now()
		if err := b.Kill(); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("FIGURE diamond, forward middle (B) SIGKILLed: host-to-host outage %v (A's probe said dead after %v)",
		out.Round(time.Millisecond), detectedAfter(a, "net2", killed).Round(time.Millisecond))
	if out > 2*time.Second {
		t.Errorf("outage %v killing the forward middle, want under 2s", out)
	}
	waitVia(t, lab, a, "10.4.0.0/16", "net3", 5*time.Second)
	// D learned it too, by its own probe: its session to B is held down.
	waitFor(t, "gw4 holds its session to dead B down", 5*time.Second, func() (bool, string) {
		st, err := d.BGP()
		if err != nil {
			return false, err.Error()
		}
		n := neighborOf(st, "net2")
		return n.State != api.SessionEstablished && n.DownCode == "probe", fmt.Sprintf("%+v", n)
	})

	// B back: used again by itself.
	restarted := time.Now()
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	waitVia(t, lab, a, "10.4.0.0/16", "net2", 30*time.Second)
	t.Logf("FIGURE diamond: B restarted, A->D via B again after %v", time.Since(restarted).Round(100*time.Millisecond))
	waitFor(t, "gw4's session to B established", 30*time.Second, func() (bool, string) {
		n, ok := established(t, d, "net2")
		return ok, fmt.Sprintf("%+v", n)
	})
	mustReach(t, lab, n1, n4)

	// Return middle.
	out = outageWhile(t, lab, n1, n4, func() {
		killed = time.Now()
		if err := c.Kill(); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("FIGURE diamond, return middle (C) SIGKILLed: host-to-host outage %v (D's probe said dead after %v)",
		out.Round(time.Millisecond), detectedAfter(d, "net3", killed).Round(time.Millisecond))
	if out > 2*time.Second {
		t.Errorf("outage %v killing the return middle, want under 2s", out)
	}
	waitVia(t, lab, d, "10.1.0.0/16", "net2", 5*time.Second)
	if err := lab.TCPTransfer(n4.HostNS, n1.HostNS, n1.HostAddr, 4<<20); err != nil {
		t.Fatalf("TCP D -> A after C died: %v", err)
	}
}

// TestBGPSessionBackAfterRestart: two gateways; their probes are idle
// without user traffic and fast with it; each side in turn is
// SIGKILLed and started again. The session is Established again within 5
// s of the start (the lower tunnel address, gw1, only listens; the other
// dials; the survivor starts its session afresh when the probe answers
// again, not after GoBGP's idle hold). Figures: from the start and from
// the tunnel handshake.
func TestBGPSessionBackAfterRestart(t *testing.T) {
	lab, gws := site(t, 2)
	gw1, gw2 := gws[0], gws[1]
	netlab.LinkBGP(gw1, gw2)
	start(t, gw1, gw2)
	waitFor(t, "session established", 30*time.Second, func() (bool, string) {
		n, ok := established(t, gw1, "net2")
		return ok, fmt.Sprintf("%+v", n)
	})
	// Each side has seen the other's probes by now: gw1 listens.
	waitFor(t, "gw1 passive, gw2 dialing", 10*time.Second, func() (bool, string) {
		s1, err1 := gw1.BGP()
		s2, err2 := gw2.BGP()
		if err1 != nil || err2 != nil {
			return false, fmt.Sprint(err1, err2)
		}
		n1, n2 := neighborOf(s1, "net2"), neighborOf(s2, "net1")
		return n1.Passive && !n2.Passive, fmt.Sprintf("gw1 %+v / gw2 %+v", n1, n2)
	})
	// No user traffic: both ends probe at the idle rate. Host-to-host
	// traffic makes both use the fast timing (each end sends some:
	// requests one way, replies the other); when it ends, idle again.
	idle := func(g *netlab.Gateway, peer string) (bool, string) {
		st, err := g.BGP()
		if err != nil {
			return false, err.Error()
		}
		for _, p := range st.Probes {
			if p.Peering == peer {
				return p.Alive && p.Idle, fmt.Sprintf("%+v", p)
			}
		}
		return false, fmt.Sprintf("no probe for %s: %+v", peer, st.Probes)
	}
	bothIdle := func() (bool, string) {
		i1, s1 := idle(gw1, "net2")
		i2, s2 := idle(gw2, "net1")
		return i1 && i2, s1 + " / " + s2
	}
	waitFor(t, "both probes idle without traffic", 10*time.Second, bothIdle)
	n1, n2 := lab.Network(1), lab.Network(2)
	ping := lab.StartPing(n1.HostNS, n2.HostAddr, 20*time.Millisecond, 3*time.Second)
	time.Sleep(1500 * time.Millisecond)
	for _, c := range []struct {
		g    *netlab.Gateway
		peer string
	}{{gw1, "net2"}, {gw2, "net1"}} {
		if i, s := idle(c.g, c.peer); i {
			t.Errorf("%s: probe idle while hosts ping through the tunnel: %s", c.g.Name, s)
		}
	}
	if r := ping.Wait(); r.Received == 0 {
		t.Fatalf("host ping through the tunnel: %+v", r)
	}
	waitFor(t, "both probes idle again after the traffic", 10*time.Second, bothIdle)
	for _, c := range []struct {
		restart, survivor *netlab.Gateway
		peer              string
	}{{gw2, gw1, "net2"}, {gw1, gw2, "net1"}} {
		if err := c.restart.Kill(); err != nil {
			t.Fatal(err)
		}
		// Idle tunnel: dead after 8 s (1 s × 8) without a reply.
		waitFor(t, c.survivor.Name+": probe says dead", 15*time.Second, func() (bool, string) {
			st, err := c.survivor.BGP()
			if err != nil {
				return false, err.Error()
			}
			n := neighborOf(st, c.peer)
			return n.DownCode == "probe", fmt.Sprintf("%+v", n)
		})
		t0 := time.Now()
		if err := c.restart.Start(); err != nil {
			t.Fatal(err)
		}
		var n api.NeighborStatus
		waitFor(t, c.survivor.Name+": session back", 15*time.Second, func() (bool, string) {
			var ok bool
			n, ok = established(t, c.survivor, c.peer)
			return ok, fmt.Sprintf("%+v", n)
		})
		up := time.Since(t0)
		hs := time.Time{}
		if st, err := c.survivor.Status(); err == nil {
			for _, p := range st.Peerings {
				if p.Name == c.peer {
					hs = p.LastHandshake
				}
			}
		}
		fromHS := "?"
		if !hs.IsZero() {
			fromHS = n.Since.Sub(hs).Round(10 * time.Millisecond).String()
		}
		t.Logf("FIGURE %s restarted: session Established on %s %v after the start, %s after the tunnel handshake",
			c.restart.Name, c.survivor.Name, up.Round(100*time.Millisecond), fromHS)
		if up > 5*time.Second {
			t.Errorf("%s restarted: session back after %v, want within 5s", c.restart.Name, up)
		}
	}
}

// TestBGPUnderlayLoss: 10 % random loss on the underlay, each direction
// (nftables in the WAN namespace). For 60 s the tunnel and the BGP session
// stay up with no flap (uptime and last-down unchanged on both sides, the
// probe never declared dead), and 50 MB over TCP arrive intact.
func TestBGPUnderlayLoss(t *testing.T) {
	lab, gws := site(t, 2)
	gw1, gw2 := gws[0], gws[1]
	netlab.LinkBGP(gw1, gw2)
	start(t, gw1, gw2)
	n1, n2 := lab.Network(1), lab.Network(2)
	sides := []struct {
		g    *netlab.Gateway
		peer string
	}{{gw1, "net2"}, {gw2, "net1"}}
	before := map[string]api.NeighborStatus{}
	for _, s := range sides {
		waitFor(t, s.g.Name+": session established", 30*time.Second, func() (bool, string) {
			n, ok := established(t, s.g, s.peer)
			before[s.g.Name] = n
			return ok, fmt.Sprintf("%+v", n)
		})
	}
	mustReach(t, lab, n1, n2)
	undo, err := lab.UnderlayLoss(10)
	if err != nil {
		t.Fatal(err)
	}
	defer undo()
	t0 := time.Now()
	xfer := make(chan error, 1)
	go func() { xfer <- lab.TCPTransfer(n1.HostNS, n2.HostNS, n2.HostAddr, 50<<20) }()
	var xferErr error
	xferDone := false
	for time.Since(t0) < 60*time.Second {
		select {
		case xferErr = <-xfer:
			xferDone = true
			t.Logf("FIGURE 50 MB over TCP with 10%% underlay loss each way: %v", time.Since(t0).Round(100*time.Millisecond))
		case <-time.After(time.Second):
		}
		for _, s := range sides {
			st, err := s.g.BGP()
			if err != nil {
				t.Fatal(err)
			}
			n, b := neighborOf(st, s.peer), before[s.g.Name]
			if n.State != api.SessionEstablished || !n.Since.Equal(b.Since) || !n.LastDownAt.Equal(b.LastDownAt) {
				t.Fatalf("%s: session flapped under 10%% loss after %v: %+v (before %+v)", s.g.Name, time.Since(t0).Round(time.Second), n, b)
			}
			for _, p := range st.Probes {
				if !p.Alive {
					t.Fatalf("%s: probe of %s dead under 10%% loss after %v", s.g.Name, p.Peering, time.Since(t0).Round(time.Second))
				}
			}
		}
	}
	if !xferDone {
		xferErr = <-xfer
		t.Logf("FIGURE 50 MB over TCP with 10%% underlay loss each way: %v", time.Since(t0).Round(100*time.Millisecond))
	}
	if xferErr != nil {
		t.Fatalf("50 MB over TCP under 10%% loss: %v", xferErr)
	}
	dropped, err := lab.UnderlayDropped()
	if err != nil {
		t.Fatal(err)
	}
	if dropped == 0 {
		t.Fatal("the underlay dropped nothing: the loss rule is not in the path")
	}
	for _, s := range sides {
		// Only from the loss on: a tunnel whose peer starts later than
		// the detection time is logged dead once before it first answers.
		if after := detectedAfter(s.g, s.peer, t0); after >= 0 {
			t.Errorf("%s logged a dead tunnel %v into the 10%% loss", s.g.Name, after.Round(100*time.Millisecond))
		}
		st, _ := s.g.Status()
		for _, p := range st.Peerings {
			if p.State != api.StateUp {
				t.Errorf("%s: peering %s %s %s under 10%% loss", s.g.Name, p.Name, p.State, p.Reason)
			}
		}
	}
	t.Logf("underlay dropped %d UDP packets in %v", dropped, time.Since(t0).Round(time.Second))
}

// TestActiveActivePair: two gateways serve one network (the redundant
// example: deploy/examples/redundant). East peers with both over BGP, with
// the network's prefix as the import allow-list of each peering and
// bgp.multipath on: one ECMP route through both tunnels. A service address
// of the west network (10.2.200.1) answers on both west gateways. Kill the
// one carrying the east host's traffic: it continues through the other
// within 1.5 s (the probe's 0.4 s plus the switch; the figure is logged),
// the route falls back to the survivor alone; bring it back: the ECMP
// route has both tunnels again by itself. Then the other one.
//
//	h1 ── gw1 east (AS65001, multipath) ══ gw2 west-a (AS65002, 169.254.20.1)
//	                                    ══ gw3 west-b (AS65002, 169.254.20.2)
func TestActiveActivePair(t *testing.T) {
	lab, gws := site(t, 3)
	east, wa, wb := gws[0], gws[1], gws[2]
	wa.TunnelAddress = netip.MustParseAddr("169.254.20.1")
	wb.TunnelAddress = netip.MustParseAddr("169.254.20.2")
	wb.Spaces = wa.Spaces
	netlab.LinkBGP(east, wa)
	netlab.LinkBGP(east, wb)
	wb.ASN = wa.ASN
	east.Multipath = true
	for _, w := range []*netlab.Gateway{wa, wb} {
		p := east.Peering(w.Name)
		p.Network = "west"
		p.BGP.ASN = wa.ASN
		p.Spaces = wa.Spaces // the import allow-list
	}
	service := netip.MustParseAddr("10.2.200.1")
	for _, w := range []*netlab.Gateway{wa, wb} {
		if out, err := lab.Run(w.Net.GatewayNS, "ip", "addr", "add", service.String()+"/32", "dev", "lo"); err != nil {
			t.Fatalf("%s: %v\n%s", w.Name, err, out)
		}
	}
	start(t, gws...)
	n1 := lab.Network(1)
	bothVia := func() (bool, string) {
		out, _ := lab.Run(n1.GatewayNS, "ip", "route", "show", "10.2.0.0/16", "proto", "76")
		return strings.Contains(out, "dev vg-net2") && strings.Contains(out, "dev vg-net3") && strings.Contains(out, "nexthop"), out
	}
	waitFor(t, "east: 10.2.0.0/16 through both west gateways", 30*time.Second, bothVia)
	if err := lab.WaitPing(n1.HostNS, service, 15*time.Second); err != nil {
		t.Fatal(err)
	}

	// carrier is the west gateway the east host's ping goes through now.
	carrier := func() *netlab.Gateway {
		tx := func() map[string]uint64 {
			st, err := east.Status()
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]uint64{}
			for _, p := range st.Peerings {
				m[p.Name] = p.TxBytes
			}
			return m
		}
		before := tx()
		if out, err := lab.Run(n1.HostNS, "ping", "-n", "-q", "-c", "100", "-i", "0.01", "-s", "1000", service.String()); err != nil {
			t.Fatalf("ping: %v\n%s", err, out)
		}
		after := tx()
		if after["net2"]-before["net2"] > after["net3"]-before["net3"] {
			return wa
		}
		return wb
	}
	first := carrier()
	other := map[*netlab.Gateway]*netlab.Gateway{wa: wb, wb: wa}
	for i, victim := range []*netlab.Gateway{first, other[first]} {
		survivor := other[victim]
		out := outageWhile(t, lab, n1, &netlab.Network{HostNS: n1.HostNS, HostAddr: service, Index: 2}, func() {
			if err := victim.Kill(); err != nil {
				t.Fatal(err)
			}
		})
		carried := "it carried the ping"
		if i == 1 {
			carried = "the traffic may have gone through the other"
		}
		t.Logf("FIGURE active-active: %s SIGKILLed (%s): east host's outage %v", victim.Name, carried, out.Round(time.Millisecond))
		if out > 1500*time.Millisecond {
			t.Errorf("outage %v after killing %s, want well under 1.5s", out, victim.Name)
		}
		waitVia(t, lab, east, "10.2.0.0/16", survivor.Name, 5*time.Second)
		t0 := time.Now()
		if err := victim.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "east uses "+victim.Name+" again", 30*time.Second, bothVia)
		t.Logf("FIGURE active-active: %s back in the ECMP route %v after its start", victim.Name, time.Since(t0).Round(100*time.Millisecond))
		if err := lab.WaitPing(n1.HostNS, service, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKillDuringReload: a gateway SIGKILLed while a reload is in flight
// (a new tunnel address, a peering added or removed), at several moments,
// then started again with the file on disk: what runs is exactly that
// config — one tunnel address on lo, the tunnel interfaces of its
// peerings, vgate's routes for their spaces — and nothing of the other.
func TestKillDuringReload(t *testing.T) {
	lab, gws := site(t, 3)
	gw1, gw2, gw3 := gws[0], gws[1], gws[2]
	gw1.Peerings = []netlab.Peering{gw1.PeeringTo(gw2)}
	gw2.Peerings = []netlab.Peering{gw2.PeeringTo(gw1)}
	start(t, gw1, gw2)
	n1, n2 := lab.Network(1), lab.Network(2)
	mustReach(t, lab, n1, n2)

	addrA, addrB := gw1.TunnelAddress, netip.MustParseAddr("10.1.255.253")
	toB := func() {
		gw1.TunnelAddress = addrB
		gw1.Peerings = []netlab.Peering{gw1.PeeringTo(gw2), gw1.PeeringTo(gw3)}
	}
	toA := func() {
		gw1.TunnelAddress = addrA
		gw1.Peerings = []netlab.Peering{gw1.PeeringTo(gw2)}
	}
	check := func(round int) {
		t.Helper()
		wantAddr, goneAddr := addrA, addrB
		wantIfs := []string{"vg-net2"}
		if len(gw1.Peerings) == 2 {
			wantAddr, goneAddr = addrB, addrA
			wantIfs = append(wantIfs, "vg-net3")
		}
		lo, _ := lab.Run(n1.GatewayNS, "ip", "-o", "addr", "show", "dev", "lo")
		if !strings.Contains(lo, " "+wantAddr.String()+"/32") || strings.Contains(lo, " "+goneAddr.String()+"/32") {
			t.Errorf("round %d: lo has\n%s\nwant %s and not %s", round, lo, wantAddr, goneAddr)
		}
		links, _ := lab.Run(n1.GatewayNS, "ip", "-o", "link", "show")
		var ifs []string
		for _, l := range strings.Split(links, "\n") {
			if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], "vg-") {
				ifs = append(ifs, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
			}
		}
		if strings.Join(ifs, " ") != strings.Join(wantIfs, " ") {
			t.Errorf("round %d: tunnel interfaces %q, want %q", round, ifs, wantIfs)
		}
		routes := strings.Join(vgateRoutes(t, lab, n1.GatewayNS), "\n")
		has3 := strings.Contains(routes, "10.3.0.0/16") || strings.Contains(routes, "fd00:3::/48")
		if has3 != (len(wantIfs) == 2) || !strings.Contains(routes, "10.2.0.0/16 dev vg-net2") {
			t.Errorf("round %d: vgate's routes:\n%s", round, routes)
		}
	}
	for round, delay := range []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond, 60 * time.Millisecond} {
		if len(gw1.Peerings) == 1 {
			toB()
		} else {
			toA()
		}
		if err := gw1.Reload(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		if err := gw1.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := gw1.Start(); err != nil {
			t.Fatal(err)
		}
		check(round)
		if err := lab.WaitPing(n1.HostNS, n2.HostAddr, 15*time.Second); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}
