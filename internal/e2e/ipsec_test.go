package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/internal/netlab"
)

// IPsec interop: vgate's IPsec peerings against a stock strongSwan (Debian's
// charon + swanctl with kernel-libipsec, configured with swanctl.conf as
// its admin would), which plays the on-premises device.
//
//	h1 10.1.0.2 ── gw1: vgate (charon, ipsec0) ═══ IKEv2/ESP-in-UDP ═══ gw2: strongSwan (ipsec0) ── h2 10.2.0.2
//	               198.18.0.1                                           198.18.0.2

const ipsecPSK = "lab-pre-shared-key-0123456789"

// swanConf is the strongSwan admin's swanctl.conf for vgate: PSK, DPD,
// and proposals in the style of Azure VPN Gateway's default policy as a
// responder: AES-GCM, AES-CBC with SHA-2, and the legacy 1024-bit group,
// 3DES and SHA-1 combinations vgate does not offer; ESP AES-GCM first
// (no PFS), then CBC. ike and esp override the proposals; extra goes into
// the connection (e.g. lifetimes).
func swanConf(sw *netlab.Swan, vgate *netlab.Network, psk, ike, esp, extra string) string {
	n := sw.Net
	if ike == "" {
		ike = "aes256gcm16-prfsha384-ecp384,aes256-sha256-modp2048,aes256-sha1-modp1024,aes256-sha256-modp1024,aes128-sha1-modp1024,3des-sha1-modp1024"
	}
	if esp == "" {
		esp = "aes256gcm16,aes256-sha256,aes256-sha1,3des-sha1"
	}
	c := netlab.SwanctlPSK{Local: n.GatewayUnderlay, Remote: vgate.GatewayUnderlay, PSK: psk, IKE: ike, ESP: esp,
		LocalTS:  fmt.Sprintf("10.%[1]d.0.0/16, fd00:%[1]x::/48", n.Index),
		RemoteTS: fmt.Sprintf("10.%[1]d.0.0/16, fd00:%[1]x::/48", vgate.Index),
		Conn:     []string{"dpd_delay = 10s"}, Child: []string{"dpd_action = clear"}}
	if extra != "" {
		c.Conn = append(c.Conn, extra)
	}
	return c.String()
}

// ipsecSite is a lab with vgate in network 1 and strongSwan in network 2,
// gw1 having an IPsec peering "hq" to it with the given ipsec section
// body (psk_file is added). The strongSwan is started with conf.
func ipsecSite(t *testing.T, ipsecBody, conf func(sw *netlab.Swan, n1 *netlab.Network) string) (*netlab.Lab, *netlab.Gateway, *netlab.Swan) {
	return ipsecSiteKey(t, ipsecPSK, ipsecBody, conf)
}

// ipsecSiteKey is ipsecSite with vgate's pre-shared key psk.
func ipsecSiteKey(t *testing.T, psk string, ipsecBody, conf func(sw *netlab.Swan, n1 *netlab.Network) string) (*netlab.Lab, *netlab.Gateway, *netlab.Swan) {
	t.Helper()
	if m := netlab.LookSwan(); len(m) > 0 && netlab.Root() {
		t.Fatalf("strongSwan missing (scripts/deps.sh installs it): %v", m)
	}
	lab, gws := site(t, 2)
	gw := gws[0]
	n1, n2 := lab.Network(1), lab.Network(2)
	sw := lab.AddSwan(n2)
	pskFile := filepath.Join(lab.Dir, "hq.psk")
	if err := os.WriteFile(pskFile, []byte(psk+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := "      psk_file: " + pskFile + "\n"
	gw.MetricsListen = metricsAddr
	if ipsecBody != nil {
		body += ipsecBody(sw, n1)
	}
	gw.Peerings = []netlab.Peering{{Name: "hq", Network: "hq", Endpoint: n2.GatewayUnderlay.String(),
		Spaces: gws[1].Spaces, IPsec: body}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- strongSwan log ----\n%s", tail(sw.Log(), 40))
		}
	})
	if err := sw.Start(conf(sw, n1)); err != nil {
		t.Fatal(err)
	}
	start(t, gw)
	return lab, gw, sw
}

