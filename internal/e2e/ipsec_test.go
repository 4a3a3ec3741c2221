package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// swanConf is the strongSwan admin's swanctl.conf for vgate: PSK, the
// proposals of Azure VPN Gateway's default policy that are not legacy,
// AES-GCM ESP, DPD. ike and esp override the proposals; extra goes into
// the connection (e.g. lifetimes).
func swanConf(sw *netlab.Swan, vgate *netlab.Network, psk, ike, esp, extra string) string {
	n := sw.Net
	if ike == "" {
		ike = "aes256gcm16-prfsha384-ecp384,aes256-sha256-modp2048"
	}
	if esp == "" {
		esp = "aes256gcm16,aes256-sha256"
	}
	return fmt.Sprintf(`connections {
  vgate {
    version = 2
    local_addrs = %[1]s
    remote_addrs = %[2]s
    proposals = %[3]s
    dpd_delay = 10s
    %[7]s
    local {
      auth = psk
      id = %[1]s
    }
    remote {
      auth = psk
      id = %[2]s
    }
    children {
      vgate {
        local_ts = 10.%[5]d.0.0/16, fd00:%[5]x::/48
        remote_ts = 10.%[6]d.0.0/16, fd00:%[6]x::/48
        esp_proposals = %[4]s
        dpd_action = clear
      }
    }
  }
}
secrets {
  ike-vgate {
    id = %[2]s
    secret = "%[8]s"
  }
}
`, n.GatewayUnderlay, vgate.GatewayUnderlay, ike, esp, n.Index, vgate.Index, extra, psk)
}

// ipsecSite is a lab with vgate in network 1 and strongSwan in network 2,
// gw1 having an IPsec peering "hq" to it with the given ipsec section
// body (psk_file is added). The strongSwan is started with conf.
func ipsecSite(t *testing.T, ipsecBody, conf func(sw *netlab.Swan, n1 *netlab.Network) string) (*netlab.Lab, *netlab.Gateway, *netlab.Swan) {
	t.Helper()
	if m := netlab.LookSwan(); len(m) > 0 && netlab.Root() {
		t.Fatalf("strongSwan missing (scripts/deps.sh installs it): %v", m)
	}
	lab, gws := site(t, 2)
	gw := gws[0]
	n1, n2 := lab.Network(1), lab.Network(2)
	sw := lab.AddSwan(n2)
	psk := filepath.Join(lab.Dir, "hq.psk")
	if err := os.WriteFile(psk, []byte(ipsecPSK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := "      psk_file: " + psk + "\n"
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
}

func headLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }
