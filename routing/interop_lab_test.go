package routing

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/internal/netlab"
)

// Interop of GoBGP v4's own BFD, graceful restart and the drain policy
// with routers nobody here wrote, each behind a stock WireGuard tunnel:
//
//	h1 10.1.0.2 ── gw1: lab speaker (GoBGP v4, AS65001), 10.1.255.254 on lo
//	                 <p>g8 ═══ WireGuard ═══ <p>frr   FRR 8 (zebra, bfdd, bgpd), AS65008,
//	                 |                                10.8.255.254 peer 10.1.255.254; 10.8.1.1 on lo
//	                 <p>g9 ═══ WireGuard ═══ <p>bird  BIRD 2, AS65009,
//	                                                  10.9.255.254 peer 10.1.255.254; 10.9.1.1 on lo
//
// gw1 is numbered like a vgate gateway: its tunnel address on lo, a /32
// route to each router's tunnel address through that router's tunnel
// with the tunnel address as source, and a route to the router's space
// (10.8.0.0/16, 10.9.0.0/16) through it: the kernel routes a gateway
// keeps. Both routers install what they learn from the speaker in their
// kernel, so a host behind gw1 reaches the address behind each router
// and back only while the router holds the speaker's route. The
// routers' configs are their own (frr.conf, bird.conf: netlab.RouterConf).
// docs/bfd-gr.md reports what these tests found.

var (
	labTunnel  = netip.MustParseAddr("10.1.255.254")
	frrTunnel  = netip.MustParseAddr("10.8.255.254")
	birdTunnel = netip.MustParseAddr("10.9.255.254")
	behindFRR  = netip.MustParseAddr("10.8.1.1")
	behindBIRD = netip.MustParseAddr("10.9.1.1")
	labSpace   = netip.MustParsePrefix("10.1.0.0/16")
)

const (
	labASN  = 65001
	frrASN  = 65008
	birdASN = 65009
)

// fastBFD is the BFD every test asks for on both sides: 100 ms × 5.
var fastBFD = netlab.BFDConf{Interval: 100 * time.Millisecond, Multiplier: 5}

// interop is one lab: gw1 with its routers (nil when not asked for).
type interop struct {
	t    *testing.T
	lab  *netlab.Lab
	n1   *netlab.Network
	frr  *netlab.FRR
	bird *netlab.BIRD
	// gwIf is gw1's tunnel interface to each router ("frr", "bird").
	gwIf map[string]string
	sp   *labSpeaker
}

