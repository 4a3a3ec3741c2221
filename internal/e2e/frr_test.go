package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/internal/netlab"
)

// The FRR router of these tests: AS65008 behind a stock WireGuard tunnel
// to gw1, configured by its own frr.conf (netlab.RouterConf).
var (
	frrTunnel = netip.MustParseAddr("10.8.255.254")
	behindFRR = netip.MustParseAddr("10.8.1.1")
	frrSpace  = netip.MustParsePrefix("10.8.0.0/16")
)

const frrASN = 65008

// frrSite is gw1 (vgate, AS65001, not started) with a BGP peering "frr"
// to an FRR router (running, configured with gr) behind a stock
// WireGuard tunnel:
//
//	h1 10.1.0.2 ── gw1 (vgate, AS65001, tunnel 10.1.255.254) ── br0 ── frr ns (198.18.0.51)
//	                      vg-frr ═══════ WireGuard ═══════ <prefix>frr (Debian wireguard-go)
//	                                                       10.8.255.254 peer 10.1.255.254
//	                                                       FRR, AS65008; 10.8.1.1 on lo
func frrSite(t *testing.T, gr *netlab.GRConf) (*netlab.Lab, *netlab.Gateway, *netlab.FRR) {
	t.Helper()
	if !netlab.Root() {
		t.Skip(netlab.SkipMessage)
	}
	if missing := netlab.LookFRR(); len(missing) > 0 {
		t.Skipf("FRR interop test needs %s (scripts/deps.sh)", strings.Join(missing, ", "))
	}
	lab, gws := site(t, 1)
	gw1, n1 := gws[0], lab.Network(1)
	f, err := lab.AddFRR()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if out, err := f.Vtysh("show bgp neighbors", "show bgp ipv4 unicast"); err == nil {
			t.Logf("---- FRR ----\n%s", out)
		}
		t.Logf("---- FRR logs ----\n%s", tail(f.Log(), 80))
	})
	gw1.ASN = 65001
	gw1.Peerings = append(gw1.Peerings, netlab.Peering{
		Name: "frr", Network: "frr", PublicKey: f.Pub,
		Endpoint:      fmt.Sprintf("%s:%d", f.Underlay, f.ListenPort),
		Spaces:        []netip.Prefix{frrSpace},
		TunnelAddress: frrTunnel,
		Keepalive:     5 * time.Second,
		BGP:           &netlab.PeerBGP{ASN: frrASN, Address: frrTunnel},
	})
	if err := f.UpWireGuard(frrTunnel, gw1.TunnelAddress, netlab.WGPeer{
		PublicKey:  gw1.Pub,
		Endpoint:   fmt.Sprintf("%s:51820", n1.GatewayUnderlay),
		AllowedIPs: []netip.Prefix{n1.Space},
		Keepalive:  5 * time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	if out, err := lab.Run(f.NS, "ip", "addr", "add", behindFRR.String()+"/32", "dev", "lo"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	conf := netlab.RouterConf{RouterID: frrTunnel, ASN: frrASN, Neighbor: gw1.TunnelAddress, NeighborASN: 65001,
		Originate: []netip.Prefix{frrSpace}, GR: gr}
	if err := f.Start(conf.FRR()); err != nil {
		t.Fatal(err)
	}
	return lab, gw1, f
}

// frrNeighbor is FRR's session to gw1.
type frrNeighbor struct {
	BGPState               string `json:"bgpState"`
	ConnectionsEstablished int    `json:"connectionsEstablished"`
	LastResetDueTo         string `json:"lastResetDueTo"`
}

func frrNeighborOf(f *netlab.FRR, addr netip.Addr) (frrNeighbor, string) {
	out, err := f.Vtysh("show bgp neighbors " + addr.String() + " json")
	if err != nil {
		return frrNeighbor{}, err.Error()
	}
	var m map[string]frrNeighbor
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return frrNeighbor{}, fmt.Sprintf("%v: %s", err, out)
	}
	return m[addr.String()], out
}

// frrPath is FRR's path to a prefix: AS path, LOCAL_PREF, communities and
// whether it is stale (graceful restart).
type frrPath struct {
	Found     bool
	ASPath    string
	LocalPref int
	Community string
	Stale     bool
}

func frrPathOf(f *netlab.FRR, p netip.Prefix) (frrPath, string) {
	out, err := f.Vtysh("show bgp ipv4 unicast " + p.String() + " json")
	if err != nil {
		return frrPath{}, err.Error()
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
		return frrPath{}, fmt.Sprintf("%v: %s", err, out)
	}
	if len(v.Paths) == 0 {
		return frrPath{}, out
	}
	r := frrPath{Found: true, ASPath: v.Paths[0].ASPath.String, LocalPref: 100, Stale: v.Paths[0].Stale}
	if v.Paths[0].LocPrf != nil {
		r.LocalPref = *v.Paths[0].LocPrf
	}
	if c := v.Paths[0].Community; c != nil {
		r.Community = c.String
	}
	return r, out
}

// TestDrainWithFRR: `vgate drain` toward a router vgate did not write.
// FRR receives gw1's prefix with the GRACEFUL_SHUTDOWN community and gw1's
// AS four times (and so lowers it to LOCAL_PREF 0, RFC 8326), without a
// session reset; gw1 says drained (a router is drained once it has been
// sent the least-preferred routes); `vgate drain --undo` restores the
// plain path, again without a reset.
func TestDrainWithFRR(t *testing.T) {
	lab, gw1, f := frrSite(t, nil)
	start(t, gw1)
	n1 := lab.Network(1)
	frrIs := func(what string, want func(frrPath) bool) {
		t.Helper()
		waitFor(t, "FRR: 10.1.0.0/16 "+what, 30*time.Second, func() (bool, string) {
			r, out := frrPathOf(f, n1.Space)
			return r.Found && want(r), out
		})
	}
	frrIs("as gw1 announces it", func(r frrPath) bool {
		return r.ASPath == "65001" && r.LocalPref == 100 && r.Community == ""
	})
	if err := lab.WaitPing(n1.HostNS, behindFRR, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	n0, _ := frrNeighborOf(f, gw1.TunnelAddress)

	out, err := gw1.CLI("drain", "--socket", gw1.Socket, "--wait", "20s")
	if err != nil || !strings.Contains(out, "drained") {
		t.Fatalf("vgate drain --wait: %v\n%s", err, out)
	}
	frrIs("drained: graceful-shutdown, prepended, LOCAL_PREF 0", func(r frrPath) bool {
		return r.ASPath == "65001 65001 65001 65001" && r.Community == "graceful-shutdown" && r.LocalPref == 0
	})
	st, err := gw1.Status()
	if err != nil || st.Drain == nil || st.Drain.State != api.Drained {
		t.Fatalf("gw1 status: %v %+v", err, st.Drain)
	}
	// Tunnels and routes stay: traffic still flows.
	if err := lab.WaitPing(n1.HostNS, behindFRR, 5*time.Second); err != nil {
		t.Fatalf("drained gw1 no longer forwards: %v", err)
	}

	if out, err := gw1.CLI("drain", "--undo", "--socket", gw1.Socket); err != nil {
		t.Fatalf("vgate drain --undo: %v\n%s", err, out)
	}
	frrIs("undrained", func(r frrPath) bool {
		return r.ASPath == "65001" && r.LocalPref == 100 && r.Community == ""
	})
	if n, out := frrNeighborOf(f, gw1.TunnelAddress); n.BGPState != "Established" || n.ConnectionsEstablished != n0.ConnectionsEstablished {
		t.Errorf("FRR's session was reset by drain or undrain: established %d -> %d\n%s", n0.ConnectionsEstablished, n.ConnectionsEstablished, out)
	}
}

// TestGracefulRestartWithFRR: with bgp.graceful_restart, a planned stop
// (SIGTERM) ends the session without a NOTIFICATION, and FRR, a helper by
// default, keeps gw1's prefix as stale, in its RIB and its kernel, until
// gw1 is back and sends it again; without it FRR withdraws at once. The
// figure: pings from behind FRR to h1 (20/s) across each restart (stop,
// then start at once). vgate's own forwarding does not outlive its
// process (docs/operations.md), so both lose the restart's gap; graceful
// restart saves the re-convergence and the route churn in the router's
// network.
func TestGracefulRestartWithFRR(t *testing.T) {
	t.Parallel() // mostly waiting: its own namespaces
	lab, gw1, f := frrSite(t, nil)
	gw1.GracefulRestart = 60 * time.Second
	start(t, gw1)
	n1 := lab.Network(1)
	fresh := func(what string) {
		t.Helper()
		waitFor(t, "FRR: 10.1.0.0/16 "+what, 30*time.Second, func() (bool, string) {
			r, out := frrPathOf(f, n1.Space)
			return r.Found && !r.Stale, out
		})
	}
	fresh("learned")
	if out, err := f.Vtysh("show bgp neighbors " + gw1.TunnelAddress.String()); err != nil || !strings.Contains(out, "Graceful Restart Capability: advertised and received") {
		t.Fatalf("FRR: graceful restart not negotiated: %v\n%s", err, out)
	}
	if err := lab.WaitPing(f.NS, n1.HostAddr, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	kernelHas := func() (bool, string) {
		out, _ := lab.Run(f.NS, "ip", "route", "show", n1.Space.String())
		return strings.Contains(out, "proto bgp"), out
	}

	restart := func(withGR bool) (lost, sent int) {
		t.Helper()
		// ping gives up at once when FRR's kernel has no route yet.
		waitFor(t, "FRR's kernel: 10.1.0.0/16", 10*time.Second, kernelHas)
		ping := startSteadyPing(lab, f.NS, n1.HostAddr, 200) // 10 s
		// The gap's timing, 100 pings a second.
		fine := lab.StartPing(f.NS, n1.HostAddr, 10*time.Millisecond, 9*time.Second)
		time.Sleep(time.Second)
		term := time.Now()
		if err := gw1.Stop(); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		// What FRR does with the route is checked while gw1 starts
		// again at once, as systemctl restart does: checking before the
		// start would lengthen the restart being measured. The check
		// must see it within the window the restart leaves (until the
		// new session sends the route again).
		what, want := "FRR withdraws 10.1.0.0/16", func(r frrPath, inKernel bool) bool { return !r.Found && !inKernel }
		if withGR {
			what, want = "FRR keeps 10.1.0.0/16 as stale, in its kernel too", func(r frrPath, inKernel bool) bool { return r.Found && r.Stale && inKernel }
		}
		seen := make(chan string, 1)
		go func() {
			var last string
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				r, out := frrPathOf(f, n1.Space)
				inKernel, kout := kernelHas()
				if want(r, inKernel) {
					seen <- ""
					return
				}
				last = out + kout
			}
			seen <- last
		}()
		started := time.Now()
		if err := gw1.Start(); err != nil {
			t.Fatal(err)
		}
		ready := time.Now()
		if last := <-seen; last != "" {
			t.Fatalf("%s: not seen within 5s of the stop; last:\n%s", what, last)
		}
		fresh("fresh again after the restart")
		s, l, _ := ping.wait()
		r := fine.Wait()
		t.Logf("restart gap (graceful restart %v): %s", withGR, restartGap(gw1.Log(), term, stopped, started, ready, r))
		return l, s
	}
	lostGR, sentGR := restart(true)
	if n, out := frrNeighborOf(f, gw1.TunnelAddress); n.BGPState != "Established" || strings.Contains(n.LastResetDueTo, "NOTIFICATION") {
		t.Errorf("FRR's session after the graceful restart: %+v\n%s", n, out)
	}

	gw1.GracefulRestart = 0
	if err := gw1.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "FRR: graceful restart no longer negotiated", 30*time.Second, func() (bool, string) {
		out, _ := f.Vtysh("show bgp neighbors " + gw1.TunnelAddress.String())
		return strings.Contains(out, "BGP state = Established") && !strings.Contains(out, "Graceful Restart Capability: advertised and received"), out
	})
	fresh("learned again")
	lostPlain, sentPlain := restart(false)
	t.Logf("FIGURE graceful restart: pings from behind FRR to h1 across a restart (stop, start): %d of %d lost with graceful restart, %d of %d without",
		lostGR, sentGR, lostPlain, sentPlain)
}

// TestLongLivedGracefulRestartWithFRR: with a 1 s restart time and a
// long-lived stale time (RFC 9494), a gateway away for longer than the
// restart time keeps its route at a router configured for long-lived
// graceful restart (FRR keeps none without its own stale time).
func TestLongLivedGracefulRestartWithFRR(t *testing.T) {
	t.Parallel() // mostly waiting: its own namespaces
	lab, gw1, f := frrSite(t, &netlab.GRConf{LongLivedStale: time.Minute})
	gw1.GracefulRestart = time.Second
	gw1.LongLivedStale = time.Minute
	start(t, gw1)
	n1 := lab.Network(1)
	waitFor(t, "FRR: 10.1.0.0/16 learned", 30*time.Second, func() (bool, string) {
		r, out := frrPathOf(f, n1.Space)
		return r.Found && !r.Stale, out
	})
	if err := gw1.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // past the restart time
	r, out := frrPathOf(f, n1.Space)
	if !r.Found || !r.Stale || !strings.Contains(r.Community, "llgr-stale") {
		t.Errorf("FRR 3 s into a restart with a 1 s restart time: %+v, want kept as long-lived stale\n%s", r, out)
	}
	if err := gw1.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "FRR: 10.1.0.0/16 fresh again", 30*time.Second, func() (bool, string) {
		r, out := frrPathOf(f, n1.Space)
		return r.Found && !r.Stale && r.Community == "", out
	})
}

