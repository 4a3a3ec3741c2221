package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/internal/netlab"
)

// host1 ── gw1 ══ WireGuard over 198.18.0.0/24 ══ gw2 ── host2
// 10.1.0.2  (vgate)                           (vgate)  10.2.0.2
func TestTwoNetworks(t *testing.T) {
	lab, gws := site(t, 2)
	netlab.Mesh(gws...)
	start(t, gws...)
	n1, n2 := lab.Network(1), lab.Network(2)

	mustReach(t, lab, n1, n2)
	mustReach(t, lab, n2, n1)
	if err := lab.TCPTransfer(n1.HostNS, n2.HostNS, n2.HostAddr, 8<<20); err != nil {
		t.Fatalf("8 MiB TCP transfer host1 -> host2: %v", err)
	}
	if err := lab.TCPTransfer(n2.HostNS, n1.HostNS, n1.HostAddrV6, 4<<20); err != nil {
		t.Fatalf("4 MiB TCP transfer host2 -> host1 over IPv6: %v", err)
	}
	// The remote gateway's tunnel address answers through the tunnel.
	if err := lab.WaitPing(n1.HostNS, gws[1].TunnelAddress, 5*time.Second); err != nil {
		t.Fatalf("tunnel address of gw2: %v", err)
	}

	st, err := gws[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Tunnels.Used != 1 || st.Tunnels.Up != 1 || st.Tunnels.Limit != 10 || len(st.Peerings) != 1 {
		t.Fatalf("status tunnels = %+v, peerings %d", st.Tunnels, len(st.Peerings))
	}
	p := st.Peerings[0]
	if p.State != api.StateUp || p.RxBytes < 8<<20 && p.TxBytes < 8<<20 || p.Endpoint != "198.18.0.2:51820" {
		t.Fatalf("peering status = %+v", p)
	}
	// MTU of an IPv4-underlay tunnel over a 1500-byte link.
	if p.MTU != 1440 {
		t.Errorf("tunnel MTU = %d, want 1440", p.MTU)
	}
	// The tunnel's queues are vgate's (dataplane/queue.go), bounded, and
	// the interface's kernel qdisc is named; both budgets are on.
	if q := p.Queue; q == nil || q.Discipline != "fq_codel" || q.Qdisc == "" || q.SendBudget < 64 ||
		q.Queued > 2048 || q.SendInFlight > q.SendBudget+64 || q.RecvBudget < 64 || q.RecvInFlight > q.RecvBudget+32 {
		t.Errorf("tunnel queue = %+v", q)
	}
	// The CLI prints the same, and never the private key.
	out, err := gws[0].CLI("status", "--socket", gws[0].Socket)
	if err != nil {
		t.Fatalf("vgate status: %v\n%s", err, out)
	}
	if !strings.Contains(out, "net2") || !strings.Contains(out, "up") || !strings.Contains(out, "queue fq_codel") {
		t.Errorf("vgate status output:\n%s", out)
	}
	for _, g := range gws {
		if strings.Contains(out, g.Key.Base64()) || strings.Contains(g.Log(), g.Key.Base64()) || strings.Contains(g.Log(), g.Key.Hex()) {
			t.Fatalf("private key of %s leaked into status output or log", g.Name)
		}
	}
	routes := vgateRoutes(t, lab, n1.GatewayNS)
	// gw2's tunnel address lies inside 10.2.0.0/16: no route of its own.
	want := []string{"10.2.0.0/16 dev vg-net2 scope link src 10.1.255.254", "fd00:2::/48 dev vg-net2"}
	if len(routes) != len(want) {
		t.Fatalf("vgate routes in gw1 = %q, want %d routes", routes, len(want))
	}
	for _, w := range want {
		found := false
		for _, r := range routes {
			found = found || strings.HasPrefix(r, w)
		}
		if !found {
			t.Errorf("route %q missing from %q", w, routes)
		}
	}
}

//	 gw1
//	//  \\        every gateway peers with every other;
//
// gw2 ==== gw3    every host reaches every other host.
func TestThreeNetworksMesh(t *testing.T) {
	lab, gws := site(t, 3)
	netlab.Mesh(gws...)
	start(t, gws...)
	for i := 1; i <= 3; i++ {
		for j := 1; j <= 3; j++ {
			if i != j {
				mustReach(t, lab, lab.Network(i), lab.Network(j))
			}
		}
	}
	st, err := gws[2].Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Tunnels.Up != 2 {
		t.Fatalf("gw3 tunnels = %+v", st.Tunnels)
	}
}

// fakePeerings returns n peerings to networks that do not exist, with
// distinct random keys and non-overlapping spaces 10.(100+i).0.0/16.
func fakePeerings(t *testing.T, n int) []netlab.Peering {
	var out []netlab.Peering
	for i := 0; i < n; i++ {
		k, err := keys.GeneratePrivate()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, netlab.Peering{
			Name: fmt.Sprintf("p%d", i+2), Network: fmt.Sprintf("remote%d", i+2), PublicKey: k.Public(),
			Spaces: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + i), 0, 0}), 16)},
		})
	}
	return out
}

