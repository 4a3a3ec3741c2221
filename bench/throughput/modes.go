package main

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
)

const (
	listenPort  = 51820
	tunnelWait  = 15 * time.Second
	wgMTU       = "1420"
	uapiDir     = "/var/run/wireguard"
	wireguardGo = "golang.zx2c4.com/wireguard"
)

// setupMode builds the lab for m and starts whatever forwards between the
// two sites, then waits until host1 reaches host2 and iperf3 answers.
func setupMode(ctx context.Context, m *ModeRun, o options, tmp string) error {
	l, err := netlab.New("")
	if err != nil {
		return err
	}
	m.lab = l
	l.KeepDir = o.keepFiles
	nets, err := l.AddNetworks(2 + relayNetworks(m.Mode)) // relay.go
	if err != nil {
		return err
	}
	n1, n2 := nets[0], nets[1]
	m.hostA, m.dst = n1.HostNS, n2.HostAddr.String()

	switch m.Mode {
	case "plain":
		err = l.RoutePlain(n1, n2)
	case "wggo":
		m.Binary = o.wggo
		if m.Binary == "" {
			m.Binary, err = buildWireguard(ctx, tmp)
			if err != nil {
				return err
			}
		}
		m.Version = binVersion(m.Binary)
		err = setupWG(m, n1, n2)
	case "debian":
		m.Binary = o.debianWG
		m.Version = binVersion(m.Binary)
		err = setupWG(m, n1, n2)
	case "vgate", "vgate0":
		bin := o.vgate
		if m.Mode == "vgate0" {
			bin = o.vgate0
		}
		m.Binary, err = filepath.Abs(bin)
		if err == nil {
			err = setupVgate(m, n1, n2)
		}
	case "nat":
		m.Binary, err = filepath.Abs(o.vgate)
		if err == nil {
			err = setupVgateNAT(m, n1, n2)
		}
	case "vgate-relay", "vgate0-relay":
		bin := o.vgate
		if m.Mode == "vgate0-relay" {
			bin = o.vgate0
		}
		m.Binary, err = filepath.Abs(bin)
		if err == nil {
			err = setupVgateRelay(m, n1, n2, nets[2]) // relay.go
		}
	case "ipsec":
		m.Binary, err = filepath.Abs(o.vgate)
		if err == nil {
			err = setupIPsec(m, n1, n2, false)
		}
	case "swan":
		m.Binary = "/usr/lib/ipsec/charon"
		err = setupIPsec(m, n1, n2, true)
	}
	if err != nil {
		return err
	}
	wait := tunnelWait
	if relayNetworks(m.Mode) > 0 {
		wait = relayWait
	}
	if err := l.WaitPing(n1.HostNS, netip.MustParseAddr(m.dst), wait); err != nil {
		return withLogs(err, m.gws)
	}
	if _, err := l.Start(n2.HostNS, "iperf3-server.log", "iperf3", "-s"); err != nil {
		return err
	}
	// Warm up (and wait for the server to listen).
	for try := 0; ; try++ {
		_, err := iperf(ctx, l, m.hostA, m.dst, 1, time.Second)
		if err == nil {
			return nil
		}
		if try == 20 || ctx.Err() != nil {
			return withLogs(fmt.Errorf("iperf3 warm-up: %w", err), m.gws)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func closeMode(m *ModeRun, keep bool) {
	if m.lab == nil {
		return
	}
	if err := m.lab.Close(); err != nil {
		logf("%s: cleanup: %v", m.Mode, err)
	}
	if keep {
		logf("%s: files kept in %s", m.Mode, m.lab.Dir)
	}
	// wireguard-go removes its UAPI socket on a clean exit; not after SIGKILL.
	for _, ifn := range m.uapi {
		os.Remove(filepath.Join(uapiDir, ifn+".sock"))
	}
	m.lab = nil
}

func withLogs(err error, ps []*netlab.Proc) error {
	var b strings.Builder
	b.WriteString(err.Error())
	for _, p := range ps {
		state := "running"
		if p.Exited() {
			state = "EXITED: " + fmt.Sprint(p.Wait())
		}
		fmt.Fprintf(&b, "\n--- %s in %s (%s), %s:\n%s", strings.Join(p.Args, " "), p.NS, state, p.LogPath, p.LogTail(15))
	}
	return errors.New(b.String())
}

type keyPair struct{ priv, pub string }

func genKey() (keyPair, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return keyPair{}, err
	}
	enc := base64.StdEncoding.EncodeToString
	return keyPair{enc(k.Bytes()), enc(k.PublicKey().Bytes())}, nil
}

// siteKeys writes a private key file per gateway (mode 0600) and returns the
// pairs and file names.
func siteKeys(l *netlab.Lab, nets ...*netlab.Network) ([]keyPair, []string, error) {
	var kps []keyPair
	var files []string
	for _, n := range nets {
		kp, err := genKey()
		if err != nil {
			return nil, nil, err
		}
		f := l.Path(fmt.Sprintf("gw%d.key", n.Index))
		if err := os.WriteFile(f, []byte(kp.priv+"\n"), 0o600); err != nil {
			return nil, nil, err
		}
		kps, files = append(kps, kp), append(files, f)
	}
	return kps, files, nil
}

// setupWG runs m.Binary (a wireguard-go) on both gateways, configured with
// wg(8), with routes to the far LAN over the tunnel.
func setupWG(m *ModeRun, n1, n2 *netlab.Network) error {
	if _, err := os.Stat(m.Binary); err != nil {
		return err
	}
	l := m.lab
	kps, keyFiles, err := siteKeys(l, n1, n2)
	if err != nil {
		return err
	}
	nets := []*netlab.Network{n1, n2}
	for i, n := range nets {
		peer, peerKey := nets[1-i], kps[1-i].pub
		// UAPI sockets live in /var/run/wireguard, shared by all
		// namespaces: the interface name must be unique on the machine.
		ifn := fmt.Sprintf("%sw%d", l.Prefix, n.Index)
		p, err := l.Start(n.GatewayNS, fmt.Sprintf("%s-gw%d.log", m.Mode, n.Index),
			"env", "WG_PROCESS_FOREGROUND=1", m.Binary, "-f", ifn)
		if err != nil {
			return err
		}
		m.gws = append(m.gws, p)
		m.uapi = append(m.uapi, ifn)
		sock := filepath.Join(uapiDir, ifn+".sock")
		for deadline := time.Now().Add(5 * time.Second); ; {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			if p.Exited() || time.Now().After(deadline) {
				return withLogs(fmt.Errorf("%s did not open %s", m.Binary, sock), m.gws)
			}
			time.Sleep(20 * time.Millisecond)
		}
		steps := [][]string{
			{"wg", "set", ifn, "private-key", keyFiles[i], "listen-port", strconv.Itoa(listenPort),
				"peer", peerKey, "endpoint", fmt.Sprintf("%s:%d", peer.GatewayUnderlay, listenPort),
				"allowed-ips", peer.Space.String(), "persistent-keepalive", "25"},
			{"ip", "link", "set", ifn, "mtu", wgMTU, "up"},
			{"ip", "route", "add", peer.Space.String(), "dev", ifn},
		}
		for _, s := range steps {
			if _, err := l.Run(n.GatewayNS, s...); err != nil {
				return err
			}
		}
	}
	return nil
}

// setupVgate runs `vgate run --config F` on both gateways, with configs
// rendered by netlab.Gateway (a peering each way, static routes).
func setupVgate(m *ModeRun, n1, n2 *netlab.Network) error {
	gws, err := vgatePair(m, n1, n2)
	if err != nil {
		return err
	}
	netlab.Mesh(gws...)
	return startVgates(m, gws)
}

// setupVgateNAT is setupVgate with NAT rules on gw1's peering (docs/nat.md):
// site 2's 10.2.0.0/16 is shown to site 1 as 100.102.0.0/16 (ingress) and
// site 1's 10.1.0.0/16 to site 2 as 100.101.0.0/16 (egress), so every
// packet gets both addresses translated at gw1's seam, each way.
func setupVgateNAT(m *ModeRun, n1, n2 *netlab.Network) error {
	gws, err := vgatePair(m, n1, n2)
	if err != nil {
		return err
	}
	netlab.Mesh(gws...)
	p := &gws[0].Peerings[0]
	p.TunnelAddress = netip.MustParseAddr("100.102.255.254")
	p.NAT = "      ingress:\n        - { internal: 10.2.0.0/16, external: 100.102.0.0/16 }\n" +
		"      egress:\n        - { internal: 10.1.0.0/16, external: 100.101.0.0/16 }\n"
	q := &gws[1].Peerings[0]
	q.Spaces = []netip.Prefix{netip.MustParsePrefix("100.101.0.0/16")}
	q.TunnelAddress = netip.MustParseAddr("100.101.255.254")
	m.dst = "100.102.0.2"
	return startVgates(m, gws)
}

func startVgates(m *ModeRun, gws []*netlab.Gateway) error {
	for _, g := range gws {
		if err := g.WriteConfig(); err != nil {
			return err
		}
		// Started here rather than with g.Start, which turns on debug logs.
		// With -cpuprofile, each gateway serves pprof on a unix socket
		// (VGATE_DEBUG_PPROF) that measureRound reads during iperf3.
		sock := m.lab.Path(g.Name + "-pprof.sock")
		m.pprof = append(m.pprof, sock)
		p, err := m.lab.Start(g.Net.GatewayNS, g.LogPath, "env", "VGATE_DEBUG_PPROF="+sock, g.Bin, "run", "--config", g.ConfigPath)
		if err != nil {
			return err
		}
		m.gws = append(m.gws, p)
		m.vgws = append(m.vgws, g)
	}
	return nil
}

// buildWireguard builds wireguard-go at the version go.mod pins.
func buildWireguard(ctx context.Context, tmp string) (string, error) {
	out := filepath.Join(tmp, "wireguard-go")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	logf("building %s (version from go.mod)", wireguardGo)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, wireguardGo)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w: %s (run from the vgate module)", wireguardGo, err, b)
	}
	return out, nil
}

