// Package netlab builds throw-away network-namespace topologies for lab tests,
// `make demo` and benchmarks. It needs root and iproute2; nothing it creates
// lives in the root namespace, and every name carries a prefix unique to the
// lab ("vgl" + 6 random hex digits by default), so labs never collide and a
// crashed run cannot poison the next one.
//
// Topology for networks 1..n (n up to 12):
//
//	                     <prefix>-wan
//	         +-------------- br0 ---------------+
//	         | gw1 (veth)              gw2 (veth)|   ... gw<n>
//	         +-----|-------------------------|---+
//	               |                         |
//	wan0 198.18.0.1/24, fd18::1/64   wan0 198.18.0.2/24, fd18::2/64
//	     <prefix>-gw1                     <prefix>-gw2
//	lan0 10.1.0.1/24, fd00:1::1/64   lan0 10.2.0.1/24, fd00:2::1/64
//	               |                         |
//	eth0 10.1.0.2/24, fd00:1::2/64   eth0 10.2.0.2/24, fd00:2::2/64
//	     <prefix>-h1                      <prefix>-h2
//	default via 10.1.0.1, fd00:1::1  default via 10.2.0.1, fd00:2::1
//
// Gateway namespaces forward IPv4 and IPv6 but have no routes to the other
// LANs: a test adds them (plain routing) or runs a gateway that does. Hosts
// only know their default route. Loopback is up everywhere.
//
// Commands run through `ip netns exec`; processes started with [Lab.Start] are
// tracked and ended by PID in [Lab.Close], which also deletes every namespace
// the lab made. Tests use [NewT], which skips when not root and registers
// Close as cleanup.
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MaxNetworks is the highest network index AddNetwork accepts.
const MaxNetworks = 12

// Lab is one topology. Its methods are safe for concurrent use.
type Lab struct {
	// Prefix starts the name of every namespace the lab makes.
	Prefix string
	// WAN is the underlay namespace holding the bridge br0.
	WAN string
	// Dir is a scratch directory for logs, keys and configs, removed by
	// Close unless KeepDir is set.
	Dir     string
	KeepDir bool

	mu         sync.Mutex
	namespaces []string // created, in creation order
	networks   map[int]*Network
	procs      []*Proc
	afterStop  []func() // run by Close once the processes have ended
	closed     bool
}

// Network is one site: a gateway namespace and a host behind it.
type Network struct {
	Index     int
	GatewayNS string // <prefix>-gw<i>
	HostNS    string // <prefix>-h<i>

	GatewayUnderlay   netip.Addr // 198.18.0.<i> on wan0
	GatewayUnderlayV6 netip.Addr // fd18::<i> on wan0
	GatewayLAN        netip.Addr // 10.<i>.0.1 on lan0
	GatewayLANV6      netip.Addr // fd00:<i>::1 on lan0
	HostAddr          netip.Addr // 10.<i>.0.2 on eth0
	HostAddrV6        netip.Addr // fd00:<i>::2 on eth0

	LAN   netip.Prefix // 10.<i>.0.0/24
	LANV6 netip.Prefix // fd00:<i>::/64
	// Space is the network's IPv4 address space, 10.<i>.0.0/16.
	Space netip.Prefix
}

// Root reports whether the process runs as root (lab tests need it).
func Root() bool { return os.Geteuid() == 0 }

