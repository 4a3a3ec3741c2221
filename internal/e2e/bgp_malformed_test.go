package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/vgate-project/vgate/api"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/internal/netlab"
	"github.com/vgate-project/vgate/routing"
)

// evilNeighbor is one of A's peerings whose far end is a plain WireGuard
// interface in the evil namespace, with the raw BGP sender behind it.
type evilNeighbor struct {
	name   string // A's peering
	ifName string // the WireGuard interface in the evil namespace
	tunnel netip.Addr
	asn    uint32
	space  netip.Prefix // A's allow-list for it
	// base is announced after every (re)connect; follow(i) after case i.
	base netip.Prefix
}

func (e evilNeighbor) follow(i int) netip.Prefix {
	a := e.space.Addr().As4()
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{a[0], a[1], byte(10 + i), 0}), 24)
}

//	h1 10.1.0.2 ── gw1 (A, AS65001) ══ vg-net2 ══ gw2 (B, AS65002) ── h2 10.2.0.2
//	                  ║ vg-evil1, vg-evil2        ping -i 0.05 h1 -> h2 all along
//	                  ╚══ WireGuard ══ <prefix>-bird namespace (no BIRD runs in it):
//	                                   Debian wireguard-go, two interfaces
//	                                   <prefix>bird 10.9.255.254 (AS65009, A's "evil1")
//	                                   <prefix>ev2  10.8.255.254 (AS65008, A's "evil2")
//	                                   raw BGP senders dialing 10.1.255.254:179
//	                                   through their tunnels
//
// Regression: GoBGP v3 could be crashed by a configured
// neighbour's malformed UPDATE. Here the neighbours are peerings like any
// other, reached through their WireGuard tunnels; each completes
// OPEN/KEEPALIVE with the AS A expects for it and sends its share of
// netlab.MalformedUpdates in turn, reconnecting when A resets the session
// (two neighbours in parallel, because GoBGP holds a reset session idle
// for 5 s). Per case A either resets the session with a NOTIFICATION,
// which `vgate bgp --json` then names (down code, the NOTIFICATION's code
// and subcode), or (RFC 7606) treats the UPDATE as a withdrawal and keeps
// the session, which a valid UPDATE sent after it proves. Throughout, the
// `vgate run` process of A stays up (same PID, control socket answering),
// its session with B stays established (same since), and a host behind A
// pinging a host behind B loses nothing.
func TestBGPMalformedUpdateThroughTunnel(t *testing.T) {
	if !netlab.Root() {
		t.Skip(netlab.SkipMessage)
	}
	for _, cmd := range []string{"wireguard-go", "wg"} {
		if !haveCommand(cmd) {
			t.Skipf("malformed UPDATE lab test needs %s: apt-get install -y wireguard-go wireguard-tools (or scripts/deps.sh)", cmd)
		}
	}
	lab, gws := site(t, 2)
	a, b := gws[0], gws[1]
	n1, n2 := lab.Network(1), lab.Network(2)
	netlab.LinkBGP(a, b)

	// The BIRD interop namespace with its stock WireGuard interface, and a
	// second one made the same way; the BGP speakers behind them are raw
	// senders, not BIRD.
	ns, err := lab.AddBIRD()
	if err != nil {
		t.Fatal(err)
	}
	evils := []evilNeighbor{
		{name: "evil1", ifName: ns.IfName, tunnel: netip.MustParseAddr("10.9.255.254"), asn: 65009,
			space: netip.MustParsePrefix("10.9.0.0/16"), base: netip.MustParsePrefix("10.9.100.0/24")},
		{name: "evil2", ifName: lab.Prefix + "ev2", tunnel: netip.MustParseAddr("10.8.255.254"), asn: 65008,
			space: netip.MustParsePrefix("10.8.0.0/16"), base: netip.MustParsePrefix("10.8.100.0/24")},
	}
	ev2Key, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	const ev2Port = 51821
	for i, e := range evils {
		pub, port := ns.Pub, ns.ListenPort
		if i == 1 {
			pub, port = ev2Key.Public(), ev2Port
		}
		a.Peerings = append(a.Peerings, netlab.Peering{
			Name: e.name, Network: e.name, PublicKey: pub,
			Endpoint:      fmt.Sprintf("%s:%d", ns.Underlay, port),
			Spaces:        []netip.Prefix{e.space}, // allow-list
			TunnelAddress: e.tunnel,
			Keepalive:     5 * time.Second,
			BGP:           &netlab.PeerBGP{ASN: e.asn, Address: e.tunnel},
		})
	}
	start(t, a, b)
	toA := netlab.WGPeer{
		PublicKey:  a.Pub,
		Endpoint:   fmt.Sprintf("%s:51820", n1.GatewayUnderlay),
		AllowedIPs: []netip.Prefix{n1.Space},
		Keepalive:  5 * time.Second,
	}
	if err := ns.UpWireGuard(evils[0].tunnel, a.TunnelAddress, toA); err != nil {
		t.Fatal(err)
	}
	ev2Log := upSecondWireGuard(t, lab, ns.NS, evils[1], ev2Key, ev2Port, a.TunnelAddress, toA)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, e := range evils {
			if out, err := lab.Run(ns.NS, "wg", "show", e.ifName); err == nil {
				t.Logf("---- wg show %s ----\n%s", e.ifName, out)
			}
		}
		t.Logf("---- wireguard-go log (evil1) ----\n%s", tail(ns.WireGuardLog(), 20))
		if s, err := os.ReadFile(ev2Log); err == nil {
			t.Logf("---- wireguard-go log (evil2) ----\n%s", tail(string(s), 20))
		}
	})

	waitInstalled(t, a, "10.2.0.0/16", "net2")
	waitInstalled(t, b, "10.1.0.0/16", "net1")
	mustReach(t, lab, n1, n2)
	st, err := a.BGP()
	if err != nil {
		t.Fatal(err)
	}
	bSince := neighborOf(st, "net2").Since
	proc := a.Proc()
	pid := proc.Pid()

	// Watch A and its session with B for the whole run.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	var wmu sync.Mutex
	var watchErrs []string
	watchErr := func(s string) {
		wmu.Lock()
		defer wmu.Unlock()
		if len(watchErrs) < 10 {
			watchErrs = append(watchErrs, time.Now().Format("15:04:05.000 ")+s)
		}
	}
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if proc.Exited() {
				watchErr(fmt.Sprintf("gateway A (pid %d) exited", pid))
				return
			}
			st, err := a.BGP()
			if err != nil {
				watchErr(fmt.Sprintf("gateway A control socket: %v", err))
				continue
			}
			if n := neighborOf(st, "net2"); n.State != "established" || !n.Since.Equal(bSince) {
				watchErr(fmt.Sprintf("session with B disturbed: %+v", n))
			}
		}
	})
	// Ping h1 -> h2 in back-to-back batches that each wait for their last
	// reply, so that a loss is never an echo still in flight at the end.
	var sent, received int
	var lossy []string
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			out, _ := lab.Run(n1.HostNS, "ping", "-n", "-q", "-c", "20", "-i", "0.05", "-W", "1", n2.HostAddr.String())
			tx, rx, ok := pingCounts(out)
			if !ok {
				watchErr("ping h1 -> h2: no summary: " + out)
				continue
			}
			sent, received = sent+tx, received+rx
			if rx != tx {
				lossy = append(lossy, time.Now().Format("15:04:05.000 ")+strings.TrimSpace(out))
			}
		}
	})
	stopBG := sync.OnceFunc(func() { close(stop); bg.Wait() })
	t.Cleanup(stopBG)

	// The cases, dealt out to the evil neighbours, which run in parallel.
	cases := netlab.MalformedUpdates(0, netip.Addr{}) // names only
	began := time.Now()
	var resets, kept int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k, e := range evils {
		wg.Go(func() {
			var mine []int
			for i := k; i < len(cases); i += len(evils) {
				mine = append(mine, i)
			}
			nr, nk := runEvil(t, lab, a, ns.NS, e, mine)
			mu.Lock()
			resets, kept = resets+nr, kept+nk
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	stopBG()

	if proc.Exited() || syscall.Kill(pid, 0) != nil {
		t.Errorf("gateway A (pid %d) is gone:\n%s", pid, tail(a.Log(), 40))
	}
	if _, err := a.Status(); err != nil {
		t.Errorf("gateway A's control socket: %v", err)
	}
	if st, err := a.BGP(); err != nil {
		t.Error(err)
	} else if n := neighborOf(st, "net2"); n.State != "established" || !n.Since.Equal(bSince) || n.LastDownCode != "" {
		t.Errorf("A's session with B after the run = %+v", n)
	}
	for _, e := range watchErrs {
		t.Error(e)
	}
	if sent == 0 {
		t.Error("no pings were sent from h1 to h2")
	}
	if received != sent {
		t.Errorf("ping h1 -> h2 during the malformed UPDATEs: %d of %d lost; lossy batches:\n%s",
			sent-received, sent, strings.Join(lossy, "\n"))
	}
	if !t.Failed() && resets+kept != len(cases) {
		t.Errorf("%d of %d cases ran", resets+kept, len(cases))
	}
	t.Logf("%d malformed UPDATEs over %d neighbours in %v: %d reset the session, %d treated as withdraw; gateway A pid %d up throughout; ping h1 -> h2: %d/%d answered",
		len(cases), len(evils), elapsed.Round(100*time.Millisecond), resets, kept, pid, received, sent)
}

// runEvil plays the malformed UPDATEs numbered idx from e's raw sender in
// namespace ns against gateway a, one after the other, and checks each
// outcome. It runs in its own goroutine: it reports with t.Errorf and
// returns at the first failure.
func runEvil(t *testing.T, lab *netlab.Lab, a *netlab.Gateway, ns string, e evilNeighbor, idx []int) (resets, kept int) {
	cases := netlab.MalformedUpdates(e.asn, e.tunnel)
	cfg := netlab.RawBGPConfig{ASN: e.asn, RouterID: e.tunnel, HoldTime: 30}
	remote := netip.AddrPortFrom(a.TunnelAddress, 179)
	var r *netlab.RawBGP
	defer func() {
		if r != nil {
			r.Close()
		}
	}()
	// connect dials A from the evil namespace, through e's tunnel, until
	// A takes the session (it refuses while the probe holds it down or in
	// its idle hold after a reset), then announces e.base and waits until
	// A installs it.
	connect := func(what string) bool {
		if r != nil {
			r.Close()
			r = nil
		}
		var err error
		ok, _ := poll(30*time.Second, func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err = netlab.DialRawBGPInNS(ctx, ns, e.tunnel, remote, cfg)
			return err == nil, ""
		})
		if !ok {
			t.Errorf("%s %s: raw BGP session from %s in %s to %s: %v", e.name, what, e.tunnel, ns, remote, err)
			return false
		}
		if err := r.SendRaw(netlab.ValidUpdate(e.asn, e.tunnel, e.base)); err != nil {
			t.Errorf("%s %s: %v", e.name, what, err)
			return false
		}
		if ok, last := poll(30*time.Second, installed(a, e.base, e.name)); !ok {
			t.Errorf("%s %s: %s not installed at A: %s", e.name, what, e.base, last)
			return false
		}
		return true
	}

	for _, i := range idx {
		c := cases[i]
		what := e.name + " " + c.Name
		caseStart := time.Now()
		if r == nil || !r.Alive() {
			if !connect(c.Name) {
				return
			}
		}
		st, err := a.BGP()
		if err != nil {
			t.Errorf("%s: gateway A: %v", what, err)
			return
		}
		before := neighborOf(st, e.name)
		if before.State != "established" {
			t.Errorf("%s: session before the case = %+v", what, before)
			return
		}
		sentAt := time.Now()
		if err := r.SendRaw(c.Message); err != nil {
			t.Errorf("%s: %v", what, err)
			return
		}
		// A valid UPDATE right after: accepted on the same session if A
		// kept it.
		follow := e.follow(i)
		if err := r.SendRaw(netlab.ValidUpdate(e.asn, e.tunnel, follow)); err != nil {
			// A reset the session: the write can fail (connection reset)
			// before this end's reader has seen it close. The poll below
			// decides: the session must read as reset, or the follow-up
			// must be installed.
			t.Logf("%s: follow-up UPDATE not sent: %v", what, err)
		}
		var outcome string
		if ok, last := poll(20*time.Second, func() (bool, string) {
			if !r.Alive() {
				outcome = "reset"
				return true, ""
			}
			ok, last := installed(a, follow, e.name)()
			if ok && r.Alive() {
				outcome = "kept"
			}
			return outcome != "", last
		}); !ok {
			t.Errorf("%s: neither a session reset nor the follow-up %s installed: %s", what, follow, last)
			return
		}
		v, err := a.Routes()
		if err != nil {
			t.Errorf("%s: gateway A: %v", what, err)
			return
		}
		if mr, ok := routeOf(v, netlab.MalformedPrefix.String(), e.name); ok {
			t.Errorf("%s: the malformed UPDATE's prefix reached A's RIB: %+v", what, mr)
		}

		if outcome == "kept" {
			kept++
			st, err := a.BGP()
			if err != nil {
				t.Errorf("%s: gateway A: %v", what, err)
				return
			}
			n := neighborOf(st, e.name)
			if n.State != "established" || !n.Since.Equal(before.Since) || !n.LastDownAt.Equal(before.LastDownAt) {
				t.Errorf("%s: treated as withdraw, but the session changed: before %+v, after %+v", what, before, n)
			}
			if br, ok := routeOf(v, e.base.String(), e.name); !ok || !br.Installed {
				t.Errorf("%s: treated as withdraw, but %s is gone: %+v", what, e.base, br)
			}
			t.Logf("%-40s treated as withdraw; session kept (%v)", what, time.Since(caseStart).Round(10*time.Millisecond))
			continue
		}

		resets++
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		notif, err := r.Wait(wctx)
		cancel()
		if err != nil || notif == nil {
			t.Errorf("%s: A reset the session without a NOTIFICATION: %v", what, err)
			return
		}
		// `vgate bgp --json` on A names the reason: the NOTIFICATION A
		// sent, with the code and subcode the sender received.
		var n api.NeighborStatus
		if ok, last := poll(20*time.Second, func() (bool, string) {
			out, err := a.CLI("bgp", "--socket", a.Socket, "--json")
			if err != nil {
				return false, fmt.Sprintf("%v: %s", err, out)
			}
			var st api.BGPStatus
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				return false, err.Error()
			}
			n = neighborOf(st, e.name)
			return n.State != "established" && !n.LastDownAt.Before(sentAt.Truncate(time.Second)) &&
					n.DownCode == routing.DownNotificationSent && n.LastDownCode == routing.DownNotificationSent &&
					n.Notification != nil && n.Notification.Direction == routing.NotificationSent &&
					n.Notification.Code == notif.Code && n.Notification.Subcode == notif.Subcode && n.LastDown != "",
				fmt.Sprintf("%+v (notification %+v)", n, n.Notification)
		}); !ok {
			t.Errorf("%s: `vgate bgp --json` on A does not say why the session went down (sender got NOTIFICATION code %d subcode %d): %s",
				what, notif.Code, notif.Subcode, last)
			return
		}
		// The reset session's routes leave A's RIB.
		if ok, last := poll(20*time.Second, func() (bool, string) {
			v, err := a.Routes()
			if err != nil {
				return false, err.Error()
			}
			_, ok := routeOf(v, e.base.String(), e.name)
			return !ok, fmt.Sprintf("%+v", v.Routes)
		}); !ok {
			t.Errorf("%s: %s kept after the reset: %s", what, e.base, last)
			return
		}
		t.Logf("%-40s reset: NOTIFICATION code %d subcode %d; A: %s %q (%v)",
			what, notif.Code, notif.Subcode, n.DownCode, n.LastDown, time.Since(caseStart).Round(10*time.Millisecond))
	}
	// A still takes the neighbour's sessions and routes.
	connect("after its cases")
	return resets, kept
}

