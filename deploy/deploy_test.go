package deploy

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/metrics"
	relaycfg "github.com/vgate-project/vgate/gateway/relay"
)

// Every example config is valid for the gateway (the key files are on the
// target VM, so Parse, which does not read them, is the check).
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob("examples/*/*.yaml")
	if err != nil || len(files) < 8 {
		t.Fatalf("examples: %v %v", files, err)
	}
	dirs := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := config.Parse(data, f); err != nil {
			t.Errorf("%v", err)
		}
		dirs[filepath.Base(filepath.Dir(f))]++
	}
	for _, d := range []string{"hub-and-spoke", "full-mesh", "redundant", "overlapping"} {
		if dirs[d] < 3 {
			t.Errorf("examples/%s has %d configs, want one per gateway (≥ 3)", d, dirs[d])
		}
	}
}

// The peerings of one example directory point at each other consistently:
// every peering's spaces are covered by some gateway of that directory.
func TestExamplesConsistent(t *testing.T) {
	for _, dir := range []string{"hub-and-spoke", "full-mesh", "redundant"} {
		files, _ := filepath.Glob(filepath.Join("examples", dir, "*.yaml"))
		var cfgs []*config.Config
		for _, f := range files {
			data, _ := os.ReadFile(f)
			c, err := config.Parse(data, f)
			if err != nil {
				t.Fatal(err)
			}
			cfgs = append(cfgs, c)
		}
		for _, c := range cfgs {
			for _, p := range c.Peerings {
				for _, q := range p.AddressSpaces {
					found := false
					for _, o := range cfgs {
						for _, s := range o.AddressSpaces {
							found = found || s.Contains(q.Addr()) && s.Bits() <= q.Bits()
						}
					}
					if !found {
						t.Errorf("%s: %s: peering %s routes %s, which no gateway of the example owns", dir, c.Name, p.Name, q)
					}
				}
			}
		}
	}
}

func TestCloudInit(t *testing.T) {
	data, err := os.ReadFile("cloud-init/user-data.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "#cloud-config\n") {
		t.Fatal("user-data must start with #cloud-config")
	}
	var ud struct {
		WriteFiles []struct {
			Path, Permissions, Content string
		} `yaml:"write_files"`
		Runcmd []any `yaml:"runcmd"`
	}
	if err := yaml.Unmarshal(data, &ud); err != nil {
		t.Fatal(err)
	}
	var cfg, installer string
	for _, f := range ud.WriteFiles {
		switch f.Path {
		case "/etc/vgate/vgate.yaml":
			cfg = f.Content
			if f.Permissions != "0600" {
				t.Errorf("vgate.yaml permissions %q, want 0600", f.Permissions)
			}
		case "/usr/local/sbin/vgate-install":
			installer = f.Content
		}
	}
	if _, err := config.Parse([]byte(cfg), "user-data:vgate.yaml"); err != nil {
		t.Errorf("config in user-data: %v", err)
	}
	for _, want := range []string{"sha256sum -c", "vgate keygen", "vgate check", "systemctl enable --now vgate"} {
		if !strings.Contains(installer, want) {
			t.Errorf("installer lacks %q", want)
		}
	}
	if sh, err := exec.LookPath("sh"); err == nil {
		if out, err := exec.Command(sh, "-n", "-c", installer).CombinedOutput(); err != nil {
			t.Errorf("installer script: sh -n: %v\n%s", err, out)
		}
	}
}

// The unit keeps its hardening (checked always) and passes
// `systemd-analyze verify` (when systemd is installed).
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile("vgate.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(data)
	for _, want := range []string{
		"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
		"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW\n", "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW\n",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"RuntimeDirectory=vgate", "StateDirectory=vgate", "DevicePolicy=closed", "DeviceAllow=/dev/net/tun rw",
		"SystemCallFilter=@system-service", "RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("vgate.service lacks %q", strings.TrimSpace(want))
		}
	}
	verifyUnit(t, "vgate.service", unit)
}

// verifyUnit runs `systemd-analyze verify` on unit (when systemd is
// installed).
func verifyUnit(t *testing.T, name, unit string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: skipping `systemd-analyze verify` (apt-get install systemd)")
	}
	// verify wants the ExecStart binary to exist: point it at an
	// executable that does.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/vgate", exe)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", name, err, out)
	}
}

// serviceSettings are the [Service] lines of a unit, by key.
func serviceSettings(t *testing.T, unit string) map[string]string {
	t.Helper()
	m := map[string]string{}
	section := ""
	for _, l := range strings.Split(unit, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || l[0] == '#':
		case l[0] == '[':
			section = l
		case section == "[Service]":
			k, v, _ := strings.Cut(l, "=")
			m[k] = v
		}
	}
	return m
}