func binVersion(bin string) string {
	b, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if strings.Contains(bin, "wireguard-go") && !strings.HasPrefix(bin, "/usr/") {
		if v, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", wireguardGo).Output(); err == nil {
			line += " (module " + strings.TrimSpace(string(v)) + ")"
		}
	}
	return line
}

type iperfResult struct {
	gbps        float64
	retransmits int
}

// iperf runs an iperf3 TCP client in ns against dst and parses its -J output.
func iperf(ctx context.Context, l *netlab.Lab, ns, dst string, streams int, d time.Duration) (iperfResult, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	out, runErr := l.RunContext(ctx, ns, "iperf3", "-c", dst, "-t", strconv.Itoa(secs), "-P", strconv.Itoa(streams), "-J")
	var j struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	start, end := strings.IndexByte(out, '{'), strings.LastIndexByte(out, '}')
	if start < 0 || end < start {
		if runErr != nil {
			return iperfResult{}, runErr
		}
		return iperfResult{}, fmt.Errorf("iperf3: no JSON in output: %.300s", out)
	}
	if err := json.Unmarshal([]byte(out[start:end+1]), &j); err != nil {
		return iperfResult{}, fmt.Errorf("iperf3 JSON: %w", err)
	}
	if j.Error != "" {
		return iperfResult{}, fmt.Errorf("iperf3: %s", j.Error)
	}
	if runErr != nil {
		return iperfResult{}, runErr
	}
	return iperfResult{gbps: j.End.SumReceived.BitsPerSecond / 1e9, retransmits: j.End.SumSent.Retransmits}, nil
}

