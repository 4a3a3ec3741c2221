package e2e

import (
	"fmt"
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

// unitFile is the systemd unit the package installs; the sandbox takes
// everything it enforces from it, so the two cannot drift apart.
const unitFile = "../../deploy/vgate.service"

// Every feature works on a gateway confined as deploy/vgate.service
// confines it (netlab.Sandbox: the unit's capabilities only, no new
// privileges, its umask, read-only file system but for its state and
// runtime directories, private /tmp), and each of the unit's capabilities
// is needed by some feature.
//
//	h1 ── gw1 (sandboxed) ══ static peering ══ gw2 ── h2
//	      AS65001, P2S,  ╲
//	      metrics         ╲═ BGP peering ══ gw3 (AS65003) ── h3
//	          │
//	   laptop lt1 (stock wireguard-go, point-to-site client of gw1)
func TestSandbox(t *testing.T) {
	for _, tool := range []string{"setpriv", "unshare", "findmnt", "nsenter", "wireguard-go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (util-linux; scripts/deps.sh installs wireguard-go)", tool)
		}
	}
	unit, err := netlab.ParseUnit(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(unit.Bounding) == 0 || !slices.Equal(unit.Ambient, unit.Bounding) {
		t.Fatalf("%s: AmbientCapabilities %v differ from CapabilityBoundingSet %v", unitFile, unit.Ambient, unit.Bounding)
	}
	lab, gws := site(t, 3)
	g1, g2, g3 := gws[0], gws[1], gws[2]
	n1, n2, n3 := lab.Network(1), lab.Network(2), lab.Network(3)
	pool := []netip.Prefix{netip.MustParsePrefix("172.16.201.0/24"), netip.MustParsePrefix("fd00:c1::/64")}
	g1.Peerings = append(g1.Peerings, g1.PeeringTo(g2))
	g2.Peerings = append(g2.Peerings, g2.PeeringTo(g1))
	g2.Peerings[0].Spaces = append(g2.Peerings[0].Spaces, pool...)
	netlab.LinkBGP(g1, g3)
	// BFD between the two vgate gateways, beside the probe (defaults).
	g1.Peering(g3.Name).BGP.BFD = &netlab.BFDConf{}
	g3.Peering(g1.Name).BGP.BFD = &netlab.BFDConf{}
	g1.Extra = sandboxNamesExtra(p2sExtra) // names, invites: invite_test.go
	g1.MetricsListen = metricsAddr

	sb, err := lab.NewSandbox(unit, "sandbox-net1")
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Apply(g1); err != nil {
		t.Fatal(err)
	}
	t.Logf("unit %s: capabilities %v, config %s, state %s, runtime %s; sandbox script:\n%s",
		unitFile, unit.Bounding, unit.ConfigDir(), unit.StateDir(), unit.RuntimeDir(), sb.Script())

	// ExecStartPre, as the unit runs it.
	if err := g1.WriteConfig(); err != nil {
		t.Fatal(err)
	}
	if out, err := lab.Run(n1.GatewayNS, append(sb.Wrapper(), unit.ExecStartPre...)...); err != nil {
		t.Fatalf("ExecStartPre %v in the sandbox: %v\n%s", unit.ExecStartPre, err, out)
	}

	// Without any one of its capabilities the gateway does not start.
	logPath := g1.LogPath
	for _, c := range unit.Bounding {
		sb.Caps = slices.DeleteFunc(slices.Clone(unit.Bounding), func(s string) bool { return s == c })
		g1.LogPath = lab.Path("net1-without-" + c + ".log")
		if err := g1.Start(); err == nil {
			t.Errorf("gateway started without CAP_%s: the unit grants a capability nothing needs", strings.ToUpper(c))
			g1.Stop()
		} else {
			t.Logf("without CAP_%s the gateway does not start, as expected:\n%s", strings.ToUpper(c), tail(err.Error(), 3))
		}
	}
	sb.Caps = slices.Clone(unit.Bounding)
	g1.LogPath = logPath
	start(t, g1, g2, g3)
	pid := g1.Proc().Pid()

	checkConfinement(t, lab, unit, sb, pid)

	// Site-to-site tunnels: static peering to gw2, BGP peering to gw3.
	mustReach(t, lab, n1, n2)
	if err := lab.TCPTransfer(n2.HostNS, n1.HostNS, n1.HostAddr, 1<<20); err != nil {
		t.Fatalf("1 MiB TCP host 2 -> host 1: %v", err)
	}
	waitInstalled(t, g1, "10.3.0.0/16", "net3")
	waitInstalled(t, g1, "fd00:3::/48", "net3")
	waitFor(t, "gw1: BGP session to net3 established and its tunnel probe alive", 30*time.Second, func() (bool, string) {
		st, err := g1.BGP()
		if err != nil {
			return false, err.Error()
		}
		alive := false
		for _, p := range st.Probes {
			alive = alive || p.Peering == "net3" && p.Alive
		}
		return neighborOf(st, "net3").State == "established" && alive, fmt.Sprintf("%+v", st)
	})
	waitFor(t, "gw1: BFD with net3 up under the unit", 30*time.Second, func() (bool, string) {
		st, err := g1.BGP()
		if err != nil {
			return false, err.Error()
		}
		return bfdOf(st, "net3").State == "up", fmt.Sprintf("%+v", st.BFD)
	})
	mustReach(t, lab, n1, n3)
	if err := lab.TCPTransfer(n1.HostNS, n3.HostNS, n3.HostAddr, 1<<20); err != nil {
		t.Fatalf("1 MiB TCP host 1 -> host 3 over BGP routes: %v", err)
	}

	// Point-to-site: the admin adds a client over the control socket (as
	// root, outside the sandbox); a stock WireGuard laptop uses it.
	conf, err := g1.CLI("client", "add", "alice", "--group", "devs", "--socket", g1.Socket)
	if err != nil {
		t.Fatalf("client add: %v\n%s", err, conf)
	}
	if ents, err := os.ReadDir(sb.State); err != nil || len(ents) == 0 {
		t.Errorf("state directory %s after client add: %v %v (the registry must be written there)", sb.State, ents, err)
	}
	lt, err := lab.AddLaptop(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := lt.UpStock(conf); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []netip.Addr{n1.HostAddr, n2.HostAddr, n2.HostAddrV6} {
		if err := lab.WaitPing(lt.NS, dst, 20*time.Second); err != nil {
			t.Fatalf("laptop cannot reach %s: %v", dst, err)
		}
	}

	checkP2SBFD(t, lab, g1, lt)
	checkCapture(t, lab, g1, n1, n2)
	checkSandboxNames(t, lab, g1, lt) // DNS on port 53, enrollment with an invite: invite_test.go

	// Reload: a changed config applies; an invalid one is refused and the
	// previous one keeps running.
	g1.Peering("net2").Spaces = append(g1.Peering("net2").Spaces, netip.MustParsePrefix("10.12.0.0/16"))
	reload(t, g1, 1)
	waitFor(t, "gw1: route 10.12.0.0/16 of the reloaded config", 10*time.Second, func() (bool, string) {
		r := vgateRoutes(t, lab, n1.GatewayNS)
		return hasRoute(r, "10.12.0.0/16"), strings.Join(r, "\n")
	})
	extra := g1.Extra
	g1.Extra += "no_such_setting: 1\n"
	if err := g1.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "gw1: invalid config refused", 10*time.Second, func() (bool, string) {
		st, err := g1.Status()
		if err != nil {
			return false, err.Error()
		}
		return st.Reloads.Failed >= 1 && st.Reloads.OK == 1, fmt.Sprintf("%+v", st.Reloads)
	})
	g1.Extra = extra
	if !hasRoute(vgateRoutes(t, lab, n1.GatewayNS), "10.12.0.0/16") {
		t.Error("the refused reload removed a route of the running config")
	}
	mustReach(t, lab, n1, n2)

	// A drain under the unit: recorded in the state directory. gw3 has no
	// other path to net1, so it keeps routing through gw1 and says so:
	// draining, never drained.
	if out, err := g1.CLI("drain", "--socket", g1.Socket); err != nil || !strings.Contains(out, "draining") {
		t.Fatalf("vgate drain: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(sb.State, "drain")); err != nil {
		t.Errorf("the drain is not recorded in the state directory: %v", err)
	}
	waitFor(t, "gw3: sees gw1 drain, has no other path", 10*time.Second, func() (bool, string) {
		st, err := g3.BGP()
		if err != nil {
			return false, err.Error()
		}
		for _, p := range st.Probes {
			if p.Peering == "net1" {
				return p.Draining && !p.Avoiding, fmt.Sprintf("%+v", p)
			}
		}
		return false, fmt.Sprintf("%+v", st.Probes)
	})
	if st, err := g1.Status(); err != nil || st.Drain == nil || st.Drain.State != api.Draining || len(st.Drain.Waiting) != 1 || st.Drain.Waiting[0] != "net3" {
		t.Errorf("gw1 drain status: %v %+v", err, st.Drain)
	}
	mustReach(t, lab, n1, n3)

	// Metrics over HTTP inside the gateway's namespace.
	body := scrape(t, n1.GatewayNS, metricsAddr)
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"vgate_peering_up", []string{"peering=net2"}, 1},
		{"vgate_peering_up", []string{"peering=net3"}, 1},
		{"vgate_bgp_session_up", []string{"peering=net3"}, 1},
		{"vgate_bfd_up", []string{"peering=net3"}, 1},
		{"vgate_bfd_down_total", []string{"peering=net3"}, 0},
		{"vgate_p2s_clients_registered", nil, 1},
		{"vgate_reloads_total", []string{"result=ok"}, 1},
		{"vgate_reloads_total", []string{"result=error"}, 1},
		{"vgate_draining", nil, 1},
		{"vgate_drained", nil, 0},
	} {
		if v := mustMetric(t, body, m.name, m.labels...); v != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, v, m.want)
		}
	}

	if out, err := g1.CLI("drain", "--undo", "--socket", g1.Socket); err != nil || !strings.Contains(out, "not draining") {
		t.Fatalf("vgate drain --undo: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(sb.State, "drain")); !os.IsNotExist(err) {
		t.Errorf("the undone drain is still recorded: %v", err)
	}

	// Still running, and nothing was refused by the confinement.
	if g1.Proc().Exited() {
		t.Fatalf("sandboxed gateway exited:\n%s", tail(g1.Log(), 30))
	}
	if _, err := g1.Status(); err != nil {
		t.Fatalf("sandboxed gateway status: %v", err)
	}
	checkNothingRefused(t, g1.Log())
}