// An 11th peering and an overlapping peering are refused by `vgate check`,
// at start and at reload; while they are refused, the running tunnel keeps
// passing traffic without loss. A valid reload adds a tunnel without
// touching the existing one.
func TestLimitAndOverlapRefused(t *testing.T) {
	lab, gws := site(t, 3)
	g1, g2, g3 := gws[0], gws[1], gws[2]
	n1, n2 := lab.Network(1), lab.Network(2)
	g1.Peerings = []netlab.Peering{g1.PeeringTo(g2)}
	g2.Peerings = []netlab.Peering{g2.PeeringTo(g1), g2.PeeringTo(g3)}
	g3.Peerings = []netlab.Peering{g3.PeeringTo(g2)}
	valid := g1.Peerings

	// At check and at start: 11 peerings.
	g1.Peerings = append(append([]netlab.Peering{}, valid...), fakePeerings(t, 10)...)
	if err := g1.WriteConfig(); err != nil {
		t.Fatal(err)
	}
	out, err := g1.CLI("check", "--config", g1.ConfigPath)
	if err == nil || !strings.Contains(out, "max_tunnels") || !strings.Contains(out, `"p11"`) {
		t.Fatalf("vgate check accepted 11 peerings or did not name the limit and p11: err=%v\n%s", err, out)
	}
	if err := g1.Start(); err == nil || !strings.Contains(err.Error(), `"p11"`) {
		t.Fatalf("gateway started with 11 peerings, or the error does not name p11: %v", err)
	}

	// Start valid, with traffic.
	g1.Peerings = valid
	start(t, g1, g2, g3)
	mustReach(t, lab, n1, n2)
	before, err := g1.Status()
	if err != nil {
		t.Fatal(err)
	}
	ifindex := func() string {
		out, err := lab.Run(n1.GatewayNS, "cat", "/sys/class/net/vg-net2/ifindex")
		if err != nil {
			t.Fatalf("vg-net2 on gw1: %v: %s", err, out)
		}
		return strings.TrimSpace(out)
	}
	ifBefore := ifindex()

	reloadWhilePinging := func(name string, peerings []netlab.Peering, wantOK bool) {
		t.Helper()
		g1.Peerings = peerings
		type res struct {
			loss int
			out  string
			err  error
		}
		done := make(chan res, 1)
		go func() {
			loss, out, err := pingLoss(lab, n1.HostNS, n2.HostAddr.String(), 40, "0.05")
			done <- res{loss, out, err}
		}()
		time.Sleep(500 * time.Millisecond)
		prev, _ := g1.Status()
		if err := g1.Reload(); err != nil {
			t.Fatal(err)
		}
		// Wait for the reload to be counted.
		deadline := time.Now().Add(10 * time.Second)
		var st = prev
		for time.Now().Before(deadline) {
			st, _ = g1.Status()
			if st.Reloads.OK+st.Reloads.Failed > prev.Reloads.OK+prev.Reloads.Failed {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		r := <-done
		if r.err != nil || r.loss != 0 {
			t.Errorf("%s: traffic through the existing tunnel lost %d%% during the reload (%v)\n%s", name, r.loss, r.err, r.out)
		}
		if wantOK && st.Reloads.OK != prev.Reloads.OK+1 {
			t.Fatalf("%s: reload not applied: %+v", name, st.Reloads)
		}
		if !wantOK && st.Reloads.Failed != prev.Reloads.Failed+1 {
			t.Fatalf("%s: reload not refused: %+v", name, st.Reloads)
		}
	}

	reloadWhilePinging("11 peerings", append(append([]netlab.Peering{}, valid...), fakePeerings(t, 10)...), false)
	if st, _ := g1.Status(); !strings.Contains(st.Reloads.LastError, `"p11"`) || !strings.Contains(st.Reloads.LastError, "10") {
		t.Errorf("reload error does not name the limit and p11: %q", st.Reloads.LastError)
	}
	if !strings.Contains(g1.Log(), `p11`) {
		t.Errorf("refused reload not logged with the refused peering")
	}

	overlapping := netlab.Peering{Name: "evil", Network: "evil", PublicKey: fakePeerings(t, 1)[0].PublicKey,
		Spaces: []netip.Prefix{netip.MustParsePrefix("10.1.128.0/17")}}
	reloadWhilePinging("overlap with local space", append(append([]netlab.Peering{}, valid...), overlapping), false)
	if st, _ := g1.Status(); !strings.Contains(st.Reloads.LastError, "10.1.128.0/17") || !strings.Contains(st.Reloads.LastError, "10.1.0.0/16") {
		t.Errorf("overlap error does not name both prefixes: %q", st.Reloads.LastError)
	}
	if st, _ := g1.Status(); st.Tunnels.Used != 1 {
		t.Fatalf("refused reloads changed the tunnels: %+v", st.Tunnels)
	}

	// A valid reload adds gw3 and keeps the gw2 tunnel as it was.
	reloadWhilePinging("add gw3", append(append([]netlab.Peering{}, valid...), g1.PeeringTo(g3)), true)
	g3.Peerings = append(g3.Peerings, g3.PeeringTo(g1))
	if err := g3.Reload(); err != nil {
		t.Fatal(err)
	}
	mustReach(t, lab, n1, lab.Network(3))
	after, err := g1.Status()
	if err != nil {
		t.Fatal(err)
	}
	if after.Tunnels.Used != 2 {
		t.Fatalf("after adding gw3: %+v", after.Tunnels)
	}
	// The tunnel to gw2 is the same device: same interface, counters not
	// reset, created once. (Its last handshake is no witness: wireguard-go
	// arms the 5 s retransmit timer after sending an initiation, so a
	// response processed in between leaves a spurious retry that refreshes
	// the session on a busy machine — device/send.go, SendHandshakeInitiation.)
	if got := ifindex(); got != ifBefore || after.Peerings[0].RxBytes < before.Peerings[0].RxBytes {
		t.Errorf("tunnel to gw2 was rebuilt by the reload: ifindex %s -> %s, rx %d -> %d",
			ifBefore, got, before.Peerings[0].RxBytes, after.Peerings[0].RxBytes)
	}
	if n := strings.Count(g1.Log(), `msg="tunnel created" gateway=net1 peering=net2 `); n != 1 {
		t.Errorf("gw1 logged %d \"tunnel created\" for peering net2, want 1", n)
	}
}

// Killing a gateway (as a crash) and starting it again: traffic resumes and
// no stale kernel state remains; a clean stop removes everything.
func TestRestart(t *testing.T) {
	lab, gws := site(t, 2)
	netlab.Mesh(gws...)
	start(t, gws...)
	n1, n2 := lab.Network(1), lab.Network(2)
	mustReach(t, lab, n1, n2)

	if err := gws[0].Kill(); err != nil {
		t.Fatal(err)
	}
	if r := vgateRoutes(t, lab, n1.GatewayNS); len(r) != 0 {
		t.Errorf("after a crash, routes through dead tunnels remain: %q", r)
	}
	if err := lab.Ping(n1.HostNS, n2.HostAddr, 1); err == nil {
		t.Fatal("traffic flows with the gateway dead")
	}

	// Restart with a different tunnel address: the old one must go.
	gws[0].TunnelAddress = netip.MustParseAddr("10.1.255.253")
	start(t, gws[0])
	mustReach(t, lab, n1, n2)
	addrs, _ := lab.Run(n1.GatewayNS, "ip", "-4", "addr", "show", "dev", "lo")
	if strings.Contains(addrs, "10.1.255.254") || !strings.Contains(addrs, "10.1.255.253") {
		t.Errorf("lo after restart:\n%s", addrs)
	}
	if r := vgateRoutes(t, lab, n1.GatewayNS); len(r) != 2 {
		t.Errorf("routes after restart: %q", r)
	}

	if err := gws[0].Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if r := vgateRoutes(t, lab, n1.GatewayNS); len(r) != 0 {
		t.Errorf("after a clean stop, vgate routes remain: %q", r)
	}
	links, _ := lab.Run(n1.GatewayNS, "ip", "-o", "link")
	addrs, _ = lab.Run(n1.GatewayNS, "ip", "-4", "addr", "show", "dev", "lo")
	if strings.Contains(links, "vg-") || strings.Contains(addrs, "10.1.255.253") {
		t.Errorf("after a clean stop: links\n%s\nlo\n%s", links, addrs)
	}
}

// A reload that changes a peering's address spaces updates its routes in
// place (same interface, no rebuild); one that removes a peering removes
// its interface and routes; forwarding off is warned about.
func TestReloadChangesAndRemoves(t *testing.T) {
	lab, gws := site(t, 3)
	netlab.Mesh(gws...)
	g1 := gws[0]
	n1 := lab.Network(1)
	start(t, gws...)
	mustReach(t, lab, n1, lab.Network(2))
	mustReach(t, lab, n1, lab.Network(3))
	ifindex := func(name string) string {
		out, err := lab.Run(n1.GatewayNS, "cat", "/sys/class/net/"+name+"/ifindex")
		if err != nil {
			return ""
		}
		return strings.TrimSpace(out)
	}
	before := ifindex("vg-net2")

	g1.Peerings[0].Spaces = append(g1.Peerings[0].Spaces, netip.MustParsePrefix("10.77.0.0/16"))
	reload(t, g1, 1)
	if !hasRoute(vgateRoutes(t, lab, n1.GatewayNS), "10.77.0.0/16 dev vg-net2") {
		t.Fatalf("added prefix not routed: %q", vgateRoutes(t, lab, n1.GatewayNS))
	}
	if got := ifindex("vg-net2"); got != before {
		t.Fatalf("changing address spaces rebuilt the interface (ifindex %s -> %s)", before, got)
	}
	mustReach(t, lab, n1, lab.Network(2))

	g1.Peerings = g1.Peerings[:1] // drop net3
	reload(t, g1, 2)
	if ifindex("vg-net3") != "" {
		t.Fatal("interface of a removed peering still exists")
	}
	for _, r := range vgateRoutes(t, lab, n1.GatewayNS) {
		if strings.Contains(r, "vg-net3") || strings.HasPrefix(r, "10.3.") {
			t.Fatalf("route of a removed peering remains: %q", r)
		}
	}
	mustReach(t, lab, n1, lab.Network(2))
	if st, _ := g1.Status(); st.Tunnels.Used != 1 {
		t.Fatalf("tunnels after removal: %+v", st.Tunnels)
	}

	// Forwarding off: the gateway starts and says why hosts cannot pass.
	g3 := gws[2]
	if err := g3.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Run(lab.Network(3).GatewayNS, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0"); err != nil {
		t.Fatal(err)
	}
	start(t, g3)
	if !strings.Contains(g3.Log(), "IP forwarding is off") {
		t.Error("no warning about IP forwarding being off")
	}
}

func hasRoute(routes []string, prefix string) bool {
	for _, r := range routes {
		if strings.HasPrefix(r, prefix) {
			return true
		}
	}
	return false
}

// reload rewrites g's config, sends SIGHUP and waits until the gateway has
// applied it (wantOK successful reloads in all).
func reload(t *testing.T, g *netlab.Gateway, wantOK int) {
	t.Helper()
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := g.Status()
		if err == nil && st.Reloads.OK >= wantOK {
			return
		}
		if err == nil && st.Reloads.Failed > 0 {
			t.Fatalf("reload failed: %s", st.Reloads.LastError)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("reload %d not applied within 10s", wantOK)
}
