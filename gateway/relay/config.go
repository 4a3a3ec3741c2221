package relay

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/p2s"
)

// Config is `vgate relay`'s config file.
//
//	listen: ":443"                       # TCP address of the TLS + WebSocket listener
//	state_dir: /var/lib/vgate/relay      # the relay's key and self-signed certificate
//	names: [relay.example.net]           # names in the self-signed certificate
//	cert_file: /etc/vgate/relay.crt      # optional: a certificate instead (with key_file)
//	key_file: /etc/vgate/relay.pem
//	accept: ["base64 public key", …]     # keys that may connect
//	accept_gateway: /etc/vgate/vgate.yaml # and: that gateway, its peerings and its P2S clients
//	max_connections: 1000
//	queue: 512                           # datagrams queued per connection
//	rate_limit_mbit: 1000                # per connection; -1: none
//	metrics: { listen: "127.0.0.1:9476" } # Prometheus /metrics; "" (default) off
type Config struct {
	Listen         string           `yaml:"listen"`
	StateDir       string           `yaml:"state_dir"`
	Names          []string         `yaml:"names"`
	CertFile       string           `yaml:"cert_file"`
	KeyFile        string           `yaml:"key_file"`
	Accept         []keys.PublicKey `yaml:"accept"`
	AcceptGateway  string           `yaml:"accept_gateway"`
	MaxConnections int              `yaml:"max_connections"`
	Queue          int              `yaml:"queue"`
	RateLimitMbit  int64            `yaml:"rate_limit_mbit"`
	Metrics        struct {
		Listen string `yaml:"listen"`
	} `yaml:"metrics"`

	Path string `yaml:"-"`
}

// LoadConfig reads and checks a relay config. Every problem is listed,
// each naming its field.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &Config{Listen: ":443", StateDir: "/var/lib/vgate/relay"}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Path = path
	var probs []string
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		probs = append(probs, fmt.Sprintf("listen: %q is not host:port (e.g. \":443\"): %v", c.Listen, err))
	}
	if l := c.Metrics.Listen; l != "" {
		if _, _, err := net.SplitHostPort(l); err != nil {
			probs = append(probs, fmt.Sprintf("metrics.listen: %q is not host:port (e.g. \"127.0.0.1:9476\"): %v", l, err))
		}
	}
	if c.StateDir == "" {
		probs = append(probs, "state_dir: required (the relay's key and self-signed certificate live there)")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		probs = append(probs, fmt.Sprintf("cert_file %q and key_file %q: give both or neither", c.CertFile, c.KeyFile))
	}
	if len(c.Accept) == 0 && c.AcceptGateway == "" {
		probs = append(probs, "accept: no keys accepted; list public keys in accept or name a gateway config in accept_gateway")
	}
	if c.MaxConnections < 0 || c.Queue < 0 {
		probs = append(probs, fmt.Sprintf("max_connections %d, queue %d: must not be negative", c.MaxConnections, c.Queue))
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("%s: %s", path, strings.Join(probs, "; "))
	}
	return c, nil
}

// Limits are the config's bounds.
func (c *Config) Limits() Limits {
	l := Limits{MaxConnections: c.MaxConnections, QueueLen: c.Queue}
	switch {
	case c.RateLimitMbit < 0:
		l.RateBytes = -1
	case c.RateLimitMbit > 0:
		l.RateBytes = c.RateLimitMbit * 1_000_000 / 8
	}
	return l
}

// AcceptedKeys is every key the config accepts now: accept, and with
// accept_gateway that gateway's own key, its peerings' keys and its
// registered point-to-site clients' keys (read from its state_dir).
func (c *Config) AcceptedKeys() ([]keys.PublicKey, error) {
	out := slices.Clone(c.Accept)
	if c.AcceptGateway == "" {
		return out, nil
	}
	gw, err := config.Load(c.AcceptGateway)
	if err != nil {
		return nil, fmt.Errorf("accept_gateway: %w", err)
	}
	out = append(out, gw.PrivateKey.Public())
	for _, p := range gw.Peerings {
		out = append(out, p.PublicKey)
	}
	if gw.PointToSite != nil {
		reg, err := p2s.OpenRegistry(filepath.Join(gw.StateDir, p2s.RegistryFile))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("accept_gateway: point-to-site clients: %w", err)
		}
		if reg != nil {
			for _, cl := range reg.Clients() {
				out = append(out, cl.PublicKey)
			}
		}
	}
	return out, nil
}