func TestIPsecInterop(t *testing.T) {
	lab, gw, _ := ipsecSite(t, nil, func(sw *netlab.Swan, n1 *netlab.Network) string {
		return swanConf(sw, n1, ipsecPSK, "", "", "")
	})
	n1, n2 := lab.Network(1), lab.Network(2)
	_, p := waitPeering(t, gw, "hq", api.StateUp, "", 20*time.Second)
	if p.Type != "ipsec" || p.IPsec == nil || p.IPsec.ESPMode != "libipsec" || p.Interface != "ipsec0" || p.PublicKey != "" {
		t.Errorf("status of the IPsec peering: %+v %+v", p, p.IPsec)
	}
	mustReach(t, lab, n1, n2)
	mustReach(t, lab, n2, n1)
	if err := lab.TCPTransfer(n1.HostNS, n2.HostNS, n2.HostAddr, 50<<20); err != nil {
		t.Fatalf("50 MB h1 -> h2: %v", err)
	}
	// The routes are vgate's (protocol 76), through charon's TUN.
	routes := strings.Join(vgateRoutes(t, lab, n1.GatewayNS), "\n")
	if !strings.Contains(routes, "10.2.0.0/16 dev ipsec0") || !strings.Contains(routes, "fd00:2::/48 dev ipsec0") {
		t.Errorf("vgate routes:\n%s", routes)
	}
	if m := metricsOf(t, gw); !strings.Contains(m, `vgate_ipsec_child_sa_installed{network="hq",peering="hq"} 1`) ||
		!strings.Contains(m, `vgate_ipsec_info{esp_mode="libipsec",network="hq",peering="hq"} 1`) {
		t.Errorf("IPsec series missing from metrics:\n%s", grepLines(m, "ipsec"))
	}
	out, err := gw.CLI("status", "--socket", gw.Socket)
	if err != nil || !strings.Contains(out, "ipsec (esp: libipsec userspace)") {
		t.Errorf("vgate status: %v\n%s", err, out)
	}
	if strings.Contains(out, ipsecPSK) || strings.Contains(gw.Log(), ipsecPSK) {
		t.Error("the pre-shared key is in the status or the log")
	}
	// The counters are charon's, read every second.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := gw.Status()
		p = st.Peerings[0]
		if p.TxBytes >= 50<<20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if p.RxBytes == 0 || p.TxBytes < 50<<20 {
		t.Errorf("counters: rx %d tx %d after 50 MB", p.RxBytes, p.TxBytes)
	}
	t.Logf("hq: rx %d tx %d, %s", p.RxBytes, p.TxBytes, headLine(out))
	// vgate capture taps the IPsec peering's inner packets, both ways.
	checkIPsecCapture(t, lab, gw, n1, n2)
}

func headLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// setPSK rewrites the pre-shared key file of gw's peering hq.
func setPSK(t *testing.T, lab *netlab.Lab, psk string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(lab.Dir, "hq.psk"), []byte(psk+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// metricHas reports whether a scrape of gw's metrics has series.
func metricHas(t *testing.T, gw *netlab.Gateway, series string) bool {
	t.Helper()
	return strings.Contains(metricsOf(t, gw), series)
}

// A device that accepts only one of vgate's default proposals connects;
// one that accepts only legacy algorithms is refused, with
// no_proposal_chosen in status and metrics.
func TestIPsecProposals(t *testing.T) {
	ike := "aes256-sha256-modp2048"
	var n1c *netlab.Network
	lab, gw, sw := ipsecSite(t, nil, func(sw *netlab.Swan, n1 *netlab.Network) string {
		n1c = n1
		return swanConf(sw, n1, ipsecPSK, ike, "aes256gcm16", "")
	})
	_, p := waitPeering(t, gw, "hq", api.StateUp, "", 20*time.Second)
	mustReach(t, lab, lab.Network(1), lab.Network(2))
	t.Logf("only %s: up (%s)", ike, p.IPsec.IKEState)

	// The device's admin narrows it to 3DES/SHA-1/modp1024 and drops the SA.
	if err := os.WriteFile(sw.SwanctlConf, []byte(swanConf(sw, n1c, ipsecPSK, "3des-sha1-modp1024", "3des-sha1", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sw.Load(); err != nil {
		t.Fatal(err)
	}
	if out, err := sw.Swanctl("--terminate", "--ike", "vgate", "--force"); err != nil {
		t.Fatalf("swanctl --terminate: %v\n%s", err, out)
	}
	_, p = waitPeering(t, gw, "hq", api.StateDown, api.ReasonNoProposalChosen, 30*time.Second)
	if p.Hint == "" || p.IPsec == nil || p.IPsec.LastAlert == "" {
		t.Errorf("no hint or alert text: %+v %+v", p, p.IPsec)
	}
	waitFor(t, "no_proposal_chosen in metrics", 10*time.Second, func() (bool, string) {
		m := metricsOf(t, gw)
		ok := strings.Contains(m, `vgate_peering_down_reason{network="hq",peering="hq",reason="no_proposal_chosen"} 1`) &&
			strings.Contains(m, `vgate_peering_up{network="hq",peering="hq"} 0`)
		return ok, "metrics lack it"
	})
	t.Logf("only 3des-sha1-modp1024: %s, hint %q, charon: %s", p.Reason, p.Hint, p.IPsec.LastAlert)
}

// A wrong pre-shared key shows as authentication_failed; vgate neither
// crashes nor restarts charon, and retries with backoff; fixing the key
// and reloading brings the peering up.
func TestIPsecWrongPSK(t *testing.T) {
	t.Parallel()
	lab, gw, _ := ipsecSiteKey(t, "not-the-devices-key-42", nil, func(sw *netlab.Swan, n1 *netlab.Network) string {
		return swanConf(sw, n1, ipsecPSK, "", "", "")
	})
	_, p := waitPeering(t, gw, "hq", api.StateDown, api.ReasonAuthFailed, 20*time.Second)
	t.Logf("wrong key: %s, hint %q", p.Reason, p.Hint)
	// The status row of hq: handshake and endpoint as the user reads them.
	device := lab.Network(2).GatewayUnderlay.String()
	row := func() []string {
		t.Helper()
		out, err := gw.CLI("status", "--socket", gw.Socket)
		if err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "hq ") {
				return strings.Fields(l)
			}
		}
		t.Fatalf("status has no hq row:\n%s", out)
		return nil
	}
	// Never up: no handshake yet, and the configured endpoint.
	if r := row(); !slices.Contains(r, "never") || !slices.Contains(r, device) {
		t.Errorf("hq never up: want handshake never and endpoint %s: %v", device, r)
	}
	time.Sleep(12 * time.Second)
	log := gw.Log()
	if n := strings.Count(log, "charon running"); n != 1 || gw.Proc().Exited() {
		t.Fatalf("charon started %d times (or the gateway exited) with a wrong key", n)
	}
	if n := strings.Count(log, "initiating IKE_SA"); n > 5 {
		t.Errorf("%d IKE initiations in about 15 s: no backoff", n)
	}
	_, p = waitPeering(t, gw, "hq", api.StateDown, api.ReasonAuthFailed, time.Second)
	if !metricHas(t, gw, `vgate_peering_down_reason{network="hq",peering="hq",reason="authentication_failed"} 1`) {
		t.Error("authentication_failed not in metrics")
	}
	if strings.Contains(log, "not-the-devices-key-42") || strings.Contains(log, ipsecPSK) {
		t.Error("a pre-shared key is in the log")
	}
	setPSK(t, lab, ipsecPSK)
	if err := gw.Reload(); err != nil {
		t.Fatal(err)
	}
	waitPeering(t, gw, "hq", api.StateUp, "", 15*time.Second)
	mustReach(t, lab, lab.Network(1), lab.Network(2))

	// A wrong key again, after it was up: the row keeps the last time it
	// was up and the device's endpoint, not "never" and "-".
	setPSK(t, lab, "not-the-devices-key-42")
	if err := gw.Reload(); err != nil {
		t.Fatal(err)
	}
	waitPeering(t, gw, "hq", api.StateDown, api.ReasonAuthFailed, 20*time.Second)
	r := row()
	if slices.Contains(r, "never") || slices.Contains(r, "-") || !slices.Contains(r, "ago") || !strings.Contains(strings.Join(r, " "), device) {
		t.Errorf("hq down after being up: want the last-up time and endpoint %s: %v", device, r)
	}
	t.Logf("hq row after a wrong key: %v", r)
}

// Dead-peer detection: a device that dies takes the peering down with
// dpd_timeout within 3 × dpd; when it is back the peering comes back by
// itself.
func TestIPsecDPD(t *testing.T) {
	t.Parallel()
	const dpd = 10 * time.Second
	var n1c *netlab.Network
	lab, gw, sw := ipsecSite(t, func(*netlab.Swan, *netlab.Network) string { return "      dpd: 10s\n" }, func(sw *netlab.Swan, n1 *netlab.Network) string {
		n1c = n1
		return swanConf(sw, n1, ipsecPSK, "", "", "")
	})
	waitPeering(t, gw, "hq", api.StateUp, "", 20*time.Second)
	killed := time.Now()
	if err := sw.Kill(); err != nil {
		t.Fatal(err)
	}
	at, p := waitPeering(t, gw, "hq", api.StateDown, api.ReasonDPDTimeout, 3*dpd+5*time.Second)
	took := at.Sub(killed)
	if took > 3*dpd {
		t.Errorf("dpd_timeout after %v, want within %v", took, 3*dpd)
	}
	t.Logf("device killed: %s after %v (dpd %v), hint %q", p.Reason, took.Round(time.Second), dpd, p.Hint)
	restarted := time.Now()
	if err := sw.Start(swanConf(sw, n1c, ipsecPSK, "", "", "")); err != nil {
		t.Fatal(err)
	}
	at, _ = waitPeering(t, gw, "hq", api.StateUp, "", 75*time.Second)
	t.Logf("device restarted: up again after %v", at.Sub(restarted).Round(time.Second))
	mustReach(t, lab, lab.Network(1), lab.Network(2))
}

// Rekeying: IKE and child lifetimes of 30 s and 20 s; a 90 s ping at
// 20 pps and a TCP transfer lose nothing across at least three rekeys of
// each.
func TestIPsecRekey(t *testing.T) {
	t.Parallel()
	lab, gw, _ := ipsecSite(t, func(*netlab.Swan, *netlab.Network) string {
		return "      ike_lifetime: 30s\n      child_lifetime: 20s\n"
	}, func(sw *netlab.Swan, n1 *netlab.Network) string {
		return swanConf(sw, n1, ipsecPSK, "", "", "")
	})
	n1, n2 := lab.Network(1), lab.Network(2)
	waitPeering(t, gw, "hq", api.StateUp, "", 20*time.Second)
	mustReach(t, lab, n1, n2)
	xfer := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 6 && err == nil; i++ { // a transfer every ~15 s, across the rekeys
			err = lab.TCPTransfer(n1.HostNS, n2.HostNS, n2.HostAddr, 10<<20)
			time.Sleep(12 * time.Second)
		}
		xfer <- err
	}()
	loss, out, err := pingLoss(lab, n1.HostNS, n2.HostAddr.String(), 1800, "0.05")
	if err != nil {
		t.Fatal(err)
	}
	if err := <-xfer; err != nil {
		t.Errorf("TCP across rekeys: %v", err)
	}
	_, p := waitPeering(t, gw, "hq", api.StateUp, "", time.Second)
	t.Logf("90 s at 20 pps: %d%% loss; IKE rekeys %d, child rekeys %d\n%s", loss, p.IPsec.IKERekeys, p.IPsec.ChildRekeys, out)
	if loss != 0 {
		t.Errorf("%d%% ping loss across rekeys", loss)
	}
	if p.IPsec.IKERekeys < 3 || p.IPsec.ChildRekeys < 3 {
		// When the SAs came and went, as charon logged it.
		var sas []string
		for _, l := range strings.Split(gw.Log(), "\n") {
			if strings.Contains(l, "_SA") && (strings.Contains(l, "rekey") || strings.Contains(l, "established") || strings.Contains(l, "failed")) {
				sas = append(sas, l)
			}
		}
		t.Errorf("rekeys: IKE %d, child %d; want at least 3 each\n%s", p.IPsec.IKERekeys, p.IPsec.ChildRekeys, strings.Join(sas, "\n"))
	}
	if m := metricsOf(t, gw); !strings.Contains(m, `vgate_ipsec_child_rekeys_total{network="hq",peering="hq"}`) {
		t.Errorf("no rekey counter in metrics:\n%s", grepLines(m, "ipsec"))
	}
}

// bgpSwanConf is the strongSwan admin's swanctl.conf for BGP over IPsec,
// Azure style: the tunnel is numbered with APIPA addresses (the device
// 169.254.21.1, vgate 169.254.21.2), and the traffic selectors carry them
// beside the networks.
func bgpSwanConf(sw *netlab.Swan, vgate *netlab.Network, localTS, remoteTS string) string {
	return netlab.SwanctlPSK{Local: sw.Net.GatewayUnderlay, Remote: vgate.GatewayUnderlay, PSK: ipsecPSK,
		IKE: "aes256gcm16-prfsha384-ecp384,aes256-sha256-modp2048", ESP: "aes256gcm16",
		LocalTS: localTS, RemoteTS: remoteTS}.String()
}

// ipsecBIRDConf is BIRD 2 on the strongSwan device (AS asn): a
// single-hop eBGP session to vgate over the numbered tunnel interface
// (ipsec0 has 169.254.21.1 peer 169.254.21.2), announcing the device's
// networks and installing what vgate announces.
func ipsecBIRDConf(asn, vgateASN uint32, networks ...string) string {
	return ipsecBIRDConfTo("169.254.21.2", asn, vgateASN, networks...)
}

// ipsecBIRDConfTo is ipsecBIRDConf with vgate's tunnel address vgate.
func ipsecBIRDConfTo(vgate string, asn, vgateASN uint32, networks ...string) string {
	var static strings.Builder
	for _, n := range networks {
		fmt.Fprintf(&static, "\troute %s unreachable;\n", n)
	}
	return fmt.Sprintf(`log stderr all;
router id 169.254.21.1;
protocol device {
	scan time 2;
}
protocol static {
	ipv4;
%s}
protocol kernel {
	ipv4 {
		import none;
		export where source = RTS_BGP;
	};
}
protocol bgp vgate {
	local 169.254.21.1 as %d;
	neighbor %s as %d;
	hold time 9;
	ipv4 {
		import all;
		export where source ~ [RTS_STATIC, RTS_BGP];
	};
}
`, static.String(), asn, vgate, vgateASN)
}

// numberTunnel gives the device's ipsec0 its APIPA address, point to point
// to vgate's, as its admin would for BGP.
func numberTunnel(t *testing.T, lab *netlab.Lab, sw *netlab.Swan) {
	t.Helper()
	if out, err := lab.Run(sw.Net.GatewayNS, "ip", "addr", "add", "169.254.21.1/32", "peer", "169.254.21.2/32", "dev", "ipsec0"); err != nil {
		t.Fatalf("numbering ipsec0: %v\n%s", err, out)
	}
}

// BGP over IPsec: BIRD behind the strongSwan device exchanges routes with
// vgate in both directions over the IPsec tunnel (APIPA addresses, like
// Azure's BGP over IPsec), and the hosts reach each other on those routes.
func TestIPsecBGP(t *testing.T) {
	if m := netlab.LookBIRD(); len(m) > 0 {
		t.Fatalf("BIRD missing (scripts/deps.sh installs it): %v", m)
	}
	if m := netlab.LookSwan(); len(m) > 0 {
		t.Fatalf("strongSwan missing (scripts/deps.sh installs it): %v", m)
	}
	lab, gws := site(t, 2)
	gw, n1, n2 := gws[0], lab.Network(1), lab.Network(2)
	sw := lab.AddSwan(n2)
	pskFile := filepath.Join(lab.Dir, "hq.psk")
	if err := os.WriteFile(pskFile, []byte(ipsecPSK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw.TunnelAddress = netip.MustParseAddr("169.254.21.2")
	gw.ASN = 65001
	gw.MetricsListen = metricsAddr
	gw.Peerings = []netlab.Peering{{Name: "hq", Network: "hq", Endpoint: n2.GatewayUnderlay.String(),
		Spaces: []netip.Prefix{n2.Space}, IPsec: "      psk_file: " + pskFile + "\n",
		BGP: &netlab.PeerBGP{ASN: 65002, Address: netip.MustParseAddr("169.254.21.1")}}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- strongSwan log ----\n%s", tail(sw.Log(), 30))
			b, _ := os.ReadFile(filepath.Join(sw.Dir, "bird.log"))
			t.Logf("---- BIRD log ----\n%s", tail(string(b), 30))
		}
	})
	if err := sw.Start(bgpSwanConf(sw, n1, "10.2.0.0/16,169.254.21.1/32", "10.1.0.0/16,169.254.21.2/32")); err != nil {
		t.Fatal(err)
	}
	numberTunnel(t, lab, sw)
	if err := sw.StartBIRD(ipsecBIRDConf(65002, 65001, "10.2.0.0/16")); err != nil {
		t.Fatal(err)
	}
	start(t, gw)
	// Up means the IPsec SAs and the BGP session over them.
	_, p := waitPeering(t, gw, "hq", api.StateUp, "", 30*time.Second)
	if fmt.Sprint(gw.Spaces) == "" || p.IPsec == nil {
		t.Fatalf("status %+v", p)
	}
	waitFor(t, "vgate installs BIRD's route through ipsec0", 20*time.Second, func() (bool, string) {
		r := strings.Join(vgateRoutes(t, lab, n1.GatewayNS), "\n")
		return strings.Contains(r, "10.2.0.0/16 dev ipsec0"), r
	})
	waitFor(t, "BIRD learns vgate's network", 20*time.Second, func() (bool, string) {
		out, _ := sw.Birdc("show", "route", "protocol", "vgate")
		return strings.Contains(out, "10.1.0.0/16"), out
	})
	mustReachV4(t, lab, n1, n2)
	mustReachV4(t, lab, n2, n1)
	bgp, err := gw.CLI("bgp", "--socket", gw.Socket)
	if err != nil || !strings.Contains(bgp, "hq") {
		t.Errorf("vgate bgp: %v\n%s", err, bgp)
	}
	routes, _ := gw.CLI("routes", "--socket", gw.Socket)
	if !strings.Contains(routes, "10.2.0.0/16") || !strings.Contains(routes, "hq") {
		t.Errorf("vgate routes does not show the IPsec peering's BGP route:\n%s", routes)
	}
	t.Logf("vgate bgp:\n%s\nvgate routes:\n%s", bgp, routes)
}

// mustReachV4 waits until host of a reaches host of b over IPv4.
func mustReachV4(t *testing.T, lab *netlab.Lab, a, b *netlab.Network) {
	t.Helper()
	if err := lab.WaitPing(a.HostNS, b.HostAddr, 15*time.Second); err != nil {
		t.Fatalf("host %d cannot reach host %d (%s): %v", a.Index, b.Index, b.HostAddr, err)
	}
}

// A mixed gateway: gw1 has two WireGuard peerings (gw2, gw3) and one IPsec
// peering (the strongSwan device of network 4, BIRD behind it), all with
// BGP; a host behind the device reaches hosts behind the vgate sites
// through gw1 (IPsec, then WireGuard), and back.
//
//	h4 ── sw4 (strongSwan + BIRD) ══IPsec══ gw1 ──WG── gw2 ── h2
//	                                          └──WG── gw3 ── h3
func TestIPsecMixedGateway(t *testing.T) {
	if m := append(netlab.LookBIRD(), netlab.LookSwan()...); len(m) > 0 {
		t.Fatalf("missing (scripts/deps.sh installs them): %v", m)
	}
	lab, gws := site(t, 3)
	gw1, gw2, gw3 := gws[0], gws[1], gws[2]
	n4, err := lab.AddNetwork(4)
	if err != nil {
		t.Fatal(err)
	}
	sw := lab.AddSwan(n4)
	netlab.LinkBGP(gw1, gw2)
	netlab.LinkBGP(gw1, gw3)
	pskFile := filepath.Join(lab.Dir, "hq.psk")
	if err := os.WriteFile(pskFile, []byte(ipsecPSK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw1.Peerings = append(gw1.Peerings, netlab.Peering{Name: "sw4", Network: "onprem", Endpoint: n4.GatewayUnderlay.String(),
		Spaces: []netip.Prefix{n4.Space}, IPsec: "      psk_file: " + pskFile + "\n",
		BGP: &netlab.PeerBGP{ASN: 65004, Address: netip.MustParseAddr("169.254.21.1")}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- strongSwan log ----\n%s", tail(sw.Log(), 30))
			t.Logf("---- gw1's charon ----\n%s", tail(grepLines(gw1.Log(), "component=charon"), 60))
		}
	})
	// The device's admin lets the vgate sites' networks through the tunnel
	// as one summary, 10.0.0.0/14 (10.1-10.3, not its own 10.4: charon
	// would route its own LAN into the tunnel). One summary, not a list:
	// with kernel-libipsec each narrowed local selector needs an address
	// of vgate's gateway in it (docs/architecture.md, "IPsec peerings").
	if err := sw.Start(bgpSwanConf(sw, lab.Network(1), "10.4.0.0/16,169.254.21.1/32", "10.0.0.0/14")); err != nil {
		t.Fatal(err)
	}
	if out, err := lab.Run(n4.GatewayNS, "ip", "addr", "add", "169.254.21.1/32", "peer", gw1.TunnelAddress.String()+"/32", "dev", "ipsec0"); err != nil {
		t.Fatalf("numbering ipsec0: %v\n%s", err, out)
	}
	if err := sw.StartBIRD(ipsecBIRDConfTo(gw1.TunnelAddress.String(), 65004, gw1.ASN, "10.4.0.0/16")); err != nil {
		t.Fatal(err)
	}
	start(t, gw1, gw2, gw3)
	waitFor(t, "gw1: 3 of 3 tunnels up (2 WireGuard, 1 IPsec)", 30*time.Second, func() (bool, string) {
		st, err := gw1.Status()
		if err != nil {
			return false, err.Error()
		}
		var states []string
		for _, p := range st.Peerings {
			states = append(states, fmt.Sprintf("%s %s %s %s", p.Name, p.Type, p.State, p.Reason))
		}
		return st.Tunnels.Used == 3 && st.Tunnels.Up == 3, strings.Join(states, "; ")
	})
	h2, h3, h4 := lab.Network(2), lab.Network(3), n4
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range [][]string{{n4.GatewayNS, "ip", "route", "show", "table", "all"}, {lab.Network(1).GatewayNS, "ip", "route"}, {h3.GatewayNS, "ip", "route"}} {
				out, _ := lab.Run(c[0], c[1:]...)
				t.Logf("%v:\n%s", c, out)
			}
			out, _ := sw.Swanctl("--list-sas")
			t.Logf("device SAs:\n%s", out)
			out, _ = gw3.CLI("routes", "--socket", gw3.Socket)
			t.Logf("gw3 routes:\n%s", out)
			out, _ = gw1.CLI("routes", "--socket", gw1.Socket)
			t.Logf("gw1 routes:\n%s", out)
		}
	})
	mustReachV4(t, lab, h4, h3)
	mustReachV4(t, lab, h3, h4)
	mustReachV4(t, lab, h4, h2)
	if err := lab.TCPTransfer(h4.HostNS, h3.HostNS, h3.HostAddr, 5<<20); err != nil {
		t.Errorf("5 MB h4 -> h3: %v", err)
	}
	routes, _ := gw3.CLI("routes", "--socket", gw3.Socket)
	if !strings.Contains(routes, "10.4.0.0/16") {
		t.Errorf("gw3 has no route to the device's network:\n%s", routes)
	}
	out, _ := gw1.CLI("status", "--socket", gw1.Socket)
	t.Logf("gw1 status:\n%s", out)

	// Reloads remove, add back and change the IPsec peering without
	// touching the WireGuard ones; an invalid one changes nothing.
	ifindex := func() string {
		o, _ := lab.Run(lab.Network(1).GatewayNS, "sh", "-c", "cat /sys/class/net/vg-net2/ifindex /sys/class/net/vg-net3/ifindex")
		return strings.TrimSpace(o)
	}
	before, logBefore := ifindex(), len(gw1.Log())
	ipsecPeering := gw1.Peerings[2]
	gw1.Peerings = gw1.Peerings[:2]
	reload(t, gw1, 1)
	waitFor(t, "gw1: the IPsec peering's routes gone after it was removed", 15*time.Second, func() (bool, string) {
		r := strings.Join(vgateRoutes(t, lab, lab.Network(1).GatewayNS), "\n")
		return !strings.Contains(r, "ipsec0"), r
	})
	mustReachV4(t, lab, lab.Network(1), h3)
	gw1.Peerings = append(gw1.Peerings, ipsecPeering)
	reload(t, gw1, 2)
	waitFor(t, "gw1: IPsec peering back after it was added again", 60*time.Second, func() (bool, string) {
		p, _, err := peeringOf(t, gw1, "sw4")
		return err == nil && p.State == api.StateUp, fmt.Sprintf("%+v %v", p, err)
	})
	mustReachV4(t, lab, h4, h3)
	gw1.Peerings[2].IPsec += "      dpd: 15s\n"
	reload(t, gw1, 3)
	waitFor(t, "gw1: changed IPsec peering up", 60*time.Second, func() (bool, string) {
		p, _, err := peeringOf(t, gw1, "sw4")
		return err == nil && p.State == api.StateUp, fmt.Sprintf("%+v %v", p, err)
	})
	good := gw1.Peerings[2].IPsec
	gw1.Peerings[2].IPsec += "      ike: [3des-sha1-modp1024]\n"
	if err := gw1.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "gw1: reload with a legacy proposal refused", 10*time.Second, func() (bool, string) {
		st, err := gw1.Status()
		return err == nil && st.Reloads.Failed == 1, fmt.Sprintf("%+v", st.Reloads)
	})
	gw1.Peerings[2].IPsec = good
	mustReachV4(t, lab, h4, h3)
	if after := ifindex(); after != before {
		t.Errorf("WireGuard interfaces recreated by IPsec reloads: ifindex %q -> %q", before, after)
	}
	if l := gw1.Log()[logBefore:]; strings.Contains(l, `msg="tunnel down" gateway=net1 peering=net2`) || strings.Contains(l, `msg="tunnel down" gateway=net1 peering=net3`) {
		t.Errorf("a WireGuard peering went down during the IPsec reloads:\n%s", grepLines(l, "tunnel down"))
	}
}

