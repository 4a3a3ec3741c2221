package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/internal/netlab"
)

// birdConf is the BIRD 2 config of the interop router (AS65009). %IF% is
// its WireGuard interface.
//
// The session is a plain, single-hop eBGP session (no multihop): the
// router's tunnel address is configured point-to-point,
// `10.9.255.254/32 peer 10.1.255.254/32 dev %IF%`, so the kernel has a
// connected route to vgate's tunnel address and BIRD's neighbor cache
// finds 10.1.255.254 directly on %IF% (`protocol device` tells it about
// the interface). That is also what makes the next hop vgate sends
// (its tunnel address) resolvable without `gateway recursive`. With a bare
// /32 and `ip route add 10.1.0.0/16 dev %IF%` instead, a direct session
// stays Idle ("Waiting for 10.1.255.254%<ifname> to become my neighbor");
// declaring it `multihop` works there too (both checked with BIRD
// 2.0.12), but the point-to-point address is how a router would number a
// tunnel interface, and it keeps the session single-hop.
//
// BIRD announces two prefixes inside the allow-list vgate has for it
// (10.9.0.0/16 and a more-specific 10.9.1.0/24) and one outside it
// (192.0.2.0/24), and installs what it learns from vgate in its own kernel
// table: replies to vgate's hosts follow BIRD's route, not one the test
// wrote.
const birdConf = `log stderr all;
router id 10.9.255.254;
debug protocols { states, events };

protocol device {
	scan time 2;
}

protocol static {
	ipv4;
	route 10.9.0.0/16 unreachable;
	route 10.9.1.0/24 unreachable;
	route 192.0.2.0/24 unreachable;
}

protocol kernel {
	ipv4 {
		import none;
		export where source = RTS_BGP;
	};
}

protocol bgp vgate {
	description "vgate gateway net1";
	local 10.9.255.254 as 65009;
	neighbor 10.1.255.254 as 65001;
	interface "%IF%";
	direct;
	hold time 9;
	keepalive time 3;
	connect delay time 1;
	connect retry time 2;
	error wait time 1, 10;
	ipv4 {
		import all;
		export all;
	};
}
`