// restartGap is where a restart's outage goes, in ms from the SIGTERM
// (term): the old process's exit (stopped), the new one's start and its
// control socket answering (started, ready), the times of the new run's
// log lines that matter, and the gaps in the replies of r (from the last
// reply before each to the first after): the one across the SIGTERM and
// any longer than 100 ms.
func restartGap(log string, term, stopped, started, ready time.Time, r netlab.PingResult) string {
	run := log[strings.LastIndex(log, "### netlab:"):]
	prev := log[:strings.LastIndex(log, "### netlab:")]
	at := func(section, substr string, last bool) time.Time {
		var found time.Time
		for _, l := range strings.Split(section, "\n") {
			if !strings.Contains(l, substr) {
				continue
			}
			m := logTimeRE.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			tm, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				continue
			}
			found = tm
			if !last {
				break
			}
		}
		return found
	}
	ms := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return fmt.Sprint(t.Sub(term).Milliseconds())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "old run's last log line %s, exited %s, start %s, new run's first log line %s",
		ms(at(prev, "time=", true)), ms(stopped), ms(started), ms(at(run, "time=", false)))
	for _, e := range []struct{ name, substr string }{
		{"tunnel frr created", "msg=\"tunnel created\" gateway=net1 peering=frr"},
		{"handshake sent", "Sending handshake initiation\" gateway=net1 tunnel=frr"},
		{"handshake answered", "Received handshake response\" gateway=net1 tunnel=frr"},
		{"routes set (the speaker starts right after)", "msg=\"bgp speaker started\""},
		{"session established", "msg=\"bgp session established\""},
	} {
		fmt.Fprintf(&b, ", %s %s", e.name, ms(at(run, e.substr, false)))
	}
	fmt.Fprintf(&b, ", control socket %s; replies missing", ms(ready))
	before := term.Add(-time.Second)
	for _, at := range r.Replies {
		if gap := at.Sub(before); gap > 100*time.Millisecond || gap > 25*time.Millisecond && !before.After(term) && at.After(term) {
			fmt.Fprintf(&b, " %s–%s", ms(before), ms(at))
		}
		before = at
	}
	b.WriteString(" (ms after the SIGTERM)")
	return b.String()
}

var logTimeRE = regexp.MustCompile(`\btime=(\S+)`)
