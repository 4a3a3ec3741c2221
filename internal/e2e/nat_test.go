package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/internal/netlab"
)

// Networks that overlap (docs/nat.md): a hub 10.9.0.0/16 and two branches
// that both number themselves 10.1.0.0/16 (and fd00:1::/48), shown to
// the hub by ingress rules as 100.65.0.0/16 and 100.66.0.0/16
// (fd00:65::/48, fd00:66::/48):
//
//	hub host 10.9.0.2 ── hub ══ net1: host 10.1.0.2 (100.65.0.2 at the hub)
//	                         ══ net2: host 10.1.0.2 (100.66.0.2 at the hub)

// renumber moves network n's LAN and host into network to's addresses
// (10.to.0.0/24, fd00:to::/64) and gives its gateway network to's spaces
// and tunnel address: a network that overlaps network to.
func renumber(t *testing.T, lab *netlab.Lab, g *netlab.Gateway, to int) {
	t.Helper()
	n := g.Net
	gw4, gw6 := netip.AddrFrom4([4]byte{10, byte(to), 0, 1}), netip.MustParseAddr(fmt.Sprintf("fd00:%x::1", to))
	h4, h6 := netip.AddrFrom4([4]byte{10, byte(to), 0, 2}), netip.MustParseAddr(fmt.Sprintf("fd00:%x::2", to))
	for _, c := range [][]string{
		{n.GatewayNS, "ip", "addr", "flush", "dev", "lan0", "scope", "global"},
		{n.GatewayNS, "ip", "addr", "add", gw4.String() + "/24", "dev", "lan0"},
		{n.GatewayNS, "ip", "addr", "add", gw6.String() + "/64", "dev", "lan0", "nodad"},
		{n.HostNS, "ip", "addr", "flush", "dev", "eth0", "scope", "global"},
		{n.HostNS, "ip", "addr", "add", h4.String() + "/24", "dev", "eth0"},
		{n.HostNS, "ip", "addr", "add", h6.String() + "/64", "dev", "eth0", "nodad"},
		{n.HostNS, "ip", "route", "replace", "default", "via", gw4.String()},
		{n.HostNS, "ip", "-6", "route", "replace", "default", "via", gw6.String()},
	} {
		if out, err := lab.Run(c[0], c[1:]...); err != nil {
			t.Fatalf("renumber network %d: %v: %v\n%s", n.Index, c, err, out)
		}
	}
	n.GatewayLAN, n.GatewayLANV6, n.HostAddr, n.HostAddrV6 = gw4, gw6, h4, h6
	n.LAN = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(to), 0, 0}), 24)
	n.LANV6 = netip.MustParsePrefix(fmt.Sprintf("fd00:%x::/64", to))
	n.Space = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(to), 0, 0}), 16)
	g.Spaces = []netip.Prefix{n.Space, netip.MustParsePrefix(fmt.Sprintf("fd00:%x::/48", to))}
	g.TunnelAddress = netip.AddrFrom4([4]byte{10, byte(to), 255, 254})
}

// ingressYAML is a nat section body mapping the branch's 10.1/16 and
// fd00:1::/48 to 100.<ext>/16 and fd00:<ext>::/48.
func ingressYAML(ext int) string {
	return fmt.Sprintf("      ingress:\n        - { internal: 10.1.0.0/16, external: 100.%d.0.0/16 }\n        - { internal: \"fd00:1::/48\", external: \"fd00:%d::/48\" }\n", ext, ext)
}