// newInterop builds the lab with the routers asked for (tunnels up,
// routers not started). It skips, loudly, without root or without the
// routers' packages.
func newInterop(t *testing.T, withFRR, withBIRD bool) *interop {
	t.Helper()
	if !netlab.Root() {
		t.Skip(netlab.SkipMessage)
	}
	if raceEnabled {
		// Third-party routers and speaker processes: nothing for the race
		// detector to see, and slow under it. make test runs these in its
		// pass without -race.
		t.Skip("interop lab: runs in the pass without -race")
	}
	var missing []string
	if withFRR {
		missing = append(missing, netlab.LookFRR()...)
	}
	if withBIRD {
		missing = append(missing, netlab.LookBIRD()...)
	}
	if len(missing) > 0 {
		t.Skipf("SKIP: interop test needs %s: apt-get install -y frr bird2 wireguard-go wireguard-tools (or scripts/deps.sh)",
			strings.Join(missing, ", "))
	}
	lab := netlab.NewT(t, netlab.Networks(1))
	x := &interop{t: t, lab: lab, n1: lab.Network(1), gwIf: map[string]string{}}
	if out, err := lab.Run(x.n1.GatewayNS, "ip", "addr", "add", labTunnel.String()+"/32", "dev", "lo"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	type router struct {
		name    string
		tunnel  netip.Addr
		behind  netip.Addr
		space   netip.Prefix
		gwPort  int
		ns      string
		pub     keys.PublicKey
		ep      string
		upTheir func(local, remote netip.Addr, peer netlab.WGPeer) error
	}
	var routers []router
	if withFRR {
		f, err := lab.AddFRR()
		if err != nil {
			t.Fatal(err)
		}
		x.frr = f
		routers = append(routers, router{"frr", frrTunnel, behindFRR, netip.MustParsePrefix("10.8.0.0/16"), 51828,
			f.NS, f.Pub, fmt.Sprintf("%s:%d", f.Underlay, f.ListenPort), f.UpWireGuard})
	}
	if withBIRD {
		b, err := lab.AddBIRD()
		if err != nil {
			t.Fatal(err)
		}
		x.bird = b
		routers = append(routers, router{"bird", birdTunnel, behindBIRD, netip.MustParsePrefix("10.9.0.0/16"), 51829,
			b.NS, b.Pub, fmt.Sprintf("%s:%d", b.Underlay, b.ListenPort), b.UpWireGuard})
	}
	for _, r := range routers {
		k, err := keys.GeneratePrivate()
		if err != nil {
			t.Fatal(err)
		}
		ifName := fmt.Sprintf("%sg%s", lab.Prefix, r.name[:1])
		x.gwIf[r.name] = ifName
		if _, err := lab.StockWireGuard(x.n1.GatewayNS, ifName, k, r.gwPort, netlab.WGPeer{
			PublicKey: r.pub, Endpoint: r.ep, AllowedIPs: []netip.Prefix{r.space}, Keepalive: 5 * time.Second,
		}); err != nil {
			t.Fatal(err)
		}
		for _, c := range [][]string{
			{"ip", "link", "set", ifName, "mtu", "1420", "up"},
			{"ip", "route", "add", r.tunnel.String() + "/32", "dev", ifName, "src", labTunnel.String()},
			{"ip", "route", "add", r.space.String(), "dev", ifName, "src", labTunnel.String()},
		} {
			if out, err := lab.Run(x.n1.GatewayNS, c...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		}
		if err := r.upTheir(r.tunnel, labTunnel, netlab.WGPeer{
			PublicKey: k.Public(), Endpoint: fmt.Sprintf("%s:%d", x.n1.GatewayUnderlay, r.gwPort),
			AllowedIPs: []netip.Prefix{labSpace}, Keepalive: 5 * time.Second,
		}); err != nil {
			t.Fatal(err)
		}
		if out, err := lab.Run(r.ns, "ip", "addr", "add", r.behind.String()+"/32", "dev", "lo"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if x.frr != nil {
			if out, err := x.frr.Vtysh("show bfd peers", "show bgp neighbors", "show bgp ipv4 unicast"); err == nil {
				t.Logf("---- FRR ----\n%s", out)
			}
			t.Logf("---- FRR logs ----\n%s", tailLines(x.frr.Log(), 120))
		}
		if x.bird != nil {
			if out, err := x.bird.Birdc("show", "bfd", "sessions"); err == nil {
				t.Logf("---- birdc show bfd sessions ----\n%s", out)
			}
			if out, err := x.bird.Birdc("show", "protocols", "all", "vgate"); err == nil {
				t.Logf("---- birdc show protocols all vgate ----\n%s", out)
			}
			t.Logf("---- BIRD log ----\n%s", tailLines(x.bird.Log(), 60))
		}
		if x.sp != nil {
			t.Logf("---- %s log ----\n%s", x.sp, tailLines(x.sp.log(), 80))
		}
	})
	return x
}

// routerConf is the config each router's admin writes for the session to
// the lab speaker, with the BFD and graceful restart knobs given.
func routerConf(tunnel netip.Addr, asn uint32, space string, bfd *netlab.BFDConf, gr *netlab.GRConf) netlab.RouterConf {
	return netlab.RouterConf{
		RouterID: tunnel, ASN: asn, Neighbor: labTunnel, NeighborASN: labASN,
		Originate: []netip.Prefix{netip.MustParsePrefix(space)},
		BFD:       bfd, GR: gr,
	}
}

// startRouters starts the routers with their configs.
func (x *interop) startRouters(bfd *netlab.BFDConf, gr *netlab.GRConf) {
	x.t.Helper()
	if x.frr != nil {
		if err := x.frr.Start(routerConf(frrTunnel, frrASN, "10.8.0.0/16", bfd, gr).FRR()); err != nil {
			x.t.Fatal(err)
		}
	}
	if x.bird != nil {
		if err := x.bird.Start(routerConf(birdTunnel, birdASN, "10.9.0.0/16", bfd, gr).BIRD()); err != nil {
			x.t.Fatal(err)
		}
	}
}

// startSpeaker starts the lab speaker on gw1 with a session to each
// router (peer sets BFD and graceful restart), originating 10.1.0.0/16.
func (x *interop) startSpeaker(name string, peer labPeer) *labSpeaker {
	return x.startSpeakerIn(nil, name, peer)
}

// startSpeakerIn is startSpeaker in a sandbox (nil: none).
func (x *interop) startSpeakerIn(sb *netlab.Sandbox, name string, peer labPeer) *labSpeaker {
	x.t.Helper()
	sp := startLabSpeaker(x.t, x.lab, x.n1.GatewayNS, name, sb)
	x.sp = sp
	sp.startBGP(labASN, labTunnel)
	for _, r := range x.routers() {
		p := peer
		p.Address, p.ASN, p.Local = r.tunnel, r.asn, labTunnel
		sp.addPeer(p)
	}
	sp.originate(labSpace)
	return sp
}

type routerRef struct {
	name   string
	tunnel netip.Addr
	asn    uint32
	behind netip.Addr
}

func (x *interop) routers() []routerRef {
	var rs []routerRef
	if x.frr != nil {
		rs = append(rs, routerRef{"frr", frrTunnel, frrASN, behindFRR})
	}
	if x.bird != nil {
		rs = append(rs, routerRef{"bird", birdTunnel, birdASN, behindBIRD})
	}
	return rs
}

// waitFor polls cond every 50 ms until it holds or timeout passes; on
// timeout it fails the test with what cond last said.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last:\n%s", what, timeout, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// frrBFDPeer is one entry of FRR's `show bfd peers json`.
type frrBFDPeer struct {
	Peer             string `json:"peer"`
	Local            string `json:"local"`
	Interface        string `json:"interface"`
	Status           string `json:"status"`
	Diagnostic       string `json:"diagnostic"`
	RemoteDiagnostic string `json:"remote-diagnostic"`
	ID               uint32 `json:"id"`
	RemoteID         uint32 `json:"remote-id"`
	DetectMultiplier int    `json:"detect-multiplier"`
	RemoteRx         int    `json:"remote-receive-interval"`
	RemoteTx         int    `json:"remote-transmit-interval"`
	RemoteMultiplier int    `json:"remote-detect-multiplier"`
	RemoteEchoRx     int    `json:"remote-echo-receive-interval"`
}

func (x *interop) frrBFD() (frrBFDPeer, string) {
	out, err := x.frr.Vtysh("show bfd peers json")
	if err != nil {
		return frrBFDPeer{}, err.Error()
	}
	var ps []frrBFDPeer
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		return frrBFDPeer{}, fmt.Sprintf("%v: %s", err, out)
	}
	for _, p := range ps {
		if p.Peer == labTunnel.String() {
			return p, out
		}
	}
	return frrBFDPeer{}, out
}

// frrNeighbor is FRR's `show bgp neighbors <addr> json` for the speaker.
type frrNeighbor struct {
	BGPState               string `json:"bgpState"`
	LastResetDueTo         string `json:"lastResetDueTo"`
	LastNotification       string `json:"lastNotificationReason"`
	ConnectionsEstablished int    `json:"connectionsEstablished"`
	ConnectionsDropped     int    `json:"connectionsDropped"`
}

func (x *interop) frrNeighbor() (frrNeighbor, string) {
	out, err := x.frr.Vtysh("show bgp neighbors " + labTunnel.String() + " json")
	if err != nil {
		return frrNeighbor{}, err.Error()
	}
	var m map[string]frrNeighbor
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return frrNeighbor{}, fmt.Sprintf("%v: %s", err, out)
	}
	return m[labTunnel.String()], out
}