// checkP2SBFD: a point-to-site client sending a BFD control packet to
// the gateway's tunnel address, port 3784, is refused by the group policy
// (it is a gateway service no group opens): nothing reaches the BFD
// listener, whose drop counters stay as they were, and the BFD session
// with net3 stays up.
func checkP2SBFD(t *testing.T, lab *netlab.Lab, g *netlab.Gateway, lt *netlab.Laptop) {
	t.Helper()
	before, err := g.Status()
	if err != nil || before.P2S == nil {
		t.Fatalf("status: %v %+v", err, before.P2S)
	}
	bst, err := g.BGP()
	if err != nil {
		t.Fatal(err)
	}
	// A Down packet (version 1, multiplier 3, my discriminator 1).
	pkt := `\x20\x40\x03\x18\x00\x00\x00\x01\x00\x00\x00\x00\x00\x0f\x42\x40\x00\x0f\x42\x40\x00\x00\x00\x00`
	for range 5 {
		if out, err := lab.Run(lt.NS, "bash", "-c", "printf '"+pkt+"' > /dev/udp/"+g.TunnelAddress.String()+"/3784"); err != nil {
			t.Fatalf("laptop sending to %s:3784: %v\n%s", g.TunnelAddress, err, out)
		}
	}
	waitFor(t, "the group policy refuses the laptop's BFD packets", 10*time.Second, func() (bool, string) {
		st, err := g.Status()
		if err != nil {
			return false, err.Error()
		}
		return st.P2S.Denied >= before.P2S.Denied+5, fmt.Sprintf("%+v", st.P2S.Packets)
	})
	st, err := g.BGP()
	if err != nil {
		t.Fatal(err)
	}
	for reason, n := range st.BFDDropped {
		if n != bst.BFDDropped[reason] {
			t.Errorf("BFD listener dropped %s packets %d -> %d: a point-to-site client reached it", reason, bst.BFDDropped[reason], n)
		}
	}
	if f := bfdOf(st, "net3"); f.State != "up" || f.Downs != 0 {
		t.Errorf("BFD with net3 after the laptop's packets: %+v", f)
	}
}