// IPsec under deploy/vgate.service's confinement (netlab.Sandbox): vgate's
// charon runs as its child with exactly the unit's capabilities, its files
// in the unit's RuntimeDirectory, no mount namespace of its own; the
// peering comes up and carries traffic, and nothing is refused.
func TestIPsecSandbox(t *testing.T) {
	for _, tool := range []string{"setpriv", "unshare", "findmnt"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (util-linux)", tool)
		}
	}
	if m := netlab.LookSwan(); len(m) > 0 {
		t.Fatalf("strongSwan missing (scripts/deps.sh installs it): %v", m)
	}
	unit, err := netlab.ParseUnit(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	lab, gws := site(t, 2)
	gw, n1, n2 := gws[0], lab.Network(1), lab.Network(2)
	sw := lab.AddSwan(n2)
	sb, err := lab.NewSandbox(unit, "sandbox-ipsec")
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Apply(gw); err != nil {
		t.Fatal(err)
	}
	psk := filepath.Join(sb.Config, "hq.psk")
	if err := os.WriteFile(psk, []byte(ipsecPSK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw.Peerings = []netlab.Peering{{Name: "hq", Network: "hq", Endpoint: n2.GatewayUnderlay.String(),
		Spaces: gws[1].Spaces, IPsec: "      psk_file: " + sb.PathIn(psk) + "\n"}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- strongSwan log ----\n%s", tail(sw.Log(), 30))
		}
	})
	if err := sw.Start(swanConf(sw, n1, ipsecPSK, "", "", "")); err != nil {
		t.Fatal(err)
	}
	// ExecStartPre (vgate check) finds charon and accepts the peering.
	if err := gw.WriteConfig(); err != nil {
		t.Fatal(err)
	}
	if out, err := lab.Run(n1.GatewayNS, append(sb.Wrapper(), unit.ExecStartPre...)...); err != nil {
		t.Fatalf("ExecStartPre %v in the sandbox: %v\n%s", unit.ExecStartPre, err, out)
	}
	start(t, gw)
	waitPeering(t, gw, "hq", api.StateUp, "", 30*time.Second)
	mustReach(t, lab, n1, n2)
	if err := lab.TCPTransfer(n2.HostNS, n1.HostNS, n1.HostAddr, 5<<20); err != nil {
		t.Fatalf("5 MB host 2 -> host 1: %v", err)
	}
	// charon has exactly the unit's capabilities (bounding and effective).
	b, err := os.ReadFile(filepath.Join(sb.Runtime, "charon", "charon.pid"))
	if err != nil {
		t.Fatalf("charon's PID file in the runtime directory: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	st, want := procCaps(t, unit, pid)
	for _, k := range []string{"CapBnd", "CapEff"} {
		got, _ := strconv.ParseUint(st[k], 16, 64)
		if got&^want != 0 {
			t.Errorf("charon %s = %s, more than the unit's %v (%x)", k, st[k], unit.Bounding, want)
		}
	}
	t.Logf("charon pid %d: CapBnd %s CapEff %s NoNewPrivs %s", pid, st["CapBnd"], st["CapEff"], st["NoNewPrivs"])
	// The admin's capture of the IPsec peering works under the unit too.
	checkIPsecCapture(t, lab, gw, n1, n2)
	checkNothingRefused(t, gw.Log())
}

// vgate's charon dies: the peering shows charon_not_running, vgate starts
// charon again, loads the peering, re-installs the routes through the new
// TUN, and the peering comes back by itself.
func TestIPsecCharonRestart(t *testing.T) {
	lab, gw, _ := ipsecSite(t, nil, func(sw *netlab.Swan, n1 *netlab.Network) string {
		return swanConf(sw, n1, ipsecPSK, "", "", "")
	})
	n1, n2 := lab.Network(1), lab.Network(2)
	waitPeering(t, gw, "hq", api.StateUp, "", 20*time.Second)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(gw.Socket), "charon", "charon.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("charon pid %q: %v", b, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// Restarting takes about a second (backoff 1 s): look often.
	seen := false
	for time.Since(killed) < 5*time.Second && !seen {
		if p, _, err := peeringOf(t, gw, "hq"); err == nil && p.Reason == api.ReasonCharonNotRunning {
			seen = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !seen {
		t.Error("status never showed charon_not_running after charon was killed")
	}
	waitFor(t, "vgate notices charon died", 10*time.Second, func() (bool, string) {
		return strings.Contains(gw.Log(), "charon not running; restarting"), "no log line yet"
	})
	_, p := waitPeering(t, gw, "hq", api.StateUp, "", 30*time.Second)
	t.Logf("charon killed: up again after %v (IPsec %+v)", time.Since(killed).Round(100*time.Millisecond), p.IPsec)
	mustReach(t, lab, n1, n2)
	if r := strings.Join(vgateRoutes(t, lab, n1.GatewayNS), "\n"); !strings.Contains(r, "10.2.0.0/16 dev ipsec0") {
		t.Errorf("routes through the new TUN not installed again:\n%s", r)
	}
	if gw.Proc().Exited() {
		t.Fatal("the gateway exited when its charon died")
	}
	// A gateway that crashes takes its charon with it (parent-death
	// signal): nothing is left holding the IKE ports for the next start.
	b, err = os.ReadFile(filepath.Join(filepath.Dir(gw.Socket), "charon", "charon.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	if err := gw.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "charon ends with its gateway", 10*time.Second, func() (bool, string) {
		return syscall.Kill(pid, 0) != nil, fmt.Sprintf("charon %d still runs", pid)
	})
	start(t, gw)
	waitPeering(t, gw, "hq", api.StateUp, "", 20*time.Second)
}

// checkIPsecCapture runs `vgate capture --peering hq -w -` while host 1
// pings host 2 and checks the pcap holds the inner ICMP packets, both ways.
func checkIPsecCapture(t *testing.T, lab *netlab.Lab, gw *netlab.Gateway, n1, n2 *netlab.Network) {
	t.Helper()
	const count = 6
	packets, req, rep := captureEcho(t, lab, gw, "hq", n1, n2, count)
	if packets != count || req == 0 || rep == 0 {
		t.Fatalf("capture: %d packets (want %d), %d echo requests h1->h2 and %d replies (want both > 0)", packets, count, req, rep)
	}
	t.Logf("vgate capture --peering hq: %d packets, %d requests, %d replies", packets, req, rep)
}

// Another IKE daemon holds UDP 500 (a system strongSwan): the gateway
// refuses to start with an IPsec peering and says so, instead of running
// a charon that can never receive IKE.
func TestIPsecPortTaken(t *testing.T) {
	lab, gws := site(t, 2)
	gw, n2 := gws[0], lab.Network(2)
	var c net.PacketConn
	if err := netlab.InNS(gw.Net.GatewayNS, func() (err error) {
		c, err = net.ListenPacket("udp", ":500")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	psk := filepath.Join(lab.Dir, "hq.psk")
	if err := os.WriteFile(psk, []byte(ipsecPSK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw.Peerings = []netlab.Peering{{Name: "hq", Network: "hq", Endpoint: n2.GatewayUnderlay.String(),
		Spaces: gws[1].Spaces, IPsec: "      psk_file: " + psk + "\n"}}
	err := gw.Start()
	if err == nil {
		gw.Stop()
		t.Fatal("gateway started though UDP 500 is taken")
	}
	t.Logf("start refused: %s", grepLines(err.Error(), "UDP port"))
	if !strings.Contains(err.Error(), "UDP port 500 is in use") || !strings.Contains(err.Error(), "systemctl disable --now strongswan") {
		t.Errorf("start error does not say why:\n%v", err)
	}
}
