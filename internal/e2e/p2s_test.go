package e2e

import (
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/internal/netlab"
)

// Point-to-site, with stock WireGuard clients (Debian's wireguard-go and
// wg setconf) and vgate connect:
//
//	lt1 alice (devs)   lt2 bob (lan)   lt3 carol (devs)   lt4 dave (lan)   lt5 erin (vgate connect)
//	     \                  |                 |                  |             /
//	      +------------ 198.18.0.0/24 underlay bridge -------------------------+
//	                |                                      |
//	  gw1 (vgate, P2S on :51821, pool 172.16.201.0/24 + fd00:c1::/64) ══ gw2 (vgate)
//	                |                                      |
//	          h1 10.1.0.2                             h2 10.2.0.2
//
// devs: allow net 1 and net 2, interconnected. lan: allow net 1 only.
// gw2 routes the pool back through its tunnel to gw1: its peering declares
// the pool in address_spaces (from gw2's point of view the pool is part
// of network 1).
const p2sExtra = `point_to_site:
  listen_port: 51821
  endpoint: 198.18.0.1:51821
  address_pool: [172.16.201.0/24, fd00:c1::/64]
  max_clients: 16
  dns: [10.1.0.2]
  groups:
    - name: devs
      allow: [10.1.0.0/16, fd00:1::/48, 10.2.0.0/16, fd00:2::/48]
      interconnected: true
    - name: lan
      allow: [10.1.0.0/16, fd00:1::/48]
`

