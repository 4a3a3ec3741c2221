package relay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vgate-project/vgate/gateway/keys"
)

// Default paths: the state directory deploy/vgate-relay.service gives the
// relay, the one relays run under a copy of the gateway's unit used, and
// the gateway's.
const (
	DefaultStateDir     = "/var/lib/vgate-relay"
	defaultGatewayState = "/var/lib/vgate"
)

// legacyStateDir is the state_dir default before the relay had a unit of
// its own (a variable for tests).
var legacyStateDir = "/var/lib/vgate/relay"

// Config is `vgate relay`'s config file.
//
//	listen: ":443"                       # TCP address of the TLS + WebSocket listener
//	state_dir: /var/lib/vgate-relay      # the relay's key and self-signed certificate
//	names: [relay.example.net]           # names in the self-signed certificate
//	cert_file: /etc/vgate/relay.crt      # optional: a certificate instead (with key_file)
//	key_file: /etc/vgate/relay.pem
//	accept: ["base64 public key", …]     # keys that may connect
//	accept_gateway: /var/lib/vgate       # and: the keys that gateway publishes (its state_dir)
//	max_connections: 1000                # TCP connections, counted from accept
//	max_pending: 500                     # of those, not yet proved a key
//	max_pending_per_source: 16           # of those, per IPv4 address / IPv6 /64
//	queue: 512                           # datagrams queued per connection
//	queue_bytes: 1048576                 # bytes queued per connection
//	rate_limit_mbit: 1000                # per key; -1: none
//	metrics: { listen: "127.0.0.1:9476" } # Prometheus /metrics; "" (default) off
type Config struct {
	Listen              string           `yaml:"listen"`
	StateDir            string           `yaml:"state_dir"`
	Names               []string         `yaml:"names"`
	CertFile            string           `yaml:"cert_file"`
	KeyFile             string           `yaml:"key_file"`
	Accept              []keys.PublicKey `yaml:"accept"`
	AcceptGateway       string           `yaml:"accept_gateway"`
	MaxConnections      int              `yaml:"max_connections"`
	MaxPending          int              `yaml:"max_pending"`
	MaxPendingPerSource int              `yaml:"max_pending_per_source"`
	Queue               int              `yaml:"queue"`
	QueueBytes          int              `yaml:"queue_bytes"`
	RateLimitMbit       int64            `yaml:"rate_limit_mbit"`
	Metrics             struct {
		Listen string `yaml:"listen"`
	} `yaml:"metrics"`

	Path string `yaml:"-"`
	// GatewayKeys is the PublicKeysFile accept_gateway names ("" without
	// accept_gateway).
	GatewayKeys string `yaml:"-"`
	// stateDirGiven: state_dir was in the file (no legacy fallback).
	stateDirGiven bool
}

