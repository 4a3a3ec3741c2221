package netlab

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
)

// FRR is a third-party router for interop tests: FRRouting from Debian
// (zebra, bfdd and bgpd) in its own namespace <prefix>-frr, whose wan0 sits
// on the underlay bridge, behind a stock WireGuard interface (Debian's
// wireguard-go configured with wg(8)). Nothing in it is vgate code.
//
//	              <prefix>-wan br0
//	gw1 (198.18.0.1) ... gw<n>        frr
//	                                   |
//	                      wan0 198.18.0.51/24      <prefix>-frr
//	                      <IfName>: wireguard-go, Address peer <remote>
//	                      zebra, bfdd, bgpd; frr.conf applied by vtysh -b
//
// The daemons run in the foreground, as the frr user (FRR exits when the
// user it runs as is not in the frrvty group, which root is not), each
// with its pid file, vty socket, the zebra API socket and bfdd's control
// socket in RunDir, and an empty config file of its own there, so that
// nothing is read from or written to the system's /etc/frr or /run/frr.
// The admin's frr.conf (ConfPath) is applied the way frrinit.sh does at
// boot: `vtysh -b` once the daemons answer. FRR keeps crash-log buffers
// in /var/tmp/frr/<daemon>.<pid> (a path compiled in); a daemon removes
// its own when it ends, and Stop removes those of daemons that had to be
// killed.
type FRR struct {
	NS       string
	Underlay netip.Addr // 198.18.0.51
	// IfName is the WireGuard interface, unique to the lab.
	IfName     string
	Key        keys.PrivateKey
	Pub        keys.PublicKey
	ListenPort int // WireGuard UDP port on Underlay

	// Dir holds frr.conf (ConfPath), vtysh.conf and the daemons' logs;
	// RunDir (owned by the frr user) their sockets, pid files and empty
	// daemon configs.
	Dir, RunDir, ConfPath string

	lab *Lab
	wg  *Proc

	mu      sync.Mutex
	daemons map[string]*Proc
}

// FRRDaemons are the FRR daemons the lab runs, in start order: zebra
// (interfaces, kernel routes), bfdd (BFD), bgpd (BGP; it asks bfdd for
// sessions through zebra).
var FRRDaemons = []string{"zebra", "bfdd", "bgpd"}

// frrSbin is where Debian installs FRR's daemons.
const frrSbin = "/usr/lib/frr"

// FRRBinaries are the programs an FRR interop test needs, and the Debian
// packages providing them (scripts/deps.sh installs them).
var FRRBinaries = map[string]string{
	frrSbin + "/zebra": "frr",
	frrSbin + "/bfdd":  "frr",
	frrSbin + "/bgpd":  "frr",
	"vtysh":            "frr",
	"wireguard-go":     "wireguard-go",
	"wg":               "wireguard-tools",
}

// LookFRR reports what is missing for an FRR interop test: the programs
// of FRRBinaries and the frr user.
func LookFRR() (missing []string) {
	for f, pkg := range FRRBinaries {
		if strings.HasPrefix(f, "/") {
			if st, err := os.Stat(f); err != nil || st.Mode()&0o111 == 0 {
				missing = append(missing, fmt.Sprintf("%s (%s)", f, pkg))
			}
		} else if lookSbin(f) == "" {
			missing = append(missing, fmt.Sprintf("%s (%s)", f, pkg))
		}
	}
	if _, err := user.Lookup("frr"); err != nil {
		missing = append(missing, "user frr (frr)")
	}
	return missing
}

// AddFRR creates the FRR namespace (not yet running anything), with
// underlay address 198.18.0.51/24 and a fresh WireGuard key. The lab's
// directory becomes traversable (not readable) by other users, so that
// the daemons, running as frr, reach RunDir.
func (l *Lab) AddFRR() (*FRR, error) {
	k, err := keys.GeneratePrivate()
	if err != nil {
		return nil, err
	}
	f, err := l.newFRR(l.Prefix+"-frr", netip.AddrFrom4([4]byte{198, 18, 0, 51}), "frr")
	if err != nil {
		return nil, err
	}
	f.IfName = l.Prefix + "frr" // 12 characters: "vgl" + 6 hex + "frr"
	f.Key, f.Pub, f.ListenPort = k, k.Public(), 51820
	if len(f.IfName) > 15 {
		return nil, fmt.Errorf("netlab: interface name %q longer than 15 characters", f.IfName)
	}
	if err := l.addRouterNS(f.NS, "frr", f.Underlay); err != nil {
		return nil, err
	}
	return f, nil
}