func TestPointToSite(t *testing.T) {
	if _, err := os.Stat("/usr/bin/wireguard-go"); err != nil {
		t.Skip("Debian's wireguard-go is not installed (scripts/deps.sh installs it)")
	}
	lab, gws := site(t, 2)
	g1, g2 := gws[0], gws[1]
	n1, n2 := lab.Network(1), lab.Network(2)
	netlab.Mesh(g1, g2)
	g2.Peerings[0].Spaces = append(g2.Peerings[0].Spaces, netip.MustParsePrefix("172.16.201.0/24"), netip.MustParsePrefix("fd00:c1::/64"))
	g1.Extra = p2sExtra
	start(t, g1, g2)
	mustReach(t, lab, n1, n2)

	add := func(name string, args ...string) string {
		t.Helper()
		out, err := g1.CLI(append([]string{"client", "add", name, "--socket", g1.Socket}, args...)...)
		if err != nil {
			t.Fatalf("client add %s: %v\n%s", name, err, out)
		}
		return out
	}
	laptop := func(i int) *netlab.Laptop {
		t.Helper()
		lt, err := lab.AddLaptop(i)
		if err != nil {
			t.Fatal(err)
		}
		return lt
	}
	up := func(lt *netlab.Laptop, conf string) {
		t.Helper()
		if err := lt.UpStock(conf); err != nil {
			t.Fatalf("laptop %d: %v", lt.Index, err)
		}
	}
	reach := func(lt *netlab.Laptop, dst netip.Addr) {
		t.Helper()
		if err := lab.WaitPing(lt.NS, dst, 20*time.Second); err != nil {
			t.Fatalf("laptop %d (%v) cannot reach %s: %v", lt.Index, lt.Addresses, dst, err)
		}
	}
	// refused: no echo comes back (the gateway dropped the request).
	refused := func(lt *netlab.Laptop, dst netip.Addr) {
		t.Helper()
		if loss, out, _ := pingLoss(lab, lt.NS, dst.String(), 3, "0.2"); loss != 100 {
			t.Fatalf("laptop %d reached %s, which its groups do not allow:\n%s", lt.Index, dst, out)
		}
	}
	everything := "\nAllowedIPs = 10.0.0.0/8, 172.16.0.0/12, fd00::/8\n"
	editAllowed := func(conf string) string { // a client widening its own config
		i := strings.Index(conf, "\nAllowedIPs = ")
		j := strings.Index(conf[i+1:], "\n")
		return conf[:i] + everything + conf[i+1+j+1:]
	}

	aliceConf := add("alice", "--group", "devs")
	for _, want := range []string{"[Interface]\nPrivateKey = ", "Address = 172.16.201.1/32, fd00:c1::1/128", "DNS = 10.1.0.2",
		"[Peer]\nPublicKey = " + g1.Pub.String(), "Endpoint = 198.18.0.1:51821",
		"AllowedIPs = 10.1.0.0/16, 10.2.0.0/16, 172.16.201.0/24, fd00:1::/48, fd00:2::/48, fd00:c1::/64", "PersistentKeepalive = 25"} {
		if !strings.Contains(aliceConf, want) {
			t.Fatalf("alice's config lacks %q:\n%s", want, aliceConf)
		}
	}
	alice := laptop(1)
	up(alice, aliceConf)
	reach(alice, n1.HostAddr)
	reach(alice, n1.HostAddrV6)
	reach(alice, n2.HostAddr) // a peered network
	reach(alice, n2.HostAddrV6)
	if err := lab.TCPTransfer(alice.NS, n2.HostNS, n2.HostAddr, 2<<20); err != nil {
		t.Fatalf("TCP alice -> host 2: %v", err)
	}

	// bob (lan) widens his AllowedIPs: the gateway still refuses net 2.
	bobConf := add("bob", "--group", "lan")
	if strings.Contains(bobConf, "10.2.0.0/16") || strings.Contains(bobConf, "172.16.201.0/24") {
		t.Fatalf("bob's config routes what lan does not allow:\n%s", bobConf)
	}
	bob := laptop(2)
	up(bob, editAllowed(bobConf))
	reach(bob, n1.HostAddr)
	refused(bob, n2.HostAddr)
	refused(bob, n2.HostAddrV6)

	// carol (devs) and alice reach each other; dave and bob (lan, not
	// interconnected) do not, nor does bob reach alice.
	carol, dave := laptop(3), laptop(4)
	up(carol, add("carol", "--group", "devs"))
	up(dave, editAllowed(add("dave", "--group", "lan")))
	reach(carol, alice.Addresses[0])
	reach(alice, carol.Addresses[1])
	reach(dave, n1.HostAddr)
	refused(bob, dave.Addresses[0])
	refused(dave, bob.Addresses[0])
	refused(bob, alice.Addresses[0])

	list := clients(t, g1)
	if len(list) != 4 || list["bob"].Denied == 0 || !list["alice"].Connected || list["alice"].RxBytes == 0 {
		t.Fatalf("client list: %+v", list)
	}
	out, err := g1.CLI("client", "list", "--socket", g1.Socket)
	if err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "active") {
		t.Fatalf("client list: %v\n%s", err, out)
	}
	st, err := g1.Status()
	if err != nil || st.P2S == nil || st.P2S.Registered != 4 || st.P2S.Connected != 4 || st.P2S.PoolFree != 254-4 || st.P2S.Denied == 0 {
		t.Fatalf("status point_to_site: %+v %v", st.P2S, err)
	}

	// Revoke carol: her traffic stops at once; her address is not reused.
	reach(carol, n1.HostAddr)
	if out, err := g1.CLI("client", "revoke", "carol", "--socket", g1.Socket); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	refused(carol, n1.HostAddr)
	refused(alice, carol.Addresses[0])
	frankOut := add("frank", "--group", "lan", "--output", lab.Path("frank.conf"))
	frank, err := os.ReadFile(lab.Path("frank.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(lab.Path("frank.conf")); fi.Mode().Perm() != 0o600 || !strings.Contains(frankOut, "frank.conf") {
		t.Fatalf("--output: mode %v, output %q", fi.Mode().Perm(), frankOut)
	}
	if strings.Contains(string(frank), "172.16.201.3/32") {
		t.Fatalf("carol's revoked address was handed out at once:\n%s", frank)
	}
	if qr := add("grace", "--group", "lan", "--qr"); !strings.Contains(qr, "█") || strings.Contains(qr, "PrivateKey") {
		t.Fatalf("--qr output:\n%s", qr)
	}

	// Restart gw1: clients keep their addresses and reconnect by themselves.
	before := clients(t, g1)
	if err := g1.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := g1.Start(); err != nil {
		t.Fatal(err)
	}
	after := clients(t, g1)
	for name, c := range before {
		if a := after[name]; len(a.Addresses) == 0 || a.Addresses[0] != c.Addresses[0] || a.Addresses[1] != c.Addresses[1] || a.PublicKey != c.PublicKey {
			t.Fatalf("client %s after restart: %+v, before %+v", name, a, c)
		}
	}
	// WireGuard re-handshakes 15 s after its packets stop being answered.
	if err := lab.WaitPing(alice.NS, n2.HostAddr, 60*time.Second); err != nil {
		t.Fatalf("alice did not reconnect after the gateway restarted: %v", err)
	}
	reach(bob, n1.HostAddr)
	refused(bob, n2.HostAddr)

	// vgate connect: erin brings her own key.
	priv, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	erinConf := add("erin", "--group", "devs", "--public-key", priv.Public().String())
	if strings.Contains(erinConf, "\nPrivateKey") {
		t.Fatalf("config for an own key holds a private key:\n%s", erinConf)
	}
	erinConf = strings.Replace(erinConf, "[Interface]\n", "[Interface]\nPrivateKey = "+priv.Base64()+"\n", 1)
	if err := os.WriteFile(lab.Path("erin.conf"), []byte(erinConf), 0o600); err != nil {
		t.Fatal(err)
	}
	erin := laptop(5)
	proc, err := erin.Connect(vgateBin(t), lab.Path("erin.conf"))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := p2s.ParseQuick(erinConf)
	erin.Addresses = []netip.Addr{q.Addresses[0].Addr(), q.Addresses[1].Addr()}
	reach(erin, n1.HostAddr)
	reach(erin, n2.HostAddrV6)
	reach(erin, alice.Addresses[0])
	if err := lab.TCPTransfer(erin.NS, n1.HostNS, n1.HostAddr, 2<<20); err != nil {
		t.Fatalf("TCP erin -> host 1: %v", err)
	}
	if err := proc.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := proc.Wait(); err != nil {
		t.Fatalf("vgate connect did not exit cleanly on SIGTERM: %v\n%s", err, proc.LogTail(20))
	}
	if erin.HasInterface() {
		t.Fatal("vgate connect left its interface behind")
	}
	if out, _ := lab.Run(erin.NS, "ip", "route", "show", "proto", "static"); strings.TrimSpace(out) != "" {
		t.Fatalf("vgate connect left routes behind:\n%s", out)
	}
	// No private key of a client in the gateway's state or log.
	state, _ := os.ReadFile(g1.StateDir + "/" + p2s.RegistryFile)
	q2, _ := p2s.ParseQuick(aliceConf)
	if strings.Contains(string(state), q2.PrivateKey.Base64()) || strings.Contains(g1.Log(), q2.PrivateKey.Base64()) || strings.Contains(g1.Log(), q2.PrivateKey.Hex()) {
		t.Fatal("a client's private key was stored or logged by the gateway")
	}
}

