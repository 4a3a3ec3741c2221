package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/relay"
	"github.com/vgate-project/vgate/internal/netlab"
)

// The relay's listener attacked from the underlay. Topology of each test:
//
//	host1 ── gw1 ══ UDP dropped ══ gw2 ── host2
//	          ╲                     ╱
//	           ╰── vgate relay ────╯   (net3's namespace, 198.18.0.3:443,
//	                   ▲                confined by deploy/vgate-relay.service)
//	                   │
//	               attacker            (net4's namespace, 198.18.0.4)

// relayPairThrough points gw1's and gw2's peerings at each other through
// relay URL/pin and drops all UDP on both gateways' underlay.
func relayPairThrough(t *testing.T, lab *netlab.Lab, g1, g2 *netlab.Gateway, url, pin string) {
	t.Helper()
	p12, p21 := g1.PeeringTo(g2), g2.PeeringTo(g1)
	for _, p := range []*netlab.Peering{&p12, &p21} {
		p.RelayURL, p.RelayPin = url, pin
	}
	g1.Peerings, g2.Peerings = append(g1.Peerings, p12), append(g2.Peerings, p21)
	for _, g := range []*netlab.Gateway{g1, g2} {
		if err := lab.BlockUDP(g.Net.GatewayNS); err != nil {
			t.Fatal(err)
		}
	}
}

