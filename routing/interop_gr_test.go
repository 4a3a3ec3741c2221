package routing

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
)

// Graceful restart (RFC 4724) of the speaker with FRR and BIRD as
// helpers. The speaker is restarted as `systemctl restart vgate` would
// restart a gateway: its BGP stopped (without NOTIFICATION where
// graceful restart was negotiated), the process ended, a new one started
// 3 s later with the same sessions. What stays meanwhile is what a
// gateway would have to keep: the tunnels (stock WireGuard here) and
// gw1's kernel routes. A host behind gw1 pings the address behind each
// router 20 times a second throughout; a reply needs the router to still
// route to 10.1.0.0/16, the speaker's prefix.
func TestGoBGPGracefulRestartInterop(t *testing.T) {
	gr := 30 * time.Second
	cases := []struct {
		name string
		// peer is the speaker's session config before the restart, again
		// after it (with the restart state and forwarding state bits
		// where the restarted speaker kept forwarding).
		peer, again labPeer
		bfd         *netlab.BFDConf
		routerGR    *netlab.GRConf
		crash       bool // SIGKILL without stopping BGP first
		// kept: whether each router keeps the speaker's route (as
		// stale) through the restart, so that no ping is lost.
		kept map[string]bool
	}{
		// Without graceful restart, and with it and a stop without
		// NOTIFICATION (the restarted speaker's R and F bits clear, as
		// vgate's), are the gateway's own tests with FRR
		// (internal/e2e TestGracefulRestartWithFRR). Crashed (the kernel
		// closes the TCP connection): both helpers keep the routes stale.
		{name: "gr-crash", peer: labPeer{GR: gr}, again: labPeer{GR: gr, Restarting: true}, crash: true,
			kept: map[string]bool{"frr": true, "bird": true}},
		// With BFD the speaker's BFD stops with it: BIRD's `bfd on`
		// takes that BFD down as a failure and flushes the stale
		// routes; FRR, whose session is already waiting for the restart
		// (the TCP close came first), keeps them.
		{name: "gr-bfd", peer: labPeer{GR: gr, BFD: &fastBFD}, again: labPeer{GR: gr, Restarting: true, BFD: &fastBFD},
			bfd: &fastBFD, kept: map[string]bool{"frr": true, "bird": false}},
		// BIRD's `bfd graceful` (and FRR's check-control-plane-failure)
		// make a BFD down restart the session gracefully: kept.
		{name: "gr-bfd-graceful", peer: labPeer{GR: gr, BFD: &fastBFD}, again: labPeer{GR: gr, Restarting: true, BFD: &fastBFD},
			bfd:  &netlab.BFDConf{Interval: fastBFD.Interval, Multiplier: fastBFD.Multiplier, Graceful: true},
			kept: map[string]bool{"frr": true, "bird": true}},
		// A restart longer than the restart time the speaker announced
		// (1 s): the helpers drop the stale routes when it expires...
		{name: "gr-expired", peer: labPeer{GR: time.Second}, again: labPeer{GR: time.Second, Restarting: true},
			kept: map[string]bool{"frr": false, "bird": false}},
		// ... unless long-lived graceful restart (RFC 9494) keeps them,
		// least preferred, for its stale time: FRR only with a stale
		// time of its own configured, BIRD by default.
		{name: "llgr", peer: labPeer{GR: time.Second, LLGR: time.Minute}, again: labPeer{GR: time.Second, LLGR: time.Minute, Restarting: true},
			routerGR: &netlab.GRConf{LongLivedStale: time.Minute}, kept: map[string]bool{"frr": true, "bird": true}},
		{name: "llgr-router-defaults", peer: labPeer{GR: time.Second, LLGR: time.Minute},
			again: labPeer{GR: time.Second, LLGR: time.Minute, Restarting: true}, kept: map[string]bool{"frr": false, "bird": true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			x := newInterop(t, true, true)
			x.startRouters(c.bfd, c.routerGR)
			sp := x.startSpeaker("gr1", c.peer)
			for _, r := range x.routers() {
				x.speakerUp(sp, r, c.bfd != nil, 60*time.Second)
			}
			waitFor(t, "routers hold 10.1.0.0/16", 30*time.Second, func() (bool, string) {
				f, out := x.frrRoute(labSpace)
				b := x.birdRoute(labSpace)
				return f.Found && strings.Contains(b, "10.1.0.0/16"), out + b
			})
			if out, err := x.frr.Vtysh("show bgp neighbors " + labTunnel.String() + " graceful-restart"); err == nil {
				t.Logf("FRR's graceful restart view:\n%s", out)
			}
			for _, r := range x.routers() {
				if err := x.lab.WaitPing(x.n1.HostNS, r.behind, 15*time.Second); err != nil {
					t.Fatalf("h1 cannot reach %s behind %s: %v", r.behind, r.name, err)
				}
			}

			const interval = 50 * time.Millisecond
			const window = 16 * time.Second
			pings := map[string]func() pingResult{}
			for _, r := range x.routers() {
				pings[r.name] = x.ping(x.n1.HostNS, r.behind, interval, window)
			}
			time.Sleep(time.Second)

			// The restart.
			if !c.crash {
				sp.stopBGP(true)
			}
			sp.kill()
			// Past BFD's 0.5 s detection time and the 1 s restart time.
			time.Sleep(2 * time.Second)
			f, fout := x.frrRoute(labSpace)
			bOut := x.birdRoute(labSpace)
			kf, _ := x.lab.Run(x.frr.NS, "ip", "-4", "route", "show", labSpace.String())
			kb, _ := x.lab.Run(x.bird.NS, "ip", "-4", "route", "show", labSpace.String())
			kf, kb = strings.TrimSpace(kf), strings.TrimSpace(kb)
			fn, _ := x.frrNeighbor()
			t.Logf("2 s into the restart: FRR holds 10.1.0.0/16: %v (stale %v), kernel %q; session %s, last reset %q / %q",
				f.Found, f.Stale, kf, fn.BGPState, fn.LastResetDueTo, fn.LastNotification)
			bp, _ := x.bird.Birdc("show", "protocols", "vgate")
			t.Logf("2 s into the restart: BIRD kernel %q, route:\n%s%s", kb, bOut, bp)
			if held := f.Found && f.Stale && kf != ""; held != c.kept["frr"] {
				t.Errorf("FRR holds the speaker's route as stale during the restart: %v, want %v; kernel %q\n%s", held, c.kept["frr"], kf, fout)
			}
			if held := kb != ""; held != c.kept["bird"] {
				t.Errorf("BIRD holds the speaker's route during the restart: %v, want %v\n%s", held, c.kept["bird"], bOut)
			}
			time.Sleep(time.Second)

			sp2 := x.startSpeaker("gr2", c.again)
			for _, r := range x.routers() {
				x.speakerUp(sp2, r, c.bfd != nil, 30*time.Second)
			}
			waitFor(t, "FRR: 10.1.0.0/16 fresh again", 30*time.Second, func() (bool, string) {
				f, out := x.frrRoute(labSpace)
				return f.Found && !f.Stale, out
			})
			lost := map[string]int{}
			for _, r := range x.routers() {
				res := pings[r.name]()
				lost[r.name] = res.sent - res.received
				t.Logf("%s: h1 -> %s across the restart: %d sent, %d received, lost icmp_seq %v",
					c.name, r.behind, res.sent, res.received, res.lostRanges())
			}
			for name, kept := range c.kept {
				if kept && lost[name] > 0 {
					t.Errorf("%s: %d pings through %s lost across the restart, want none", c.name, lost[name], name)
				}
				if !kept && lost[name] == 0 {
					t.Errorf("%s: no ping through %s lost although it dropped the speaker's route: the pings do not see withdrawals", c.name, name)
				}
			}
		})
	}
}