func clients(t *testing.T, g *netlab.Gateway) map[string]api.ClientInfo {
	t.Helper()
	out, err := g.CLI("client", "list", "--json", "--socket", g.Socket)
	if err != nil {
		t.Fatalf("client list: %v\n%s", err, out)
	}
	var list []api.ClientInfo
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("client list --json: %v\n%s", err, out)
	}
	m := map[string]api.ClientInfo{}
	for _, c := range list {
		m[c.Name] = c
	}
	return m
}

// point_to_site added, changed and removed by reload: the P2S interface
// and the pool's routes follow; a pool change that would strand
// registered clients is refused and changes nothing.
func TestPointToSiteReload(t *testing.T) {
	lab, gws := site(t, 1)
	g1 := gws[0]
	n1 := lab.Network(1)
	start(t, g1)
	if out, err := g1.CLI("client", "add", "alice", "--group", "devs", "--socket", g1.Socket); err == nil || !strings.Contains(out, "not configured") {
		t.Fatalf("client add without point_to_site: %v\n%s", err, out)
	}
	reload := func(extra string, wantOK bool) {
		t.Helper()
		prev, _ := g1.Status()
		g1.Extra = extra
		if err := g1.WriteConfig(); err != nil {
			t.Fatal(err)
		}
		out, err := g1.CLI("reload", "--socket", g1.Socket)
		if (err == nil) != wantOK {
			t.Fatalf("reload: %v (want ok=%v)\n%s", err, wantOK, out)
		}
		st, _ := g1.Status()
		if wantOK && st.Reloads.OK <= prev.Reloads.OK {
			t.Fatalf("reload not applied: %+v", st.Reloads)
		}
	}
	hasLink := func() bool {
		_, err := lab.Run(n1.GatewayNS, "ip", "link", "show", p2s.IfName)
		return err == nil
	}
	poolRoute := func() bool {
		for _, r := range vgateRoutes(t, lab, n1.GatewayNS) {
			if strings.HasPrefix(r, "172.16.201.0/24 dev "+p2s.IfName) {
				return true
			}
		}
		return false
	}

	reload(p2sExtra, true)
	if st, _ := g1.Status(); st.P2S == nil || !hasLink() || !poolRoute() {
		t.Fatalf("after adding point_to_site: status %+v, link %v, route %v", st.P2S, hasLink(), poolRoute())
	}
	if out, err := g1.CLI("client", "add", "alice", "--group", "devs", "--socket", g1.Socket); err != nil {
		t.Fatalf("client add: %v\n%s", err, out)
	}
	if out, err := g1.CLI("status", "--socket", g1.Socket); err != nil || !strings.Contains(out, "point-to-site   1/16 clients") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	// Moving the pool away from alice's address is refused.
	reload(strings.Replace(p2sExtra, "172.16.201.0/24", "172.16.202.0/24", 1), false)
	if st, _ := g1.Status(); !strings.Contains(st.Reloads.LastError, "alice") || !poolRoute() {
		t.Fatalf("refused pool change: %q, route %v", st.Reloads.LastError, poolRoute())
	}
	reload("", true)
	if st, _ := g1.Status(); st.P2S != nil || hasLink() || poolRoute() {
		t.Fatalf("after removing point_to_site: status %+v, link %v, route %v", st.P2S, hasLink(), poolRoute())
	}
	// Back again: alice is still registered, at the same address.
	reload(p2sExtra, true)
	if c := clients(t, g1)["alice"]; len(c.Addresses) == 0 || c.Addresses[0] != netip.MustParseAddr("172.16.201.1") {
		t.Fatalf("alice after point_to_site came back: %+v", c)
	}
}
