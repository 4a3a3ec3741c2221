package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
)

// metricsAddr is metrics.listen of the gateway under test, inside its own
// namespace (so it never meets the host's 9475).
const metricsAddr = "127.0.0.1:9475"

// scrape fetches /metrics from addr inside namespace ns. The socket is
// made in ns (netlab.InNS) and used from here: no helper program, no
// traffic outside the lab.
func scrape(t *testing.T, ns, addr string) string {
	t.Helper()
	var c net.Conn
	err := netlab.InNS(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("scrape %s in %s: %v", addr, ns, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&b); err != nil {
		t.Fatalf("scrape body: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s\n%s", resp.Status, b.String())
	}
	return b.String()
}

var (
	sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// metric returns the value of the one sample of name whose labels include
// want ("k=v" pairs); ok is false if there is none.
func metric(body, name string, want ...string) (v float64, ok bool) {
	for _, line := range strings.Split(body, "\n") {
		m := sampleRE.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		labels := map[string]string{}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		match := true
		for _, w := range want {
			k, val, _ := strings.Cut(w, "=")
			match = match && labels[k] == val
		}
		if match {
			f, err := strconv.ParseFloat(m[3], 64)
			return f, err == nil
		}
	}
	return 0, false
}

func mustMetric(t *testing.T, body, name string, want ...string) float64 {
	t.Helper()
	v, ok := metric(body, name, want...)
	if !ok {
		t.Fatalf("no sample %s%v in scrape:\n%s", name, want, grepLines(body, "vgate_"))
	}
	return v
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// promtoolCheck runs `promtool check metrics` on a scrape when promtool is
// installed (Debian's prometheus package; scripts/deps.sh installs it).
func promtoolCheck(t *testing.T, body string) {
	t.Helper()
	pt, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: skipping `promtool check metrics` (the promlint unit test still ran)")
		return
	}
	cmd := exec.Command(pt, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// host1 ── gw1 ══ gw2 ── host2        gw1 also declares peering p2 to a
// (metrics on 127.0.0.1:9475 in gw1)   network whose gateway never starts.
//
// The scrape shows every configured peering: net2 up with counters that
// grow with traffic, p2 down with reason no_handshake. A reload refused by
// the tunnel limit shows in reloads and refusals by reason.
func TestMetrics(t *testing.T) {
	lab, gws := site(t, 2)
	netlab.Mesh(gws...)
	gw1 := gws[0]
	gw1.Peerings = append(gw1.Peerings, fakePeerings(t, 1)...) // p2, network remote2
	gw1.MetricsListen = metricsAddr
	start(t, gws...)
	n1, n2 := lab.Network(1), lab.Network(2)
	mustReach(t, lab, n1, n2)

	before := scrape(t, n1.GatewayNS, metricsAddr)
	promtoolCheck(t, before)
	net2 := []string{"peering=net2", "network=net2"}
	p2 := []string{"peering=p2", "network=remote2"}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"vgate_tunnels_limit", nil, 10},
		{"vgate_tunnels_configured", nil, 2},
		{"vgate_tunnels_up", nil, 1},
		{"vgate_peering_up", net2, 1},
		{"vgate_peering_up", p2, 0},
		{"vgate_peering_down_reason", append(p2, "reason=no_handshake"), 1},
		{"vgate_peering_down_reason", append(p2, "reason=handshake_stale"), 0},
		{"vgate_peering_down_reason", append(net2, "reason=no_handshake"), 0},
		{"vgate_peering_last_handshake_timestamp_seconds", p2, 0},
		{"vgate_routes_installed", nil, float64(len(vgateRoutes(t, lab, n1.GatewayNS)))},
		{"vgate_reloads_total", []string{"result=error"}, 0},
		{"vgate_refusals_total", []string{"reason=tunnel_limit"}, 0},
		{"vgate_gateway_info", []string{"gateway=net1"}, 1},
	} {
		if v := mustMetric(t, before, c.name, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	if v := mustMetric(t, before, "vgate_peering_last_handshake_timestamp_seconds", net2...); v < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("last handshake of net2 = %v, want a recent Unix time", v)
	}
	mustMetric(t, before, "vgate_build_info")
	mustMetric(t, before, "go_goroutines")
	mustMetric(t, before, "process_resident_memory_bytes")

	const size = 2 << 20
	if err := lab.TCPTransfer(n1.HostNS, n2.HostNS, n2.HostAddr, size); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, n1.GatewayNS, metricsAddr)
	txB, txA := mustMetric(t, before, "vgate_peering_transmit_bytes_total", net2...), mustMetric(t, after, "vgate_peering_transmit_bytes_total", net2...)
	rxB, rxA := mustMetric(t, before, "vgate_peering_receive_bytes_total", net2...), mustMetric(t, after, "vgate_peering_receive_bytes_total", net2...)
	if txA-txB < size {
		t.Errorf("transmit bytes of net2 grew by %v over a %d-byte transfer", txA-txB, size)
	}
	if rxA <= rxB {
		t.Errorf("receive bytes of net2 did not grow (%v -> %v) though the receiver acked", rxB, rxA)
	}

	// A third peering with max_tunnels 2: refused by the tunnel limit.
	gw1.MaxTunnels = 2
	gw1.Peerings = append(gw1.Peerings, netlab.Peering{Name: "p3", Network: "remote3", PublicKey: fakePeerings(t, 1)[0].PublicKey,
		Spaces: fakePeerings(t, 2)[1].Spaces})
	if err := gw1.Reload(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := gw1.Status()
		if err == nil && st.Reloads.Failed > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refused reload never registered: %+v %v", st.Reloads, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	refused := scrape(t, n1.GatewayNS, metricsAddr)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"vgate_reloads_total", []string{"result=error"}, 1},
		{"vgate_reloads_total", []string{"result=ok"}, 0},
		{"vgate_refusals_total", []string{"reason=tunnel_limit"}, 1},
		{"vgate_refusals_total", []string{"reason=overlap"}, 0},
		{"vgate_last_reload_failed", nil, 1},
		{"vgate_tunnels_configured", nil, 2}, // all or nothing: p3 is not there
		{"vgate_peering_up", net2, 1},
	} {
		if v := mustMetric(t, refused, c.name, c.labels...); v != c.want {
			t.Errorf("after refused reload: %s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	if _, ok := metric(refused, "vgate_peering_up", "peering=p3"); ok {
		t.Error("a refused peering got a series")
	}
	promtoolCheck(t, refused)

	for _, s := range []string{gw1.Key.Base64(), gw1.Key.Hex(), gw1.Pub.String()} {
		if strings.Contains(refused, s) {
			t.Fatal("a key appears in the metrics")
		}
	}
	// The watcher looks once a second: wait for its line.
	upRE := regexp.MustCompile(`msg="tunnel up".*peering=net2`)
	for deadline := time.Now().Add(10 * time.Second); !upRE.MatchString(gw1.Log()) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	log := gw1.Log()
	if !upRE.MatchString(log) {
		t.Errorf("no 'tunnel up' log line for net2:\n%s", tail(log, 30))
	}
	if !strings.Contains(log, `msg="reload refused"`) || !strings.Contains(log, "reason=tunnel_limit") {
		t.Errorf("no 'reload refused' log line with its reason:\n%s", tail(log, 30))
	}
}

// host1 ── gw1 ══ gw2 ── host2
//
// `vgate capture` on gw1 writes the decrypted packets of peering net2 while
// host1 pings host2; tcpdump reads the file back and finds the echo
// requests and replies.
func TestCapture(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump not installed (scripts/deps.sh installs it)")
	}
	lab, gws := site(t, 2)
	netlab.Mesh(gws...)
	start(t, gws...)
	n1, n2 := lab.Network(1), lab.Network(2)
	mustReach(t, lab, n1, n2)

	gw1 := gws[0]
	pcap := lab.Path("net2.pcap")
	const count = 6
	proc, err := lab.Start(n1.GatewayNS, "capture.log", gw1.Bin, "capture", "--socket", gw1.Socket,
		"--peering", "net2", "--count", strconv.Itoa(count), "--duration", "60s", "-w", pcap)
	if err != nil {
		t.Fatal(err)
	}
	// The capture attaches asynchronously: ping until it has its packets.
	deadline := time.Now().Add(30 * time.Second)
	for !proc.Exited() {
		if time.Now().After(deadline) {
			t.Fatalf("capture did not end after %d packets:\n%s", count, proc.LogTail(20))
		}
		lab.Ping(n1.HostNS, n2.HostAddr, 1)
	}
	if err := proc.Wait(); err != nil {
		t.Fatalf("vgate capture: %v\n%s", err, proc.LogTail(20))
	}
	if log := proc.LogTail(5); !strings.Contains(log, fmt.Sprintf("%d packets from peering net2", count)) {
		t.Errorf("capture summary:\n%s", log)
	}
	if fi, err := os.Stat(pcap); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("capture file: %v, mode %v", err, fi.Mode())
	}
	var stderr strings.Builder
	cmd := exec.Command(tcpdump, "-n", "-r", pcap)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s%s", err, out, stderr.String())
	}
	text := string(out)
	req := fmt.Sprintf("IP %s > %s: ICMP echo request", n1.HostAddr, n2.HostAddr)
	rep := fmt.Sprintf("IP %s > %s: ICMP echo reply", n2.HostAddr, n1.HostAddr)
	if !strings.Contains(text, req) || !strings.Contains(text, rep) {
		t.Fatalf("tcpdump -r %s lacks %q or %q:\n%s", filepath.Base(pcap), req, rep, text)
	}
	if lines := strings.Count(strings.TrimSpace(text), "\n") + 1; lines != count {
		t.Errorf("tcpdump read %d packets, want %d:\n%s", lines, count, text)
	}

	// A capture of a peering that does not exist fails with its name.
	if out, err := gw1.CLI("capture", "--socket", gw1.Socket, "--peering", "nope", "-w", lab.Path("x.pcap")); err == nil || !strings.Contains(out, `no peering "nope"`) {
		t.Errorf("capture of an unknown peering: %v\n%s", err, out)
	}
}
