package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
)

// relayPair is two gateways whose peering names a relay in network 3.
func relayPair(t *testing.T) (*netlab.Lab, *netlab.Gateway, *netlab.Gateway, *netlab.Relay) {
	t.Helper()
	lab, gws := site(t, 3)
	g1, g2 := gws[0], gws[1]
	r, sb := newLabRelay(t, lab, lab.Network(3), g1.Pub, g2.Pub)
	pin := startLabRelay(t, lab, r, sb)
	p12, p21 := g1.PeeringTo(g2), g2.PeeringTo(g1)
	for _, p := range []*netlab.Peering{&p12, &p21} {
		p.RelayURL, p.RelayPin = r.URL(), pin
	}
	g1.Peerings, g2.Peerings = []netlab.Peering{p12}, []netlab.Peering{p21}
	return lab, g1, g2, r
}

// firstPacket starts g1, then g2, and returns how long after g2's start
// (its process started; its control socket answered) host1 first reached
// host2: pings every 20 ms.
func firstPacket(t *testing.T, lab *netlab.Lab, g1, g2 *netlab.Gateway) (fromProc, fromReady time.Duration) {
	t.Helper()
	start(t, g1)
	begin := time.Now()
	start(t, g2)
	ready := time.Now()
	fastPing(t, lab, g1.Net.HostNS, g2.Net.HostAddr)
	return time.Since(begin), time.Since(ready)
}

// fastPing pings dst from ns every 20 ms until one reply arrives, for at
// most 30 s (again at once when ping gives up early: no route yet).
func fastPing(t *testing.T, lab *netlab.Lab, ns string, dst netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := time.Until(deadline)
		ctx, cancel := context.WithTimeout(context.Background(), left+5*time.Second)
		out, err := lab.RunContext(ctx, ns, "ping", "-n", "-q", "-c", "1", "-i", "0.02", "-W", "1",
			"-w", fmt.Sprint(max(1, int(left.Seconds()))), dst.String())
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach %s within 30 s: %v\n%s", ns, dst, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func blockUDP(t *testing.T, lab *netlab.Lab, gws ...*netlab.Gateway) {
	t.Helper()
	for _, g := range gws {
		if err := lab.BlockUDP(g.Net.GatewayNS); err != nil {
			t.Fatal(err)
		}
	}
}

