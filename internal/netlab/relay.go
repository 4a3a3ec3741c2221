package netlab

import (
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/relay"
)

// Relay is a `vgate relay` process in a namespace of the lab, listening on
// TLS + WebSocket at Addr:Port.
type Relay struct {
	NS, Bin                       string
	Addr                          string
	Port                          int
	ConfigPath, StateDir, LogPath string
	Accept                        []keys.PublicKey
	// AcceptGateway is the relay config's accept_gateway ("" for none):
	// a gateway's state directory (host path; in a sandbox, bound with
	// Sandbox.BindReadOnly).
	AcceptGateway string
	// Extra is appended to the config (YAML lines: limits, metrics).
	Extra string
	// Wrapper and PathIn run the relay in a Sandbox (ApplyRelay), as for
	// a Gateway.
	Wrapper func() []string
	PathIn  func(string) string

	lab  *Lab
	proc *Proc
}

// NewRelay prepares (does not start) a relay in namespace ns at addr:port.
func (l *Lab) NewRelay(ns, addr string, port int, bin string) *Relay {
	return &Relay{
		NS: ns, Bin: bin, Addr: addr, Port: port, lab: l,
		ConfigPath: l.Path("relay.yaml"), StateDir: l.Path("relay-state"), LogPath: l.Path("relay.log"),
	}
}

// URL is what peerings name: wss://addr:port/.
func (r *Relay) URL() string { return fmt.Sprintf("wss://%s:%d/", r.Addr, r.Port) }

// WriteConfig writes the relay's config from Accept.
func (r *Relay) WriteConfig() error {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nstate_dir: %s\nnames: [relay.lab.test]\naccept:\n", fmt.Sprintf("%s:%d", r.Addr, r.Port), r.in(r.StateDir))
	for _, k := range r.Accept {
		fmt.Fprintf(&b, "  - %q\n", k.String())
	}
	if len(r.Accept) == 0 {
		b.WriteString("  []\n")
	}
	if r.AcceptGateway != "" {
		fmt.Fprintf(&b, "accept_gateway: %s\n", r.in(r.AcceptGateway))
	}
	b.WriteString(r.Extra)
	return os.WriteFile(r.ConfigPath, []byte(b.String()), 0o600)
}

// Start writes the config, runs the relay and waits until its certificate
// exists and its port accepts connections. It returns the certificate's pin.
func (r *Relay) Start() (string, error) {
	if err := r.WriteConfig(); err != nil {
		return "", err
	}
	var args []string
	wait := 15 * time.Second
	if r.Wrapper != nil {
		args = r.Wrapper()
		wait = 90 * time.Second // remounting the host read-only is slow under load
	}
	args = append(args, r.in(r.Bin), "relay", "--config", r.in(r.ConfigPath), "--log-level", "debug")
	from := len(r.Log()) // a restart appends to the log of the runs before
	p, err := r.lab.Start(r.NS, r.LogPath, args...)
	if err != nil {
		return "", err
	}
	r.proc = p
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if p.Exited() {
			return "", fmt.Errorf("relay exited during start:\n%s", p.LogTail(20))
		}
		if log := r.Log(); len(log) > from && strings.Contains(log[from:], "relay listening") {
			return r.Pin()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("relay did not start in %v:\n%s", wait, p.LogTail(20))
}

func (r *Relay) in(p string) string {
	if r.PathIn == nil {
		return p
	}
	return r.PathIn(p)
}

// ApplyRelay moves r's config and state directory into the sandbox of the
// relay's unit (deploy/vgate-relay.service): the config file at the path
// of ExecStart's --config in its ConfigurationDirectory, the state in its
// StateDirectory, the relay's default state_dir. It makes r.Start run the
// relay through Wrapper. Call it before Start.
func (s *Sandbox) ApplyRelay(r *Relay) error {
	cfg := s.Unit.ConfigFile()
	if cfg == "" || filepath.Dir(cfg) != s.Unit.ConfigDir() {
		return fmt.Errorf("netlab: %s: ExecStart --config %q is not in ConfigurationDirectory %s", s.Unit.Path, cfg, s.Unit.ConfigDir())
	}
	s.Bin = r.Bin
	r.ConfigPath = filepath.Join(s.Config, filepath.Base(cfg))
	r.StateDir = s.State
	r.PathIn = s.PathIn
	r.Wrapper = s.Wrapper
	return nil
}

// Pin is the SHA-256 pin of the relay's self-signed certificate.
func (r *Relay) Pin() (string, error) {
	b, err := os.ReadFile(filepath.Join(r.StateDir, relay.SelfSignedCert))
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", fmt.Errorf("relay certificate: no PEM block")
	}
	return relay.Pin(blk.Bytes), nil
}

// Stop ends the relay process.
func (r *Relay) Stop() error {
	if r.proc == nil {
		return nil
	}
	return r.proc.Stop()
}

// Reload re-reads the relay's accepted keys (SIGHUP) after WriteConfig.
func (r *Relay) Reload() error {
	if err := r.WriteConfig(); err != nil {
		return err
	}
	return r.proc.Signal(syscall.SIGHUP)
}

// Log is the relay's log so far.
func (r *Relay) Log() string {
	b, _ := os.ReadFile(r.LogPath)
	return string(b)
}

// BlockUDP drops every UDP datagram in and out of ns's wan0 (nftables
// table vgrelay): a firewall that lets only TCP through. UnblockUDP
// removes it.
func (l *Lab) BlockUDP(ns string) error {
	_, err := l.Run(ns, "nft", "add table inet vgrelay; "+
		"add chain inet vgrelay in { type filter hook input priority 0; }; "+
		"add chain inet vgrelay out { type filter hook output priority 0; }; "+
		"add rule inet vgrelay in iifname wan0 meta l4proto udp drop; "+
		"add rule inet vgrelay out oifname wan0 meta l4proto udp drop")
	return err
}

// UnblockUDP removes BlockUDP's table.
func (l *Lab) UnblockUDP(ns string) error {
	_, err := l.Run(ns, "nft", "delete table inet vgrelay")
	return err
}

// Proc is the relay's process (nil before Start).
func (r *Relay) Proc() *Proc { return r.proc }