// NewPrefix returns a fresh random prefix "vgl" + 6 hex digits.
func NewPrefix() string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return "vgl" + hex.EncodeToString(b[:])
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{1,9}$`)

// New creates the underlay namespace <prefix>-wan with bridge br0. An empty
// prefix means NewPrefix(). On error nothing is left behind.
func New(prefix string) (*Lab, error) {
	if prefix == "" {
		prefix = NewPrefix()
	}
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("netlab: prefix %q: want 2-10 lowercase letters/digits", prefix)
	}
	if !Root() {
		return nil, errors.New("netlab: needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("netlab: iproute2 missing (scripts/deps.sh installs it): %w", err)
	}
	dir, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		return nil, err
	}
	l := &Lab{Prefix: prefix, WAN: prefix + "-wan", Dir: dir, networks: map[int]*Network{}}
	if err := l.setupWAN(); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

func (l *Lab) setupWAN() error {
	if err := l.addNS(l.WAN); err != nil {
		return err
	}
	return l.ipAll(
		"-n "+l.WAN+" link add br0 type bridge",
		"-n "+l.WAN+" link set br0 up",
	)
}

// AddWANAddress puts p on the WAN bridge br0: the WAN namespace becomes a
// host on the underlay link (an observer, an attacker) with that address.
// p must lie in the lab underlay 198.18.0.0/15.
func (l *Lab) AddWANAddress(p netip.Prefix) error {
	if !labUnderlay.Contains(p.Addr()) {
		return fmt.Errorf("netlab: WAN address %v outside the lab underlay %v", p, labUnderlay)
	}
	_, err := run("ip", "-n", l.WAN, "addr", "add", p.String(), "dev", "br0")
	return err
}

// addNS creates a namespace, records it for Close and brings lo up.
func (l *Lab) addNS(name string) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errors.New("netlab: lab closed")
	}
	l.mu.Unlock()
	if _, err := run("ip", "netns", "add", name); err != nil {
		return err
	}
	l.mu.Lock()
	l.namespaces = append(l.namespaces, name)
	l.mu.Unlock()
	if _, err := run("ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		return err
	}
	// No duplicate address detection: addresses here are unique by
	// construction, and tentative link-local addresses drop the first
	// forwarded IPv6 packets for about a second.
	_, err := l.Run(name, "sysctl", "-q", "-w",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return err
}

// AddNamespace creates the namespace <prefix>-<suffix> (lo up, no DAD),
// which Close deletes, for topologies beyond AddNetwork's (bench/scale).
func (l *Lab) AddNamespace(suffix string) (string, error) {
	name := l.Prefix + "-" + suffix
	return name, l.addNS(name)
}

// AddNetwork creates network i (1..MaxNetworks): gateway and host namespaces,
// wired as in the package diagram.
func (l *Lab) AddNetwork(i int) (*Network, error) {
	if i < 1 || i > MaxNetworks {
		return nil, fmt.Errorf("netlab: network index %d outside 1..%d", i, MaxNetworks)
	}
	l.mu.Lock()
	if _, dup := l.networks[i]; dup {
		l.mu.Unlock()
		return nil, fmt.Errorf("netlab: network %d exists", i)
	}
	l.mu.Unlock()
	n := &Network{
		Index:             i,
		GatewayNS:         fmt.Sprintf("%s-gw%d", l.Prefix, i),
		HostNS:            fmt.Sprintf("%s-h%d", l.Prefix, i),
		GatewayUnderlay:   netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}),
		GatewayUnderlayV6: netip.MustParseAddr(fmt.Sprintf("fd18::%x", i)),
		GatewayLAN:        netip.AddrFrom4([4]byte{10, byte(i), 0, 1}),
		GatewayLANV6:      netip.MustParseAddr(fmt.Sprintf("fd00:%x::1", i)),
		HostAddr:          netip.AddrFrom4([4]byte{10, byte(i), 0, 2}),
		HostAddrV6:        netip.MustParseAddr(fmt.Sprintf("fd00:%x::2", i)),
		LAN:               netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 24),
		LANV6:             netip.MustParsePrefix(fmt.Sprintf("fd00:%x::/64", i)),
		Space:             netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16),
	}
	for _, ns := range []string{n.GatewayNS, n.HostNS} {
		if err := l.addNS(ns); err != nil {
			return nil, err
		}
	}
	gw, h, port := n.GatewayNS, n.HostNS, fmt.Sprintf("gw%d", i)
	if err := l.ipAll(
		// underlay: gw wan0 <-> bridge port gw<i> in the WAN namespace
		"-n "+gw+" link add wan0 type veth peer name "+port+" netns "+l.WAN,
		"-n "+l.WAN+" link set "+port+" master br0 up",
		"-n "+gw+" addr add "+n.GatewayUnderlay.String()+"/24 dev wan0",
		"-n "+gw+" addr add "+n.GatewayUnderlayV6.String()+"/64 dev wan0 nodad",
		"-n "+gw+" link set wan0 up",
		// LAN: gw lan0 <-> host eth0
		"-n "+gw+" link add lan0 type veth peer name eth0 netns "+h,
		"-n "+gw+" addr add "+n.GatewayLAN.String()+"/24 dev lan0",
		"-n "+gw+" addr add "+n.GatewayLANV6.String()+"/64 dev lan0 nodad",
		"-n "+gw+" link set lan0 up",
		"-n "+h+" addr add "+n.HostAddr.String()+"/24 dev eth0",
		"-n "+h+" addr add "+n.HostAddrV6.String()+"/64 dev eth0 nodad",
		"-n "+h+" link set eth0 up",
		"-n "+h+" route add default via "+n.GatewayLAN.String(),
		"-n "+h+" -6 route add default via "+n.GatewayLANV6.String(),
	); err != nil {
		return nil, err
	}
	for _, kv := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"} {
		if _, err := l.Run(gw, "sysctl", "-q", "-w", kv); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	l.networks[i] = n
	l.mu.Unlock()
	return n, nil
}

// AddNetworks adds networks 1..n.
func (l *Lab) AddNetworks(n int) ([]*Network, error) {
	var out []*Network
	for i := 1; i <= n; i++ {
		nw, err := l.AddNetwork(i)
		if err != nil {
			return nil, err
		}
		out = append(out, nw)
	}
	return out, nil
}

// Network returns network i, or nil if it was not added.
func (l *Lab) Network(i int) *Network {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.networks[i]
}

// RoutePlain makes a and b reach each other's address space by plain IP
// forwarding over the underlay (no tunnel): the baseline topology.
func (l *Lab) RoutePlain(a, b *Network) error {
	return l.ipAll(
		"-n "+a.GatewayNS+" route add "+b.Space.String()+" via "+b.GatewayUnderlay.String(),
		"-n "+a.GatewayNS+" -6 route add "+b.LANV6.String()+" via "+b.GatewayUnderlayV6.String(),
		"-n "+b.GatewayNS+" route add "+a.Space.String()+" via "+a.GatewayUnderlay.String(),
		"-n "+b.GatewayNS+" -6 route add "+a.LANV6.String()+" via "+a.GatewayUnderlayV6.String(),
	)
}

// Run runs args inside namespace ns (`ip netns exec ns args...`) and returns
// its combined output; the error includes the output.
func (l *Lab) Run(ns string, args ...string) (string, error) {
	return l.RunContext(context.Background(), ns, args...)
}

// RunContext is Run with a context that kills the command when done.
func (l *Lab) RunContext(ctx context.Context, ns string, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("netlab: Run: no command")
	}
	return runContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// Ping sends count echo requests from namespace fromNS to dst
// (ping -c count -W 1 -i 0.2) and fails unless at least one is answered.
func (l *Lab) Ping(fromNS string, dst netip.Addr, count int) error {
	if count < 1 {
		count = 1
	}
	_, err := l.Run(fromNS, "ping", "-n", "-q", "-c", fmt.Sprint(count), "-W", "1", "-i", "0.2", dst.String())
	return err
}

// WaitPing pings dst once at a time from fromNS until one reply arrives or
// timeout passes. Use it to wait for a tunnel to come up.
func (l *Lab) WaitPing(fromNS string, dst netip.Addr, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := l.Ping(fromNS, dst, 1)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netlab: %s cannot reach %s within %v: %w", fromNS, dst, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Procs returns the processes started with Start that Close will stop.
func (l *Lab) Procs() []*Proc {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.procs)
}

// afterClose registers fn for Close to run once every process it stops
// has ended (cleanup of what a killed process left outside the lab).
func (l *Lab) afterClose(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.afterStop = append(l.afterStop, fn)
}

// Path returns name inside the lab's scratch directory.
func (l *Lab) Path(name string) string { return filepath.Join(l.Dir, name) }

// Namespaces returns the namespaces the lab made and has not deleted yet.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.namespaces)
}

// Close stops every process started with Start (by PID: SIGTERM, then
// SIGKILL after 5 s) and deletes every namespace the lab made. It is
// idempotent and returns all errors it met.
func (l *Lab) Close() error {
	l.mu.Lock()
	l.closed = true
	procs := l.procs
	l.procs = nil
	nss := l.namespaces
	l.mu.Unlock()

	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, p := range procs {
		wg.Go(func() {
			if err := p.Stop(); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		})
	}
	wg.Wait()
	l.mu.Lock()
	after := l.afterStop
	l.afterStop = nil
	l.mu.Unlock()
	for _, fn := range after {
		fn()
	}

	var left []string
	for _, ns := range slices.Backward(nss) {
		if _, err := run("ip", "netns", "del", ns); err != nil {
			if _, statErr := os.Stat("/run/netns/" + ns); statErr == nil {
				errs = append(errs, err)
				left = append(left, ns)
			}
		}
	}
	l.mu.Lock()
	l.namespaces = left
	keep := l.KeepDir
	l.mu.Unlock()
	if !keep && l.Dir != "" {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ipAll runs several `ip` commands, each given as one line of
// space-separated arguments without the leading "ip", stopping at the first
// failure.
func (l *Lab) ipAll(lines ...string) error {
	for _, line := range lines {
		if _, err := run("ip", strings.Fields(line)...); err != nil {
			return err
		}
	}
	return nil
}

func run(name string, args ...string) (string, error) {
	return runContext(context.Background(), name, args...)
}

func runContext(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// LoadAvg is the machine's 1, 5 and 15 minute load averages, "?" when
// they cannot be read (benchmarks print it beside their figures).
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
