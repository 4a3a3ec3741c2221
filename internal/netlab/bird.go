package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
)

// BIRD is a third-party BGP router for interop tests: BIRD 2 from Debian in
// its own namespace <prefix>-bird, whose wan0 sits on the underlay bridge,
// behind a stock WireGuard interface (Debian's wireguard-go configured
// with wg(8)). Nothing in it is vgate code.
//
//	              <prefix>-wan br0
//	gw1 (198.18.0.1) ... gw<n>        bird
//	                                   |
//	                      wan0 198.18.0.50/24      <prefix>-bird
//	                      <IfName>: wireguard-go, Address peer <PeerAddress>
//	                      bird -f -c bird.conf -s bird.ctl -P bird.pid
//
// The BIRD control socket, pid file, config and log live in the lab's
// directory: nothing touches the system's /run/bird.
type BIRD struct {
	NS       string
	Underlay netip.Addr // 198.18.0.50
	// IfName is the WireGuard interface, unique to the lab (wireguard-go's
	// UAPI sockets in /var/run/wireguard are shared by all namespaces).
	IfName string
	Key    keys.PrivateKey
	Pub    keys.PublicKey
	// ListenPort is the WireGuard UDP port on Underlay.
	ListenPort int

	ConfPath, Socket, PidFile, LogPath string

	lab  *Lab
	wg   *Proc
	bird *Proc
}

// BIRDBinaries are the programs a BIRD interop test needs, and the Debian
// packages providing them.
var BIRDBinaries = map[string]string{
	"bird":         "bird2",
	"birdc":        "bird2",
	"wireguard-go": "wireguard-go",
	"wg":           "wireguard-tools",
}

// LookBIRD finds bird and birdc (in PATH or /usr/sbin, which a non-login
// root shell may lack) and reports what is missing for a BIRD interop test.
func LookBIRD() (missing []string) {
	for _, cmd := range []string{"bird", "birdc", "wireguard-go", "wg"} {
		if lookSbin(cmd) == "" {
			missing = append(missing, fmt.Sprintf("%s (%s)", cmd, BIRDBinaries[cmd]))
		}
	}
	return missing
}

func lookSbin(cmd string) string {
	if p, err := exec.LookPath(cmd); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := dir + "/" + cmd
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// AddBIRD creates the BIRD namespace (not yet running anything), with
// underlay address 198.18.0.50/24 and a fresh WireGuard key.
func (l *Lab) AddBIRD() (*BIRD, error) {
	k, err := keys.GeneratePrivate()
	if err != nil {
		return nil, err
	}
	b := &BIRD{
		NS:         l.Prefix + "-bird",
		Underlay:   netip.AddrFrom4([4]byte{198, 18, 0, 50}),
		IfName:     l.Prefix + "bird", // 13 characters: "vgl" + 6 hex + "bird"
		Key:        k,
		Pub:        k.Public(),
		ListenPort: 51820,
		ConfPath:   l.Path("bird.conf"),
		Socket:     l.Path("bird.ctl"),
		PidFile:    l.Path("bird.pid"),
		LogPath:    l.Path("bird.log"),
		lab:        l,
	}
	if len(b.IfName) > 15 {
		return nil, fmt.Errorf("netlab: interface name %q longer than 15 characters", b.IfName)
	}
	if err := l.addRouterNS(b.NS, "bird", b.Underlay); err != nil {
		return nil, err
	}
	return b, nil
}

// UpWireGuard runs a stock WireGuard interface on IfName (Debian's
// wireguard-go configured with `wg set`, see Lab.StockWireGuard) with
// one peer. The interface gets local (a /32) as a point-to-point address
// whose peer is remote, the other end's tunnel address, so the kernel
// (and BIRD) see remote as directly connected on IfName.
func (b *BIRD) UpWireGuard(local, remote netip.Addr, peer WGPeer) error {
	p, err := b.lab.upRouterWireGuard(b.NS, b.IfName, b.Key, b.ListenPort, local, remote, peer)
	b.wg = p
	return err
}

// Start writes conf to ConfPath and runs `bird -f` in the namespace with
// the lab's private control socket and pid file, returning once birdc
// answers. conf may use %IF% for IfName.
func (b *BIRD) Start(conf string) error {
	conf = strings.ReplaceAll(conf, "%IF%", b.IfName)
	if err := os.WriteFile(b.ConfPath, []byte(conf), 0o644); err != nil {
		return err
	}
	bin := lookSbin("bird")
	if out, err := b.lab.Run(b.NS, bin, "-p", "-c", b.ConfPath); err != nil {
		return fmt.Errorf("netlab: bird config check: %w\n%s", err, out)
	}
	p, err := b.lab.Start(b.NS, b.LogPath, bin, "-f", "-c", b.ConfPath, "-s", b.Socket, "-P", b.PidFile)
	if err != nil {
		return err
	}
	b.bird = p
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.Birdc("show", "status"); err == nil {
			return nil
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("netlab: bird did not answer on %s:\n%s", b.Socket, p.LogTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Birdc runs `birdc -s Socket args...` in the namespace and returns its
// output.
func (b *BIRD) Birdc(args ...string) (string, error) {
	if b.bird == nil {
		return "", errors.New("netlab: bird not started")
	}
	return b.lab.Run(b.NS, append([]string{lookSbin("birdc"), "-s", b.Socket}, args...)...)
}

// Log returns BIRD's log so far (its stderr: the config logs to stderr).
func (b *BIRD) Log() string {
	s, _ := os.ReadFile(b.LogPath)
	return string(s)
}

// WireGuardLog returns wireguard-go's log so far.
func (b *BIRD) WireGuardLog() string {
	if b.wg == nil {
		return ""
	}
	s, _ := os.ReadFile(b.wg.LogPath)
	return string(s)
}

// Reconfigure writes conf (%IF% as in Start) to ConfPath and makes the
// running BIRD load it with `birdc configure`, as an admin changes a live
// router: sessions whose protocol did not change stay up.
func (b *BIRD) Reconfigure(conf string) error {
	conf = strings.ReplaceAll(conf, "%IF%", b.IfName)
	if err := os.WriteFile(b.ConfPath, []byte(conf), 0o644); err != nil {
		return err
	}
	out, err := b.Birdc("configure")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Reconfigured") && !strings.Contains(out, "Reconfiguration in progress") {
		return fmt.Errorf("netlab: birdc configure: %s", out)
	}
	return nil
}

// AddWireGuard runs a further stock WireGuard interface in BIRD's
// namespace, IfName+suffix with a key of its own and listenPort, numbered
// like UpWireGuard (local a /32 whose peer is remote): a second tunnel,
// e.g. to another gateway. It returns the interface's public key.
func (b *BIRD) AddWireGuard(suffix string, listenPort int, local, remote netip.Addr, peer WGPeer) (keys.PublicKey, error) {
	k, err := keys.GeneratePrivate()
	if err != nil {
		return keys.PublicKey{}, err
	}
	ifName := b.IfName + suffix
	if len(ifName) > 15 {
		return keys.PublicKey{}, fmt.Errorf("netlab: interface name %q longer than 15 characters", ifName)
	}
	if _, err := b.lab.upRouterWireGuard(b.NS, ifName, k, listenPort, local, remote, peer); err != nil {
		return keys.PublicKey{}, err
	}
	return k.Public(), nil
}
