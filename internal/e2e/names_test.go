package e2e

import (
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
)

// Names: each gateway serves its zone on its tunnel address; gw1
// forwards west.internal to gw2 through the tunnel.
//
//	alice, bob (devs), dave (lan)            carol (ops)
//	        P2S clients of gw1               P2S client of gw2
//	   gw1 "net1", zone east.internal ══ gw2 "net2", zone west.internal
//	   10.1.255.254 :53                      10.2.255.254 :53
//
// devs: net 1, net 2 and gw2's pool, interconnected; lan: net 1 only.
// ops (gw2): net 1 and gw1's pool.
const namesExtra1 = `dns: { zone: east.internal }
point_to_site:
  listen_port: 51821
  endpoint: 198.18.0.1:51821
  address_pool: [172.16.201.0/24]
  groups:
    - name: devs
      allow: [10.1.0.0/16, 10.2.0.0/16, 172.16.202.0/24]
      interconnected: true
    - name: lan
      allow: [10.1.0.0/16]
`

const namesExtra2 = `dns: { zone: west.internal }
point_to_site:
  listen_port: 51821
  endpoint: 198.18.0.2:51821
  address_pool: [172.16.202.0/24]
  groups:
    - name: ops
      allow: [10.1.0.0/16, 172.16.201.0/24]
`

// dig asks server for name (type A) from namespace ns and returns the
// status (NOERROR, NXDOMAIN, REFUSED, ...) and the addresses answered.
func dig(t *testing.T, lab *netlab.Lab, ns string, server netip.Addr, name string, extra ...string) (string, []string) {
	t.Helper()
	args := append([]string{"dig", "@" + server.String(), name, "A", "+time=1", "+tries=1", "+noall", "+comments", "+answer"}, extra...)
	out, err := lab.Run(ns, args...)
	if err != nil {
		t.Fatalf("dig %s from %s: %v\n%s", name, ns, err, out)
	}
	status := ""
	var addrs []string
	for _, l := range strings.Split(out, "\n") {
		if _, s, ok := strings.Cut(l, "status: "); ok {
			status, _, _ = strings.Cut(s, ",")
		}
		if f := strings.Fields(l); len(f) == 5 && f[3] == "A" {
			addrs = append(addrs, f[4])
		}
	}
	if status == "" {
		t.Fatalf("dig %s from %s: no status in\n%s", name, ns, out)
	}
	return status, addrs
}

