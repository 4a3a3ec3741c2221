package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/relay"
	"github.com/vgate-project/vgate/internal/netlab"
)

// host1 ── gw1 ══ UDP dropped (nftables) ══ gw2 ── host2
//
//	╲                             ╱
//	 ╰── TLS + WebSocket, TCP 443 ╯
//	      vgate relay (198.18.0.3)
//
// Behind a firewall that allows only HTTPS: with all UDP dropped between
// the two sites the tunnel comes up through the relay from its first
// handshake (TestRelayFirstPacket times it); ping and a 50 MB TCP transfer arrive intact; status shows
// "via relay". The relay restarts: traffic resumes. UDP comes back: the
// direct path is used again within 10 s. A key the relay does not accept
// is refused. The relay runs confined by deploy/vgate-relay.service (only
// CAP_NET_BIND_SERVICE, which it needs for port 443; read-only system; its
// own state directory).
func TestRelayFallback(t *testing.T) {
	lab, gws := site(t, 3)
	g1, g2 := gws[0], gws[1]
	n1, n2, n3 := lab.Network(1), lab.Network(2), lab.Network(3)
	r, sb := newLabRelay(t, lab, n3, g1.Pub, g2.Pub)
	checkRelayNeedsBind(t, sb, r)
	pin := startLabRelay(t, lab, r, sb)
	p12, p21 := g1.PeeringTo(g2), g2.PeeringTo(g1)
	for _, p := range []*netlab.Peering{&p12, &p21} {
		p.RelayURL, p.RelayPin = r.URL(), pin
	}
	g1.Peerings, g2.Peerings = []netlab.Peering{p12}, []netlab.Peering{p21}
	for _, ns := range []string{n1.GatewayNS, n2.GatewayNS} {
		if err := lab.BlockUDP(ns); err != nil {
			t.Fatal(err)
		}
	}
	start(t, g1, g2)

	begin := time.Now()
	if err := lab.WaitPing(n1.HostNS, n2.HostAddr, 45*time.Second); err != nil {
		t.Fatalf("no tunnel through the relay: %v", err)
	}
	t.Logf("FIGURE: tunnel up through the relay %v after start with UDP dropped", time.Since(begin).Round(100*time.Millisecond))
	mustReach(t, lab, n2, n1)
	xfer := time.Now()
	if err := lab.TCPTransfer(n1.HostNS, n2.HostNS, n2.HostAddr, 50<<20); err != nil {
		t.Fatalf("50 MB TCP through the relay: %v", err)
	}
	d := time.Since(xfer)
	t.Logf("FIGURE: 50 MB TCP through the relay in %v (%.0f Mbit/s)", d.Round(10*time.Millisecond), 50*8*1.048576/d.Seconds())
	for _, g := range []*netlab.Gateway{g1, g2} {
		st, err := g.Status()
		if err != nil {
			t.Fatal(err)
		}
		p := st.Peerings[0]
		if p.State != "up" || p.Path != "relay" || p.Relay == nil || p.Relay.State != "connected" || p.Relay.TxPackets == 0 {
			t.Errorf("%s: peering %s (%s), path %q relay %+v, want up via a connected relay", g.Name, p.State, p.Reason, p.Path, p.Relay)
		}
	}
	out, err := g1.CLI("status", "--socket", g1.Socket)
	if err != nil || !strings.Contains(out, "via relay") {
		t.Errorf("vgate status does not say via relay (%v):\n%s", err, out)
	}

	// The relay restarts (same key and certificate from its state_dir).
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := lab.Ping(n1.HostNS, n2.HostAddr, 1); err == nil {
		t.Error("host2 reachable with the relay down and UDP dropped")
	}
	if _, err := r.Start(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	if err := lab.WaitPing(n1.HostNS, n2.HostAddr, 30*time.Second); err != nil {
		t.Fatalf("traffic did not resume after the relay restarted: %v", err)
	}
	t.Logf("FIGURE: traffic resumed %v after the relay restarted", time.Since(restarted).Round(100*time.Millisecond))

	// UDP comes back: the direct path within 10 s, on both sides.
	for _, ns := range []string{n1.GatewayNS, n2.GatewayNS} {
		if err := lab.UnblockUDP(ns); err != nil {
			t.Fatal(err)
		}
	}
	unblocked := time.Now()
	var direct time.Duration
	for {
		s1, err1 := g1.Status()
		s2, err2 := g2.Status()
		if err1 == nil && err2 == nil && s1.Peerings[0].Path == "direct" && s2.Peerings[0].Path == "direct" {
			direct = time.Since(unblocked)
			break
		}
		if time.Since(unblocked) > 20*time.Second {
			t.Fatalf("still on the relay 20 s after UDP came back: %q / %q", s1.Peerings[0].Path, s2.Peerings[0].Path)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("FIGURE: direct path again %v after UDP came back", direct.Round(100*time.Millisecond))
	if direct > 10*time.Second {
		t.Errorf("direct path after %v, want within 10 s", direct)
	}
	if err := lab.Ping(n1.HostNS, n2.HostAddr, 3); err != nil {
		t.Fatalf("ping on the direct path: %v", err)
	}
	st, _ := g1.Status()
	before := st.Peerings[0].Relay.TxPackets
	if err := lab.TCPTransfer(n1.HostNS, n2.HostNS, n2.HostAddr, 8<<20); err != nil {
		t.Fatalf("TCP on the direct path: %v", err)
	}
	st, _ = g1.Status()
	if after := st.Peerings[0].Relay.TxPackets; after-before > 50 {
		t.Errorf("%d datagrams went over the relay on the direct path", after-before)
	}

	// A key the relay does not accept is refused: gw2's is dropped.
	r.Accept = []keys.PublicKey{g1.Pub}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := g2.Status()
		if err == nil && st.Peerings[0].Relay != nil && st.Peerings[0].Relay.State == "refused" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gw2's relay state %+v, want refused", st.Peerings[0].Relay)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(g2.Log(), "relay refused our key") {
		t.Error("gw2 did not log the refusal")
	}
}

// relayUnitFile is the relay's systemd unit the package installs; the
// relay's lab tests run it under exactly that unit's restrictions.
const relayUnitFile = "../../deploy/vgate-relay.service"

// sandboxRelay makes r run confined as deploy/vgate-relay.service confines
// it (netlab.Sandbox). Without the sandbox's tools it says so loudly and
// leaves r unconfined (nil).
func sandboxRelay(t *testing.T, lab *netlab.Lab, r *netlab.Relay) *netlab.Sandbox {
	t.Helper()
	for _, tool := range []string{"setpriv", "unshare", "findmnt", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("NOT CONFINED: %s not installed (util-linux); the relay runs without its unit's sandbox", tool)
			return nil
		}
	}
	unit, err := netlab.ParseUnit(relayUnitFile)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := lab.NewSandbox(unit, "sandbox-relay")
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.ApplyRelay(r); err != nil {
		t.Fatal(err)
	}
	return sb
}

// checkRelayNeedsBind checks that without CAP_NET_BIND_SERVICE the relay
// cannot listen on 443: the one capability its unit gives it is needed.
func checkRelayNeedsBind(t *testing.T, sb *netlab.Sandbox, r *netlab.Relay) {
	t.Helper()
	if sb == nil {
		return
	}
	caps := sb.Caps
	sb.Caps = slices.DeleteFunc(slices.Clone(caps), func(c string) bool { return c == "net_bind_service" })
	defer func() { sb.Caps = caps }()
	if _, err := r.Start(); err == nil {
		t.Fatal("the relay listened on 443 without CAP_NET_BIND_SERVICE")
	} else if !strings.Contains(err.Error(), "listen "+r.Addr+":443") || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("without CAP_NET_BIND_SERVICE the relay failed otherwise than on binding 443: %v", err)
	}
}

