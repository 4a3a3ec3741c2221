package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"

	"github.com/vgate-project/vgate/internal/netlab"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// vgateBin returns the vgate binary under test.
func vgateBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VGATE_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vgate-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "vgate")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/vgate-project/vgate/cmd/vgate").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// site is a lab with n networks and a (not yet started) gateway in each.
func site(t *testing.T, n int) (*netlab.Lab, []*netlab.Gateway) {
	t.Helper()
	lab := netlab.NewT(t, netlab.Networks(n))
	bin := vgateBin(t)
	var gws []*netlab.Gateway
	for i := 1; i <= n; i++ {
		g, err := lab.NewGateway(lab.Network(i), bin)
		if err != nil {
			t.Fatal(err)
		}
		gws = append(gws, g)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, g := range gws {
				t.Logf("---- log of gateway %s ----\n%s", g.Name, tail(g.Log(), 60))
			}
		}
	})
	return lab, gws
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func start(t *testing.T, gws ...*netlab.Gateway) {
	t.Helper()
	for _, g := range gws {
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
	}
}

// mustReach waits until host of a reaches host of b (IPv4 and IPv6).
func mustReach(t *testing.T, lab *netlab.Lab, a, b *netlab.Network) {
	t.Helper()
	if err := lab.WaitPing(a.HostNS, b.HostAddr, 15*time.Second); err != nil {
		t.Fatalf("host %d cannot reach host %d (%s): %v", a.Index, b.Index, b.HostAddr, err)
	}
	if err := lab.WaitPing(a.HostNS, b.HostAddrV6, 10*time.Second); err != nil {
		t.Fatalf("host %d cannot reach host %d over IPv6 (%s): %v", a.Index, b.Index, b.HostAddrV6, err)
	}
}

// vgateRoutes lists the routes with vgate's protocol number in ns.
func vgateRoutes(t *testing.T, lab *netlab.Lab, ns string) []string {
	t.Helper()
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		s, err := lab.Run(ns, "ip", fam, "route", "show", "proto", "76")
		if err != nil {
			t.Fatalf("ip route: %v", err)
		}
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			if l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

var lossRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// pingLoss sends count pings at interval and returns the loss percentage
// (parseLoss).
func pingLoss(lab *netlab.Lab, ns, dst string, count int, interval string) (int, string, error) {
	out, _ := lab.Run(ns, "ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", interval, "-W", "1", dst)
	loss, err := parseLoss(out)
	return loss, out, err
}

// parseLoss reads ping's summary as a loss percentage rounded up: 0 only
// if every reply came, 100 only if none did. (ping's own figure has
// decimals past 1000 pings, e.g. 0.0555556%.)
func parseLoss(out string) (int, error) {
	m := lossRE.FindStringSubmatch(out)
	if m == nil {
		return 100, fmt.Errorf("no ping summary: %s", out)
	}
	sent, _ := strconv.Atoi(m[1])
	got, _ := strconv.Atoi(m[2])
	if sent == 0 {
		return 100, fmt.Errorf("no ping sent: %s", out)
	}
	return (100*(sent-got) + sent - 1) / sent, nil
}

// captureEcho runs `vgate capture --peering peering --count count -w -` on
// g as the admin while host 1 pings host 2, and counts the pcap's packets
// and, among them, the raw IPv4 ICMP ones from host 1 to host 2 (req) and
// back (rep).
func captureEcho(t *testing.T, lab *netlab.Lab, g *netlab.Gateway, peering string, n1, n2 *netlab.Network, count int) (packets, req, rep int) {
	t.Helper()
	data, _ := capturePackets(t, g, peering, count, func() { lab.Ping(n1.HostNS, n2.HostAddr, 1) })
	for _, d := range data {
		packets++
		src, dst, ok := icmp4Addrs(d)
		switch {
		case !ok:
		case src == n1.HostAddr && dst == n2.HostAddr:
			req++
		case src == n2.HostAddr && dst == n1.HostAddr:
			rep++
		}
	}
	return packets, req, rep
}

// capturePackets runs `vgate capture --peering` on g until it has count
// packets, calling ping (one echo) meanwhile, and returns the packets and
// what capture printed on stderr.
func capturePackets(t *testing.T, g *netlab.Gateway, peering string, count int, ping func()) ([][]byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, g.Bin, "capture", "--socket", g.Socket, "--peering", peering,
		"--count", strconv.Itoa(count), "--duration", "50s", "-w", "-")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		default:
			ping()
		}
	}
	if err != nil {
		t.Fatalf("vgate capture --peering %s: %v\n%s", peering, err, stderr.String())
	}
	r, err := pcapgo.NewReader(&stdout)
	if err != nil {
		t.Fatalf("capture output is not pcap: %v (%d bytes; stderr %s)", err, stdout.Len(), stderr.String())
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		out = append(out, data)
	}
	return out, stderr.String()
}

// icmp4Addrs is the source and destination of a raw IPv4 ICMP packet
// (protocol at 9, source at 12, destination at 16).
func icmp4Addrs(data []byte) (src, dst netip.Addr, ok bool) {
	if len(data) < 20 || data[0]>>4 != 4 || data[9] != 1 {
		return src, dst, false
	}
	src, _ = netip.AddrFromSlice(data[12:16])
	dst, _ = netip.AddrFromSlice(data[16:20])
	return src, dst, true
}
