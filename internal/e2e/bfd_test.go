package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/internal/netlab"
)

// Third-party routers for the BFD tests: FRR (AS65008) and BIRD (AS65009),
// each behind a stock WireGuard tunnel, each announcing its /16 and with
// a host address on lo.
var (
	frrHost     = netip.MustParseAddr("10.8.1.1")
	birdTunnel  = netip.MustParseAddr("10.9.255.254")
	birdHost    = netip.MustParseAddr("10.9.1.1")
	fastBFD     = netlab.BFDConf{Interval: 100 * time.Millisecond, Multiplier: 5}
	bfdDetected = 2 * time.Second // generous bound for 100 ms × 5 on a loaded host
)

// frrBFDPeer is one entry of FRR's `show bfd peers json`.
type frrBFDPeer struct {
	Peer             string `json:"peer"`
	Local            string `json:"local"`
	Interface        string `json:"interface"`
	Status           string `json:"status"`
	Diagnostic       string `json:"diagnostic"`
	RemoteDiagnostic string `json:"remote-diagnostic"`
	RemoteRx         int    `json:"remote-receive-interval"`
	RemoteTx         int    `json:"remote-transmit-interval"`
	RemoteMultiplier int    `json:"remote-detect-multiplier"`
}

func frrBFD(f *netlab.FRR, peer netip.Addr) (frrBFDPeer, string) {
	out, err := f.Vtysh("show bfd peers json")
	if err != nil {
		return frrBFDPeer{}, err.Error()
	}
	var ps []frrBFDPeer
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		return frrBFDPeer{}, fmt.Sprintf("%v: %s", err, out)
	}
	for _, p := range ps {
		if p.Peer == peer.String() {
			return p, out
		}
	}
	return frrBFDPeer{}, out
}

// birdBFD is a session in `birdc show bfd sessions`: state, interval and
// timeout (detection time) as BIRD prints them.
type birdBFD struct {
	State             string
	Interval, Timeout time.Duration
}