// AddFRR prepares FRR (not yet running) beside the strongSwan, in its
// namespace: a device that routes with BGP and BFD over its IPsec tunnel
// (ipsec0), as StartBIRD does with BIRD. It has no WireGuard interface
// (IfName, Key and ListenPort stay empty); its files are in the lab's
// directory frr-swan<i>.
func (s *Swan) AddFRR() (*FRR, error) {
	return s.lab.newFRR(s.Net.GatewayNS, s.Net.GatewayUnderlay, fmt.Sprintf("frr-swan%d", s.Net.Index))
}

// newFRR is an FRR in namespace ns (which it does not create) with its
// files in the lab's directory dir, owned so that the daemons, running
// as frr, can use them.
func (l *Lab) newFRR(ns string, underlay netip.Addr, dir string) (*FRR, error) {
	u, err := user.Lookup("frr")
	if err != nil {
		return nil, fmt.Errorf("netlab: FRR runs as user frr: %w (apt-get install frr)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	f := &FRR{
		NS:       ns,
		Underlay: underlay,
		Dir:      l.Path(dir),
		lab:      l,
		daemons:  map[string]*Proc{},
	}
	f.RunDir = filepath.Join(f.Dir, "run")
	f.ConfPath = filepath.Join(f.Dir, "frr.conf")
	if err := os.Chmod(l.Dir, 0o711); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(f.RunDir, 0o750); err != nil {
		return nil, err
	}
	for _, d := range []string{f.Dir, f.RunDir} {
		if err := os.Chmod(d, 0o750); err != nil {
			return nil, err
		}
		if err := os.Chown(d, 0, gid); err != nil {
			return nil, err
		}
	}
	if err := os.Chown(f.RunDir, uid, gid); err != nil {
		return nil, err
	}
	for _, d := range FRRDaemons {
		p := filepath.Join(f.RunDir, d+".conf")
		if err := os.WriteFile(p, nil, 0o640); err != nil {
			return nil, err
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// UpWireGuard runs a stock WireGuard interface on IfName (see
// Lab.StockWireGuard) with one peer; the interface gets local (a /32) as
// a point-to-point address whose peer is remote, the other end's tunnel
// address, so FRR sees remote as directly connected on IfName: a
// single-hop eBGP session and single-hop BFD.
func (f *FRR) UpWireGuard(local, remote netip.Addr, peer WGPeer) error {
	p, err := f.lab.upRouterWireGuard(f.NS, f.IfName, f.Key, f.ListenPort, local, remote, peer)
	f.wg = p
	return err
}

// Start writes conf (the admin's frr.conf; %IF% stands for IfName) to
// ConfPath, checks it with `vtysh --dryrun`, starts zebra, bfdd and bgpd
// and applies it with `vtysh -b`. It returns once the config is applied.
// Start after Stop starts the daemons afresh (a router reboot).
func (f *FRR) Start(conf string) error {
	conf = strings.ReplaceAll(conf, "%IF%", f.IfName)
	if err := os.WriteFile(f.ConfPath, []byte(conf), 0o640); err != nil {
		return err
	}
	// vtysh reads vtysh.conf from the config directory; an integrated
	// config (frr.conf for all daemons) is the Debian default.
	if err := os.WriteFile(filepath.Join(f.Dir, "vtysh.conf"), []byte("service integrated-vtysh-config\n"), 0o640); err != nil {
		return err
	}
	if out, err := f.lab.Run(f.NS, "vtysh", "--config_dir", f.Dir, "--dryrun", "-f", f.ConfPath); err != nil {
		return fmt.Errorf("netlab: frr.conf check: %w\n%s", err, out)
	}
	for _, d := range FRRDaemons {
		if err := f.startDaemon(d); err != nil {
			return err
		}
	}
	if out, err := f.lab.Run(f.NS, "vtysh", "--config_dir", f.Dir, "--vty_socket", f.RunDir, "-b"); err != nil {
		return fmt.Errorf("netlab: vtysh -b: %w\n%s", err, out)
	}
	return nil
}

// startDaemon runs one FRR daemon in the foreground and waits for its vty
// socket (and zebra's API socket).
func (f *FRR) startDaemon(d string) error {
	args := []string{filepath.Join(frrSbin, d),
		"-f", filepath.Join(f.RunDir, d+".conf"),
		"-i", filepath.Join(f.RunDir, d+".pid"),
		"--vty_socket", f.RunDir,
		"-P", "0", // no vty on TCP
		"--log", "stdout",
	}
	switch d {
	case "zebra":
		args = append(args, "-z", f.zserv())
	case "bfdd":
		args = append(args, "-z", f.zserv(), "--bfdctl", filepath.Join(f.RunDir, "bfdd.sock"))
	default:
		args = append(args, "-z", f.zserv())
	}
	vty := filepath.Join(f.RunDir, d+".vty")
	_ = os.Remove(vty) // a previous run's; the daemon makes a new one
	p, err := f.lab.Start(f.NS, filepath.Join(f.Dir, d+".log"), args...)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.daemons[d] = p
	f.mu.Unlock()
	f.lab.afterClose(func() { removeFRRTmp(d, p) })
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := os.Stat(vty)
		if err == nil && d == "zebra" {
			_, err = os.Stat(f.zserv())
		}
		if err == nil {
			return nil
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("netlab: FRR %s did not start:\n%s", d, p.LogTail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *FRR) zserv() string { return filepath.Join(f.RunDir, "zserv.api") }

// Daemon returns the running process of daemon d (nil if not running).
func (f *FRR) Daemon(d string) *Proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.daemons[d]
}

// Stop ends the daemons by PID (bgpd first, zebra last) and removes
// what killed daemons left in /var/tmp/frr.
func (f *FRR) Stop() error {
	f.mu.Lock()
	ds := f.daemons
	f.daemons = map[string]*Proc{}
	f.mu.Unlock()
	var errs []error
	for i := len(FRRDaemons) - 1; i >= 0; i-- {
		d := FRRDaemons[i]
		p := ds[d]
		if p == nil {
			continue
		}
		errs = append(errs, p.Stop())
		removeFRRTmp(d, p)
	}
	return errors.Join(errs...)
}

// removeFRRTmp removes the crash-log directory of an ended FRR daemon:
// the daemon removes it itself on a clean exit; after SIGKILL it stays.
// It is ours by PID.
func removeFRRTmp(d string, p *Proc) {
	if p.Exited() {
		_ = os.RemoveAll(fmt.Sprintf("/var/tmp/frr/%s.%d", d, p.Pid()))
	}
}

// Vtysh runs vtysh with each of cmds as a -c command against the lab's
// daemons and returns its output.
func (f *FRR) Vtysh(cmds ...string) (string, error) {
	args := []string{"vtysh", "--config_dir", f.Dir, "--vty_socket", f.RunDir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	return f.lab.Run(f.NS, args...)
}

// VtyshJSON runs one show command that ends in "json" and decodes its
// output into v.
func (f *FRR) VtyshJSON(cmd string, v any) error {
	out, err := f.Vtysh(cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("netlab: vtysh %q: %w\n%s", cmd, err, out)
	}
	return nil
}

// Log returns the daemons' logs so far (stdout, where they log).
func (f *FRR) Log() string {
	var b strings.Builder
	for _, d := range FRRDaemons {
		s, _ := os.ReadFile(filepath.Join(f.Dir, d+".log"))
		fmt.Fprintf(&b, "==== %s ====\n%s", d, s)
	}
	return b.String()
}

// WireGuardLog returns wireguard-go's log so far.
func (f *FRR) WireGuardLog() string {
	if f.wg == nil {
		return ""
	}
	s, _ := os.ReadFile(f.wg.LogPath)
	return string(s)
}

// AddWireGuard runs a further stock WireGuard interface in FRR's
// namespace, IfName+suffix with a key of its own and listenPort, numbered
// like UpWireGuard (local a /32 whose peer is remote): a second tunnel,
// e.g. to another gateway. It returns the interface's public key.
func (f *FRR) AddWireGuard(suffix string, listenPort int, local, remote netip.Addr, peer WGPeer) (keys.PublicKey, error) {
	k, err := keys.GeneratePrivate()
	if err != nil {
		return keys.PublicKey{}, err
	}
	ifName := f.IfName + suffix
	if len(ifName) > 15 {
		return keys.PublicKey{}, fmt.Errorf("netlab: interface name %q longer than 15 characters", ifName)
	}
	if _, err := f.lab.upRouterWireGuard(f.NS, ifName, k, listenPort, local, remote, peer); err != nil {
		return keys.PublicKey{}, err
	}
	return k.Public(), nil
}
