package e2e

import (
	"context"
	"encoding/json"
	"net/netip"
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