// natLab builds the hub (network 9) and the two overlapping branches
// (networks 1 and 2, both numbered as network 1), not started. With bgp
// the peerings run BGP and the branches' spaces are learned.
func natLab(t *testing.T, bgp bool) (*netlab.Lab, *netlab.Gateway, *netlab.Gateway, *netlab.Gateway) {
	t.Helper()
	if !netlab.Root() {
		t.Skip("SKIPPED: lab tests need root (network namespaces)")
	}
	lab := netlab.NewT(t, netlab.Networks(0))
	bin := vgateBin(t)
	var gws []*netlab.Gateway
	for _, i := range []int{9, 1, 2} {
		n, err := lab.AddNetwork(i)
		if err != nil {
			t.Fatal(err)
		}
		g, err := lab.NewGateway(n, bin)
		if err != nil {
			t.Fatal(err)
		}
		gws = append(gws, g)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, g := range gws {
				t.Logf("---- log of gateway %s ----\n%s", g.Name, tail(g.Log(), 80))
			}
		}
	})
	hub, a, b := gws[0], gws[1], gws[2]
	renumber(t, lab, b, 1)
	hub.MetricsListen = metricsAddr
	for i, br := range []*netlab.Gateway{a, b} {
		ext := 65 + i
		otherSeen := []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("100.%d.0.0/16", 131-ext)), netip.MustParsePrefix(fmt.Sprintf("fd00:%d::/48", 131-ext))}
		// The hub writes the branch's tunnel address as it sees it.
		p := hub.PeeringTo(br)
		p.TunnelAddress = netip.AddrFrom4([4]byte{100, byte(ext), 255, 254})
		p.NAT = ingressYAML(ext)
		// The branch reaches the hub and, through it, the other branch
		// as the hub shows it.
		q := br.PeeringTo(hub)
		q.Spaces = append(append([]netip.Prefix(nil), hub.Spaces...), otherSeen...)
		if bgp {
			hub.ASN, br.ASN = netlab.ASNOf(hub.Net), netlab.ASNOf(br.Net)
			p.BGP = &netlab.PeerBGP{ASN: br.ASN, Address: p.TunnelAddress}
			p.TunnelAddress = netip.Addr{}
			q.Spaces = nil
			q.BGP = &netlab.PeerBGP{ASN: hub.ASN, Address: hub.TunnelAddress}
		}
		hub.Peerings = append(hub.Peerings, p)
		br.Peerings = append(br.Peerings, q)
	}
	return lab, hub, a, b
}

// udpEcho sends a datagram from fromNS to dst:port where toNS listens on
// listen, and checks that it arrives, comes from the address toNS should
// see (wantSrc), and that the reply comes back from dst.
func udpEcho(lab *netlab.Lab, fromNS, toNS string, listen, dst, wantSrc netip.Addr) error {
	var srv, cli net.PacketConn
	if err := netlab.InNS(toNS, func() (err error) {
		srv, err = net.ListenPacket("udp", net.JoinHostPort(listen.String(), "0"))
		return err
	}); err != nil {
		return err
	}
	defer srv.Close()
	port := srv.LocalAddr().(*net.UDPAddr).Port
	if err := netlab.InNS(fromNS, func() (err error) {
		cli, err = net.ListenPacket("udp", ":0")
		return err
	}); err != nil {
		return err
	}
	defer cli.Close()
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 2048)
		srv.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := srv.ReadFrom(buf)
		if err != nil {
			errc <- fmt.Errorf("receive in %s: %w", toNS, err)
			return
		}
		if src := from.(*net.UDPAddr).AddrPort().Addr().Unmap(); src != wantSrc {
			errc <- fmt.Errorf("datagram arrived from %s, want %s", src, wantSrc)
			return
		}
		_, err = srv.WriteTo(bytes.ToUpper(buf[:n]), from)
		errc <- err
	}()
	msg := []byte("hello across the mapping " + strings.Repeat("x", 1000))
	var err error
	for i := 0; i < 5; i++ { // UDP: a first datagram may meet a cold path
		if _, err = cli.WriteTo(msg, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(port)))); err != nil {
			return err
		}
		cli.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 2048)
		var n int
		var from net.Addr
		n, from, err = cli.ReadFrom(buf)
		if err != nil {
			continue
		}
		if src := from.(*net.UDPAddr).AddrPort().Addr().Unmap(); src != dst {
			return fmt.Errorf("reply from %s, want %s", src, dst)
		}
		if !bytes.Equal(buf[:n], bytes.ToUpper(msg)) {
			return fmt.Errorf("reply corrupted")
		}
		return <-errc
	}
	return fmt.Errorf("no reply from %s: %w", dst, err)
}