// checkRelayConfined checks the running relay against its unit: exactly
// the unit's capabilities, no new privileges, its umask, only its state
// directory writable, /dev without real devices, the lab's files (under
// the host's /tmp) out of sight.
func checkRelayConfined(t *testing.T, lab *netlab.Lab, sb *netlab.Sandbox, r *netlab.Relay) {
	t.Helper()
	if sb == nil {
		return
	}
	unit, pid := sb.Unit, r.Proc().Pid()
	st, want := procCaps(t, unit, pid)
	for _, k := range []string{"CapEff", "CapPrm", "CapBnd", "CapAmb"} {
		if got, err := strconv.ParseUint(st[k], 16, 64); err != nil || got != want {
			t.Errorf("relay pid %d %s = %s, want %016x (%v)", pid, k, st[k], want, unit.Bounding)
		}
	}
	if st["NoNewPrivs"] != "1" || st["Umask"] != fmt.Sprintf("%04o", unit.UMask) {
		t.Errorf("relay pid %d NoNewPrivs %q Umask %q, want 1 and %04o", pid, st["NoNewPrivs"], st["Umask"], unit.UMask)
	}
	script := `for p in / /etc /var/lib "$1" "$2"; do [ -w "$p" ] && echo "rw $p"; done
[ -e /dev/null ] && [ ! -e /dev/net/tun ] && [ ! -e "$3" ] || echo "devices or lab files visible"`
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-m", "--", "sh", "-c", script, "sh",
		unit.ConfigDir(), unit.StateDir(), lab.Dir).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "rw "+unit.StateDir() {
		t.Errorf("in the relay's sandbox: %q, want only %s writable", got, unit.StateDir())
	}
}