// pingResult is what a ping run saw: its own summary and the sequence
// numbers answered.
type pingResult struct {
	sent, received int
	answered       map[int]bool
}

// lostRanges lists the unanswered sequence numbers as ranges.
func (r pingResult) lostRanges() []string {
	var out []string
	for i := 1; i <= r.sent; i++ {
		if r.answered[i] {
			continue
		}
		j := i
		for j+1 <= r.sent && !r.answered[j+1] {
			j++
		}
		if i == j {
			out = append(out, strconv.Itoa(i))
		} else {
			out = append(out, fmt.Sprintf("%d-%d", i, j))
		}
		i = j
	}
	return out
}

var (
	pingSummaryRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	pingSeqRE     = regexp.MustCompile(`(?m)bytes from .*icmp_seq=(\d+)`)
)

// ping sends window/interval echo requests to dst from ns, one every
// interval (a reply later than 1 s counts as lost), in the background;
// the returned function waits for the last reply and reports.
func (x *interop) ping(ns string, dst netip.Addr, interval, window time.Duration) func() pingResult {
	x.t.Helper()
	log := x.lab.Path(fmt.Sprintf("ping-%s-%d.log", dst, time.Now().UnixNano()))
	p, err := x.lab.Start(ns, log, "ping", "-n", "-W", "1", "-i", strconv.FormatFloat(interval.Seconds(), 'f', 3, 64),
		"-c", strconv.Itoa(int(window/interval)), dst.String())
	if err != nil {
		x.t.Fatal(err)
	}
	return func() pingResult {
		_ = p.Wait() // ping exits 1 when a reply was lost
		b, err := os.ReadFile(log)
		if err != nil {
			x.t.Fatal(err)
		}
		r := pingResult{answered: map[int]bool{}}
		if m := pingSummaryRE.FindStringSubmatch(string(b)); m != nil {
			r.sent, _ = strconv.Atoi(m[1])
			r.received, _ = strconv.Atoi(m[2])
		} else {
			x.t.Errorf("ping %s: no summary:\n%s", dst, b)
		}
		for _, m := range pingSeqRE.FindAllStringSubmatch(string(b), -1) {
			n, _ := strconv.Atoi(m[1])
			r.answered[n] = true
		}
		return r
	}
}