// waitRelayConnected waits until every peering of g that names a relay
// reports it connected, and returns how long that took from since; it
// fails the test (and returns false) after timeout.
func waitRelayConnected(t *testing.T, g *netlab.Gateway, since time.Time, timeout time.Duration) (time.Duration, bool) {
	t.Helper()
	var last string
	for time.Since(since) < timeout {
		st, err := g.Status()
		if err == nil && len(st.Peerings) > 0 {
			ok := true
			for _, p := range st.Peerings {
				if p.Relay != nil && p.Relay.State != "connected" {
					ok = false
					last = fmt.Sprintf("%s: relay %s (%s)", p.Name, p.Relay.State, p.Relay.Error)
				}
			}
			if ok {
				return time.Since(since), true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s: relay not connected %v after start: %s", g.Name, timeout, last)
	return timeout, false
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// One address holds 150 WebSocket upgrades that never answer the hello
// and 400 connections idle after one plain GET /, dialling again whenever
// one ends. The relay's descriptors stay within max_connections and within
// what the per-source cap lets one address hold, its memory within its
// bound, and two gateways behind HTTPS-only firewalls connect to it and
// bring their tunnel up through it meanwhile.
func TestRelayExhaustion(t *testing.T) {
	t.Parallel()
	lab, gws := site(t, 4)
	g1, g2 := gws[0], gws[1]
	n1, n2, n3, n4 := lab.Network(1), lab.Network(2), lab.Network(3), lab.Network(4)
	const maxConns = 200
	r, sb := newLabRelay(t, lab, n3, g1.Pub, g2.Pub)
	r.Extra = fmt.Sprintf("max_connections: %d\n", maxConns)
	pin := startLabRelay(t, lab, r, sb)
	pid := r.Proc().Pid()
	idleFDs, err := netlab.CountFDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	idle, err := netlab.ProcStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	watch := netlab.WatchProc(pid, 100*time.Millisecond)
	flood := lab.StartRelayFlood(netlab.RelayFlood{
		NS: n4.GatewayNS, Relay: netip.AddrPortFrom(n3.GatewayUnderlay, 443), HalfOpen: 150, Alive: 400,
	})
	defer flood.Stop()
	floodStart := time.Now()
	// Past the relay's old 10 s proof timeout: every slot an attacker can
	// take is taken by now.
	time.Sleep(12 * time.Second)
	mid := flood.Stats()
	t.Logf("FIGURE: after 12 s of flood the attacker holds %d connections (at most %d); %d dials, %d upgrades, %d plain answers",
		mid.Held, mid.MaxHeld, mid.Dials, mid.Upgraded, mid.Answered)

	relayPairThrough(t, lab, g1, g2, r.URL(), pin)
	begin := time.Now()
	start(t, g1, g2)
	c1, ok1 := waitRelayConnected(t, g1, begin, 40*time.Second)
	c2, ok2 := waitRelayConnected(t, g2, begin, 40*time.Second)
	t.Logf("FIGURE: under the flood the gateways connected to the relay %v / %v after start", c1.Round(100*time.Millisecond), c2.Round(100*time.Millisecond))
	if ok1 && ok2 {
		if err := lab.WaitPing(n1.HostNS, n2.HostAddr, 45*time.Second); err != nil {
			t.Errorf("no tunnel through the relay under the flood: %v", err)
		} else {
			t.Logf("FIGURE: under the flood the tunnel came up through the relay %v after start (TestRelayFallback's bound: 45 s)", time.Since(begin).Round(100*time.Millisecond))
		}
	}
	// Keep the flood on for 40 s in all, the tunnel carrying pings.
	if rest := 40*time.Second - time.Since(floodStart); rest > time.Second && !t.Failed() {
		p := lab.StartPing(n1.HostNS, n2.HostAddr, 200*time.Millisecond, rest)
		res := p.Wait()
		t.Logf("FIGURE: pings through the relay under the flood: %d/%d answered", res.Received, res.Sent)
		if res.Received < res.Sent*8/10 {
			t.Errorf("only %d of %d pings through the relay under the flood", res.Received, res.Sent)
		}
	}
	st := flood.Stop()
	u := watch()
	t.Logf("FIGURE: flood from one address, %v: %d dials, %d TLS sessions, %d upgrades, %d plain answers, at most %d held at once",
		time.Since(floodStart).Round(time.Second), st.Dials, st.Sessions, st.Upgraded, st.Answered, st.MaxHeld)
	t.Logf("FIGURE: relay descriptors idle %d, at most %d under the flood (max_connections %d); resident memory idle %s, at most %s (VmHWM %s), threads at most %d",
		idleFDs, u.MaxFDs, maxConns, mib(kBytes(idle["VmRSS"])), mib(u.MaxRSS), mib(u.HWM), u.MaxTh)

	if u.MaxFDs > idleFDs+maxConns {
		t.Errorf("relay held %d descriptors, more than max_connections %d + its %d idle ones", u.MaxFDs, maxConns, idleFDs)
	}
	// One source holds at most the per-source cap of unproven connections;
	// the two gateways hold one each (a reconnect may overlap its
	// predecessor for a moment), and the listener closes a refused
	// connection right after accepting it.
	if bound := idleFDs + relayPendingPerSource + 2*2 + 1; u.MaxFDs > bound {
		t.Errorf("relay held %d descriptors under a flood from one address, want at most %d (idle %d + %d per source + gateways)", u.MaxFDs, bound, idleFDs, relayPendingPerSource)
	}
	// The attacker counts a connection until it sees it closed, a moment
	// after the relay has let the next one in.
	if st.MaxHeld > relayPendingPerSource+4 {
		t.Errorf("one address held %d connections past the TLS handshake at once, want at most %d", st.MaxHeld, relayPendingPerSource)
	}
	// The flood holds at most the per-source cap; the two gateways are
	// the parties.
	if add := relayMemory(relayPendingPerSource, 2, relayDefaultQueueBytes); u.HWM > kBytes(idle["VmRSS"])+add {
		t.Errorf("relay peak resident memory %s, want at most %s (idle + %s)", mib(u.HWM), mib(kBytes(idle["VmRSS"])+add), mib(add))
	}
}

// relayPendingPerSource is the relay's default cap on connections from one
// address (IPv4) or /64 (IPv6) that have not proved a key yet.
const relayPendingPerSource = 16

// relayMemory is what the relay may add to its idle resident memory while
// it holds pending connections before their proof and proved parties, by
// the bounds docs/operations.md states: up to 64 KiB per connection before
// its proof, 160 KiB plus its queue (queue_bytes and the message being
// written) after it. The Go heap may grow to twice what is live before
// the collector runs, and 16 MiB more cover the runtime's own growth and
// freed pages not yet returned.
func relayMemory(pending, parties int, queueBytes int64) int64 {
	live := int64(pending)*64<<10 + int64(parties)*(160<<10+queueBytes+64<<10)
	return 2*live + 16<<20
}

// relayDefaultQueueBytes is the relay's default queue_bytes.
const relayDefaultQueueBytes = 1 << 20

func kBytes(s string) int64 {
	var n int64
	fmt.Sscanf(strings.TrimSuffix(s, " kB"), "%d", &n)
	return n << 10
}

// An accepted key (with accept_gateway that is every laptop) sends 64 KiB
// datagrams to itself at 16 MiB/s and never reads, logging in again every
// 2 s without closing what it has (up to 8 connections). The relay frees
// each replaced connection at once and queues at most its byte bound per
// connection, so its memory stays within that bound, and the gateways'
// tunnel through it keeps carrying pings.
func TestRelayQueuePinning(t *testing.T) {
	t.Parallel()
	lab, gws := site(t, 4)
	g1, g2 := gws[0], gws[1]
	n1, n2, n3, n4 := lab.Network(1), lab.Network(2), lab.Network(3), lab.Network(4)
	attacker, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	r, sb := newLabRelay(t, lab, n3, g1.Pub, g2.Pub, attacker.Public())
	pin := startLabRelay(t, lab, r, sb)
	relayPairThrough(t, lab, g1, g2, r.URL(), pin)
	start(t, g1, g2)
	if err := lab.WaitPing(n1.HostNS, n2.HostAddr, 45*time.Second); err != nil {
		t.Fatalf("no tunnel through the relay: %v", err)
	}
	pid := r.Proc().Pid()
	idle, err := netlab.ProcStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	watch := netlab.WatchProc(pid, 100*time.Millisecond)
	const d = 30 * time.Second
	flood := lab.StartRelayQueueFlood(netlab.RelayQueueFlood{
		NS: n4.GatewayNS, URL: r.URL(), Key: attacker, Size: 65535, Rate: 16 << 20, Conns: 8, Every: 2 * time.Second,
	})
	defer flood.Stop()
	res := lab.StartPing(n1.HostNS, n2.HostAddr, 200*time.Millisecond, d).Wait()
	st := flood.Stop()
	u := watch()
	t.Logf("FIGURE: queue pinning for %v: %d logins, %d failed, %d datagrams (%s) sent, %d connections dropped by the relay",
		d, st.Logins, st.Failed, st.Sent, mib(st.SentByte), st.Dropped)
	t.Logf("FIGURE: relay resident memory idle %s, at most %s (VmHWM %s), descriptors at most %d; pings through the relay %d/%d",
		mib(kBytes(idle["VmRSS"])), mib(u.MaxRSS), mib(u.HWM), u.MaxFDs, res.Received, res.Sent)
	if st.Logins < 10 {
		t.Fatalf("the attacker logged in only %d times: no attack", st.Logins)
	}
	if res.Received < res.Sent*8/10 {
		t.Errorf("only %d of %d pings through the relay while a key pinned its queue", res.Received, res.Sent)
	}
	// Three parties: the two gateways and the attacker's one connection
	// (the one it replaces is freed at once); a new login is pending for
	// a moment.
	if add := relayMemory(1, 3, relayDefaultQueueBytes); u.HWM > kBytes(idle["VmRSS"])+add {
		t.Errorf("relay peak resident memory %s, want at most %s (idle + %s)", mib(u.HWM), mib(kBytes(idle["VmRSS"])+add), mib(add))
	}
}

// gw1 pins a malicious relay for one peering (an operator was lured, or a
// relay was taken over). That relay forwards the honest relay's hello to
// gw1 and gw1's proof back, trying to log in at the honest relay as gw1 —
// and so to take gw1's place there, where gw1's tunnel to gw2 runs. The
// proof is bound to gw1's own TLS session and to the relay it pinned, so
// the honest relay refuses it and gw1's tunnel through it keeps working.
func TestRelayChannelBinding(t *testing.T) {
	t.Parallel()
	lab, gws := site(t, 4)
	g1, g2 := gws[0], gws[1]
	n1, n2, n3, n4 := lab.Network(1), lab.Network(2), lab.Network(3), lab.Network(4)
	r, sb := newLabRelay(t, lab, n3, g1.Pub, g2.Pub)
	pin := startLabRelay(t, lab, r, sb)
	fwd, err := lab.StartRelayForwarder(n4.GatewayNS, netip.AddrPortFrom(n4.GatewayUnderlay, 443), r.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	relayPairThrough(t, lab, g1, g2, r.URL(), pin)
	evil, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	g1.Peerings = append(g1.Peerings, netlab.Peering{
		Name: "evil", Network: "evil", PublicKey: evil.Public(),
		Spaces:        []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
		TunnelAddress: netip.MustParseAddr("10.9.255.254"),
		RelayURL:      fwd.URL, RelayPin: fwd.Pin,
	})
	start(t, g1, g2)
	if err := lab.WaitPing(n1.HostNS, n2.HostAddr, 45*time.Second); err != nil {
		t.Fatalf("no tunnel through the relay: %v", err)
	}
	for deadline := time.Now().Add(15 * time.Second); len(fwd.Outcomes()) == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("gw1 never dialled the malicious relay")
		}
	}
	res := lab.StartPing(n1.HostNS, n2.HostAddr, 200*time.Millisecond, 15*time.Second).Wait()
	outs := fwd.Outcomes()
	welcomed, refused := 0, 0
	for _, o := range outs {
		switch {
		case o.Welcome:
			welcomed++
		case o.CloseCode == relay.StatusKeyRefused:
			refused++
		}
	}
	// Each login as gw1 at the honest relay replaces the one before.
	logins := countLines(r.Log(), "relay: party connected", g1.Pub.String())
	t.Logf("FIGURE: forwarded logins as gw1: %d, welcomed %d, refused %d; gw1's key logged in at the honest relay %d times; pings gw1 -> gw2 through it meanwhile %d/%d",
		len(outs), welcomed, refused, logins, res.Received, res.Sent)
	if logins > 2 {
		t.Errorf("gw1's key logged in %d times at the honest relay: its connection there was taken over", logins)
	}
	if welcomed > 0 {
		t.Errorf("the honest relay welcomed a forwarded proof %d of %d times: the malicious relay logged in as gw1", welcomed, len(outs))
	}
	if refused == 0 {
		t.Errorf("the honest relay never refused a forwarded proof: %+v", outs[:min(len(outs), 3)])
	}
	if !strings.Contains(r.Log(), "party refused") || !strings.Contains(r.Log(), g1.Pub.String()) {
		t.Error("the honest relay did not log the refused proof of gw1's key")
	}
	if res.Received < res.Sent*8/10 {
		t.Errorf("only %d of %d pings through the honest relay while the malicious one forwarded gw1's proofs", res.Received, res.Sent)
	}
}

// countLines counts the lines of log that contain every one of subs.
func countLines(log string, subs ...string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			n++
		}
	}
	return n
}