func natStatusOf(t *testing.T, g *netlab.Gateway, peering string) *api.NATStatus {
	t.Helper()
	st, err := g.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Peerings {
		if p.Name == peering {
			return p.NAT
		}
	}
	t.Fatalf("%s: no peering %s", g.Name, peering)
	return nil
}

func TestNATOverlappingBranches(t *testing.T) {
	lab, hub, a, b := natLab(t, false)
	// Names: branch a serves a.internal, which the hub forwards to it.
	hub.Extra = "dns: { zone: hub.internal }\n"
	a.Extra = "dns: { zone: a.internal }\n"
	hub.Peering(a.Name).DNSZone = "a.internal"
	start(t, hub, a, b)
	hh, ha, hb := hub.Net.HostNS, a.Net.HostNS, b.Net.HostNS
	at4, bt4 := netip.MustParseAddr("100.65.0.2"), netip.MustParseAddr("100.66.0.2")
	at6, bt6 := netip.MustParseAddr("fd00:65::2"), netip.MustParseAddr("fd00:66::2")

	t.Run("hub reaches both", func(t *testing.T) {
		for _, dst := range []netip.Addr{at4, bt4, at6, bt6} {
			if err := lab.WaitPing(hh, dst, 20*time.Second); err != nil {
				t.Fatalf("hub host cannot reach %s: %v", dst, err)
			}
		}
		// TCP to each branch at once, each received by its own host: a
		// mix-up of the two mappings fails one of them.
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i, x := range []struct {
			ns          string
			listen, dst netip.Addr
		}{{ha, a.Net.HostAddr, at4}, {hb, b.Net.HostAddr, bt4}, {hb, b.Net.HostAddrV6, bt6}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				size := 50 << 20
				if i == 2 {
					size = 8 << 20
				}
				errs[i] = lab.TCPTransferVia(hh, x.ns, x.listen, x.dst, size)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("TCP transfer %d: %v", i, err)
			}
		}
		// UDP: the branch's host sees the hub's host by its own address,
		// the hub's host gets the reply from the mapped address.
		hub4 := hub.Net.HostAddr
		if err := udpEcho(lab, hh, ha, a.Net.HostAddr, at4, hub4); err != nil {
			t.Errorf("UDP hub -> branch a: %v", err)
		}
		if err := udpEcho(lab, hh, hb, b.Net.HostAddrV6, bt6, hub.Net.HostAddrV6); err != nil {
			t.Errorf("UDP over IPv6 hub -> branch b: %v", err)
		}
	})

	t.Run("branch to branch", func(t *testing.T) {
		// a reaches b as the hub shows it; b sees a as 100.65.0.2.
		if err := lab.WaitPing(ha, bt4, 20*time.Second); err != nil {
			t.Fatalf("branch a cannot reach branch b at %s: %v", bt4, err)
		}
		if err := lab.TCPTransferVia(ha, hb, b.Net.HostAddr, bt4, 8<<20); err != nil {
			t.Errorf("TCP a -> b: %v", err)
		}
		if err := udpEcho(lab, ha, hb, b.Net.HostAddr, bt4, at4); err != nil {
			t.Errorf("UDP a -> b: %v", err)
		}
		if err := lab.WaitPing(hb, at6, 20*time.Second); err != nil {
			t.Errorf("branch b cannot reach branch a at %s: %v", at6, err)
		}
	})

	t.Run("traceroute and path MTU", func(t *testing.T) {
		// The branch gateway's time-exceeded comes back from its tunnel
		// address, mapped: the quote inside is translated too, or the
		// hub host's socket would not take it.
		out, _ := lab.Run(hh, "ping", "-n", "-c", "1", "-W", "3", "-t", "2", at4.String())
		if !strings.Contains(out, "From 100.65.") || !strings.Contains(strings.ToLower(out), "time to live exceeded") {
			t.Errorf("ping with TTL 2 to %s through the mapping:\n%s", at4, out)
		}
		// A 1280-byte link behind branch a: its gateway's "fragmentation
		// needed" crosses the mapping and the hub host learns the MTU.
		if out, err := lab.Run(a.Net.GatewayNS, "ip", "link", "set", "lan0", "mtu", "1280"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		defer lab.Run(a.Net.GatewayNS, "ip", "link", "set", "lan0", "mtu", "1500")
		lab.Run(hh, "ping", "-n", "-c", "2", "-W", "2", "-M", "do", "-s", "1372", at4.String())
		out, _ = lab.Run(hh, "ip", "route", "get", at4.String())
		if !strings.Contains(out, "mtu 1280") {
			t.Errorf("hub host did not learn the path MTU to %s: %s", at4, out)
		}
		if err := lab.TCPTransferVia(hh, ha, a.Net.HostAddr, at4, 4<<20); err != nil {
			t.Errorf("TCP over the 1280-byte path: %v", err)
		}
	})

	t.Run("names", func(t *testing.T) {
		// Branch a answers its gateway's name with 10.1.255.254; the hub's
		// hosts get it as the hub sees it.
		var status string
		var addrs []string
		for i := 0; i < 20; i++ {
			if status, addrs = dig(t, lab, hh, hub.TunnelAddress, "net1.a.internal"); status == "NOERROR" {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if status != "NOERROR" || len(addrs) != 1 || addrs[0] != "100.65.255.254" {
			t.Errorf("dig net1.a.internal from the hub's host: %s %v, want 100.65.255.254", status, addrs)
		}
	})

	t.Run("capture", func(t *testing.T) {
		// The capture records what crosses the tunnel: the branch's own
		// numbering, and says so.
		data, stderr := capturePackets(t, hub, a.Name, 6, func() { lab.Ping(hh, at4, 1) })
		if !strings.Contains(stderr, "has NAT rules: the file shows addresses as they cross the tunnel") {
			t.Fatalf("vgate capture:\n%s", stderr)
		}
		req, rep, seen := 0, 0, 0
		for _, d := range data {
			if len(d) < 20 || d[0]>>4 != 4 {
				continue
			}
			src, _ := netip.AddrFromSlice(d[12:16])
			dst, _ := netip.AddrFromSlice(d[16:20])
			switch {
			case src == hub.Net.HostAddr && dst == a.Net.HostAddr:
				req++
			case src == a.Net.HostAddr && dst == hub.Net.HostAddr:
				rep++
			case src == at4 || dst == at4:
				seen++
			}
		}
		if req == 0 || rep == 0 || seen != 0 {
			t.Errorf("capture: %d requests and %d replies as the branch numbers them, %d packets as the hub sees them", req, rep, seen)
		}
	})

	t.Run("status, routes, metrics", func(t *testing.T) {
		for _, name := range []string{a.Name, b.Name} {
			n := natStatusOf(t, hub, name)
			if n == nil || len(n.Rules) != 2 {
				t.Fatalf("%s: nat status %+v", name, n)
			}
			for _, r := range n.Rules {
				if r.Out.Packets == 0 || r.In.Packets == 0 || r.Out.Bytes < r.Out.Packets*20 {
					t.Errorf("%s %s: counters %+v", name, r.Rule, r)
				}
			}
		}
		if n := natStatusOf(t, a, hub.Name); n != nil {
			t.Errorf("branch a has no rules but status shows %+v", n)
		}
		out, err := hub.CLI("status", "--socket", hub.Socket)
		t.Logf("vgate status of the hub:\n%s", out)
		if err != nil || !strings.Contains(out, "ingress[0]") || !strings.Contains(out, "10.1.0.0/16 as 100.66.0.0/16") {
			t.Errorf("vgate status: %v\n%s", err, out)
		}
		out, err = hub.CLI("routes", "--socket", hub.Socket)
		if err != nil || !strings.Contains(out, "100.65.0.0/16 (10.1.0.0/16 at net1)") || !strings.Contains(out, "100.66.0.0/16 (10.1.0.0/16 at net2)") {
			t.Errorf("vgate routes: %v\n%s", err, out)
		}
		routes := vgateRoutes(t, lab, hub.Net.GatewayNS)
		for _, want := range []string{"100.65.0.0/16 dev vg-net1", "100.66.0.0/16 dev vg-net2", "fd00:65::/48 dev vg-net1"} {
			found := false
			for _, r := range routes {
				found = found || strings.HasPrefix(r, want)
			}
			if !found {
				t.Errorf("kernel route %q missing: %q", want, routes)
			}
		}
		for _, r := range routes {
			if strings.HasPrefix(r, "10.1.") || strings.HasPrefix(r, "fd00:1:") {
				t.Errorf("a route in the branches' own numbering on the hub: %s", r)
			}
		}
		body := metricsOf(t, hub)
		for _, dir := range []string{"out", "in"} {
			if v := mustMetric(t, body, "vgate_nat_translated_packets_total", "peering=net2", "rule=ingress[0]", "direction="+dir); v <= 0 {
				t.Errorf("vgate_nat_translated_packets_total{net2,ingress[0],%s} = %v", dir, v)
			}
		}
		mustMetric(t, body, "vgate_nat_rule_info", "peering=net1", "rule=ingress[1]", "external=fd00:65::/48")
	})

	t.Run("reload changes one rule", func(t *testing.T) {
		st, err := hub.Status()
		if err != nil {
			t.Fatal(err)
		}
		hs := map[string]time.Time{}
		for _, p := range st.Peerings {
			hs[p.Name] = p.LastHandshake
		}
		idx := func(dev string) string {
			out, _ := lab.Run(hub.Net.GatewayNS, "ip", "-o", "link", "show", "dev", dev)
			return strings.SplitN(out, ":", 2)[0]
		}
		before1, before2 := idx("vg-net1"), idx("vg-net2")
		// net2 is shown as 100.68/16 from now on; net1 must not notice.
		ping := lab.StartPing(hh, at4, 100*time.Millisecond, 6*time.Second)
		time.Sleep(time.Second)
		p := hub.Peering(b.Name)
		p.NAT = strings.ReplaceAll(strings.ReplaceAll(p.NAT, "100.66.", "100.68."), "fd00:66:", "fd00:68:")
		p.TunnelAddress = netip.MustParseAddr("100.68.255.254")
		reload(t, hub, 1)
		res := ping.Wait()
		t.Logf("pings to branch a across the reload: %d of %d answered, longest gap %v", res.Received, res.Sent, res.LongestGap)
		if res.Received == 0 || res.Outage(100*time.Millisecond) > 1500*time.Millisecond {
			t.Errorf("pings to branch a across the reload: %d of %d answered, outage %v", res.Received, res.Sent, res.Outage(100*time.Millisecond))
		}
		if after1, after2 := idx("vg-net1"), idx("vg-net2"); after1 != before1 || after2 != before2 || after1 == "" {
			t.Errorf("tunnel devices recreated: vg-net1 %s -> %s, vg-net2 %s -> %s", before1, after1, before2, after2)
		}
		if err := lab.WaitPing(hh, netip.MustParseAddr("100.68.0.2"), 20*time.Second); err != nil {
			t.Errorf("branch b at its new mapping 100.68.0.2: %v", err)
		}
		if err := lab.WaitPing(hh, netip.MustParseAddr("fd00:68::2"), 10*time.Second); err != nil {
			t.Errorf("branch b at its new mapping fd00:68::2: %v", err)
		}
		if err := lab.Ping(hh, bt4, 1); err == nil {
			t.Error("branch b still answers at its old mapping")
		}
		// The session of net1 is the same: no new handshake was needed.
		st, _ = hub.Status()
		for _, p := range st.Peerings {
			if p.Name == a.Name && p.LastHandshake.Before(hs[p.Name]) {
				t.Errorf("handshake of %s went back", p.Name)
			}
		}
	})

	t.Run("reload adds and removes a rule", func(t *testing.T) {
		// An egress rule on net2: branch b sees the hub's 10.9/16 as
		// 100.99/16 (b routes that to the hub first); then removed.
		bt := netip.MustParseAddr("100.68.0.2")
		q := b.Peering(hub.Name)
		q.Spaces = append(q.Spaces, netip.MustParsePrefix("100.99.0.0/16"))
		reload(t, b, 1)
		idx := func(dev string) string {
			out, _ := lab.Run(hub.Net.GatewayNS, "ip", "-o", "link", "show", "dev", dev)
			return strings.SplitN(out, ":", 2)[0]
		}
		before1, before2 := idx("vg-net1"), idx("vg-net2")
		p := hub.Peering(b.Name)
		withoutEgress := p.NAT
		p.NAT += "      egress:\n        - { internal: 10.9.0.0/16, external: 100.99.0.0/16 }\n"
		reload(t, hub, 2)
		if err := lab.WaitPing(hh, bt, 10*time.Second); err != nil {
			t.Fatalf("after adding the egress rule: %v", err)
		}
		if err := udpEcho(lab, hh, hb, b.Net.HostAddr, bt, netip.MustParseAddr("100.99.0.2")); err != nil {
			t.Errorf("with the egress rule, branch b sees the hub's host: %v", err)
		}
		if n := natStatusOf(t, hub, b.Name); n == nil || len(n.Rules) != 3 || n.Rules[2].Rule != "egress[0]" || n.Rules[2].Out.Packets == 0 {
			t.Errorf("nat status after adding: %+v", n)
		}
		p.NAT = withoutEgress
		reload(t, hub, 3)
		if err := udpEcho(lab, hh, hb, b.Net.HostAddr, bt, hub.Net.HostAddr); err != nil {
			t.Errorf("after removing the egress rule, branch b sees the hub's host: %v", err)
		}
		if err := lab.Ping(hh, at4, 1); err != nil {
			t.Errorf("branch a: %v", err)
		}
		if after1, after2 := idx("vg-net1"), idx("vg-net2"); after1 != before1 || after2 != before2 {
			t.Errorf("tunnel devices recreated: vg-net1 %s -> %s, vg-net2 %s -> %s", before1, after1, before2, after2)
		}
	})

	t.Run("without rules refused", func(t *testing.T) {
		// The same hub without its nat sections: both peerings claim
		// 10.1.0.0/16, and check names both.
		cfg := hub.Render()
		var kept []string
		skip := false
		for _, l := range strings.Split(cfg, "\n") {
			switch {
			case strings.HasPrefix(l, "    nat:"):
				skip = true
				continue
			case skip && strings.HasPrefix(l, "      "):
				continue
			}
			skip = false
			l = strings.ReplaceAll(l, "tunnel_address: 100.65.255.254", "tunnel_address: 10.1.255.254")
			l = strings.ReplaceAll(l, "tunnel_address: 100.68.255.254", "tunnel_address: 10.1.255.254")
			kept = append(kept, l)
		}
		path := filepath.Join(t.TempDir(), "plain.yaml")
		if err := os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := hub.CLI("check", "--config", path)
		t.Logf("vgate check without rules:\n%s", out)
		if err == nil || !strings.Contains(out, "net1") || !strings.Contains(out, "net2") || !strings.Contains(out, "10.1.0.0/16") {
			t.Errorf("vgate check of the config without rules: err %v\n%s", err, out)
		}
	})
}

// The same hub and branches with BGP: each branch announces its own
// 10.1.0.0/16 and fd00:1::/48; the hub imports them translated, installs
// 100.65/16 and 100.66/16, and announces each to the other branch (never
// a branch's own numbering, never a branch's own space back to it).
func TestNATOverlappingBranchesBGP(t *testing.T) {
	lab, hub, a, b := natLab(t, true)
	start(t, hub, a, b)
	hh, ha, hb := hub.Net.HostNS, a.Net.HostNS, b.Net.HostNS
	at4, bt4 := netip.MustParseAddr("100.65.0.2"), netip.MustParseAddr("100.66.0.2")
	for _, dst := range []netip.Addr{at4, bt4, netip.MustParseAddr("fd00:65::2"), netip.MustParseAddr("fd00:66::2")} {
		if err := lab.WaitPing(hh, dst, 90*time.Second); err != nil {
			t.Fatalf("hub host cannot reach %s over BGP routes: %v", dst, err)
		}
	}
	if err := lab.TCPTransferVia(hh, hb, b.Net.HostAddr, bt4, 16<<20); err != nil {
		t.Errorf("TCP hub -> b: %v", err)
	}
	if err := lab.WaitPing(ha, bt4, 60*time.Second); err != nil {
		t.Fatalf("branch a cannot reach branch b at %s: %v", bt4, err)
	}
	if err := udpEcho(lab, ha, hb, b.Net.HostAddr, bt4, at4); err != nil {
		t.Errorf("UDP a -> b: %v", err)
	}
	rv, err := hub.Routes()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, r := range rv.Routes {
		if r.Source == "bgp" && r.PeerPrefix.IsValid() {
			found[fmt.Sprintf("%s %s %s %v", r.Prefix, r.PeerPrefix, r.Peering, r.Installed)] = true
		}
	}
	for _, want := range []string{"100.65.0.0/16 10.1.0.0/16 net1 true", "100.66.0.0/16 10.1.0.0/16 net2 true", "fd00:65::/48 fd00:1::/48 net1 true"} {
		if !found[want] {
			t.Errorf("hub routes lack %q: %v", want, found)
		}
	}
	// The probe tells the branches are vgate gateways, though their
	// requests name the tunnel addresses as they cross the tunnel, and
	// both ends of each session agree which end dials.
	for _, g := range []*netlab.Gateway{hub, a, b} {
		waitFor(t, g.Name+" probes learn vgate peers", 30*time.Second, func() (bool, string) {
			st, err := g.BGP()
			if err != nil || len(st.Probes) == 0 {
				return false, fmt.Sprint(err)
			}
			for _, p := range st.Probes {
				if !p.Vgate || !p.Alive {
					return false, fmt.Sprintf("%+v", p)
				}
			}
			return true, ""
		})
	}
	out, _ := hub.CLI("routes", "--socket", hub.Socket)
	t.Logf("vgate routes of the hub:\n%s", out)
	if !strings.Contains(out, "100.66.0.0/16 (10.1.0.0/16 at net2)") {
		t.Errorf("vgate routes does not show the peer's prefix beside")
	}
	// Branch a learns b as 100.66/16 from the hub, and neither its own
	// space as the hub sees it nor anyone's 10.1/16.
	rv, err = a.Routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rv.Routes {
		if r.Source != "bgp" {
			continue
		}
		p := r.Prefix.String()
		if strings.HasPrefix(p, "100.65.") || strings.HasPrefix(p, "fd00:65:") || strings.HasPrefix(p, "10.1.") {
			t.Errorf("branch a was sent %s (%s)", p, r.Status)
		}
	}
	if !hasRoute(vgateRoutes(t, lab, a.Net.GatewayNS), "100.66.0.0/16") {
		t.Errorf("branch a has no route to 100.66.0.0/16: %q", vgateRoutes(t, lab, a.Net.GatewayNS))
	}
}

// An egress rule: a branch that numbers itself 10.9.0.0/16, as the hub
// does, reaches the hub as 100.99.0.0/16 (fd00:99::/48), and the hub sees
// it as 100.67.0.0/16 (fd00:67::/48).
func TestNATEgressRule(t *testing.T) {
	if !netlab.Root() {
		t.Skip("SKIPPED: lab tests need root (network namespaces)")
	}
	lab := netlab.NewT(t, netlab.Networks(0))
	bin := vgateBin(t)
	var gws []*netlab.Gateway
	for _, i := range []int{9, 3} {
		n, err := lab.AddNetwork(i)
		if err != nil {
			t.Fatal(err)
		}
		g, err := lab.NewGateway(n, bin)
		if err != nil {
			t.Fatal(err)
		}
		gws = append(gws, g)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, g := range gws {
				t.Logf("---- log of gateway %s ----\n%s", g.Name, tail(g.Log(), 60))
			}
		}
	})
	hub, c := gws[0], gws[1]
	renumber(t, lab, c, 9)
	p := hub.PeeringTo(c)
	p.TunnelAddress = netip.MustParseAddr("100.67.255.254")
	p.NAT = "      ingress:\n        - { internal: 10.9.0.0/16, external: 100.67.0.0/16 }\n        - { internal: \"fd00:9::/48\", external: \"fd00:67::/48\" }\n" +
		"      egress:\n        - { internal: 10.9.0.0/16, external: 100.99.0.0/16 }\n        - { internal: \"fd00:9::/48\", external: \"fd00:99::/48\" }\n"
	hub.Peerings = append(hub.Peerings, p)
	q := c.PeeringTo(hub)
	q.Spaces = []netip.Prefix{netip.MustParsePrefix("100.99.0.0/16"), netip.MustParsePrefix("fd00:99::/48")}
	q.TunnelAddress = netip.MustParseAddr("100.99.255.254")
	c.Peerings = append(c.Peerings, q)
	start(t, hub, c)

	hubAt, cAt := netip.MustParseAddr("100.99.0.2"), netip.MustParseAddr("100.67.0.2")
	if err := lab.WaitPing(c.Net.HostNS, hubAt, 20*time.Second); err != nil {
		t.Fatalf("branch host cannot reach the hub's host at %s: %v", hubAt, err)
	}
	if err := lab.WaitPing(hub.Net.HostNS, cAt, 10*time.Second); err != nil {
		t.Fatalf("hub host cannot reach the branch host at %s: %v", cAt, err)
	}
	if err := lab.WaitPing(c.Net.HostNS, netip.MustParseAddr("fd00:99::2"), 10*time.Second); err != nil {
		t.Errorf("IPv6: %v", err)
	}
	// Each sees the other under the other's mapping.
	if err := udpEcho(lab, c.Net.HostNS, hub.Net.HostNS, hub.Net.HostAddr, hubAt, cAt); err != nil {
		t.Errorf("UDP branch -> hub: %v", err)
	}
	if err := udpEcho(lab, hub.Net.HostNS, c.Net.HostNS, c.Net.HostAddr, cAt, hubAt); err != nil {
		t.Errorf("UDP hub -> branch: %v", err)
	}
	if err := lab.TCPTransferVia(c.Net.HostNS, hub.Net.HostNS, hub.Net.HostAddr, hubAt, 16<<20); err != nil {
		t.Errorf("TCP branch -> hub: %v", err)
	}
	n := natStatusOf(t, hub, c.Name)
	if n == nil || len(n.Rules) != 4 || n.Rules[2].Rule != "egress[0]" || n.Rules[2].Out.Packets == 0 || n.Rules[2].In.Packets == 0 {
		t.Errorf("nat status %+v", n)
	}
}