// installed is a poll condition: a's `vgate routes` shows prefix from
// peering installed.
func installed(a *netlab.Gateway, prefix netip.Prefix, peering string) func() (bool, string) {
	return func() (bool, string) {
		v, err := a.Routes()
		if err != nil {
			return false, err.Error()
		}
		r, ok := routeOf(v, prefix.String(), peering)
		return ok && r.Installed, fmt.Sprintf("%+v", v.Routes)
	}
}

// poll calls cond until it holds or timeout passes and returns whether it
// held and cond's last note. Unlike waitFor it may run in any goroutine.
func poll(timeout time.Duration, cond func() (bool, string)) (bool, string) {
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return true, ""
		}
		if time.Now().After(deadline) {
			return false, last
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// upSecondWireGuard gives the namespace ns a second stock WireGuard
// interface (wireguard-go configured with wg(8)) for e, with key and
// listen port, peered with A (remote is A's tunnel address). The address
// e.tunnel is a plain /32; a source rule sends everything from it (the
// raw sender's session, the replies to A's probe) through this interface,
// since the first interface already owns the connected route to remote.
// wireguard-go is a lab process (ended by PID at cleanup) and the
// interface goes with it. It returns wireguard-go's log path.
func upSecondWireGuard(t *testing.T, lab *netlab.Lab, ns string, e evilNeighbor, key keys.PrivateKey, port int, remote netip.Addr, peer netlab.WGPeer) string {
	t.Helper()
	keyPath := lab.Path(e.name + "-wg.key")
	if err := os.WriteFile(keyPath, []byte(key.Base64()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := lab.Path(e.name + "-wireguard-go.log")
	p, err := lab.Start(ns, logPath, "wireguard-go", "-f", e.ifName)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := poll(10*time.Second, func() (bool, string) {
		_, err := os.Stat("/var/run/wireguard/" + e.ifName + ".sock")
		return err == nil || p.Exited(), ""
	}); !ok || p.Exited() {
		t.Fatalf("wireguard-go %s did not start:\n%s", e.ifName, p.LogTail(20))
	}
	allowed := make([]string, len(peer.AllowedIPs))
	for i, a := range peer.AllowedIPs {
		allowed[i] = a.String()
	}
	table := "108"
	for _, cmd := range [][]string{
		{"wg", "set", e.ifName, "private-key", keyPath, "listen-port", strconv.Itoa(port),
			"peer", peer.PublicKey.String(), "endpoint", peer.Endpoint,
			"allowed-ips", strings.Join(allowed, ","),
			"persistent-keepalive", strconv.Itoa(int(peer.Keepalive / time.Second))},
		{"ip", "addr", "add", e.tunnel.String() + "/32", "dev", e.ifName},
		{"ip", "link", "set", e.ifName, "mtu", "1420", "up"},
		{"ip", "route", "add", remote.String() + "/32", "dev", e.ifName, "table", table},
		{"ip", "rule", "add", "from", e.tunnel.String(), "table", table},
	} {
		if out, err := lab.Run(ns, cmd...); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
	}
	return logPath
}

var pingCountsRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// pingCounts reads the echo requests sent and replies received from a
// ping summary.
func pingCounts(out string) (tx, rx int, ok bool) {
	m := pingCountsRE.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, false
	}
	tx, _ = strconv.Atoi(m[1])
	rx, _ = strconv.Atoi(m[2])
	return tx, rx, true
}

// haveCommand reports whether cmd is in PATH or in the sbin directories a
// non-login root shell may lack.
func haveCommand(cmd string) bool {
	if _, err := exec.LookPath(cmd); err == nil {
		return true
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if st, err := os.Stat(dir + "/" + cmd); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return true
		}
	}
	return false
}