// frrRoute is FRR's view of the speaker's prefix: its path's AS path,
// local preference, communities and whether it is stale.
type frrRoute struct {
	Found     bool
	ASPath    string
	LocalPref int
	Community string
	Stale     bool
}

func (x *interop) frrRoute(p netip.Prefix) (frrRoute, string) {
	out, err := x.frr.Vtysh("show bgp ipv4 unicast " + p.String() + " json")
	if err != nil {
		return frrRoute{}, err.Error()
	}
	var v struct {
		Paths []struct {
			ASPath struct {
				String string `json:"string"`
			} `json:"aspath"`
			LocPrf    *int `json:"locPrf"`
			Community *struct {
				String string `json:"string"`
			} `json:"community"`
			Stale bool `json:"stale"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return frrRoute{}, fmt.Sprintf("%v: %s", err, out)
	}
	if len(v.Paths) == 0 {
		return frrRoute{}, out
	}
	r := frrRoute{Found: true, ASPath: v.Paths[0].ASPath.String, LocalPref: 100, Stale: v.Paths[0].Stale}
	if v.Paths[0].LocPrf != nil {
		r.LocalPref = *v.Paths[0].LocPrf
	}
	if c := v.Paths[0].Community; c != nil {
		r.Community = c.String
	}
	return r, out
}

// birdBFD is the speaker's session in `birdc show bfd sessions`: state,
// interval and timeout (detection time) as BIRD prints them.
type birdBFD struct {
	State             string
	Interval, Timeout time.Duration
}

var birdBFDLine = regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(labTunnel.String()) + `\s+\S+\s+(\S+)\s+\S+(?:\s+\S+)?\s+([0-9.]+)\s+([0-9.]+)\s*$`)

func (x *interop) birdBFD() (birdBFD, string) {
	out, err := x.bird.Birdc("show", "bfd", "sessions")
	if err != nil {
		return birdBFD{}, err.Error()
	}
	m := birdBFDLine.FindStringSubmatch(out)
	if m == nil {
		return birdBFD{}, out
	}
	sec := func(s string) time.Duration {
		f, _ := strconv.ParseFloat(s, 64)
		return time.Duration(f * float64(time.Second))
	}
	return birdBFD{State: m[1], Interval: sec(m[2]), Timeout: sec(m[3])}, out
}

// birdEstablished reports whether BIRD's protocol vgate is Established.
func (x *interop) birdEstablished() (bool, string) {
	out, err := x.bird.Birdc("show", "protocols", "vgate")
	if err != nil {
		return false, err.Error()
	}
	return regexp.MustCompile(`(?m)^vgate\s+BGP\s+\S+\s+up\s+.*Established`).MatchString(out), out
}

// birdRoute is BIRD's view of the speaker's prefix (`show route ... all`).
func (x *interop) birdRoute(p netip.Prefix) string {
	out, _ := x.bird.Birdc("show", "route", "for", p.Addr().String(), "all")
	return out
}

// speakerUp waits until the speaker's session to r is established and,
// when wantBFD, its BFD session is up.
func (x *interop) speakerUp(sp *labSpeaker, r routerRef, wantBFD bool, timeout time.Duration) {
	x.t.Helper()
	waitFor(x.t, fmt.Sprintf("%s: session to %s established (BFD up: %v)", sp, r.name, wantBFD), timeout, func() (bool, string) {
		bgpSt, bfdSt, p := sp.states(r.tunnel)
		return bgpSt == "established" && (!wantBFD || bfdSt == "up"), fmt.Sprintf("bgp %q bfd %q %v", bgpSt, bfdSt, p)
	})
}