func birdBFDOf(b *netlab.BIRD, peer netip.Addr) (birdBFD, string) {
	out, err := b.Birdc("show", "bfd", "sessions")
	if err != nil {
		return birdBFD{}, err.Error()
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(peer.String()) + `\s+\S+\s+(\S+)\s+\S+(?:\s+\S+)?\s+([0-9.]+)\s+([0-9.]+)\s*$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		return birdBFD{}, out
	}
	sec := func(s string) time.Duration {
		f, _ := strconv.ParseFloat(s, 64)
		return time.Duration(f * float64(time.Second))
	}
	return birdBFD{State: m[1], Interval: sec(m[2]), Timeout: sec(m[3])}, out
}

func bfdOf(st api.BGPStatus, peering string) api.BFDStatus {
	for _, f := range st.BFD {
		if f.Peering == peering {
			return f
		}
	}
	return api.BFDStatus{}
}

// thirdParty is gw1 with FRR and BIRD peerings, BFD on both.
type thirdParty struct {
	lab  *netlab.Lab
	gw1  *netlab.Gateway
	n1   *netlab.Network
	frr  *netlab.FRR
	bird *netlab.BIRD
}

// newThirdParty starts FRR and BIRD with BFD 100 ms × 5 and gw1 with a
// BGP peering to each: FRR's with `probe: off` (BFD alone), BIRD's with
// the probe at its default while BIRD's namespace lets one ICMP echo a
// second through (a router whose control-plane policing rate-limits
// echo): the probe's verdicts on it must not hold the session, BFD
// decides.
func newThirdParty(t *testing.T) *thirdParty {
	t.Helper()
	if !netlab.Root() {
		t.Skip(netlab.SkipMessage)
	}
	missing := append(netlab.LookFRR(), netlab.LookBIRD()...)
	if len(missing) > 0 {
		t.Skipf("BFD interop test needs %s (scripts/deps.sh)", strings.Join(missing, ", "))
	}
	lab, gws := site(t, 1)
	x := &thirdParty{lab: lab, gw1: gws[0], n1: lab.Network(1)}
	var err error
	if x.frr, err = lab.AddFRR(); err != nil {
		t.Fatal(err)
	}
	if x.bird, err = lab.AddBIRD(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if out, err := x.frr.Vtysh("show bfd peers"); err == nil {
			t.Logf("---- FRR show bfd peers ----\n%s", out)
		}
		if out, err := x.bird.Birdc("show", "bfd", "sessions"); err == nil {
			t.Logf("---- BIRD show bfd sessions ----\n%s", out)
		}
		t.Logf("---- FRR log ----\n%s", tail(x.frr.Log(), 40))
		t.Logf("---- BIRD log ----\n%s", tail(x.bird.Log(), 40))
	})
	g := x.gw1
	g.ASN = 65001
	g.Peerings = append(g.Peerings,
		netlab.Peering{Name: "frr", Network: "frr", PublicKey: x.frr.Pub,
			Endpoint: fmt.Sprintf("%s:%d", x.frr.Underlay, x.frr.ListenPort),
			Spaces:   []netip.Prefix{netip.MustParsePrefix("10.8.0.0/16")}, TunnelAddress: frrTunnel, Keepalive: 5 * time.Second,
			BGP: &netlab.PeerBGP{ASN: 65008, Address: frrTunnel, ProbeOff: true, BFD: &fastBFD}},
		netlab.Peering{Name: "bird", Network: "bird", PublicKey: x.bird.Pub,
			Endpoint: fmt.Sprintf("%s:%d", x.bird.Underlay, x.bird.ListenPort),
			Spaces:   []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, TunnelAddress: birdTunnel, Keepalive: 5 * time.Second,
			BGP: &netlab.PeerBGP{ASN: 65009, Address: birdTunnel, BFD: &fastBFD}})
	start(t, g)

	wgPeer := netlab.WGPeer{PublicKey: g.Pub, Endpoint: fmt.Sprintf("%s:51820", x.n1.GatewayUnderlay),
		AllowedIPs: []netip.Prefix{x.n1.Space}, Keepalive: 5 * time.Second}
	if err := x.frr.UpWireGuard(frrTunnel, g.TunnelAddress, wgPeer); err != nil {
		t.Fatal(err)
	}
	if err := x.bird.UpWireGuard(birdTunnel, g.TunnelAddress, wgPeer); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ ns, host string }{{x.frr.NS, frrHost.String()}, {x.bird.NS, birdHost.String()}} {
		if out, err := lab.Run(r.ns, "ip", "addr", "add", r.host+"/32", "dev", "lo"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	// BIRD's router rate-limits ICMP echo to 1/s (control-plane
	// policing): vgate's probe sees the tunnel come and go.
	copp(t, lab, x.bird.NS, "limit", "rate", "over", "1/second")
	conf := func(tunnel netip.Addr, asn uint32, space string) netlab.RouterConf {
		return netlab.RouterConf{RouterID: tunnel, ASN: asn, Neighbor: g.TunnelAddress, NeighborASN: 65001,
			Originate: []netip.Prefix{netip.MustParsePrefix(space)}, BFD: &fastBFD}
	}
	if err := x.frr.Start(conf(frrTunnel, 65008, "10.8.0.0/16").FRR()); err != nil {
		t.Fatal(err)
	}
	if err := x.bird.Start(conf(birdTunnel, 65009, "10.9.0.0/16").BIRD()); err != nil {
		t.Fatal(err)
	}
	return x
}

// bothUp waits until vgate, FRR and BIRD all report their BFD sessions
// up, the BGP sessions established and the routers' prefixes installed.
func (x *thirdParty) bothUp(t *testing.T) {
	t.Helper()
	waitFor(t, "vgate: BFD up and BGP established with frr and bird", 90*time.Second, func() (bool, string) {
		st, err := x.gw1.BGP()
		if err != nil {
			return false, err.Error()
		}
		ok := true
		for _, p := range []string{"frr", "bird"} {
			ok = ok && bfdOf(st, p).State == "up" && neighborOf(st, p).State == api.SessionEstablished
		}
		b, _ := json.Marshal(st)
		return ok, string(b)
	})
	waitFor(t, "FRR: BFD peer up", 30*time.Second, func() (bool, string) {
		p, out := frrBFD(x.frr, x.gw1.TunnelAddress)
		return p.Status == "up", out
	})
	waitFor(t, "BIRD: BFD session Up", 30*time.Second, func() (bool, string) {
		b, out := birdBFDOf(x.bird, x.gw1.TunnelAddress)
		return b.State == "Up", out
	})
	waitInstalled(t, x.gw1, "10.8.0.0/16", "frr")
	waitInstalled(t, x.gw1, "10.9.0.0/16", "bird")
}

// TestBFDThirdParty: vgate's own BFD with FRR's bfdd and BIRD's bfd on
// one gateway. Both ends of each session report it up with 100 ms × 5.
// A peer that drops ICMP echo (BIRD's namespace here) still gets a
// working session and its routes. Cutting a tunnel's UDP takes BFD down
// at both ends within the detection time: vgate holds the session with
// bfd_down and its diagnostic (vgate bgp, status), its routes leave the
// kernel, the other router's session is untouched; restoring the path
// brings everything back. A planned stop tells the routers AdminDown.
func TestBFDThirdParty(t *testing.T) {
	x := newThirdParty(t)
	x.bothUp(t)

	// Both routers read vgate's timers.
	if p, out := frrBFD(x.frr, x.gw1.TunnelAddress); p.RemoteRx != 100 || p.RemoteTx != 100 || p.RemoteMultiplier != 5 || p.Local != frrTunnel.String() {
		t.Errorf("FRR sees vgate's BFD as rx %d ms tx %d ms × %d from %s; want 100, 100, 5 to %s:\n%s", p.RemoteRx, p.RemoteTx, p.RemoteMultiplier, p.Local, frrTunnel, out)
	}
	if b, out := birdBFDOf(x.bird, x.gw1.TunnelAddress); b.Interval != 100*time.Millisecond || b.Timeout != 500*time.Millisecond {
		t.Errorf("BIRD: interval %v timeout %v, want 100ms and 500ms:\n%s", b.Interval, b.Timeout, out)
	}
	st, err := x.gw1.BGP()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"frr", "bird"} {
		if f := bfdOf(st, p); f.TxInterval != 100*time.Millisecond || f.Detect != 500*time.Millisecond || f.RemoteMultiplier != 5 {
			t.Errorf("vgate's BFD with %s: %+v; want sending every 100ms, detection 500ms", p, f)
		}
	}
	// The peer rate-limiting echo: once BFD is up the probe's dead
	// verdicts on its tunnel (it comes and goes) hold nothing: BFD
	// decides; the session stays established and its routes installed.
	const probeHold = `msg="bgp session held down" gateway=net1 component=bgp peering=bird reason="tunnel probe`
	const leftToBFD = `msg="bgp: probe verdict left to bfd" gateway=net1 peering=bird`
	holds0, left0 := strings.Count(x.gw1.Log(), probeHold), strings.Count(x.gw1.Log(), leftToBFD)
	waitFor(t, "a probe verdict on bird left to BFD", 60*time.Second, func() (bool, string) {
		return strings.Count(x.gw1.Log(), leftToBFD) > left0, tail(x.gw1.Log(), 20)
	})
	if holds := strings.Count(x.gw1.Log(), probeHold); holds != holds0 {
		t.Errorf("the probe held bird's session although BFD is up:\n%s", grepLines(x.gw1.Log(), "peering=bird"))
	}
	if st, err := x.gw1.BGP(); err != nil || neighborOf(st, "bird").State != api.SessionEstablished || neighborOf(st, "bird").Down != "" {
		t.Errorf("bird's session with echo rate-limited: %+v (%v)", neighborOf(st, "bird"), err)
	}
	waitInstalled(t, x.gw1, "10.9.0.0/16", "bird")
	if err := x.lab.WaitPing(x.n1.HostNS, frrHost, 15*time.Second); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		peering string
		ns      string
		space   string
		other   string
		down    func() (bool, string)
	}{
		{"frr", x.frr.NS, "10.8.0.0/16", "bird", func() (bool, string) {
			p, out := frrBFD(x.frr, x.gw1.TunnelAddress)
			return p.Status == "down", out
		}},
		{"bird", x.bird.NS, "10.9.0.0/16", "frr", func() (bool, string) {
			b, out := birdBFDOf(x.bird, x.gw1.TunnelAddress)
			return b.State == "Down", out
		}},
	} {
		x.cutAndRestore(t, c.peering, c.ns, c.space, c.other, c.down)
	}

	// A timer change by reload is a poll sequence: FRR takes the new
	// interval, neither BFD nor BGP goes down on either side.
	dropped0 := frrDropped(t, x.frr, x.gw1.TunnelAddress)
	st0, err := x.gw1.BGP()
	if err != nil {
		t.Fatal(err)
	}
	x.gw1.Peering("frr").BGP.BFD = &netlab.BFDConf{Interval: 200 * time.Millisecond, Multiplier: 5}
	reload(t, x.gw1, 1)
	waitFor(t, "FRR: vgate's new interval 200 ms", 20*time.Second, func() (bool, string) {
		p, out := frrBFD(x.frr, x.gw1.TunnelAddress)
		return p.Status == "up" && p.RemoteRx == 200 && p.RemoteTx == 200, out
	})
	waitFor(t, "vgate: detection 5 × 200 ms", 10*time.Second, func() (bool, string) {
		st, err := x.gw1.BGP()
		if err != nil {
			return false, err.Error()
		}
		f := bfdOf(st, "frr")
		return f.State == "up" && f.Detect == time.Second && f.TxInterval == 200*time.Millisecond, fmt.Sprintf("%+v", f)
	})
	st1, err := x.gw1.BGP()
	if err != nil {
		t.Fatal(err)
	}
	if d := frrDropped(t, x.frr, x.gw1.TunnelAddress); d != dropped0 || bfdOf(st1, "frr").Downs != bfdOf(st0, "frr").Downs ||
		!neighborOf(st1, "frr").Since.Equal(neighborOf(st0, "frr").Since) {
		t.Errorf("the timer change reset a session: FRR's BGP drops %d -> %d, vgate's BFD downs %d -> %d, session since %v -> %v",
			dropped0, d, bfdOf(st0, "frr").Downs, bfdOf(st1, "frr").Downs, neighborOf(st0, "frr").Since, neighborOf(st1, "frr").Since)
	}

	// FRR's admin takes BFD administratively down: not a failure, vgate's
	// session stays established and holds nothing.
	if out, err := x.frr.Vtysh("configure terminal", "bfd", "profile vgate", "shutdown"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	waitFor(t, "vgate: FRR's BFD administratively down", 10*time.Second, func() (bool, string) {
		st, err := x.gw1.BGP()
		if err != nil {
			return false, err.Error()
		}
		f := bfdOf(st, "frr")
		return f.State == "down" && f.PeerAdminDown, fmt.Sprintf("%+v", f)
	})
	time.Sleep(time.Second)
	if st, err := x.gw1.BGP(); err != nil || neighborOf(st, "frr").State != api.SessionEstablished || neighborOf(st, "frr").Down != "" ||
		!neighborOf(st, "frr").Since.Equal(neighborOf(st0, "frr").Since) {
		t.Errorf("FRR's BFD AdminDown moved vgate's session: %+v (%v)", neighborOf(st, "frr"), err)
	}
	if out, err := x.frr.Vtysh("configure terminal", "bfd", "profile vgate", "no shutdown"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	waitFor(t, "FRR: BFD up again after no shutdown", 20*time.Second, func() (bool, string) {
		p, out := frrBFD(x.frr, x.gw1.TunnelAddress)
		return p.Status == "up", out
	})

	// A planned stop: vgate sends AdminDown, which FRR records as the
	// remote diagnostic.
	if err := x.gw1.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "FRR: BFD down with the remote diagnostic administratively down", 10*time.Second, func() (bool, string) {
		p, out := frrBFD(x.frr, x.gw1.TunnelAddress)
		return p.Status == "down" && strings.Contains(p.RemoteDiagnostic, "administratively down"), out
	})
}

// cutAndRestore drops the UDP of peering's tunnel in the router's
// namespace ns, measures when each end's BFD says down, checks what vgate
// reports and that the other peering is untouched, then restores.
func (x *thirdParty) cutAndRestore(t *testing.T, peering, ns, space, other string, routerDown func() (bool, string)) {
	t.Helper()
	g := x.gw1
	before, err := g.BGP()
	if err != nil {
		t.Fatal(err)
	}
	otherSince := neighborOf(before, other).Since
	restore, err := x.lab.CutUDP(ns, 51820)
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	var vgateAt, routerAt time.Time
	deadline := cut.Add(10 * time.Second)
	for (vgateAt.IsZero() || routerAt.IsZero()) && time.Now().Before(deadline) {
		if vgateAt.IsZero() {
			if st, err := g.BGP(); err == nil && bfdOf(st, peering).State == "down" {
				vgateAt = time.Now()
			}
		}
		if routerAt.IsZero() {
			if ok, _ := routerDown(); ok {
				routerAt = time.Now()
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if vgateAt.IsZero() || routerAt.IsZero() {
		restore()
		t.Fatalf("%s: BFD down not seen within 10s (vgate %v, router %v)", peering, !vgateAt.IsZero(), !routerAt.IsZero())
	}
	vd, rd := vgateAt.Sub(cut), routerAt.Sub(cut)
	t.Logf("%s: tunnel cut; BFD down at vgate after %v, at the router after %v (100ms × 5; polled every 20ms)", peering, vd.Round(time.Millisecond), rd.Round(time.Millisecond))
	if vd > bfdDetected || rd > bfdDetected {
		t.Errorf("%s: BFD down after %v (vgate) and %v (router); want both within %v", peering, vd, rd, bfdDetected)
	}

	// vgate: the session held down with bfd_down and the diagnostic, the
	// routes gone from the kernel, the peering down for bfd_down.
	waitFor(t, peering+": held down for bfd_down, routes out of the kernel", 10*time.Second, func() (bool, string) {
		st, err := g.BGP()
		if err != nil {
			return false, err.Error()
		}
		n := neighborOf(st, peering)
		routes := strings.Join(vgateRoutes(t, x.lab, x.n1.GatewayNS), "\n")
		return n.DownCode == "bfd_down" && n.Down == "bfd_down: control_detection_time_expired" &&
			!strings.Contains(routes, space), fmt.Sprintf("%+v\n%s", n, routes)
	})
	out, err := g.CLI("bgp", "--socket", g.Socket)
	if err != nil || !strings.Contains(out, peering+": bfd down") || !strings.Contains(out, "diagnostic control_detection_time_expired") ||
		!strings.Contains(out, "held down: bfd_down: control_detection_time_expired") {
		t.Errorf("vgate bgp during the cut (%v):\n%s", err, out)
	}
	sst, err := g.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sst.Peerings {
		if p.Name == peering && (p.Reason != api.ReasonBFDDown || !strings.Contains(p.Hint, "control_detection_time_expired")) {
			t.Errorf("status of %s: reason %q hint %q; want bfd_down with the diagnostic", peering, p.Reason, p.Hint)
		}
	}
	// The other router's session was not touched.
	if st, err := g.BGP(); err != nil || neighborOf(st, other).State != api.SessionEstablished || !neighborOf(st, other).Since.Equal(otherSince) || bfdOf(st, other).State != "up" {
		t.Errorf("%s's session or BFD moved during %s's cut", other, peering)
	}

	if err := restore(); err != nil {
		t.Fatal(err)
	}
	x.bothUp(t)
}

// frrTwoGateways is frr.conf for FRR with a session to each of two vgate
// gateways, each over its own tunnel and with BFD 100 ms × 5.
func frrTwoGateways(t1, t2, gw1, gw2 netip.Addr) string {
	var b strings.Builder
	b.WriteString("frr defaults traditional\nhostname labfrr\nlog stdout informational\nservice integrated-vtysh-config\n!\n")
	b.WriteString("bfd\n profile vgate\n  detect-multiplier 5\n  receive-interval 100\n  transmit-interval 100\n exit\n !\nexit\n!\n")
	b.WriteString("router bgp 65008\n bgp router-id " + t1.String() + "\n no bgp ebgp-requires-policy\n no bgp network import-check\n")
	for _, n := range []struct {
		addr, src netip.Addr
		asn       int
	}{{gw1, t1, 65001}, {gw2, t2, 65002}} {
		a := n.addr.String()
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s update-source %s\n neighbor %s timers 3 9\n neighbor %s timers connect 1\n neighbor %s bfd\n neighbor %s bfd profile vgate\n",
			a, n.asn, a, n.src, a, a, a, a)
	}
	b.WriteString(" !\n address-family ipv4 unicast\n  network 10.8.0.0/16\n exit-address-family\nexit\n!\n")
	return b.String()
}

// birdTwoGateways is bird.conf for BIRD with a session to each of two
// vgate gateways, each over its own tunnel (if1, if2) with BFD 100 ms × 5.
func birdTwoGateways(t1, t2, gw1, gw2 netip.Addr, if1, if2 string) string {
	return birdGatewaysConf(t1, t2, gw1, gw2, if1, if2, true, false)
}

// birdGatewaysConf is bird.conf for BIRD (AS65009) with a session named
// gw1 and gw2 to each of two vgate gateways (AS65001, AS65002), each over
// its own tunnel (if1, if2): with bfd, BFD 100 ms × 5 on both; with
// honorGShut, the import filter an admin adds so that routes carrying
// GRACEFUL_SHUTDOWN (65535:0, RFC 8326) get LOCAL_PREF 0, which BIRD 2
// does not do by itself.
func birdGatewaysConf(t1, t2, gw1, gw2 netip.Addr, if1, if2 string, bfd, honorGShut bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "log stderr all;\nrouter id %s;\n\nprotocol device {\n\tscan time 2;\n}\n\n", t1)
	b.WriteString("protocol static {\n\tipv4;\n\troute 10.9.0.0/16 unreachable;\n}\n\n")
	b.WriteString("protocol kernel {\n\tipv4 {\n\t\timport none;\n\t\texport where source = RTS_BGP;\n\t};\n}\n\n")
	if bfd {
		fmt.Fprintf(&b, "protocol bfd {\n\tinterface %q {\n\t\tinterval 100 ms;\n\t\tmultiplier 5;\n\t};\n\tinterface %q {\n\t\tinterval 100 ms;\n\t\tmultiplier 5;\n\t};\n}\n\n", if1, if2)
	}
	for i, n := range []struct {
		addr, src netip.Addr
		asn       int
		ifName    string
	}{{gw1, t1, 65001, if1}, {gw2, t2, 65002, if2}} {
		fmt.Fprintf(&b, "protocol bgp gw%d {\n\tlocal %s as 65009;\n\tneighbor %s as %d;\n\tinterface %q;\n\tdirect;\n", i+1, n.src, n.addr, n.asn, n.ifName)
		b.WriteString("\thold time 9;\n\tkeepalive time 3;\n\tconnect delay time 1;\n\tconnect retry time 2;\n\terror wait time 1, 10;\n")
		if bfd {
			b.WriteString("\tbfd on;\n")
		}
		b.WriteString("\tipv4 {\n")
		if honorGShut {
			b.WriteString("\t\timport filter {\n\t\t\tif (65535, 0) ~ bgp_community then bgp_local_pref = 0;\n\t\t\taccept;\n\t\t};\n")
		} else {
			b.WriteString("\t\timport all;\n")
		}
		b.WriteString("\t\texport all;\n\t};\n}\n\n")
	}
	return b.String()
}

// failoverRouter is the third-party router of TestBFDFailover: FRR or
// BIRD, with a tunnel to each of two gateways.
type failoverRouter struct {
	ns, ifName string
	underlay   netip.Addr
	port       int
	pub        keys.PublicKey
	asn        uint32
	tunnel     netip.Addr
	host       netip.Addr
	space      string
	up         func(local, remote netip.Addr, peer netlab.WGPeer) error
	addWG      func(suffix string, port int, local, remote netip.Addr, peer netlab.WGPeer) (keys.PublicKey, error)
	start      func(t1, t2, gw1, gw2 netip.Addr) error
	viaBoth    func(gw1, gw2 netip.Addr) (bool, string) // it has n1's space from both gateways
	debug      func() string
}

//	h1 ── gw1 (vgate, AS65001) ═══ WireGuard ═══ router (FRR or BIRD; a host address on lo)
//	        ║                                     ║
//	      vgate                              WireGuard
//	        ║                                     ║
//	       gw2 (vgate, AS65002) ══════════════════╝
//
// TestBFDFailover measures the host-to-host outage when the direct
// tunnel between vgate and a third-party router dies: h1 pings the
// router's host address and the router pings h1 every 20 ms; the
// gw1-router tunnel's UDP is cut; BFD takes the session down at both ends
// and both move to the path through gw2 (one AS longer). Goal 0.6 s at
// 100 ms × 5; asserted with a generous bound (noisy host), the figures
// are logged.
func TestBFDFailover(t *testing.T) {
	if !netlab.Root() {
		t.Skip(netlab.SkipMessage)
	}
	for _, kind := range []string{"frr", "bird"} {
		t.Run(kind, func(t *testing.T) { bfdFailover(t, kind) })
	}
}

func bfdFailover(t *testing.T, kind string) {
	missing := netlab.LookFRR()
	if kind == "bird" {
		missing = netlab.LookBIRD()
	}
	if len(missing) > 0 {
		t.Skipf("BFD failover test needs %s (scripts/deps.sh)", strings.Join(missing, ", "))
	}
	lab, gws := site(t, 2)
	gw1, gw2 := gws[0], gws[1]
	n1, n2 := lab.Network(1), lab.Network(2)
	var r failoverRouter
	switch kind {
	case "frr":
		f, err := lab.AddFRR()
		if err != nil {
			t.Fatal(err)
		}
		r = failoverRouter{ns: f.NS, ifName: f.IfName, underlay: f.Underlay, port: f.ListenPort, pub: f.Pub, asn: 65008,
			tunnel: frrTunnel, host: frrHost, space: "10.8.0.0/16", up: f.UpWireGuard, addWG: f.AddWireGuard,
			start: func(t1, t2, g1, g2 netip.Addr) error { return f.Start(frrTwoGateways(t1, t2, g1, g2)) },
			viaBoth: func(g1, g2 netip.Addr) (bool, string) {
				out, err := f.Vtysh("show bgp ipv4 unicast 10.1.0.0/16")
				return err == nil && strings.Contains(out, "65002 65001") && strings.Contains(out, "best"), out
			},
			debug: func() string {
				out, _ := f.Vtysh("show bfd peers", "show ip route", "show bgp summary")
				return out + "\n" + tail(f.Log(), 40)
			}}
	case "bird":
		b, err := lab.AddBIRD()
		if err != nil {
			t.Fatal(err)
		}
		r = failoverRouter{ns: b.NS, ifName: b.IfName, underlay: b.Underlay, port: b.ListenPort, pub: b.Pub, asn: 65009,
			tunnel: birdTunnel, host: birdHost, space: "10.9.0.0/16", up: b.UpWireGuard, addWG: b.AddWireGuard,
			start: func(t1, t2, g1, g2 netip.Addr) error {
				return b.Start(birdTwoGateways(t1, t2, g1, g2, b.IfName, b.IfName+"2"))
			},
			viaBoth: func(g1, g2 netip.Addr) (bool, string) {
				out, err := b.Birdc("show", "route", "for", "10.1.0.2", "all")
				return err == nil && strings.Contains(out, "gw1") && strings.Contains(out, "gw2"), out
			},
			debug: func() string {
				out, _ := b.Birdc("show", "bfd", "sessions")
				out2, _ := b.Birdc("show", "protocols")
				return out + "\n" + out2 + "\n" + tail(b.Log(), 40)
			}}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- %s ----\n%s", kind, r.debug())
		}
	})
	tunnel2 := r.tunnel.Prev()
	port2 := r.port + 1
	pub2, err := r.addWG("2", port2, tunnel2, gw2.TunnelAddress, netlab.WGPeer{PublicKey: gw2.Pub,
		Endpoint:   fmt.Sprintf("%s:51820", n2.GatewayUnderlay),
		AllowedIPs: []netip.Prefix{n2.Space, n1.Space}, Keepalive: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	netlab.LinkBGP(gw1, gw2)
	space := netip.MustParsePrefix(r.space)
	gw1.Peerings = append(gw1.Peerings, netlab.Peering{Name: kind, Network: kind, PublicKey: r.pub,
		Endpoint: fmt.Sprintf("%s:%d", r.underlay, r.port),
		Spaces:   []netip.Prefix{space}, TunnelAddress: r.tunnel, Keepalive: 5 * time.Second,
		BGP: &netlab.PeerBGP{ASN: r.asn, Address: r.tunnel, BFD: &fastBFD}})
	gw2.Peerings = append(gw2.Peerings, netlab.Peering{Name: kind, Network: kind, PublicKey: pub2,
		Endpoint: fmt.Sprintf("%s:%d", r.underlay, port2),
		Spaces:   []netip.Prefix{space}, TunnelAddress: tunnel2, Keepalive: 5 * time.Second,
		BGP: &netlab.PeerBGP{ASN: r.asn, Address: tunnel2, BFD: &fastBFD}})
	start(t, gw1, gw2)
	if err := r.up(r.tunnel, gw1.TunnelAddress, netlab.WGPeer{PublicKey: gw1.Pub,
		Endpoint:   fmt.Sprintf("%s:51820", n1.GatewayUnderlay),
		AllowedIPs: []netip.Prefix{n1.Space, n2.Space}, Keepalive: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"ip", "addr", "add", r.host.String() + "/32", "dev", "lo"},
		{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"},
		{"sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0"},
	} {
		if out, err := lab.Run(r.ns, c...); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	if err := r.start(r.tunnel, tunnel2, gw1.TunnelAddress, gw2.TunnelAddress); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*netlab.Gateway{gw1, gw2} {
		waitFor(t, g.Name+": BFD up and BGP established with "+kind, 90*time.Second, func() (bool, string) {
			st, err := g.BGP()
			if err != nil {
				return false, err.Error()
			}
			b, _ := json.Marshal(st)
			return bfdOf(st, kind).State == "up" && neighborOf(st, kind).State == api.SessionEstablished, string(b)
		})
	}
	waitInstalled(t, gw1, r.space, kind)
	waitInstalled(t, gw2, r.space, kind)
	waitFor(t, kind+": 10.1.0.0/16 via gw1 and gw2", 60*time.Second, func() (bool, string) {
		return r.viaBoth(gw1.TunnelAddress, gw2.TunnelAddress)
	})
	if err := lab.WaitPing(n1.HostNS, r.host, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitPing(r.ns, n1.HostAddr, 15*time.Second); err != nil {
		t.Fatal(err)
	}

	const iv = 20 * time.Millisecond
	fwd := lab.StartPing(n1.HostNS, r.host, iv, 8*time.Second)
	back := lab.StartPing(r.ns, n1.HostAddr, iv, 8*time.Second)
	time.Sleep(2 * time.Second)
	restore, err := lab.CutUDP(r.ns, r.port)
	if err != nil {
		t.Fatal(err)
	}
	defer restore()
	f, b := fwd.Wait(), back.Wait()
	fo, bo := f.Outage(iv), b.Outage(iv)
	t.Logf("gw1-%s tunnel cut, BFD 100ms × 5: host-to-host outage h1->%s %v (%d replies), %s->h1 %v (%d replies)",
		kind, kind, fo.Round(time.Millisecond), f.Received, kind, bo.Round(time.Millisecond), b.Received)
	for _, o := range []time.Duration{fo, bo} {
		if o > bfdDetected {
			t.Errorf("outage %v; want at most %v (goal 0.6s)", o, bfdDetected)
		}
	}
	if f.Received < f.Sent/2 || b.Received < b.Sent/2 {
		t.Errorf("traffic did not come back through gw2: %d/%d and %d/%d replies", f.Received, f.Sent, b.Received, b.Sent)
	}
	st, err := gw1.BGP()
	if err != nil {
		t.Fatal(err)
	}
	if n := neighborOf(st, kind); n.DownCode != "bfd_down" {
		t.Errorf("gw1's session to %s after the cut: %+v", kind, n)
	}
	waitInstalled(t, gw1, r.space, "net2")
}

// frrDropped is FRR's count of BGP sessions to peer that were dropped.
func frrDropped(t *testing.T, f *netlab.FRR, peer netip.Addr) int {
	t.Helper()
	out, err := f.Vtysh("show bgp neighbors " + peer.String() + " json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var m map[string]struct {
		ConnectionsDropped int `json:"connectionsDropped"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return m[peer.String()].ConnectionsDropped
}

// copp adds an nftables rule in ns that drops ICMP echo requests matching
// match (e.g. "limit rate over 1/second"; none: all of them), as a
// router's control-plane policing does.
func copp(t *testing.T, lab *netlab.Lab, ns string, match ...string) {
	t.Helper()
	rule := append([]string{"nft", "add", "rule", "inet", "copp", "in", "icmp", "type", "echo-request"}, match...)
	for _, c := range [][]string{
		{"nft", "add", "table", "inet", "copp"},
		{"nft", "add", "chain", "inet", "copp", "in", "{ type filter hook input priority 0 ; }"},
		append(rule, "counter", "drop"),
	} {
		if out, err := lab.Run(ns, c...); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
}

// TestEchoDroppedByRouter: a router whose control plane drops every ICMP
// echo, and no BFD: vgate's probe never gets an answer, which holds
// nothing; the session is established and its routes are installed.
func TestEchoDroppedByRouter(t *testing.T) {
	t.Parallel() // mostly waiting: its own namespaces
	if !netlab.Root() {
		t.Skip(netlab.SkipMessage)
	}
	if missing := netlab.LookBIRD(); len(missing) > 0 {
		t.Skipf("test needs %s (scripts/deps.sh)", strings.Join(missing, ", "))
	}
	lab, gws := site(t, 1)
	g, n1 := gws[0], lab.Network(1)
	br, err := lab.AddBIRD()
	if err != nil {
		t.Fatal(err)
	}
	g.ASN = 65001
	g.Peerings = append(g.Peerings, netlab.Peering{Name: "bird", Network: "bird", PublicKey: br.Pub,
		Endpoint: fmt.Sprintf("%s:%d", br.Underlay, br.ListenPort),
		Spaces:   []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, TunnelAddress: birdTunnel, Keepalive: 5 * time.Second,
		BGP: &netlab.PeerBGP{ASN: 65009, Address: birdTunnel}})
	// Echo dropped from the start: a router that answered once and then
	// stopped would look like a dead tunnel (use bfd or probe: off).
	copp(t, lab, br.NS)
	start(t, g)
	if err := br.UpWireGuard(birdTunnel, g.TunnelAddress, netlab.WGPeer{PublicKey: g.Pub,
		Endpoint: fmt.Sprintf("%s:51820", n1.GatewayUnderlay), AllowedIPs: []netip.Prefix{n1.Space}, Keepalive: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	conf := netlab.RouterConf{RouterID: birdTunnel, ASN: 65009, Neighbor: g.TunnelAddress, NeighborASN: 65001,
		Originate: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}
	if err := br.Start(conf.BIRD()); err != nil {
		t.Fatal(err)
	}
	// BIRD dials; should its first attempts miss, vgate dials too once
	// the probe has taken the silent peer for a router (30 s).
	started := time.Now()
	waitFor(t, "gw1: 10.9.0.0/16 via bird installed", 90*time.Second, func() (bool, string) {
		v, err := g.Routes()
		if err != nil {
			return false, err.Error()
		}
		r, ok := routeOf(v, "10.9.0.0/16", "bird")
		return ok && r.Installed, fmt.Sprintf("%+v", v.Routes)
	})
	t.Logf("bird's route installed %v after BIRD started", time.Since(started).Round(100*time.Millisecond))
	// Well past the probe's detection time and its "plain" verdict for a
	// silent peer (30 s): still established, never held, still installed.
	waitFor(t, "the probe decides bird never answered and is not vgate", 60*time.Second, func() (bool, string) {
		st, err := g.BGP()
		if err != nil {
			return false, err.Error()
		}
		for _, p := range st.Probes {
			if p.Peering == "bird" {
				return !p.Alive && p.Plain, fmt.Sprintf("%+v", p)
			}
		}
		return false, fmt.Sprintf("%+v", st.Probes)
	})
	st, err := g.BGP()
	if err != nil {
		t.Fatal(err)
	}
	if n := neighborOf(st, "bird"); n.State != api.SessionEstablished || n.Down != "" || n.LastDownCode != "" {
		t.Errorf("session to a router dropping echo: %+v", n)
	}
	waitInstalled(t, g, "10.9.0.0/16", "bird")
}

// ipsecRouter is the BGP router on the strongSwan device of the IPsec BFD
// tests: its name, how to start it, and whether its BFD session to vgate
// is up (with its own output).
type ipsecRouter struct {
	name  string
	start func(t *testing.T, lab *netlab.Lab, sw *netlab.Swan)
	bfdUp func() (bool, string)
	debug func() string
}

// TestIPsecBFD: BFD over an IPsec peering, to BIRD behind a stock
// strongSwan device: up at both ends through ipsec0; the tunnel cut (ESP
// and IKE dropped at the device) takes it down at both ends within the
// bound and vgate holds the session with bfd_down.
func TestIPsecBFD(t *testing.T) {
	if !netlab.Root() {
		t.Skip(netlab.SkipMessage)
	}
	if m := append(netlab.LookBIRD(), netlab.LookSwan()...); len(m) > 0 {
		t.Skipf("test needs %v (scripts/deps.sh)", m)
	}
	var sw *netlab.Swan
	ipsecBFD(t, ipsecRouter{name: "BIRD",
		start: func(t *testing.T, lab *netlab.Lab, s *netlab.Swan) {
			sw = s
			conf := strings.Replace(ipsecBIRDConf(65002, 65001, "10.2.0.0/16"), "\thold time 9;\n", "\thold time 9;\n\tbfd on;\n", 1) +
				"protocol bfd {\n\tinterface \"ipsec0\" {\n\t\tinterval 100 ms;\n\t\tmultiplier 5;\n\t};\n}\n"
			if err := sw.StartBIRD(conf); err != nil {
				t.Fatal(err)
			}
		},
		bfdUp: func() (bool, string) {
			out, err := sw.Birdc("show", "bfd", "sessions")
			return err == nil && regexp.MustCompile(`(?m)^169\.254\.21\.2\s+ipsec0\s+Up\s`).MatchString(out), out
		},
		debug: func() string {
			out, _ := sw.Birdc("show", "bfd", "sessions")
			b, _ := os.ReadFile(filepath.Join(sw.Dir, "bird.log"))
			return out + "\n" + tail(string(b), 30)
		}})
}

// TestIPsecBFDWithFRR: TestIPsecBFD with FRR (zebra, bfdd, bgpd) on the
// strongSwan device instead of BIRD, configured by its own frr.conf
// (RouterConf, BFD 100 ms × 5): FRR's bfdd and vgate both report the
// session up through ipsec0; the cut takes it down at both ends.
func TestIPsecBFDWithFRR(t *testing.T) {
	t.Parallel() // mostly waiting: its own namespaces
	if !netlab.Root() {
		t.Skip(netlab.SkipMessage)
	}
	if m := append(netlab.LookFRR(), netlab.LookSwan()...); len(m) > 0 {
		t.Skipf("test needs %v (scripts/deps.sh)", m)
	}
	device, vgate := netip.MustParseAddr("169.254.21.1"), netip.MustParseAddr("169.254.21.2")
	var f *netlab.FRR
	ipsecBFD(t, ipsecRouter{name: "FRR",
		start: func(t *testing.T, lab *netlab.Lab, sw *netlab.Swan) {
			var err error
			if f, err = sw.AddFRR(); err != nil {
				t.Fatal(err)
			}
			conf := netlab.RouterConf{RouterID: device, ASN: 65002, Neighbor: vgate, NeighborASN: 65001,
				Interface: "ipsec0", Originate: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}, BFD: &fastBFD}
			if err := f.Start(conf.FRR()); err != nil {
				t.Fatal(err)
			}
		},
		bfdUp: func() (bool, string) {
			p, out := frrBFD(f, vgate)
			return p.Status == "up" && p.Interface == "ipsec0", out
		},
		debug: func() string {
			out, _ := f.Vtysh("show bfd peers", "show bgp summary")
			return out + "\n" + tail(f.Log(), 40)
		}})
}

// ipsecBFD is the IPsec BFD test with router r on the strongSwan device:
// BFD 100 ms × 5 at both ends, up through ipsec0 at both; ESP and IKE
// cut at the device: down at both within bfdDetected, and vgate holds
// the session with bfd_down.
func ipsecBFD(t *testing.T, r ipsecRouter) {
	lab, gws := site(t, 2)
	gw, n1, n2 := gws[0], lab.Network(1), lab.Network(2)
	sw := lab.AddSwan(n2)
	pskFile := filepath.Join(lab.Dir, "hq.psk")
	if err := os.WriteFile(pskFile, []byte(ipsecPSK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	device := netip.MustParseAddr("169.254.21.1")
	gw.TunnelAddress = netip.MustParseAddr("169.254.21.2")
	gw.ASN = 65001
	gw.Peerings = []netlab.Peering{{Name: "hq", Network: "hq", Endpoint: n2.GatewayUnderlay.String(),
		Spaces: []netip.Prefix{n2.Space}, IPsec: "      psk_file: " + pskFile + "\n",
		BGP: &netlab.PeerBGP{ASN: 65002, Address: device, BFD: &fastBFD}}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- %s ----\n%s", r.name, r.debug())
		}
	})
	if err := sw.Start(bgpSwanConf(sw, n1, "10.2.0.0/16,169.254.21.1/32", "10.1.0.0/16,169.254.21.2/32")); err != nil {
		t.Fatal(err)
	}
	numberTunnel(t, lab, sw)
	r.start(t, lab, sw)
	start(t, gw)
	waitFor(t, "vgate: BFD up over IPsec, session established", 60*time.Second, func() (bool, string) {
		st, err := gw.BGP()
		if err != nil {
			return false, err.Error()
		}
		return bfdOf(st, "hq").State == "up" && bfdOf(st, "hq").Interface == "ipsec0" && neighborOf(st, "hq").State == api.SessionEstablished,
			fmt.Sprintf("%+v %+v", st.BFD, st.Neighbors)
	})
	waitFor(t, r.name+": BFD up on ipsec0", 30*time.Second, r.bfdUp)

	// Cut: ESP and IKE (UDP-encapsulated here: the lab's NAT detection)
	// dropped at the device both ways, so that nothing renegotiates.
	st0, err := gw.BGP()
	if err != nil {
		t.Fatal(err)
	}
	downs0 := bfdOf(st0, "hq").Downs
	rules := [][]string{
		{"nft", "add", "table", "inet", "vgcutesp"},
		{"nft", "add", "chain", "inet", "vgcutesp", "in", "{ type filter hook input priority -10 ; }"},
		{"nft", "add", "chain", "inet", "vgcutesp", "out", "{ type filter hook output priority -10 ; }"},
		{"nft", "add", "rule", "inet", "vgcutesp", "in", "meta", "l4proto", "esp", "drop"},
		{"nft", "add", "rule", "inet", "vgcutesp", "in", "udp", "dport", "{ 500, 4500 }", "drop"},
		{"nft", "add", "rule", "inet", "vgcutesp", "out", "meta", "l4proto", "esp", "drop"},
		{"nft", "add", "rule", "inet", "vgcutesp", "out", "udp", "sport", "{ 500, 4500 }", "drop"},
	}
	for _, c := range rules {
		if out, err := lab.Run(n2.GatewayNS, c...); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	cut := time.Now()
	var vgateAt, routerAt time.Time
	for (vgateAt.IsZero() || routerAt.IsZero()) && time.Since(cut) < 10*time.Second {
		if st, err := gw.BGP(); vgateAt.IsZero() && err == nil && bfdOf(st, "hq").Downs > downs0 {
			vgateAt = time.Now()
		}
		if ok, _ := r.bfdUp(); routerAt.IsZero() && !ok {
			routerAt = time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	if vgateAt.IsZero() || routerAt.IsZero() {
		t.Fatalf("BFD over IPsec not down within 10s of the cut (vgate %v, %s %v)", !vgateAt.IsZero(), r.name, !routerAt.IsZero())
	}
	t.Logf("IPsec cut: BFD down at vgate after %v, at %s after %v", vgateAt.Sub(cut).Round(time.Millisecond), r.name, routerAt.Sub(cut).Round(time.Millisecond))
	if vgateAt.Sub(cut) > bfdDetected || routerAt.Sub(cut) > bfdDetected {
		t.Errorf("BFD over IPsec down after %v (vgate), %v (%s); want within %v", vgateAt.Sub(cut), routerAt.Sub(cut), r.name, bfdDetected)
	}
	waitFor(t, "vgate: hq held down for bfd_down", 10*time.Second, func() (bool, string) {
		st, err := gw.BGP()
		if err != nil {
			return false, err.Error()
		}
		n := neighborOf(st, "hq")
		return n.DownCode == "bfd_down", fmt.Sprintf("%+v", n)
	})
}
