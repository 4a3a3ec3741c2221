package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
)

// Restart without a client-visible outage. A gateway killed with SIGKILL
// and started again dials its peers from the endpoints it remembered in
// state_dir, so peers that still hold a session with the dead run — which
// the new devices cannot decrypt, and which a peer without a keepalive
// keeps using until its own 15 s timer — get a new session at once.
//
// Each test reports the longest gap between ping replies (10 per second)
// across the kill and restart as a figure; it asserts only a generous
// bound, so that it does not flake on a loaded machine.

// outageBound is the longest gap the tests accept. WireGuard's own timers
// (what a gateway that forgets its peers leaves them with) take 15 s and
// more.
const outageBound = 10 * time.Second

// restartWindow is how long the continuous ping runs in all.
const restartWindow = 25 * time.Second

// pingReplyRE matches a reply line of ping -D: "[unix.micro] 64 bytes from".
var pingReplyRE = regexp.MustCompile(`^\[(\d+\.\d+)\] \d+ bytes from`)

// continuousPing pings dst from ns every 100 ms for restartWindow, in the
// background; wait returns the times of the replies.
func continuousPing(t *testing.T, lab *netlab.Lab, ns string, dst netip.Addr, name string) (wait func() []time.Time) {
	t.Helper()
	log := lab.Path(name + "-ping.log")
	p, err := lab.Start(ns, log, "ping", "-n", "-D", "-i", "0.1", "-W", "1",
		"-w", strconv.Itoa(int(restartWindow/time.Second)), dst.String())
	if err != nil {
		t.Fatal(err)
	}
	return func() []time.Time {
		t.Helper()
		_ = p.Wait() // ping exits 1 when replies were lost
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		var out []time.Time
		for _, l := range strings.Split(string(b), "\n") {
			m := pingReplyRE.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			f, _ := strconv.ParseFloat(m[1], 64)
			out = append(out, time.Unix(0, int64(f*1e9)))
		}
		return out
	}
}