// LoadConfig reads and checks a relay config. Every problem is listed,
// each naming its field.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &Config{Listen: ":443"}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Path = path
	c.stateDirGiven = c.StateDir != ""
	if !c.stateDirGiven {
		c.StateDir = DefaultStateDir
	}
	var probs []string
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		probs = append(probs, fmt.Sprintf("listen: %q is not host:port (e.g. \":443\"): %v", c.Listen, err))
	}
	if l := c.Metrics.Listen; l != "" {
		if _, _, err := net.SplitHostPort(l); err != nil {
			probs = append(probs, fmt.Sprintf("metrics.listen: %q is not host:port (e.g. \"127.0.0.1:9476\"): %v", l, err))
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		probs = append(probs, fmt.Sprintf("cert_file %q and key_file %q: give both or neither", c.CertFile, c.KeyFile))
	}
	if len(c.Accept) == 0 && c.AcceptGateway == "" {
		probs = append(probs, "accept: no keys accepted; list public keys in accept or name a gateway's state_dir in accept_gateway")
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"max_connections", c.MaxConnections}, {"max_pending", c.MaxPending}, {"max_pending_per_source", c.MaxPendingPerSource}, {"queue", c.Queue}, {"queue_bytes", c.QueueBytes}} {
		if f.v < 0 {
			probs = append(probs, fmt.Sprintf("%s %d: must not be negative (0: the default)", f.name, f.v))
		}
	}
	lim := c.Limits().withDefaults()
	if c.MaxPending > 0 && c.MaxPending > lim.MaxConnections {
		probs = append(probs, fmt.Sprintf("max_pending %d: more than max_connections %d", c.MaxPending, lim.MaxConnections))
	}
	if c.MaxPendingPerSource > 0 && c.MaxPendingPerSource > lim.MaxPending {
		probs = append(probs, fmt.Sprintf("max_pending_per_source %d: more than max_pending %d", c.MaxPendingPerSource, lim.MaxPending))
	}
	if c.QueueBytes > 0 && c.QueueBytes < poolBuf {
		probs = append(probs, fmt.Sprintf("queue_bytes %d: less than one datagram's buffer (%d)", c.QueueBytes, poolBuf))
	}
	if c.AcceptGateway != "" {
		p, err := gatewayKeysPath(c.AcceptGateway)
		if err != nil {
			probs = append(probs, "accept_gateway: "+err.Error())
		}
		c.GatewayKeys = p
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("%s: %s", path, strings.Join(probs, "; "))
	}
	return c, nil
}

// gatewayKeysPath is the PublicKeysFile that accept_gateway p names: p
// itself if it is that file, p's PublicKeysFile if p is a directory (the
// gateway's state_dir, which need not exist yet), and for a gateway config
// (a .yaml, as accept_gateway named before) the file in that config's
// state_dir — read from the YAML alone: the config's key file is never
// opened.
func gatewayKeysPath(p string) (string, error) {
	switch ext := filepath.Ext(p); {
	case filepath.Base(p) == PublicKeysFile:
		return p, nil
	case ext == ".yaml" || ext == ".yml":
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("gateway config: %w", err)
		}
		var gw struct {
			StateDir string `yaml:"state_dir"`
		}
		if err := yaml.Unmarshal(b, &gw); err != nil {
			return "", fmt.Errorf("gateway config %s: %w", p, err)
		}
		if gw.StateDir == "" {
			gw.StateDir = defaultGatewayState
		}
		return filepath.Join(gw.StateDir, PublicKeysFile), nil
	case ext != "":
		return "", fmt.Errorf("%q: name the gateway's state_dir (e.g. %s) or its %s", p, defaultGatewayState, PublicKeysFile)
	}
	return filepath.Join(p, PublicKeysFile), nil
}

// Limits are the config's bounds.
func (c *Config) Limits() Limits {
	l := Limits{
		MaxConnections: c.MaxConnections, MaxPending: c.MaxPending, MaxPendingPerSource: c.MaxPendingPerSource,
		QueueLen: c.Queue, QueueBytes: c.QueueBytes,
	}
	switch {
	case c.RateLimitMbit < 0:
		l.RateBytes = -1
	case c.RateLimitMbit > 0:
		l.RateBytes = c.RateLimitMbit * 1_000_000 / 8
	}
	return l
}

// stateDir is where the relay keeps its key and certificate: state_dir,
// or, when state_dir is not given and the default directory holds no key
// yet, the directory relays used before (under a copy of the gateway's
// unit) if a key is there — a new key and certificate would change the pin
// in every peer's config.
func (c *Config) stateDir() (dir string, legacy bool) {
	if c.stateDirGiven {
		return c.StateDir, false
	}
	if _, err := os.Stat(filepath.Join(c.StateDir, KeyFile)); err == nil {
		return c.StateDir, false
	}
	if _, err := os.Stat(filepath.Join(legacyStateDir, KeyFile)); err == nil {
		return legacyStateDir, true
	}
	return c.StateDir, false
}