// checkNothingRefused fails t where a confined gateway's log has an error
// of the kind the confinement gives (EPERM, EACCES, EROFS).
func checkNothingRefused(t *testing.T, log string) {
	t.Helper()
	for _, e := range []syscall.Errno{syscall.EPERM, syscall.EACCES, syscall.EROFS} {
		if strings.Contains(log, e.Error()) {
			t.Errorf("gateway log has %q (%s): the confinement refused something:\n%s", e.Error(), e, grepLines(log, e.Error()))
		}
	}
}

// procCaps is pid's /proc status (netlab.ProcStatus) and the unit's
// bounding capability set as a mask.
func procCaps(t *testing.T, unit *netlab.Unit, pid int) (map[string]string, uint64) {
	t.Helper()
	st, err := netlab.ProcStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	want, err := netlab.CapMask(unit.Bounding)
	if err != nil {
		t.Fatal(err)
	}
	return st, want
}

// checkConfinement checks that the process pid is confined as the unit
// says: its capability sets, no-new-privileges and umask, which paths are
// writable in its mount namespace, its private /tmp, and that none of its
// mounts shows outside.
func checkConfinement(t *testing.T, lab *netlab.Lab, unit *netlab.Unit, sb *netlab.Sandbox, pid int) {
	t.Helper()
	st, want := procCaps(t, unit, pid)
	wantAmb, _ := netlab.CapMask(unit.Ambient)
	for k, w := range map[string]uint64{"CapEff": want, "CapPrm": want, "CapBnd": want, "CapInh": wantAmb, "CapAmb": wantAmb} {
		got, err := strconv.ParseUint(st[k], 16, 64)
		if err != nil || got != w {
			t.Errorf("pid %d %s = %s, want %016x (%v)", pid, k, st[k], w, unit.Bounding)
		}
	}
	if uid := strings.Fields(st["Uid"]); len(uid) < 2 || uid[1] != "0" {
		t.Errorf("pid %d Uid %q: the unit runs the gateway as root (with only its capabilities)", pid, st["Uid"])
	}
	if unit.NoNewPrivileges && st["NoNewPrivs"] != "1" {
		t.Errorf("pid %d NoNewPrivs = %q, want 1", pid, st["NoNewPrivs"])
	}
	if st["Umask"] != fmt.Sprintf("%04o", unit.UMask) {
		t.Errorf("pid %d Umask = %q, want %04o", pid, st["Umask"], unit.UMask)
	}

	// Writability as full root inside the gateway's mount namespace:
	// access(2) reports a read-only mount even to root.
	paths := map[string]bool{
		"/": false, "/etc": false, "/usr": false, "/var": false, "/var/lib": false, "/run": false,
		"/sys": false, "/proc/sys": false, unit.ConfigDir(): false, unit.ExecStart[0]: false,
		unit.StateDir(): true, unit.RuntimeDir(): true,
	}
	if unit.PrivateTmp {
		paths["/tmp"], paths["/var/tmp"] = true, true
	}
	var list []string
	for p := range paths {
		list = append(list, p)
	}
	slices.Sort(list)
	script := `for p; do if [ -w "$p" ]; then echo "rw $p"; elif [ -e "$p" ]; then echo "ro $p"; else echo "missing $p"; fi; done`
	out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(pid), "-m", "--", "sh", "-c", script, "sh"}, list...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		state, p, _ := strings.Cut(line, " ")
		w := "ro"
		if paths[p] {
			w = "rw"
		}
		if state != w {
			t.Errorf("in the sandbox %s is %s, want %s", p, state, w)
		}
	}
	// PrivateTmp: the lab's directory under the host's /tmp is not there;
	// the files the gateway needs are, at the unit's paths.
	out, err = exec.Command("nsenter", "-t", strconv.Itoa(pid), "-m", "--", "sh", "-c",
		`[ ! -e "$1" ] && [ -f "$2" ] && [ -S "$3" ]`, "sh", lab.Dir, unit.ConfigFile(), filepath.Join(unit.RuntimeDir(), "vgate.sock")).CombinedOutput()
	if err != nil {
		t.Errorf("in the sandbox: want %s hidden (PrivateTmp), %s a file and the control socket in %s: %v %s",
			lab.Dir, unit.ConfigFile(), unit.RuntimeDir(), err, out)
	}

	// The sandbox's mounts exist in its namespace and nowhere else.
	mountPoints := func(path string) []string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var mps []string
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 4 {
				mps = append(mps, f[4])
			}
		}
		return mps
	}
	inside := mountPoints(fmt.Sprintf("/proc/%d/mountinfo", pid))
	outside := mountPoints("/proc/self/mountinfo")
	for _, mp := range []string{unit.ConfigDir(), unit.StateDir(), unit.RuntimeDir(), unit.ExecStart[0]} {
		if !slices.Contains(inside, mp) {
			t.Errorf("no mount at %s in the sandbox", mp)
		}
		if slices.Contains(outside, mp) {
			t.Errorf("the sandbox's mount at %s shows outside it", mp)
		}
	}
}

// checkCapture runs `vgate capture --peering net2 -w -` as the admin (root,
// outside the sandbox) while host 1 pings host 2, and reads the pcap.
func checkCapture(t *testing.T, lab *netlab.Lab, g *netlab.Gateway, n1, n2 *netlab.Network) {
	t.Helper()
	const count = 6
	packets, req, rep := captureEcho(t, lab, g, "net2", n1, n2, count)
	if echo := req + rep; packets != count || echo == 0 {
		t.Fatalf("capture: %d packets (want %d), %d ICMP between host 1 and host 2 (want > 0)", packets, count, echo)
	}
}
