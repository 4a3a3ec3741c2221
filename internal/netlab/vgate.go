package netlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/control"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/overlap"
)

// Gateway is a vgate gateway of one lab network: its key, its config file
// (rendered from the fields below by WriteConfig) and, once started, the
// `vgate run` process in the network's gateway namespace.
//
// Network i gets the address spaces 10.i.0.0/16 and fd00:i::/48 and the
// tunnel address 10.i.255.254.
type Gateway struct {
	Net  *Network
	Name string // net<i>
	Bin  string // path of the vgate binary
	Key  keys.PrivateKey
	Pub  keys.PublicKey

	KeyFile, ConfigPath, Socket, StateDir, LogPath string

	Spaces        []netip.Prefix
	TunnelAddress netip.Addr
	MaxTunnels    int
	Peerings      []Peering
	// Extra is raw YAML appended to the rendered config.
	Extra string
	// MetricsListen is metrics.listen ("" disables the endpoint).
	MetricsListen string
	// ASN, when not 0, gives the gateway a bgp section (bgp.go).
	ASN uint32
	// Multipath sets bgp.multipath (ECMP; bgp.go).
	Multipath bool
	// Drain sets bgp.drain; GracefulRestart, when not 0, sets
	// bgp.graceful_restart.restart_time, and LongLivedStale its
	// long_lived (bgp.go).
	Drain                           bool
	GracefulRestart, LongLivedStale time.Duration

	// Wrapper, when set, returns the command that `vgate run` is started
	// through (its arguments follow), and PathIn maps the paths above as
	// the test sees them to the paths the gateway process sees; both are
	// for a gateway in a Sandbox (sandbox.go).
	Wrapper func() []string
	PathIn  func(string) string

	// LogLevel is `vgate run`'s --log-level ("": debug). Pprof, when set,
	// is the unix socket the gateway serves Go's profiles on
	// (VGATE_DEBUG_PPROF): Goroutines reads it.
	LogLevel string
	Pprof    string

	lab  *Lab
	proc *Proc

	ctlOnce sync.Once
	ctl     *control.Client
}

// control is the gateway's control client: one per gateway, so that the
// connections the test's questions leave open in the gateway (idle
// keep-alives) stay one, whatever the number of questions (the chaos test
// counts the gateway's descriptors and goroutines).
func (g *Gateway) control() *control.Client {
	g.ctlOnce.Do(func() { g.ctl = control.NewClient(g.Socket) })
	return g.ctl
}

// in is p as the gateway process sees it.
func (g *Gateway) in(p string) string {
	if g.PathIn == nil {
		return p
	}
	return g.PathIn(p)
}

// Peering is one peering in a rendered config.
type Peering struct {
	Name, Network string
	PublicKey     keys.PublicKey
	Endpoint      string
	Spaces        []netip.Prefix
	TunnelAddress netip.Addr
	Keepalive     time.Duration
	// BGP, when set, runs a session over the peering (bgp.go).
	BGP *PeerBGP
	// DNSZone is the peering's dns_zone ("": none).
	DNSZone string
	// RelayURL and RelayPin, when set, give the peering a relay (relay.go).
	RelayURL, RelayPin string
	// IPsec, when set, makes this a type: ipsec peering: its value is the
	// body of the peering's ipsec section (YAML, indented by the caller
	// to sit under "    ipsec:"), and Endpoint is the device's address.
	IPsec string
	// NAT, when set, is the body of the peering's nat section (YAML
	// lines indented by the caller to sit under "    nat:").
	NAT string
}

// NewGateway prepares (but does not start) the gateway of network n, running
// the vgate binary bin.
func (l *Lab) NewGateway(n *Network, bin string) (*Gateway, error) {
	k, err := keys.GeneratePrivate()
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("net%d", n.Index)
	g := &Gateway{
		Net: n, Name: name, Bin: bin, Key: k, Pub: k.Public(), lab: l,
		KeyFile:       l.Path(name + ".key"),
		ConfigPath:    l.Path(name + ".yaml"),
		Socket:        l.Path(name + ".sock"),
		StateDir:      l.Path(name + "-state"),
		LogPath:       l.Path(name + ".log"),
		Spaces:        []netip.Prefix{n.Space, netip.MustParsePrefix(fmt.Sprintf("fd00:%x::/48", n.Index))},
		TunnelAddress: netip.AddrFrom4([4]byte{10, byte(n.Index), 255, 254}),
	}
	if err := os.WriteFile(g.KeyFile, []byte(k.Base64()+"\n"), 0o600); err != nil {
		return nil, err
	}
	return g, nil
}

// PeeringTo is the peering from g's point of view that points at other.
func (g *Gateway) PeeringTo(other *Gateway) Peering {
	return Peering{
		Name: other.Name, Network: other.Name, PublicKey: other.Pub,
		Endpoint:      fmt.Sprintf("%s:51820", other.Net.GatewayUnderlay),
		Spaces:        other.Spaces,
		TunnelAddress: other.TunnelAddress,
		Keepalive:     5 * time.Second,
	}
}

// Mesh declares a peering between every pair of gws, in both directions.
func Mesh(gws ...*Gateway) {
	for _, a := range gws {
		for _, b := range gws {
			if a != b {
				a.Peerings = append(a.Peerings, a.PeeringTo(b))
			}
		}
	}
}

func prefixList(ps []netip.Prefix) string {
	return "[" + overlap.Join(ps) + "]"
}

