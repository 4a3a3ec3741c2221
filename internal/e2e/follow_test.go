package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
)

// host1 ── gw1 ══ net2 by name "gw2.lab.test" ══ gw2 ── host2
//
//	╚═══ net3 by address ═══ gw3
//
// Endpoints that move: gw1 reaches gw2 by a DNS name, answered from the
// hosts file of gw1's namespace (/etc/netns/<ns>/hosts, which `ip netns
// exec` mounts on /etc/hosts). gw2 moves to a new underlay address and the
// record changes; gw2 has no endpoint for gw1 and no keepalive, so nothing
// from gw2 can teach gw1 the new address (WireGuard's roaming): only the
// re-resolved name can. The tunnel follows within 30 s, the tunnel to gw3
// is not touched, and status shows the move.
func TestEndpointFollowsDNS(t *testing.T) {
	lab, gws := site(t, 3)
	g1, g2, g3 := gws[0], gws[1], gws[2]
	n1, n2 := lab.Network(1), lab.Network(2)

	etc := filepath.Join("/etc/netns", n1.GatewayNS)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	hosts := filepath.Join(etc, "hosts")
	writeHosts := func(addr string) {
		t.Helper()
		// In place (same inode): the file is bind-mounted into running
		// processes' view of /etc/hosts.
		f, err := os.OpenFile(hosts, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("127.0.0.1 localhost\n" + addr + " gw2.lab.test\n"); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	writeHosts(n2.GatewayUnderlay.String())

	to2 := g1.PeeringTo(g2)
	to2.Endpoint = "gw2.lab.test:51820"
	g1.Peerings = []netlab.Peering{to2, g1.PeeringTo(g3)}
	back := g2.PeeringTo(g1)
	back.Endpoint, back.Keepalive = "", 0 // dial-in only, silent
	g2.Peerings = []netlab.Peering{back}
	g3.Peerings = []netlab.Peering{g3.PeeringTo(g1)}
	start(t, g1, g2, g3)
	mustReach(t, lab, n1, n2)
	st, err := g1.Status()
	if err != nil {
		t.Fatal(err)
	}
	if ep := st.Peerings[0].Endpoint; ep != "198.18.0.2:51820" {
		t.Fatalf("net2 endpoint %q before the move", ep)
	}
	hs3 := st.Peerings[1].LastHandshake

	// gw2 moves to 198.18.0.102, then the record follows.
	if _, err := lab.Run(n2.GatewayNS, "ip", "addr", "del", "198.18.0.2/24", "dev", "wan0"); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Run(n2.GatewayNS, "ip", "addr", "add", "198.18.0.102/24", "dev", "wan0"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Ping(n1.HostNS, n2.HostAddr, 1); err == nil {
		t.Fatal("host2 still reachable after gw2 moved: the test proves nothing")
	}
	moved := time.Now()
	writeHosts("198.18.0.102")
	if err := lab.WaitPing(n1.HostNS, n2.HostAddr, 40*time.Second); err != nil {
		t.Fatalf("tunnel did not follow the moved name: %v", err)
	}
	took := time.Since(moved)
	t.Logf("FIGURE: tunnel followed the moved DNS name in %v", took.Round(100*time.Millisecond))
	if took > 30*time.Second+3*time.Second { // 30 s, plus the ping's own cadence
		t.Errorf("followed after %v, want within 30 s", took)
	}

	st, err = g1.Status()
	if err != nil {
		t.Fatal(err)
	}
	p := st.Peerings[0]
	if p.Endpoint != "198.18.0.102:51820" || p.EndpointPrevious != "198.18.0.2:51820" || p.EndpointMoved.IsZero() {
		t.Errorf("net2 status after the move: endpoint %q, previous %q, moved %v", p.Endpoint, p.EndpointPrevious, p.EndpointMoved)
	}
	out, err := g1.CLI("status", "--socket", g1.Socket)
	if err != nil || !strings.Contains(out, "endpoint moved") {
		t.Errorf("vgate status does not show the move (%v):\n%s", err, out)
	}
	log := g1.Log()
	if !strings.Contains(log, "peering endpoint moved") || !strings.Contains(log, "198.18.0.102:51820") {
		t.Errorf("gw1 log has no line for the move")
	}
	// The other tunnel was not touched: no update, no recreate, the same
	// session (a recreated device would have handshaken anew).
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "net3") && (strings.Contains(l, "tunnel updated") || strings.Contains(l, "tunnel recreated")) {
			t.Errorf("the tunnel to gw3 was touched: %s", l)
		}
	}
	if p3 := st.Peerings[1]; p3.State != "up" || p3.LastHandshake.Before(hs3) {
		t.Errorf("net3 after the move: %+v", p3)
	}
}