// waitPath waits until every one of gws shows its peering on path.
func waitPath(t *testing.T, path string, within time.Duration, gws ...*netlab.Gateway) time.Duration {
	t.Helper()
	begin := time.Now()
	for {
		ok := true
		for _, g := range gws {
			st, err := g.Status()
			if err != nil || len(st.Peerings) == 0 || st.Peerings[0].Path != path {
				ok = false
			}
		}
		if ok {
			return time.Since(begin)
		}
		if time.Since(begin) > within {
			t.Fatalf("peerings not on the %s path within %v", path, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// host1 ── gw1 ══ UDP dropped (nftables, both ways) ══ gw2 ── host2
//
//	╲                                       ╱
//	 ╰──── vgate relay (TLS + WebSocket) ───╯
//
// A peering that names a relay sends its first handshake both ways at
// once: with UDP dropped, host1 reaches host2 within 1 s of both gateways
// having started (asserted within 3 s: a loaded machine), not after two
// unanswered handshakes (10 s). Then UDP works, the tunnel moves to the
// direct path, both gateways stop, UDP is dropped again and they start
// afresh: the first packet is as quick (a direct path before changes
// nothing).
func TestRelayFirstPacket(t *testing.T) {
	lab, g1, g2, _ := relayPair(t)
	blockUDP(t, lab, g1, g2)
	check := func(what string) {
		t.Helper()
		fromProc, fromReady := firstPacket(t, lab, g1, g2)
		t.Logf("FIGURE: %s: first packet through the relay %v after both gateways started (%v after the second one's process started)",
			what, fromReady.Round(10*time.Millisecond), fromProc.Round(10*time.Millisecond))
		if fromReady > 3*time.Second {
			t.Errorf("%s: first packet %v after both gateways started, want within 1 s (3 s with margin)", what, fromReady)
		}
		for _, g := range []*netlab.Gateway{g1, g2} {
			if st, err := g.Status(); err != nil || st.Peerings[0].Path != "relay" {
				t.Errorf("%s: %s not on the relay path with UDP dropped: %v %+v", what, g.Name, err, st)
			}
		}
	}
	check("cold start")

	for _, g := range []*netlab.Gateway{g1, g2} {
		if err := lab.UnblockUDP(g.Net.GatewayNS); err != nil {
			t.Fatal(err)
		}
	}
	back := waitPath(t, "direct", 20*time.Second, g1, g2)
	t.Logf("FIGURE: direct path %v after UDP came back", back.Round(100*time.Millisecond))
	if err := lab.Ping(g1.Net.HostNS, g2.Net.HostAddr, 2); err != nil {
		t.Fatalf("ping on the direct path: %v", err)
	}
	for _, g := range []*netlab.Gateway{g1, g2} {
		if err := g.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	blockUDP(t, lab, g1, g2)
	check("restart after a direct path")
}

// host1 ── gw1 ══ UDP, 10% of datagrams dropped each way ══ gw2 ── host2
//
//	╲                                                ╱
//	 ╰──────── vgate relay (TLS + WebSocket) ────────╯
//
// A lossy UDP path is still the path: once direct, the peering stays
// direct on both gateways for 60 s of 10% loss each way with traffic
// flowing, and sends nothing over the relay meanwhile.
func TestRelayNoFlapUnderLoss(t *testing.T) {
	t.Parallel() // mostly waiting: its own namespaces
	lab, g1, g2, _ := relayPair(t)
	for _, g := range []*netlab.Gateway{g1, g2} {
		if _, err := lab.Run(g.Net.GatewayNS, "nft", "add table inet vgloss; "+
			"add chain inet vgloss in { type filter hook input priority 0; }; "+
			"add chain inet vgloss out { type filter hook output priority 0; }; "+
			"add rule inet vgloss in iifname wan0 meta l4proto udp numgen random mod 10 == 0 drop; "+
			"add rule inet vgloss out oifname wan0 meta l4proto udp numgen random mod 10 == 0 drop"); err != nil {
			t.Fatal(err)
		}
	}
	start(t, g1, g2)
	if err := lab.WaitPing(g1.Net.HostNS, g2.Net.HostAddr, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	waitPath(t, "direct", 20*time.Second, g1, g2)
	relayTx := func() (n uint64) {
		for _, g := range []*netlab.Gateway{g1, g2} {
			st, err := g.Status()
			if err != nil {
				t.Fatal(err)
			}
			if r := st.Peerings[0].Relay; r != nil {
				n += r.TxPackets
			}
		}
		return n
	}
	for _, g := range []*netlab.Gateway{g1, g2} {
		// The relay is there to be used: staying direct is a choice.
		if st, err := g.Status(); err != nil || st.Peerings[0].Relay == nil || st.Peerings[0].Relay.State != "connected" {
			t.Fatalf("%s: relay not connected: %v %+v", g.Name, err, st.Peerings[0].Relay)
		}
	}
	tx0 := relayTx()
	// Traffic both ways the whole time: 10 pings a second.
	ctx, cancel := context.WithTimeout(context.Background(), 70*time.Second)
	defer cancel()
	pinged := make(chan string, 1)
	go func() {
		out, _ := lab.RunContext(ctx, g1.Net.HostNS, "ping", "-n", "-q", "-i", "0.1", "-w", "60", g2.Net.HostAddr.String())
		pinged <- out
	}()
	begin := time.Now()
	changes := map[string]int{}
	var samples int
	for time.Since(begin) < 60*time.Second {
		for _, g := range []*netlab.Gateway{g1, g2} {
			st, err := g.Status()
			if err != nil {
				t.Fatal(err)
			}
			if p := st.Peerings[0].Path; p != "direct" {
				changes[fmt.Sprintf("%s at %v: %s", g.Name, time.Since(begin).Round(100*time.Millisecond), p)]++
			}
		}
		samples++
		time.Sleep(250 * time.Millisecond)
	}
	out := <-pinged
	dtx := relayTx() - tx0
	t.Logf("FIGURE: 60 s of 10%% UDP loss each way: %d status samples per gateway, %d off the direct path, %d datagrams over the relay; ping: %s",
		samples, len(changes), dtx, lastLine(out))
	if len(changes) > 0 {
		t.Errorf("the peering left the direct path under 10%% loss: %v", changes)
	}
	if dtx > 0 {
		t.Errorf("%d datagrams went over the relay while the direct path worked", dtx)
	}
}

func lastLine(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}