// Render returns the YAML config of g.
func (g *Gateway) Render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\naddress_spaces: %s\ntunnel_address: %s\nprivate_key_file: %s\nlisten_port: 51820\n",
		g.Name, prefixList(g.Spaces), g.TunnelAddress, g.in(g.KeyFile))
	if g.MaxTunnels > 0 {
		fmt.Fprintf(&b, "max_tunnels: %d\n", g.MaxTunnels)
	}
	fmt.Fprintf(&b, "control_socket: %s\nstate_dir: %s\nmetrics: { listen: %q }\n", g.in(g.Socket), g.in(g.StateDir), g.MetricsListen)
	if len(g.Peerings) == 0 {
		b.WriteString("peerings: []\n")
	} else {
		b.WriteString("peerings:\n")
	}
	for _, p := range g.Peerings {
		if p.IPsec != "" {
			fmt.Fprintf(&b, "  - name: %s\n    network: %s\n    type: ipsec\n    endpoint: %s\n    address_spaces: %s\n    ipsec:\n%s",
				p.Name, p.Network, p.Endpoint, prefixList(p.Spaces), p.IPsec)
			if !strings.HasSuffix(p.IPsec, "\n") {
				b.WriteString("\n")
			}
			renderPeerBGP(&b, p) // bgp.go
			continue
		}
		fmt.Fprintf(&b, "  - name: %s\n    network: %s\n    public_key: %q\n", p.Name, p.Network, p.PublicKey)
		if p.Endpoint != "" {
			fmt.Fprintf(&b, "    endpoint: %s\n", p.Endpoint)
		}
		fmt.Fprintf(&b, "    address_spaces: %s\n", prefixList(p.Spaces))
		if p.TunnelAddress.IsValid() {
			fmt.Fprintf(&b, "    tunnel_address: %s\n", p.TunnelAddress)
		}
		if p.Keepalive > 0 {
			fmt.Fprintf(&b, "    persistent_keepalive: %s\n", p.Keepalive)
		}
		if p.DNSZone != "" {
			fmt.Fprintf(&b, "    dns_zone: %s\n", p.DNSZone)
		}
		if p.RelayURL != "" {
			fmt.Fprintf(&b, "    relay: { url: %q, pin: %q }\n", p.RelayURL, p.RelayPin)
		}
		if p.NAT != "" {
			b.WriteString("    nat:\n" + strings.TrimRight(p.NAT, "\n") + "\n")
		}
		renderPeerBGP(&b, p) // bgp.go
	}
	g.renderBGP(&b) // bgp.go
	b.WriteString(g.Extra)
	return b.String()
}

// WriteConfig writes Render() to ConfigPath.
func (g *Gateway) WriteConfig() error {
	return os.WriteFile(g.ConfigPath, []byte(g.Render()), 0o600)
}

// Start writes the config and runs `vgate run` in the gateway namespace,
// returning once the control socket answers. If the process exits first,
// the error carries the end of its log.
func (g *Gateway) Start() error {
	if err := g.WriteConfig(); err != nil {
		return err
	}
	var args []string
	if g.Pprof != "" {
		args = append(args, "env", "VGATE_DEBUG_PPROF="+g.in(g.Pprof))
	}
	if g.Wrapper != nil {
		args = append(args, g.Wrapper()...)
	}
	level := g.LogLevel
	if level == "" {
		level = "debug"
	}
	args = append(args, g.in(g.Bin), "run", "--config", g.in(g.ConfigPath), "--log-level", level)
	p, err := g.lab.Start(g.Net.GatewayNS, g.LogPath, args...)
	if err != nil {
		return err
	}
	g.proc = p
	// A wrapped start (the sandbox) first remounts every mount of the
	// host read-only, which takes long on a busy machine with many
	// namespaces: give it more time. This bounds a wait; it asserts no speed.
	wait := 15 * time.Second
	if g.Wrapper != nil {
		wait = 90 * time.Second
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("gateway %s exited during start:\n%s", g.Name, p.LogTail(30))
		}
		if _, err := g.Status(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("gateway %s: control socket did not answer within %v:\n%s", g.Name, wait, p.LogTail(30))
}

// Proc is the running `vgate run` process, or nil.
func (g *Gateway) Proc() *Proc { return g.proc }

// Stop ends the gateway with SIGTERM (and SIGKILL after a grace period).
func (g *Gateway) Stop() error {
	if g.proc == nil {
		return nil
	}
	err := g.proc.Stop()
	g.proc = nil
	return err
}

// Kill ends the gateway with SIGKILL, as a crash would.
func (g *Gateway) Kill() error {
	if g.proc == nil {
		return nil
	}
	if err := g.proc.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-g.proc.Done()
	g.proc = nil
	return nil
}

// Reload rewrites the config and sends SIGHUP.
func (g *Gateway) Reload() error {
	if g.proc == nil {
		return errors.New("gateway not running")
	}
	if err := g.WriteConfig(); err != nil {
		return err
	}
	return g.proc.Signal(syscall.SIGHUP)
}

// Status asks the running gateway for its status over the control socket.
func (g *Gateway) Status() (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return g.control().Status(ctx)
}

// Log returns the gateway's log so far.
func (g *Gateway) Log() string {
	b, _ := os.ReadFile(g.LogPath)
	return string(b)
}

// CLI runs the vgate binary with args in the gateway namespace.
func (g *Gateway) CLI(args ...string) (string, error) {
	return g.lab.Run(g.Net.GatewayNS, append([]string{g.Bin}, args...)...)
}
