package netlab_test

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/internal/netlab"
)

// Every knob of RouterConf renders a config the router itself accepts:
// `bird -p` parses bird.conf, `vtysh --dryrun` frr.conf (neither starts
// anything). The lab tests run the common ones for real; this covers
// every combination's syntax, and that each knob shows up.
func TestRouterConfParses(t *testing.T) {
	base := netlab.RouterConf{
		RouterID: netip.MustParseAddr("10.8.255.254"), ASN: 65008,
		Neighbor: netip.MustParseAddr("10.1.255.254"), NeighborASN: 65001,
		Interface: "wgtest", Originate: []netip.Prefix{netip.MustParsePrefix("10.8.0.0/16")},
	}
	with := func(f func(*netlab.RouterConf)) netlab.RouterConf {
		c := base
		f(&c)
		return c
	}
	cases := map[string]struct {
		conf      netlab.RouterConf
		bird, frr []string // lines each must contain
		noBird    []string
		noFRR     []string
	}{
		"plain": {conf: base, bird: []string{"neighbor 10.1.255.254 as 65001", "route 10.8.0.0/16 unreachable", "import all"},
			frr: []string{"neighbor 10.1.255.254 remote-as 65001", "network 10.8.0.0/16"}, noBird: []string{"bfd"}, noFRR: []string{"bfd"}},
		"bfd": {conf: with(func(c *netlab.RouterConf) { c.BFD = &netlab.BFDConf{Interval: 100 * time.Millisecond, Multiplier: 5} }),
			bird: []string{"interval 100 ms", "multiplier 5", "bfd on"}, frr: []string{"detect-multiplier 5", "receive-interval 100", "neighbor 10.1.255.254 bfd profile vgate"},
			noFRR: []string{"check-control-plane-failure"}},
		"bfd-graceful": {conf: with(func(c *netlab.RouterConf) { c.BFD = &netlab.BFDConf{Graceful: true} }),
			bird: []string{"bfd graceful"}, frr: []string{"bfd check-control-plane-failure"}, noFRR: []string{"detect-multiplier"}},
		"gr-restarter": {conf: with(func(c *netlab.RouterConf) {
			c.GR = &netlab.GRConf{Restarter: true, RestartTime: 90 * time.Second, StaleTime: 30 * time.Second, LongLivedStale: time.Hour}
		}),
			bird: []string{"graceful restart on", "graceful restart time 90", "long lived stale time 3600"},
			frr:  []string{"bgp graceful-restart\n", "restart-time 90", "stalepath-time 30", "stale-time 3600"}},
		"gr-helper": {conf: with(func(c *netlab.RouterConf) { c.GR = &netlab.GRConf{} }),
			bird: []string{"graceful restart aware"}, noFRR: []string{"graceful-restart"}},
		"gr-off": {conf: with(func(c *netlab.RouterConf) { c.GR = &netlab.GRConf{Disable: true, LongLivedStale: time.Hour} }),
			bird: []string{"graceful restart off"}, frr: []string{"bgp graceful-restart-disable"},
			noBird: []string{"long lived"}, noFRR: []string{"long-lived"}},
		"gshut": {conf: with(func(c *netlab.RouterConf) { c.HonorGracefulShutdown = true }),
			bird: []string{"(65535, 0) ~ bgp_community then bgp_local_pref = 0"}},
	}
	bird, _ := exec.LookPath("bird")
	if bird == "" {
		if _, err := os.Stat("/usr/sbin/bird"); err == nil {
			bird = "/usr/sbin/bird"
		}
	}
	vtysh, _ := exec.LookPath("vtysh")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vtysh.conf"), []byte("service integrated-vtysh-config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, c := range cases {
		b, f := c.conf.BIRD(), c.conf.FRR()
		for _, s := range c.bird {
			if !strings.Contains(b, s) {
				t.Errorf("%s: bird.conf lacks %q:\n%s", name, s, b)
			}
		}
		for _, s := range c.noBird {
			if strings.Contains(b, s) {
				t.Errorf("%s: bird.conf has %q:\n%s", name, s, b)
			}
		}
		for _, s := range c.frr {
			if !strings.Contains(f, s) {
				t.Errorf("%s: frr.conf lacks %q:\n%s", name, s, f)
			}
		}
		for _, s := range c.noFRR {
			if strings.Contains(f, s) {
				t.Errorf("%s: frr.conf has %q:\n%s", name, s, f)
			}
		}
		if bird != "" {
			p := filepath.Join(dir, name+".bird.conf")
			if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bird, "-p", "-c", p).CombinedOutput(); err != nil {
				t.Errorf("%s: bird -p: %v\n%s\n%s", name, err, out, b)
			}
		}
		if vtysh != "" && netlab.Root() {
			p := filepath.Join(dir, name+".frr.conf")
			if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(vtysh, "--config_dir", dir, "--dryrun", "-f", p).CombinedOutput(); err != nil {
				t.Errorf("%s: vtysh --dryrun: %v\n%s\n%s", name, err, out, f)
			}
		}
	}
	if bird == "" || vtysh == "" || !netlab.Root() {
		t.Logf("SKIPPED parts: the routers' own parsers need bird (bird2) and, as root, vtysh (frr); found bird %q, vtysh %q, root %v",
			bird, vtysh, netlab.Root())
	}
}
