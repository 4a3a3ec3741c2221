package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/internal/netlab"
)

// TestBGPWatchdog: a session that cannot come up while its tunnel works
// is started afresh every 30 s by the session watchdog, on both ends, the
// listening one too, and comes up as soon as it can.
//
//	gw1 (10.1.255.254, listens) ══ tunnel ══ gw2 (10.2.255.254, dials)
//	                                         nftables in gw2: TCP port 179 dropped
//
// With BGP's TCP dropped in gw2's namespace (the tunnel and its probe
// untouched) nothing ends the wait: gw1 listens for a dial that never
// arrives, gw2's dials time out. 30 s on, each gateway logs one warning,
// its `vgate bgp` and vgate_bgp_session_recoveries_total count the reset;
// with the rule gone the session is established.
func TestBGPWatchdog(t *testing.T) {
	lab, gws := site(t, 2)
	gw1, gw2 := gws[0], gws[1]
	netlab.LinkBGP(gw1, gw2)
	gw1.MetricsListen, gw2.MetricsListen = metricsAddr, metricsAddr
	ns2 := gw2.Net.GatewayNS
	for _, c := range [][]string{
		{"add", "table", "inet", "nobgp"},
		{"add", "chain", "inet", "nobgp", "nobgpout", "{ type filter hook output priority 0 ; }"},
		{"add", "chain", "inet", "nobgp", "nobgpin", "{ type filter hook input priority 0 ; }"},
		{"add", "rule", "inet", "nobgp", "nobgpout", "tcp", "dport", "179", "drop"},
		{"add", "rule", "inet", "nobgp", "nobgpin", "tcp", "sport", "179", "drop"},
	} {
		if out, err := lab.Run(ns2, append([]string{"nft"}, c...)...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	start(t, gw1, gw2)
	sides := []struct {
		g    *netlab.Gateway
		peer string
	}{{gw1, "net2"}, {gw2, "net1"}}
	t0 := time.Now()
	waitFor(t, "both tunnels answer the probe", 30*time.Second, func() (bool, string) {
		for _, s := range sides {
			st, err := s.g.BGP()
			if err != nil || len(st.Probes) != 1 || !st.Probes[0].Alive {
				return false, fmt.Sprintf("%s: %+v %v", s.g.Name, st.Probes, err)
			}
		}
		return true, ""
	})
	// The bound is 30 s from when the watchdog first saw the session
	// down with its tunnel answering; a busy machine may take longer to
	// act on it, never shorter.
	for _, s := range sides {
		waitFor(t, s.g.Name+": the watchdog started the session afresh", 60*time.Second, func() (bool, string) {
			st, err := s.g.BGP()
			if err != nil {
				return false, err.Error()
			}
			n := neighborOf(st, s.peer)
			return n.Recoveries >= 1, fmt.Sprintf("%+v", n)
		})
		if d := time.Since(t0); d < 30*time.Second {
			t.Errorf("%s: reset %v after the tunnel answered, before the 30s bound", s.g.Name, d.Round(time.Second))
		}
		n, _ := established(t, s.g, s.peer)
		if n.State == api.SessionEstablished {
			t.Fatalf("%s: established with BGP's TCP dropped: %+v", s.g.Name, n)
		}
	}
	gw1Passive := false
	if st, err := gw1.BGP(); err == nil {
		gw1Passive = neighborOf(st, "net2").Passive
	}
	if !gw1Passive {
		t.Errorf("gw1 (the lower tunnel address) does not listen: the watchdog's reset of a listening end is not what ran")
	}
	if out, err := lab.Run(ns2, "nft", "delete", "table", "inet", "nobgp"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, s := range sides {
		waitFor(t, s.g.Name+": established once BGP's TCP passes", 45*time.Second, func() (bool, string) {
			n, ok := established(t, s.g, s.peer)
			return ok, fmt.Sprintf("%+v", n)
		})
		// One warning for the stretch, whatever the number of resets.
		if got := strings.Count(s.g.Log(), `level=WARN msg="bgp session started afresh by the watchdog"`); got != 1 {
			t.Errorf("%s: %d watchdog warnings, want 1", s.g.Name, got)
		}
		st, err := s.g.BGP()
		if err != nil {
			t.Fatal(err)
		}
		n := neighborOf(st, s.peer)
		body := metricsOf(t, s.g)
		if v := mustMetric(t, body, "vgate_bgp_session_recoveries_total", "peering="+s.peer); v < 1 || uint64(v) != n.Recoveries {
			t.Errorf("%s: vgate_bgp_session_recoveries_total = %v, vgate bgp says %d", s.g.Name, v, n.Recoveries)
		}
		out, err := s.g.CLI("bgp", "--socket", s.g.Socket)
		if err != nil || !strings.Contains(out, "started afresh") {
			t.Errorf("%s: vgate bgp does not show the resets (%v):\n%s", s.g.Name, err, out)
		}
		t.Logf("FIGURE %s: %d watchdog reset(s) while BGP's TCP was dropped", s.g.Name, n.Recoveries)
	}
}