// A route no rule translates whole is rejected with the reason: branch b
// owns 10.0.0.0/14 (its 10.1.0.0/16 inside), which the hub's allow-list
// takes but its rule only maps in part.
func TestNATBGPRejectsPartlyTranslated(t *testing.T) {
	lab, hub, a, b := natLab(t, true)
	wide := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/14"), netip.MustParsePrefix("fd00:1::/48")}
	b.Spaces = wide
	hub.Peering(b.Name).Spaces = wide
	start(t, hub, a, b)
	waitFor(t, "the hub's verdicts on net2's routes", 60*time.Second, func() (bool, string) {
		rv, err := hub.Routes()
		if err != nil {
			return false, err.Error()
		}
		var rejected, v6 bool
		var got []string
		for _, r := range rv.Routes {
			if r.Source != "bgp" || r.Peering != b.Name {
				continue
			}
			got = append(got, fmt.Sprintf("%s %s", r.Prefix, r.Status))
			rejected = rejected || r.Prefix == wide[0] && strings.Contains(r.Status, "rejected: contains nat.ingress internal 10.1.0.0/16; not translatable as one route")
			v6 = v6 || r.Prefix == netip.MustParsePrefix("fd00:66::/48") && r.Installed
		}
		return rejected && v6, strings.Join(got, "; ")
	})
	// Nothing of it reaches the kernel or the other branch.
	for _, r := range vgateRoutes(t, lab, hub.Net.GatewayNS) {
		if strings.HasPrefix(r, "10.0.0.0/14") {
			t.Errorf("the rejected route is installed: %s", r)
		}
	}
	if hasRoute(vgateRoutes(t, lab, a.Net.GatewayNS), "10.0.0.0/14") {
		t.Error("branch a was sent the rejected route")
	}
}