// The relay's unit gives it CAP_NET_BIND_SERVICE only, its own state
// directory (the relay's default state_dir) and every other hardening
// setting of the gateway's unit, and passes `systemd-analyze verify`.
func TestRelayUnit(t *testing.T) {
	data, err := os.ReadFile("vgate-relay.service")
	if err != nil {
		t.Fatal(err)
	}
	gwData, err := os.ReadFile("vgate.service")
	if err != nil {
		t.Fatal(err)
	}
	relay, gw := serviceSettings(t, string(data)), serviceSettings(t, string(gwData))
	for k, want := range map[string]string{
		"CapabilityBoundingSet": "CAP_NET_BIND_SERVICE", "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
		"ExecStart":      "/usr/local/bin/vgate relay --config /etc/vgate/relay.yaml",
		"StateDirectory": "vgate-relay", "PrivateDevices": "yes", "DevicePolicy": "closed",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "Type": "notify",
	} {
		if relay[k] != want {
			t.Errorf("vgate-relay.service: %s=%q, want %q", k, relay[k], want)
		}
	}
	if relay["StateDirectory"] != filepath.Base(relaycfg.DefaultStateDir) {
		t.Errorf("vgate-relay.service: StateDirectory=%s is not the relay's default state_dir %s", relay["StateDirectory"], relaycfg.DefaultStateDir)
	}
	// Everything else that hardens the gateway hardens the relay alike.
	own := map[string]bool{
		"CapabilityBoundingSet": true, "AmbientCapabilities": true, "DeviceAllow": true, "RestrictAddressFamilies": true,
		"ExecStart": true, "ExecStartPre": true, "RuntimeDirectory": true, "RuntimeDirectoryMode": true, "StateDirectory": true,
	}
	for k, v := range gw {
		if own[k] {
			continue
		}
		if relay[k] != v {
			t.Errorf("vgate-relay.service: %s=%q, the gateway's unit has %q", k, relay[k], v)
		}
	}
	verifyUnit(t, "vgate-relay.service", string(data))
}

// exported is every metric name the gateway exports (with point-to-site
// configured), plus the Go and process collectors' and Prometheus' up.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(metrics.SourceFunc(func(context.Context) api.Metrics {
		return api.Metrics{Status: api.Status{
			Name: "east", Tunnels: api.TunnelCount{Limit: 10},
			Peerings: []api.PeeringStatus{{Name: "west", Network: "west", State: api.StateUp, LastHandshake: time.Now()}},
			P2S:      &api.P2SStatus{MaxClients: 10, Packets: map[string]uint64{"allow": 1}},
			DNS:      &api.DNSStatus{Zone: "east.internal"},
			Enroll:   &api.EnrollStatus{Pending: 1},
		}, RoutesInstalled: 1, BGP: &api.BGPStatus{Enabled: true,
			Neighbors: []api.NeighborStatus{{Name: "west", State: "established"}},
			Probes:    []api.ProbeStatus{{Peering: "west", Alive: true}}}}
	}), "test"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{"up": true}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	return names
}

var vgateMetricRE = regexp.MustCompile(`\bvgate_[a-z0-9_]+\b`)

func checkNames(t *testing.T, what, expr string, known map[string]bool) {
	t.Helper()
	for _, n := range vgateMetricRE.FindAllString(expr, -1) {
		if !known[n] {
			t.Errorf("%s uses %s, which the gateway does not export", what, n)
		}
	}
}

func TestAlertRules(t *testing.T) {
	data, err := os.ReadFile("prometheus/vgate-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(data, &rf); err != nil {
		t.Fatal(err)
	}
	known := exported(t)
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			checkNames(t, "alert "+r.Alert, r.Expr, known)
		}
	}
	for _, want := range []string{"VgateTunnelDown", "VgateBGPSessionDown", "VgateTunnelLimitNear", "VgateP2SPoolExhaustion"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
	pt, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed: skipping `promtool check rules` (scripts/deps.sh installs Debian's prometheus)")
	}
	for _, args := range [][]string{{"check", "rules", "prometheus/vgate-alerts.yml"}, {"check", "config", "prometheus/prometheus.yml"}} {
		if out, err := exec.Command(pt, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("grafana/vgate-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard uid %q title %q, %d panels", d.UID, d.Title, len(d.Panels))
	}
	known := exported(t)
	used := map[string]bool{}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			checkNames(t, "panel "+p.Title, q.Expr, known)
			for _, n := range vgateMetricRE.FindAllString(q.Expr, -1) {
				used[n] = true
			}
		}
	}
	for _, must := range []string{"vgate_peering_up", "vgate_peering_receive_bytes_total", "vgate_peering_transmit_bytes_total",
		"vgate_tunnels_up", "vgate_tunnels_limit", "vgate_peering_last_handshake_timestamp_seconds"} {
		if !used[must] {
			t.Errorf("dashboard does not graph %s", must)
		}
	}
}