// pingUnderLoad pings dst from ns every 20 ms for d and returns each
// reply's RTT in ms (lost probes are left out; loss shows in their count).
func pingUnderLoad(ctx context.Context, l *netlab.Lab, ns, dst string, d time.Duration) ([]float64, error) {
	n := int(d / (20 * time.Millisecond))
	ctx, cancel := context.WithTimeout(ctx, d+10*time.Second)
	defer cancel()
	out, err := l.RunContext(ctx, ns, "ping", "-n", "-c", strconv.Itoa(n), "-i", "0.02", "-W", "1", dst)
	var rtts []float64
	for _, mm := range rttEachRE.FindAllStringSubmatch(out, -1) {
		if v, perr := strconv.ParseFloat(mm[1], 64); perr == nil {
			rtts = append(rtts, v)
		}
	}
	if len(rtts) == 0 {
		return nil, fmt.Errorf("ping under load: no replies (%v): %.300s", err, out)
	}
	return rtts, nil
}

var rttEachRE = regexp.MustCompile(`time=([0-9.]+) ms`)

// percentile is the p-th percentile (0..100, nearest rank) of v.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// cpuProfile fetches a CPU profile of secs seconds from a gateway's
// VGATE_DEBUG_PPROF socket into path.
func cpuProfile(ctx context.Context, sock, path string, secs int) error {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://pprof/debug/pprof/profile?seconds=%d", secs), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof %s: %s", sock, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

var rttRE = regexp.MustCompile(`= [0-9.]+/([0-9.]+)/[0-9.]+/[0-9.]+ ms`)

// pingRTT returns the average RTT in ms of n pings from ns to dst.
func pingRTT(ctx context.Context, l *netlab.Lab, ns, dst string, n int) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(n)*time.Second+10*time.Second)
	defer cancel()
	out, err := l.RunContext(ctx, ns, "ping", "-n", "-q", "-c", strconv.Itoa(n), "-i", "0.1", "-W", "1", dst)
	if err != nil {
		return 0, err
	}
	mm := rttRE.FindStringSubmatch(out)
	if mm == nil {
		return 0, fmt.Errorf("ping: no rtt line in %q", out)
	}
	return strconv.ParseFloat(mm[1], 64)
}