// newLabRelay prepares `vgate relay` on 443 in n's gateway namespace,
// accepting accept and confined by its unit (sandboxRelay); its log is
// shown when the test fails.
func newLabRelay(t *testing.T, lab *netlab.Lab, n *netlab.Network, accept ...keys.PublicKey) (*netlab.Relay, *netlab.Sandbox) {
	t.Helper()
	r := lab.NewRelay(n.GatewayNS, n.GatewayUnderlay.String(), 443, vgateBin(t))
	r.Accept = accept
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- relay log ----\n%s", tail(r.Log(), 40))
		}
	})
	return r, sandboxRelay(t, lab, r)
}

// startLabRelay starts r, checks its confinement and returns its pin.
func startLabRelay(t *testing.T, lab *netlab.Lab, r *netlab.Relay, sb *netlab.Sandbox) string {
	t.Helper()
	pin, err := r.Start()
	if err != nil {
		t.Fatal(err)
	}
	checkRelayConfined(t, lab, sb, r)
	return pin
}

// laptop ══ UDP dropped ══ gw1 ── host1
//
//	╲                  ╱
//	 ╰── vgate relay ──╯   (198.18.0.2, accept_gateway: gw1's state_dir,
//	                        confined by deploy/vgate-relay.service)
//
// `vgate connect --relay` behind a firewall that allows only HTTPS: the
// laptop reaches the gateway's point-to-site device through the relay from
// its first handshake (within 1 s of coming up; asserted within 3 s),
// which accepts the keys the gateway publishes (its public-keys.json,
// followed without a signal: the relay starts before the gateway, a client
// added later is accepted); ping and TCP pass; when UDP comes back the
// laptop moves to the direct path within 20 s. `vgate client revoke`
// reaches the relay within a second: the laptop's relay connection is
// dropped. The relay never reads the gateway's config or private key.
func TestRelayLaptop(t *testing.T) {
	lab, gws := site(t, 2)
	g1 := gws[0]
	n1, n2 := lab.Network(1), lab.Network(2)
	g1.Extra = p2sExtra
	if err := os.MkdirAll(g1.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	r, sb := newLabRelay(t, lab, n2)
	r.AcceptGateway = g1.StateDir
	if sb != nil {
		// As on a host running both units: the gateway's state directory,
		// read-only for the relay.
		sb.BindReadOnly(g1.StateDir, "/var/lib/vgate")
	}
	pin := startLabRelay(t, lab, r, sb)
	g1.Extra = p2sExtra + fmt.Sprintf("  relay: { url: %q, pin: %q }\n", r.URL(), pin)
	start(t, g1)
	waitRelayLog(t, r, 1, "relay: accepted keys changed") // the gateway's own key

	conf, err := g1.CLI("client", "add", "lap", "--group", "devs", "--socket", g1.Socket)
	if err != nil {
		t.Fatalf("client add: %v\n%s", err, conf)
	}
	if err := os.WriteFile(lab.Path("lap.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	waitRelayLog(t, r, 2, "relay: accepted keys changed") // the new client, no SIGHUP
	lt, err := lab.AddLaptop(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.BlockUDP(lt.NS); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	proc, err := lt.Connect(vgateBin(t), lab.Path("lap.conf"), "--relay", r.URL(), "--relay-pin", pin)
	if err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- vgate connect log ----\n%s", proc.LogTail(40))
		}
	})
	fastPing(t, lab, lt.NS, n1.HostAddr)
	first := time.Since(up)
	t.Logf("FIGURE: laptop connected through the relay %v after its interface came up (%v after vgate connect started) with UDP dropped",
		first.Round(10*time.Millisecond), time.Since(begin).Round(10*time.Millisecond))
	if first > 3*time.Second {
		t.Errorf("laptop's first packet %v after it came up, want within 1 s (3 s with margin)", first)
	}
	if err := lab.TCPTransfer(lt.NS, n1.HostNS, n1.HostAddr, 8<<20); err != nil {
		t.Fatalf("8 MiB TCP laptop -> host1 through the relay: %v", err)
	}
	st, err := g1.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.P2S == nil || st.P2S.Relay == nil || st.P2S.Relay.State != "connected" || st.P2S.Relay.RxPackets == 0 {
		t.Errorf("point-to-site relay status %+v", st.P2S)
	}
	for deadline := time.Now().Add(3 * time.Second); !strings.Contains(proc.LogTail(100), "path=relay"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) { // it looks once a second
			t.Fatal("vgate connect did not log the relay path")
		}
	}

	if err := lab.UnblockUDP(lt.NS); err != nil {
		t.Fatal(err)
	}
	unblocked := time.Now()
	// Only the laptop probes UDP (the gateway never falls back toward a
	// client), and wireguard-go lets it initiate at most once per 5 s
	// (RekeyTimeout): typically back in ~5 s; on a loaded CI machine a
	// lost probe costs 5 s more, so the bound allows three probes.
	for !strings.Contains(proc.LogTail(100), "path=direct") {
		if time.Since(unblocked) > 25*time.Second {
			t.Fatalf("laptop still on the relay 25 s after UDP came back:\n%s", proc.LogTail(20))
		}
		lab.Ping(lt.NS, n1.HostAddr, 1)
	}
	back := time.Since(unblocked)
	t.Logf("FIGURE: laptop on the direct path %v after UDP came back", back.Round(100*time.Millisecond))
	if back > 20*time.Second+time.Second { // the path is logged once a second
		t.Errorf("direct path after %v, want within 20 s", back)
	}
	if err := lab.Ping(lt.NS, n1.HostAddr, 3); err != nil {
		t.Fatalf("ping on the direct path: %v", err)
	}

	// Revocation reaches the relay within a second, without a signal.
	if n := countLines(r.Log(), "relay: party connected"); n < 2 {
		t.Fatalf("%d parties connected to the relay, want the gateway and the laptop", n)
	}
	disc := countLines(r.Log(), "relay: party disconnected")
	if out, err := g1.CLI("client", "revoke", "lap", "--socket", g1.Socket); err != nil {
		t.Fatalf("client revoke: %v\n%s", err, out)
	}
	revoked := time.Now()
	waitRelayLog(t, r, 1, "relay: key no longer accepted")
	stopped := time.Since(revoked)
	waitRelayLog(t, r, disc+1, "relay: party disconnected")
	gone := time.Since(revoked)
	t.Logf("FIGURE: revoked client no longer forwarded by the relay %v after `vgate client revoke` returned, disconnected after %v",
		stopped.Round(10*time.Millisecond), gone.Round(10*time.Millisecond))
	if gone > time.Second {
		t.Errorf("the relay dropped the revoked client %v after the revocation, want within 1 s", gone)
	}
	if b, err := os.ReadFile(filepath.Join(g1.StateDir, relay.PublicKeysFile)); err != nil || strings.Contains(string(b), g1.Key.Base64()) {
		t.Errorf("the gateway's published keys: %v (or they hold its private key)", err)
	}
}

// waitRelayLog waits up to 10 s until r's log has at least n lines with
// every one of subs, polling every 10 ms.
func waitRelayLog(t *testing.T, r *netlab.Relay, n int, subs ...string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); countLines(r.Log(), subs...) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not log %q %d times within 10 s", subs, n)
		}
	}
}