// outage is the longest gap between consecutive replies around the kill
// at killed; ok is false when no reply came after it.
func outage(replies []time.Time, killed time.Time) (gap time.Duration, ok bool) {
	slices.SortFunc(replies, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(replies); i++ {
		if d := replies[i].Sub(replies[i-1]); d > gap {
			gap = d
		}
	}
	return gap, len(replies) > 0 && replies[len(replies)-1].After(killed)
}

// waitRemembered waits until the gateway has written want into its
// endpoints file (every 5 s). A binary without the memory never does: that
// is reported, and the measurement goes on (to take the "before" figure).
func waitRemembered(t *testing.T, g *netlab.Gateway, want string) {
	t.Helper()
	path := filepath.Join(g.StateDir, "endpoints.json")
	deadline := time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Errorf("gateway %s did not remember %q in %s within 12 s:\n%s", g.Name, want, path, b)
}

// killAndRestart kills g with SIGKILL and starts it again at once. It
// returns when the kill happened and how long the new process took until
// its control socket answered.
func killAndRestart(t *testing.T, g *netlab.Gateway) (killed time.Time, startup time.Duration) {
	t.Helper()
	killed = time.Now()
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	return killed, time.Since(t0)
}

// A stock WireGuard laptop (Debian's wireguard-go and wg, no
// PersistentKeepalive) pinging a host behind the gateway.
//
//	lt1 alice (stock, no keepalive)
//	     |
//	198.18.0.0/24 underlay
//	     |
//	gw1 (vgate, P2S on :51821)   <- SIGKILL, start again
//	     |
//	h1 10.1.0.2
func TestRestartP2SStockClient(t *testing.T) {
	if _, err := os.Stat("/usr/bin/wireguard-go"); err != nil {
		t.Skip("Debian's wireguard-go is not installed (scripts/deps.sh installs it)")
	}
	lab, gws := site(t, 1)
	g1, n1 := gws[0], lab.Network(1)
	g1.Extra = `point_to_site:
  listen_port: 51821
  endpoint: 198.18.0.1:51821
  address_pool: [172.16.201.0/24]
  groups:
    - name: devs
      allow: [10.1.0.0/16]
`
	start(t, g1)
	conf, err := g1.CLI("client", "add", "alice", "--group", "devs", "--socket", g1.Socket)
	if err != nil {
		t.Fatalf("client add: %v\n%s", err, conf)
	}
	stock := strings.Replace(conf, "PersistentKeepalive = 25\n", "", 1)
	if stock == conf || strings.Contains(stock, "PersistentKeepalive") {
		t.Fatalf("cannot strip the keepalive from alice's config:\n%s", conf)
	}
	alice, err := lab.AddLaptop(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.UpStock(stock); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitPing(alice.NS, n1.HostAddr, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	waitRemembered(t, g1, alice.Underlay.String())

	wait := continuousPing(t, lab, alice.NS, n1.HostAddr, "alice")
	time.Sleep(2 * time.Second)
	killed, startup := killAndRestart(t, g1)
	gap, ok := outage(wait(), killed)
	t.Logf("FIGURE p2s stock client (no keepalive) after SIGKILL + restart: longest gap between replies %.2f s (gateway start to control socket %.2f s)",
		gap.Seconds(), startup.Seconds())
	if !ok {
		t.Fatalf("alice's traffic did not come back within %v of the restart", restartWindow)
	}
	if gap > outageBound {
		t.Errorf("alice's traffic stopped for %.1f s, want at most %v", gap.Seconds(), outageBound)
	}

	// A clean stop writes the endpoints too (the file is removed first, so
	// only the stop can have written it); the next start dials them.
	mem := filepath.Join(g1.StateDir, "endpoints.json")
	if err := os.Remove(mem); err != nil {
		t.Errorf("remove %s: %v", mem, err)
	}
	wait = continuousPing(t, lab, alice.NS, n1.HostAddr, "alice-stop")
	time.Sleep(2 * time.Second)
	stopped := time.Now()
	if err := g1.Stop(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(mem); err != nil || !strings.Contains(string(b), alice.Underlay.String()) {
		t.Errorf("after a clean stop, %s: %v\n%s", mem, err, b)
	}
	start(t, g1)
	gap, ok = outage(wait(), stopped)
	t.Logf("FIGURE p2s stock client (no keepalive) after a clean stop + start: longest gap between replies %.2f s", gap.Seconds())
	if !ok || gap > outageBound {
		t.Errorf("after a clean stop and start alice's traffic stopped for %.1f s (back: %v), want at most %v", gap.Seconds(), ok, outageBound)
	}
}

// A dial-in-only peering: gw1 has no endpoint for gw2 (and no keepalive);
// gw2 dials gw1. gw1 is killed and started again: it dials gw2 from the
// endpoint it remembered, traffic from h2 (gw2 has nothing to tell it the
// tunnel is dead until its 15 s timer) flows again, routes are back, and
// no state is left over (routes, addresses, interfaces as before).
//
//	h1 10.1.0.2 - gw1 (dial-in only, SIGKILL + start) ══ gw2 (endpoint gw1) - h2 10.2.0.2
func TestRestartSiteToSiteDialIn(t *testing.T) {
	lab, gws := site(t, 2)
	g1, g2 := gws[0], gws[1]
	n1, n2 := lab.Network(1), lab.Network(2)
	netlab.Mesh(g1, g2)
	g1.Peerings[0].Endpoint = ""
	g1.Peerings[0].Keepalive = 0
	start(t, g1, g2)
	mustReach(t, lab, n2, n1)
	mustReach(t, lab, n1, n2)
	waitRemembered(t, g1, n2.GatewayUnderlay.String())

	snapshot := func() string {
		t.Helper()
		var b strings.Builder
		fmt.Fprintf(&b, "routes:\n%s\n", strings.Join(vgateRoutes(t, lab, n1.GatewayNS), "\n"))
		links, err := lab.Run(n1.GatewayNS, "ip", "-o", "link", "show")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range strings.Split(strings.TrimSpace(links), "\n") {
			if f := strings.Fields(l); len(f) > 1 {
				names = append(names, strings.TrimSuffix(f[1], ":"))
			}
		}
		slices.Sort(names)
		fmt.Fprintf(&b, "links: %s\n", strings.Join(names, " "))
		addrs, err := lab.Run(n1.GatewayNS, "ip", "-o", "addr", "show", "scope", "global")
		if err != nil {
			t.Fatal(err)
		}
		lo, err := lab.Run(n1.GatewayNS, "ip", "-o", "addr", "show", "dev", "lo")
		if err != nil {
			t.Fatal(err)
		}
		var as []string
		for _, l := range strings.Split(strings.TrimSpace(addrs+"\n"+lo), "\n") {
			if f := strings.Fields(l); len(f) > 3 {
				as = append(as, f[1]+" "+f[3])
			}
		}
		slices.Sort(as)
		as = slices.Compact(as)
		fmt.Fprintf(&b, "addresses: %s\n", strings.Join(as, ", "))
		return b.String()
	}
	before := snapshot()

	wait := continuousPing(t, lab, n2.HostNS, n1.HostAddr, "h2")
	time.Sleep(2 * time.Second)
	killed, startup := killAndRestart(t, g1)
	gap, ok := outage(wait(), killed)
	t.Logf("FIGURE site-to-site (dial-in-only side restarted, traffic from the far side) after SIGKILL + restart: longest gap between replies %.2f s (gateway start to control socket %.2f s)",
		gap.Seconds(), startup.Seconds())
	if !ok {
		t.Fatalf("h2's traffic did not come back within %v of the restart", restartWindow)
	}
	if gap > outageBound {
		t.Errorf("h2's traffic stopped for %.1f s, want at most %v", gap.Seconds(), outageBound)
	}
	mustReach(t, lab, n1, n2)
	if after := snapshot(); after != before {
		t.Errorf("gateway 1's state after the restart differs:\nbefore\n%s\nafter\n%s", before, after)
	}

	// A corrupt memory never blocks a start: it is warned about, and the
	// peers reconnect on their own timers.
	if err := g1.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(g1.StateDir, "endpoints.json"), []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, g1)
	if !strings.Contains(g1.Log(), "remembered endpoints unreadable") {
		t.Errorf("no warning about the corrupt endpoints file in the log:\n%s", tail(g1.Log(), 20))
	}
	if err := lab.WaitPing(n2.HostNS, n1.HostAddr, 40*time.Second); err != nil {
		t.Fatalf("after a start with a corrupt endpoints file: %v", err)
	}
	waitRemembered(t, g1, n2.GatewayUnderlay.String()) // the torn file is replaced
}

// Two gateways started at the same instant (a power cut at both sites, an
// automated restart everywhere) reach each other, round after round. Both
// initiate at once; crossed initiations replace each other's handshake
// state, and with a persistent keepalive of 5 s (the lab's) wireguard-go
// restarted both handshakes at exactly the same moment every 5 s, so they
// crossed again and again (no session for 15 s and more, about one start
// in five). The shared port holds back an initiation that looks like a
// crossing (gateway/wgbind/crossing.go).
func TestSimultaneousStart(t *testing.T) {
	lab, gws := site(t, 2)
	netlab.Mesh(gws...)
	for _, g := range gws {
		if g.Peerings[0].Keepalive != 5*time.Second {
			t.Fatalf("the lab's keepalive is %v; this test needs 5 s", g.Peerings[0].Keepalive)
		}
		if err := g.WriteConfig(); err != nil {
			t.Fatal(err)
		}
	}
	for round := 1; round <= 10; round++ {
		var procs []*netlab.Proc
		for _, g := range gws {
			p, err := lab.Start(g.Net.GatewayNS, g.LogPath, g.Bin, "run", "--config", g.ConfigPath, "--log-level", "debug")
			if err != nil {
				t.Fatal(err)
			}
			procs = append(procs, p)
		}
		start := time.Now()
		err := lab.WaitPing(lab.Network(1).HostNS, lab.Network(2).HostAddr, 12*time.Second)
		took := time.Since(start)
		if err != nil {
			for _, g := range gws {
				out, _ := lab.Run(g.Net.GatewayNS, "sh", "-c", "ip -s link show; ip route; nft list ruleset; iptables-save 2>/dev/null | head -30; cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/rp_filter; ip neigh")
				st, serr := g.Status()
				t.Logf("---- %s at the failure ----\n%s\nport: %+v %v\npeerings: %+v", g.Name, out, st.Port, serr, st.Peerings)
			}
		}
		for _, p := range procs {
			if serr := p.Stop(); serr != nil {
				t.Logf("stop: %v", serr)
			}
		}
		// A crossing costs one wireguard-go retry (5 s) and the hold-back
		// (up to 1 s); a crossing that recurs costs 5 s more each time.
		if err == nil && took > 9*time.Second {
			err = fmt.Errorf("reachable only after %v: the handshakes crossed more than once", took.Round(10*time.Millisecond))
		}
		if err != nil {
			for _, g := range gws {
				t.Logf("---- log of gateway %s ----\n%s", g.Name, tail(g.Log(), 80))
			}
			t.Fatalf("round %d: both gateways started together: %v", round, err)
		}
		t.Logf("round %d: reachable %v after a simultaneous start", round, took.Round(10*time.Millisecond))
	}
}
