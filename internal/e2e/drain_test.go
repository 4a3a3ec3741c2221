package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/internal/netlab"
)

// steadyPing pings dst from ns every 50 ms (20/s) count times and reports
// how many were sent and answered (ping's own summary; a reply later than
// 1 s counts as lost).
type steadyPing struct {
	done      chan struct{}
	sent, got int
	out       string
}

func startSteadyPing(lab *netlab.Lab, ns string, dst netip.Addr, count int) *steadyPing {
	p := &steadyPing{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.out, _ = lab.RunContext(context.Background(), ns, "ping", "-n", "-q", "-W", "1", "-i", "0.05", "-c", strconv.Itoa(count), dst.String())
		if m := lossRE.FindStringSubmatch(p.out); m != nil {
			p.sent, _ = strconv.Atoi(m[1])
			p.got, _ = strconv.Atoi(m[2])
		}
	}()
	return p
}

func (p *steadyPing) wait() (sent, lost int, out string) {
	<-p.done
	return p.sent, p.sent - p.got, p.out
}

// TestDrainThenStop: the redundant example (deploy/examples/redundant),
// active-active with multipath. `vgate drain --wait` on the west gateway
// carrying the east host's traffic returns once status says drained: its
// probe told east, east's kernel route left its tunnel and east's probe
// said so back; BGP carries the drain too (GRACEFUL_SHUTDOWN and a
// longer AS path). Stopped then, under 20 pings a second: not one is
// lost. Started again it is still drained (state_dir) until `vgate drain
// --undo`, which brings the ECMP route back. The figure beside it: the
// gateway carrying the traffic then, stopped without a drain.
//
//	h1 ── gw1 east (AS65001, multipath) ══ gw2 west-a (AS65002, 169.254.20.1)
//	                                    ══ gw3 west-b (AS65002, 169.254.20.2)
func TestDrainThenStop(t *testing.T) {
	lab, gws := site(t, 3)
	east, wa, wb := gws[0], gws[1], gws[2]
	wa.TunnelAddress = netip.MustParseAddr("169.254.20.1")
	wb.TunnelAddress = netip.MustParseAddr("169.254.20.2")
	wb.Spaces = wa.Spaces
	netlab.LinkBGP(east, wa)
	netlab.LinkBGP(east, wb)
	wb.ASN = wa.ASN
	east.Multipath = true
	for _, w := range []*netlab.Gateway{wa, wb} {
		p := east.Peering(w.Name)
		p.Network = "west"
		p.BGP.ASN = wa.ASN
		p.Spaces = wa.Spaces
	}
	service := netip.MustParseAddr("10.2.200.1")
	for _, w := range []*netlab.Gateway{wa, wb} {
		if out, err := lab.Run(w.Net.GatewayNS, "ip", "addr", "add", service.String()+"/32", "dev", "lo"); err != nil {
			t.Fatalf("%s: %v\n%s", w.Name, err, out)
		}
	}
	start(t, gws...)
	n1 := lab.Network(1)
	bothVia := func() (bool, string) {
		out, _ := lab.Run(n1.GatewayNS, "ip", "route", "show", "10.2.0.0/16", "proto", "76")
		return strings.Contains(out, "dev vg-net2") && strings.Contains(out, "dev vg-net3") && strings.Contains(out, "nexthop"), out
	}
	waitFor(t, "east: 10.2.0.0/16 through both west gateways", 30*time.Second, bothVia)
	if err := lab.WaitPing(n1.HostNS, service, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	carrier := func() *netlab.Gateway {
		tx := func() map[string]uint64 {
			st, err := east.Status()
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]uint64{}
			for _, p := range st.Peerings {
				m[p.Name] = p.TxBytes
			}
			return m
		}
		before := tx()
		if out, err := lab.Run(n1.HostNS, "ping", "-n", "-q", "-c", "100", "-i", "0.01", "-s", "1000", service.String()); err != nil {
			t.Fatalf("ping: %v\n%s", err, out)
		}
		after := tx()
		if after["net2"]-before["net2"] > after["net3"]-before["net3"] {
			return wa
		}
		return wb
	}
	victim := carrier()
	survivor := map[*netlab.Gateway]*netlab.Gateway{wa: wb, wb: wa}[victim]

	// Drain the carrier under traffic, wait for drained, stop it.
	ping := startSteadyPing(lab, n1.HostNS, service, 300) // 15 s
	time.Sleep(time.Second)
	t0 := time.Now()
	out, err := victim.CLI("drain", "--socket", victim.Socket, "--wait", "20s", "--json")
	if err != nil {
		t.Fatalf("vgate drain --wait: %v\n%s", err, out)
	}
	var ds api.DrainStatus
	if err := json.Unmarshal([]byte(out), &ds); err != nil || ds.State != api.Drained || !ds.Persisted {
		t.Fatalf("vgate drain: %v %+v\n%s", err, ds, out)
	}
	drained := time.Since(t0)
	// East routes only through the survivor now, and says why.
	waitVia(t, lab, east, "10.2.0.0/16", survivor.Name, time.Second)
	bs, err := east.BGP()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range bs.Probes {
		if p.Peering == victim.Name && (!p.Draining || !p.Avoiding) {
			t.Errorf("east's probe of %s: draining %v, avoiding %v; want both", victim.Name, p.Draining, p.Avoiding)
		}
	}
	rv, err := east.Routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rv.Routes {
		if r.Prefix.String() == "10.2.0.0/16" && r.Peering == victim.Name && len(r.ASPath) != 1+3 {
			t.Errorf("east's path through the drained %s: AS path %v, want the AS 4 times", victim.Name, r.ASPath)
		}
	}
	if err := victim.Stop(); err != nil {
		t.Fatal(err)
	}
	sent, lost, pout := ping.wait()
	t.Logf("FIGURE drain: %s drained in %v (vgate drain --wait), then stopped: %d of %d pings lost (20/s)", victim.Name, drained.Round(10*time.Millisecond), lost, sent)
	if sent < 250 || lost != 0 {
		t.Errorf("drain then stop: %d of %d pings lost, want 0\n%s", lost, sent, pout)
	}

	// Started again it is still drained: east keeps routing around it.
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, victim.Name+": drained again after its start", 30*time.Second, func() (bool, string) {
		st, err := victim.Status()
		if err != nil || st.Drain == nil {
			return false, "no drain"
		}
		b, _ := json.Marshal(st.Drain)
		return st.Drain.State == api.Drained && st.Drain.Persisted, string(b)
	})
	if ok, out := bothVia(); ok {
		t.Fatalf("east uses the restarted, drained %s:\n%s", victim.Name, out)
	}
	if out, err := victim.CLI("drain", "--undo", "--socket", victim.Socket); err != nil || !strings.Contains(out, "not draining") {
		t.Fatalf("vgate drain --undo: %v\n%s", err, out)
	}
	waitFor(t, "east: both west gateways again after the undrain", 30*time.Second, bothVia)
	if st, _ := victim.Status(); st.Drain != nil {
		t.Errorf("status after --undo: %+v", st.Drain)
	}

	// The figure without a drain: the gateway carrying the traffic now,
	// stopped as it is.
	if err := lab.WaitPing(n1.HostNS, service, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	plain := carrier()
	ping = startSteadyPing(lab, n1.HostNS, service, 100)
	time.Sleep(time.Second)
	stopped := time.Now()
	if err := plain.Stop(); err != nil {
		t.Fatal(err)
	}
	sent, lost, _ = ping.wait()
	t.Logf("FIGURE drain: %s carrying the traffic stopped without a drain: %d of %d pings lost (20/s); east's probe declared it dead %v after the stop began",
		plain.Name, lost, sent, detectedAfter(east, plain.Name, stopped).Round(10*time.Millisecond))
}

