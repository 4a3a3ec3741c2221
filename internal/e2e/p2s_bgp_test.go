package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
)

// The point-to-site pool is advertised by BGP: gw2 has no static route for
// it, learns it from gw1, and a laptop on gw1 (stock Debian wireguard-go)
// reaches the host behind gw2, with answers finding their way back.
//
//	laptop 172.16.201.x ── gw1 (AS65001, P2S pool) ══ BGP ══ gw2 (AS65002) ── h2 10.2.0.2
func TestPointToSiteOverBGP(t *testing.T) {
	if _, err := os.Stat("/usr/bin/wireguard-go"); err != nil {
		t.Skip("Debian's wireguard-go is not installed (scripts/deps.sh installs it)")
	}
	lab, gws := site(t, 2)
	g1, g2 := gws[0], gws[1]
	n2 := lab.Network(2)
	netlab.LinkBGP(g1, g2)
	g1.Extra = p2sExtra
	start(t, g1, g2)

	// gw2 learns the pool from gw1 and routes it into the tunnel.
	waitInstalled(t, g2, "172.16.201.0/24", "net1")
	waitInstalled(t, g2, "fd00:c1::/64", "net1")

	conf, err := g1.CLI("client", "add", "alice", "--group", "devs", "--socket", g1.Socket)
	if err != nil {
		t.Fatalf("client add: %v\n%s", err, conf)
	}
	lt, err := lab.AddLaptop(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := lt.UpStock(conf); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitPing(lt.NS, n2.HostAddr, 20*time.Second); err != nil {
		t.Fatalf("laptop cannot reach host 2 through the BGP-learned path: %v", err)
	}
	if err := lab.WaitPing(lt.NS, n2.HostAddrV6, 10*time.Second); err != nil {
		t.Fatalf("laptop cannot reach host 2 over IPv6: %v", err)
	}
	if err := lab.TCPTransfer(n2.HostNS, lt.NS, lt.Addresses[0], 1<<20); err != nil {
		t.Fatalf("1 MiB TCP host 2 -> laptop: %v", err)
	}
}