func haveCmd(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

func numCPU() int { return runtime.NumCPU() }

const benchPSK = "bench-pre-shared-key-0123456789"

// swanctlConf is a stock strongSwan's swanctl.conf between sites a (this
// side) and b: PSK, AES-GCM for IKE and ESP (vgate's first defaults).
func swanctlConf(a, b *netlab.Network) string {
	return fmt.Sprintf(`connections {
  s2s {
    version = 2
    local_addrs = %[1]s
    remote_addrs = %[2]s
    proposals = aes256gcm16-prfsha384-ecp384
    local {
      auth = psk
      id = %[1]s
    }
    remote {
      auth = psk
      id = %[2]s
    }
    children {
      s2s {
        local_ts = %[3]s
        remote_ts = %[4]s
        esp_proposals = aes256gcm16
      }
    }
  }
}
secrets {
  ike-s2s {
    id = %[2]s
    secret = "%[5]s"
  }
}
`, a.GatewayUnderlay, b.GatewayUnderlay, a.Space, b.Space, benchPSK)
}

// setupIPsec runs a stock strongSwan on gw2 and, on gw1, vgate with an
// IPsec peering to it (swanBoth false: mode ipsec) or the same stock
// strongSwan initiating (swanBoth true: mode swan, the baseline).
func setupIPsec(m *ModeRun, n1, n2 *netlab.Network, swanBoth bool) error {
	if miss := netlab.LookSwan(); len(miss) > 0 {
		return fmt.Errorf("strongSwan missing (scripts/deps.sh installs it): %v", miss)
	}
	sw2 := m.lab.AddSwan(n2)
	if err := sw2.Start(swanctlConf(n2, n1)); err != nil {
		return err
	}
	m.gws = append(m.gws, sw2.Proc())
	if swanBoth {
		sw1 := m.lab.AddSwan(n1)
		if err := sw1.Start(swanctlConf(n1, n2)); err != nil {
			return err
		}
		m.gws = append(m.gws, sw1.Proc())
		m.Version = binVersion(m.Binary)
		if out, err := sw1.Swanctl("--initiate", "--child", "s2s"); err != nil {
			return fmt.Errorf("swanctl --initiate: %w\n%s", err, out)
		}
		return nil
	}
	if _, err := os.Stat(m.Binary); err != nil {
		return fmt.Errorf("vgate binary: %w (build it first, e.g. make build, or pass -vgate PATH)", err)
	}
	if b, err := exec.Command(m.Binary, "version").Output(); err == nil {
		m.Version, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
	}
	g, err := m.lab.NewGateway(n1, m.Binary)
	if err != nil {
		return err
	}
	psk := m.lab.Path("s2s.psk")
	if err := os.WriteFile(psk, []byte(benchPSK+"\n"), 0o600); err != nil {
		return err
	}
	g.Spaces = []netip.Prefix{n1.Space}
	g.Peerings = []netlab.Peering{{Name: "s2s", Network: "site2", Endpoint: n2.GatewayUnderlay.String(),
		Spaces: []netip.Prefix{n2.Space}, IPsec: "      psk_file: " + psk + "\n"}}
	if err := g.WriteConfig(); err != nil {
		return err
	}
	p, err := m.lab.Start(g.Net.GatewayNS, g.LogPath, g.Bin, "run", "--config", g.ConfigPath)
	if err != nil {
		return err
	}
	m.gws = append(m.gws, p)
	// vgate's charon is its child: its CPU counts too.
	pidFile := filepath.Join(filepath.Dir(g.Socket), "charon", "charon.pid")
	m.pids = func() []int {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return nil
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return nil
		}
		return []int{pid}
	}
	return nil
}

// vgatePair checks m's vgate binary, records its version and makes the
// two lab gateways of n1 and n2 (not started).
func vgatePair(m *ModeRun, n1, n2 *netlab.Network) ([]*netlab.Gateway, error) {
	if _, err := os.Stat(m.Binary); err != nil {
		return nil, fmt.Errorf("vgate binary: %w (build it first, e.g. make build, or pass -vgate PATH)", err)
	}
	if b, err := exec.Command(m.Binary, "version").Output(); err == nil {
		m.Version, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
	}
	var gws []*netlab.Gateway
	for _, n := range []*netlab.Network{n1, n2} {
		g, err := m.lab.NewGateway(n, m.Binary)
		if err != nil {
			return nil, err
		}
		gws = append(gws, g)
	}
	return gws, nil
}