// birdPath is one of BIRD's paths to a prefix (`birdc show route <p>
// all`): the protocol it came from, whether it is BIRD's best, and its
// BGP attributes.
type birdPath struct {
	Proto     string
	Best      bool
	ASPath    string
	LocalPref int
	Community string
}

var (
	birdPathRE = regexp.MustCompile(`^(?:\S+)?\s+unicast \[(\S+) [^\]]*\]( \*)?`)
	birdAttrRE = regexp.MustCompile(`^\s+BGP\.(as_path|local_pref|community): ?(.*)$`)
)

// birdPaths is BIRD's paths to p, by protocol name.
func birdPaths(b *netlab.BIRD, p netip.Prefix) (map[string]birdPath, string) {
	out, err := b.Birdc("show", "route", p.String(), "all")
	if err != nil {
		return nil, err.Error()
	}
	paths := map[string]birdPath{}
	var cur *birdPath
	flush := func() {
		if cur != nil {
			paths[cur.Proto] = *cur
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if m := birdPathRE.FindStringSubmatch(l); m != nil {
			flush()
			cur = &birdPath{Proto: m[1], Best: m[2] != ""}
			continue
		}
		m := birdAttrRE.FindStringSubmatch(l)
		if m == nil || cur == nil {
			continue
		}
		switch m[1] {
		case "as_path":
			cur.ASPath = strings.TrimSpace(m[2])
		case "local_pref":
			cur.LocalPref, _ = strconv.Atoi(strings.TrimSpace(m[2]))
		case "community":
			cur.Community = strings.TrimSpace(m[2])
		}
	}
	flush()
	return paths, out
}

// birdUpSince is when BIRD's protocol name last went up (`birdc show
// protocols`): a session reset changes it.
func birdUpSince(t *testing.T, b *netlab.BIRD, name string) string {
	t.Helper()
	out, err := b.Birdc("show", "protocols", name)
	if err != nil {
		t.Fatalf("birdc show protocols %s: %v\n%s", name, err, out)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s+BGP\s+\S+\s+up\s+(\S+(?: \S+)?)\s+Established`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("BIRD's %s is not established:\n%s", name, out)
	}
	return m[1]
}

// sameSince reports whether two of BIRD's "up since" times are one
// session's: BIRD prints them from its monotonic clock converted to wall
// time, so the same session's time can move by a millisecond between two
// reads; a session that came back is seconds later.
func sameSince(a, b string) bool {
	for _, layout := range []string{"15:04:05.000", "2006-01-02 15:04:05.000", "15:04:05"} {
		ta, errA := time.Parse(layout, a)
		tb, errB := time.Parse(layout, b)
		if errA == nil && errB == nil {
			d := ta.Sub(tb)
			return d > -100*time.Millisecond && d < 100*time.Millisecond
		}
	}
	return a == b
}

//	gw1 (vgate, AS65001, 169.254.20.1; 10.1.200.1 on lo) ═══ WireGuard ═══ BIRD 2 (AS65009)
//	gw2 (vgate, AS65002, 169.254.20.2; 10.1.200.1 on lo) ═══ WireGuard ══╝
//
// TestDrainWithBIRD: `vgate drain` toward BIRD 2 with a second path: a
// redundant pair, both gateways announcing 10.1.0.0/16 and serving
// 10.1.200.1. BIRD prefers gw1's path (AS path 65001, lower router ID
// than gw2's 65002 at equal length). gw1 drains: BIRD receives gw1's
// path with the GRACEFUL_SHUTDOWN community (65535,0) and gw1's AS four
// times. Stock BIRD 2 leaves LOCAL_PREF at 100 (it has no RFC 8326
// receiver side), so it is the prepend that makes it prefer gw2's path,
// and its kernel route moves to the gw2 tunnel; with the import filter
// its admin may add (community 65535:0 → LOCAL_PREF 0, loaded by `birdc
// configure`) the path gets LOCAL_PREF 0. `vgate drain --undo` brings
// gw1's plain path back as BIRD's best. No session is reset; BIRD's
// pings to 10.1.200.1, 20/s across all of it, are counted.
func TestDrainWithBIRD(t *testing.T) {
	t.Parallel() // mostly waiting: its own namespaces
	if !netlab.Root() {
		t.Skip(netlab.SkipMessage)
	}
	if missing := netlab.LookBIRD(); len(missing) > 0 {
		t.Skipf("BIRD drain test needs %s (scripts/deps.sh)", strings.Join(missing, ", "))
	}
	lab, gws := site(t, 2)
	gw1, gw2 := gws[0], gws[1]
	n1, n2 := lab.Network(1), lab.Network(2)
	b, err := lab.AddBIRD()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		out, _ := b.Birdc("show", "route", "all")
		out2, _ := b.Birdc("show", "protocols")
		t.Logf("---- BIRD ----\n%s\n%s\n%s", out, out2, tail(b.Log(), 40))
	})
	service := netip.MustParseAddr("10.1.200.1")
	gw1.ASN, gw2.ASN = 65001, 65002
	gw2.Spaces = gw1.Spaces
	gw1.TunnelAddress = netip.MustParseAddr("169.254.20.1")
	gw2.TunnelAddress = netip.MustParseAddr("169.254.20.2")
	tunnel2 := birdTunnel.Prev()
	port2 := b.ListenPort + 1
	if2 := b.IfName + "2"
	pub2, err := b.AddWireGuard("2", port2, tunnel2, gw2.TunnelAddress, netlab.WGPeer{PublicKey: gw2.Pub,
		Endpoint:   fmt.Sprintf("%s:51820", n2.GatewayUnderlay),
		AllowedIPs: []netip.Prefix{n1.Space, netip.PrefixFrom(gw2.TunnelAddress, 32)}, Keepalive: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	space := netip.MustParsePrefix("10.9.0.0/16")
	// probe: off: the test asserts that the drain resets no session; on
	// a loaded host the probe's sub-second verdicts may reset one for
	// reasons of their own.
	gw1.Peerings = append(gw1.Peerings, netlab.Peering{Name: "bird", Network: "bird", PublicKey: b.Pub,
		Endpoint: fmt.Sprintf("%s:%d", b.Underlay, b.ListenPort),
		Spaces:   []netip.Prefix{space}, TunnelAddress: birdTunnel, Keepalive: 5 * time.Second,
		BGP: &netlab.PeerBGP{ASN: 65009, Address: birdTunnel, ProbeOff: true}})
	gw2.Peerings = append(gw2.Peerings, netlab.Peering{Name: "bird", Network: "bird", PublicKey: pub2,
		Endpoint: fmt.Sprintf("%s:%d", b.Underlay, port2),
		Spaces:   []netip.Prefix{space}, TunnelAddress: tunnel2, Keepalive: 5 * time.Second,
		BGP: &netlab.PeerBGP{ASN: 65009, Address: tunnel2, ProbeOff: true}})
	for _, g := range gws {
		if out, err := lab.Run(g.Net.GatewayNS, "ip", "addr", "add", service.String()+"/32", "dev", "lo"); err != nil {
			t.Fatalf("%s: %v\n%s", g.Name, err, out)
		}
	}
	start(t, gw1, gw2)
	if err := b.UpWireGuard(birdTunnel, gw1.TunnelAddress, netlab.WGPeer{PublicKey: gw1.Pub,
		Endpoint:   fmt.Sprintf("%s:51820", n1.GatewayUnderlay),
		AllowedIPs: []netip.Prefix{n1.Space, netip.PrefixFrom(gw1.TunnelAddress, 32)}, Keepalive: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	conf := func(honor bool) string {
		return birdGatewaysConf(birdTunnel, tunnel2, gw1.TunnelAddress, gw2.TunnelAddress, b.IfName, if2, false, honor)
	}
	if err := b.Start(conf(false)); err != nil {
		t.Fatal(err)
	}
	birdIs := func(what string, want func(gw1, gw2 birdPath) bool) {
		t.Helper()
		waitFor(t, "BIRD: 10.1.0.0/16 "+what, 30*time.Second, func() (bool, string) {
			ps, out := birdPaths(b, n1.Space)
			p1, ok1 := ps["gw1"]
			p2, ok2 := ps["gw2"]
			return ok1 && ok2 && want(p1, p2), out
		})
	}
	kernelVia := func(ifName string) {
		t.Helper()
		waitFor(t, "BIRD's kernel: 10.1.0.0/16 through "+ifName, 10*time.Second, func() (bool, string) {
			out, _ := lab.Run(b.NS, "ip", "route", "show", n1.Space.String())
			return strings.Contains(out, "dev "+ifName+" "), out
		})
	}
	birdIs("from gw1 (best) and gw2", func(p1, p2 birdPath) bool {
		return p1.Best && p1.ASPath == "65001" && p1.LocalPref == 100 && p1.Community == "" && p2.ASPath == "65002"
	})
	kernelVia(b.IfName)
	if err := lab.WaitPing(b.NS, service, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	since1, since2 := birdUpSince(t, b, "gw1"), birdUpSince(t, b, "gw2")

	ping := startSteadyPing(lab, b.NS, service, 300) // 15 s
	time.Sleep(time.Second)
	out, err := gw1.CLI("drain", "--socket", gw1.Socket, "--wait", "20s")
	if err != nil || !strings.Contains(out, "drained") {
		t.Fatalf("vgate drain --wait: %v\n%s", err, out)
	}
	birdIs("drained gw1: (65535,0), prepended, LOCAL_PREF untouched; gw2's path best", func(p1, p2 birdPath) bool {
		return !p1.Best && p1.ASPath == "65001 65001 65001 65001" && p1.Community == "(65535,0)" && p1.LocalPref == 100 && p2.Best
	})
	kernelVia(if2)

	// The admin's import filter honours the community: LOCAL_PREF 0,
	// loaded without a session reset.
	if err := b.Reconfigure(conf(true)); err != nil {
		t.Fatal(err)
	}
	birdIs("drained gw1 with the admin's filter: LOCAL_PREF 0", func(p1, p2 birdPath) bool {
		return !p1.Best && p1.Community == "(65535,0)" && p1.LocalPref == 0 && p2.Best && p2.LocalPref == 100
	})

	if out, err := gw1.CLI("drain", "--undo", "--socket", gw1.Socket); err != nil {
		t.Fatalf("vgate drain --undo: %v\n%s", err, out)
	}
	birdIs("undrained: gw1's plain path best again", func(p1, p2 birdPath) bool {
		return p1.Best && p1.ASPath == "65001" && p1.LocalPref == 100 && p1.Community == ""
	})
	kernelVia(b.IfName)
	sent, lost, pout := ping.wait()
	t.Logf("FIGURE drain with BIRD: pings from BIRD to 10.1.200.1 across drain, filter reload and undrain: %d of %d lost (20/s)", lost, sent)
	if sent < 250 {
		t.Errorf("ping sent %d of 300\n%s", sent, pout)
	}
	if s1, s2 := birdUpSince(t, b, "gw1"), birdUpSince(t, b, "gw2"); !sameSince(s1, since1) || !sameSince(s2, since2) {
		t.Errorf("BIRD's sessions were reset: gw1 up since %s -> %s, gw2 %s -> %s", since1, s1, since2, s2)
	}
}