//	h1 10.1.0.2 ── gw1 (vgate, AS65001, tunnel 10.1.255.254) ── br0 ── bird ns (198.18.0.50)
//	                      vg-bird ═══════ WireGuard ═══════ <prefix>bird (Debian wireguard-go)
//	                                                        10.9.255.254 peer 10.1.255.254
//	                                                        BIRD 2, AS65009; 10.9.1.1 on lo
//
// Interop: a BGP router nobody here wrote peers with vgate
// over eBGP inside a standard WireGuard tunnel. vgate learns BIRD's
// prefixes (and refuses the one outside the peering's allow-list), BIRD
// learns vgate's, both install them, and a host behind vgate reaches an
// address behind BIRD through the tunnel.
func TestBIRDInterop(t *testing.T) {
	if !netlab.Root() {
		t.Skip(netlab.SkipMessage)
	}
	if missing := netlab.LookBIRD(); len(missing) > 0 {
		t.Skipf("BIRD interop test needs %s: apt-get install -y bird2 wireguard-go wireguard-tools (or scripts/deps.sh)",
			strings.Join(missing, ", "))
	}
	lab, gws := site(t, 1)
	gw1, n1 := gws[0], lab.Network(1)

	br, err := lab.AddBIRD()
	if err != nil {
		t.Fatal(err)
	}
	birdTunnel := netip.MustParseAddr("10.9.255.254")
	behindBIRD := netip.MustParseAddr("10.9.1.1")
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if out, err := br.Birdc("show", "protocols", "all", "vgate"); err == nil {
			t.Logf("---- birdc show protocols all vgate ----\n%s", out)
		}
		if out, err := br.Birdc("show", "route", "all"); err == nil {
			t.Logf("---- birdc show route all ----\n%s", out)
		}
		if out, err := lab.Run(br.NS, "wg", "show", br.IfName); err == nil {
			t.Logf("---- wg show %s ----\n%s", br.IfName, out)
		}
		t.Logf("---- BIRD log ----\n%s", tail(br.Log(), 80))
		t.Logf("---- wireguard-go log (bird) ----\n%s", tail(br.WireGuardLog(), 20))
	})

	gw1.ASN = 65001
	gw1.Peerings = append(gw1.Peerings, netlab.Peering{
		Name: "bird", Network: "bird", PublicKey: br.Pub,
		Endpoint:      fmt.Sprintf("%s:%d", br.Underlay, br.ListenPort),
		Spaces:        []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, // allow-list
		TunnelAddress: birdTunnel,
		Keepalive:     5 * time.Second,
		BGP:           &netlab.PeerBGP{ASN: 65009, Address: birdTunnel},
	})
	start(t, gw1)

	if err := br.UpWireGuard(birdTunnel, gw1.TunnelAddress, netlab.WGPeer{
		PublicKey:  gw1.Pub,
		Endpoint:   fmt.Sprintf("%s:51820", n1.GatewayUnderlay),
		AllowedIPs: []netip.Prefix{n1.Space, netip.MustParsePrefix("fd00:1::/48")},
		Keepalive:  5 * time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	if out, err := lab.Run(br.NS, "ip", "addr", "add", behindBIRD.String()+"/32", "dev", "lo"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := br.Start(birdConf); err != nil {
		t.Fatal(err)
	}

	// The session is Established on both sides.
	established := regexp.MustCompile(`(?m)^vgate\s+BGP\s+\S+\s+up\s+.*Established`)
	waitFor(t, "BIRD: protocol vgate Established", 60*time.Second, func() (bool, string) {
		out, err := br.Birdc("show", "protocols")
		if err != nil {
			return false, err.Error()
		}
		return established.MatchString(out), out
	})
	waitFor(t, "vgate: neighbor bird established", 30*time.Second, func() (bool, string) {
		out, err := gw1.CLI("bgp", "--socket", gw1.Socket, "--json")
		if err != nil {
			return false, fmt.Sprintf("%v: %s", err, out)
		}
		var st api.BGPStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return false, err.Error()
		}
		n := neighborOf(st, "bird")
		return n.State == "established" && n.ASN == 65009 && n.Received == 3, out
	})

	// vgate learns BIRD's prefixes: the more-specific and the /16 (which
	// equals the peering's allow-list: on a BGP peering address_spaces is
	// only the import allow-list, never a static route) are installed as
	// BGP routes through the tunnel. 192.0.2.0/24 lies outside the
	// allow-list: rejected and counted.
	r := waitInstalled(t, gw1, "10.9.1.0/24", "bird")
	if !slices.Equal(r.ASPath, []uint32{65009}) {
		t.Errorf("AS path of 10.9.1.0/24 at gw1 = %v, want [65009]", r.ASPath)
	}
	var v api.RoutesView
	waitFor(t, "gw1: BIRD's 10.9.0.0/16 accepted and 192.0.2.0/24 rejected", 30*time.Second, func() (bool, string) {
		out, err := gw1.CLI("routes", "--socket", gw1.Socket, "--json")
		if err != nil {
			return false, fmt.Sprintf("%v: %s", err, out)
		}
		v = api.RoutesView{}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			return false, err.Error()
		}
		wide, ok1 := routeOf(v, "10.9.0.0/16", "bird")
		out3, ok2 := routeOf(v, "192.0.2.0/24", "bird")
		return ok1 && ok2 && wide.Status == "installed" && wide.Installed && !out3.Installed &&
			strings.HasPrefix(out3.Status, "rejected:"), out
	})
	if wide, _ := routeOf(v, "10.9.0.0/16", "bird"); !slices.Equal(wide.ASPath, []uint32{65009}) {
		t.Errorf("gw1: 10.9.0.0/16 from bird: %+v", wide)
	}
	st, err := gw1.BGP()
	if err != nil {
		t.Fatal(err)
	}
	if n := neighborOf(st, "bird"); n.Accepted != 2 || n.Rejected != 1 || n.RejectedTotal != 1 {
		t.Errorf("gw1 neighbor bird = %+v, want 2 accepted, 1 rejected", n)
	}
	kernelRoute := func(ns, prefix string) string {
		t.Helper()
		out, err := lab.Run(ns, "ip", "-4", "route", "show", "exact", prefix)
		if err != nil {
			t.Fatalf("ip route show %s: %v\n%s", prefix, err, out)
		}
		return strings.TrimSpace(out)
	}
	if got := kernelRoute(n1.GatewayNS, "10.9.1.0/24"); !strings.Contains(got, "dev vg-bird") || !strings.Contains(got, "proto 76") {
		t.Errorf("gw1 kernel route for 10.9.1.0/24 = %q, want dev vg-bird proto 76", got)
	}
	if got := kernelRoute(n1.GatewayNS, "10.9.0.0/16"); !strings.Contains(got, "dev vg-bird") {
		t.Errorf("gw1 kernel route for 10.9.0.0/16 = %q, want dev vg-bird", got)
	}
	if got := kernelRoute(n1.GatewayNS, "192.0.2.0/24"); got != "" {
		t.Errorf("gw1 installed the rejected 192.0.2.0/24: %q", got)
	}

	// BIRD learns vgate's prefix with AS path 65001 and puts it in its
	// kernel table.
	waitFor(t, "BIRD: 10.1.0.0/16 from vgate", 30*time.Second, func() (bool, string) {
		out, err := br.Birdc("show", "route", "for", "10.1.0.2", "all")
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(out, "10.1.0.0/16") && strings.Contains(out, "[vgate ") &&
			regexp.MustCompile(`BGP\.as_path:\s+65001\s*\n`).MatchString(out), out
	})
	waitFor(t, "bird namespace: kernel route 10.1.0.0/16 from BIRD", 20*time.Second, func() (bool, string) {
		got := kernelRoute(br.NS, "10.1.0.0/16")
		return strings.Contains(got, "proto bird") && strings.Contains(got, "dev "+br.IfName), got
	})

	// Traffic: host1 reaches the address behind BIRD through the tunnel,
	// and back (BIRD's namespace answers by BIRD's own route).
	if err := lab.WaitPing(n1.HostNS, behindBIRD, 15*time.Second); err != nil {
		t.Fatalf("host1 cannot reach %s behind BIRD: %v", behindBIRD, err)
	}
	if out, err := lab.Run(br.NS, "ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", "-I", behindBIRD.String(), n1.HostAddr.String()); err != nil {
		t.Fatalf("bird namespace (from %s) cannot reach host1: %v\n%s", behindBIRD, err, out)
	}
	if out, err := br.Birdc("show", "route"); err == nil {
		t.Logf("BIRD's routes:\n%s", out)
	}
	// vgate's tunnel probe to BIRD's tunnel address (plain ICMP echo) is
	// answered by BIRD's kernel.
	if st, err := gw1.BGP(); err != nil || len(st.Probes) != 1 || !st.Probes[0].Alive {
		t.Errorf("gw1 probe of bird: %+v %v", st.Probes, err)
	}
}