func TestNames(t *testing.T) {
	lab, gws := site(t, 2)
	g1, g2 := gws[0], gws[1]
	n1, n2 := lab.Network(1), lab.Network(2)
	netlab.Mesh(g1, g2)
	g1.Peerings[0].Spaces = append(g1.Peerings[0].Spaces, netip.MustParsePrefix("172.16.202.0/24"))
	g1.Peerings[0].DNSZone = "west.internal"
	g2.Peerings[0].Spaces = append(g2.Peerings[0].Spaces, netip.MustParsePrefix("172.16.201.0/24"))
	g2.Peerings[0].DNSZone = "east.internal"
	g1.Extra, g2.Extra = namesExtra1, namesExtra2
	start(t, g1, g2)
	mustReach(t, lab, n1, n2)

	add := func(g *netlab.Gateway, name, group string) string {
		t.Helper()
		out, err := g.CLI("client", "add", name, "--group", group, "--socket", g.Socket)
		if err != nil {
			t.Fatalf("client add %s: %v\n%s", name, err, out)
		}
		return out
	}
	aliceConf := add(g1, "alice", "devs")
	if want := "DNS = 10.1.255.254, east.internal\n"; !strings.Contains(aliceConf, want) {
		t.Fatalf("alice's config lacks %q:\n%s", want, aliceConf)
	}
	bobConf := add(g1, "bob", "devs")
	add(g1, "dave", "lan")
	add(g2, "carol", "ops")

	var lts []*netlab.Laptop
	for i, conf := range []string{aliceConf, bobConf} {
		lt, err := lab.AddLaptop(i + 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := lt.UpStock(conf); err != nil {
			t.Fatal(err)
		}
		lts = append(lts, lt)
	}
	alice, bob := lts[0], lts[1]
	if err := lab.WaitPing(alice.NS, g1.TunnelAddress, 20*time.Second); err != nil {
		t.Fatalf("alice cannot reach the gateway's tunnel address: %v", err)
	}

	expect := func(ns, name string, wantStatus string, want ...string) {
		t.Helper()
		status, addrs := dig(t, lab, ns, g1.TunnelAddress, name)
		if status != wantStatus || !slices.Equal(addrs, want) {
			t.Fatalf("dig @%s %s from %s: %s %v, want %s %v", g1.TunnelAddress, name, ns, status, addrs, wantStatus, want)
		}
		t.Logf("dig @%s %s from %s: %s %v", g1.TunnelAddress, name, ns, status, addrs)
	}
	bobAddr := bob.Addresses[0].String()
	expect(alice.NS, "bob.east.internal", "NOERROR", bobAddr)          // another laptop
	expect(alice.NS, "net1.east.internal", "NOERROR", "10.1.255.254")  // the gateway
	expect(alice.NS, "carol.west.internal", "NOERROR", "172.16.202.1") // a peered gateway's client, through gw2
	expect(alice.NS, "dave.east.internal", "NXDOMAIN")                 // lan is not interconnected: no name
	expect(alice.NS, "nobody.west.internal", "NXDOMAIN")               // gw2 says so
	expect(alice.NS, "example.com", "REFUSED")                         // no upstream configured
	expect(n1.HostNS, "dave.east.internal", "NOERROR", "172.16.201.3") // net 1 may be reached by dave
	expect(n2.HostNS, "carol.west.internal", "REFUSED")                // no transit for another network
	// The server forwards for clients and the local network (gw2's zone):
	// it says so (RA), and dig does not warn about recursion.
	for _, ns := range []string{alice.NS, n1.HostNS} {
		for _, name := range []string{"net1.east.internal", "carol.west.internal", "example.com"} {
			out, err := lab.Run(ns, "dig", "@"+g1.TunnelAddress.String(), name, "A", "+time=1", "+tries=1")
			if err != nil || strings.Contains(out, "recursion requested but not available") || !regexp.MustCompile(`flags:[a-z ]* ra[ ;]`).MatchString(out) {
				t.Errorf("dig %s from %s: %v, want the RA flag and no recursion warning:\n%s", name, ns, err, out)
			}
		}
	}
	if status, addrs := dig(t, lab, alice.NS, g1.TunnelAddress, "bob.east.internal", "+tcp"); status != "NOERROR" || !slices.Equal(addrs, []string{bobAddr}) {
		t.Fatalf("over TCP: %s %v", status, addrs)
	}
	expect(n2.HostNS, "net1.east.internal", "NOERROR", "10.1.255.254") // through the tunnel
	// A host on the underlay link (198.18.0.250, routing the tunnel
	// address to gw1) gets no answer at all, over UDP or TCP, not even
	// REFUSED: the server is no reflector and no oracle for the Internet.
	if err := lab.AddWANAddress(netip.MustParsePrefix("198.18.0.250/24")); err != nil {
		t.Fatal(err)
	}
	if out, err := lab.Run(lab.WAN, "ip", "route", "add", g1.TunnelAddress.String()+"/32", "via", n1.GatewayUnderlay.String()); err != nil {
		t.Fatalf("route to the tunnel address from the underlay: %v\n%s", err, out)
	}
	before, err := g1.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, proto := range []string{"+notcp", "+tcp"} {
		out, err := lab.Run(lab.WAN, "dig", "@"+g1.TunnelAddress.String(), "net1.east.internal", "A", "+time=1", "+tries=1", proto)
		if err == nil || strings.Contains(out, "status:") {
			t.Fatalf("dig %s from the underlay got an answer:\n%s", proto, out)
		}
	}
	if after, err := g1.Status(); err != nil || after.DNS.Queries["dropped"]-before.DNS.Queries["dropped"] != 2 {
		t.Errorf("dns queries dropped from the underlay: %+v %v, want 2 more than %+v", after.DNS, err, before.DNS)
	}
	// The answer is usable: alice reaches bob by it.
	if err := lab.WaitPing(alice.NS, bob.Addresses[0], 20*time.Second); err != nil {
		t.Fatalf("alice cannot reach bob at his answered address: %v", err)
	}

	st, err := g1.Status()
	if err != nil || st.DNS == nil || st.DNS.Zone != "east.internal" || st.DNS.Queries["answer"] < 3 || st.DNS.Queries["nxdomain"] < 1 ||
		st.DNS.Queries["refused"] < 2 || st.DNS.Queries["forwarded"] < 2 {
		t.Errorf("status dns: %+v %v", st.DNS, err)
	}
	if out, err := g1.CLI("status", "--socket", g1.Socket); err != nil || !strings.Contains(out, "dns             zone east.internal on 10.1.255.254:53, answer ") {
		t.Errorf("vgate status lacks the dns line: %v\n%s", err, out)
	}

	// Revoking bob removes his name within one second.
	if out, err := g1.CLI("client", "revoke", "bob", "--socket", g1.Socket); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	revoked := time.Now()
	var gone time.Duration
	for {
		status, _ := dig(t, lab, alice.NS, g1.TunnelAddress, "bob.east.internal")
		if status == "NXDOMAIN" {
			gone = time.Since(revoked)
			break
		}
		if time.Since(revoked) > 5*time.Second {
			t.Fatalf("bob's name still answered %v after revoke", time.Since(revoked))
		}
	}
	t.Logf("bob's name gone %v after `vgate client revoke` returned", gone)
	if gone > time.Second {
		t.Errorf("bob's name disappeared after %v, want within 1s", gone)
	}

	// Reload: a new zone applies at once; without dns nothing answers on
	// port 53; dns comes back with a reload.
	g1.Extra = strings.Replace(namesExtra1, "zone: east.internal", "zone: east2.internal", 1)
	reload(t, g1, 1)
	expect(alice.NS, "net1.east2.internal", "NOERROR", "10.1.255.254")
	expect(alice.NS, "alice.east2.internal", "NOERROR", alice.Addresses[0].String())
	expect(alice.NS, "net1.east.internal", "REFUSED") // no longer a zone of ours, no upstream
	// Upstream: without dns_zone, west.internal goes to the upstream
	// resolver (here gw2, which sees gw1's tunnel address as its peer).
	g1.Extra = strings.Replace(namesExtra1, "dns: { zone: east.internal }", "dns: { zone: east.internal, upstream: [10.2.255.254] }", 1)
	g1.Peerings[0].DNSZone = ""
	reload(t, g1, 2)
	expect(alice.NS, "carol.west.internal", "NOERROR", "172.16.202.1") // through the upstream
	expect(alice.NS, "example.com", "REFUSED")                         // gw2 refuses recursion for a peer
	if st, err := g1.Status(); err != nil || st.DNS.Queries["forwarded"] < 4 {
		t.Errorf("status dns after upstream queries: %+v %v", st.DNS, err)
	}

	g1.Extra = strings.Replace(namesExtra1, "dns: { zone: east.internal }\n", "", 1)
	reload(t, g1, 3)
	if out, err := lab.Run(alice.NS, "dig", "@"+g1.TunnelAddress.String(), "net1.east.internal", "+time=1", "+tries=1"); err == nil {
		t.Fatalf("without dns the gateway still answers:\n%s", out)
	}
	g1.Extra, g1.Peerings[0].DNSZone = namesExtra1, "west.internal"
	reload(t, g1, 4)
	expect(alice.NS, "carol.west.internal", "NOERROR", "172.16.202.1")
}
