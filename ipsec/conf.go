package ipsec

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Plugins is the order charon loads its plugins in. openssl comes before
// aes and gcm so that it provides AES and AES-GCM, much faster with
// kernel-libipsec than the portable plugins (figures in
// docs/architecture.md). kernel-libipsec comes before kernel-netlink so that it provides
// IPsec (userspace ESP); kernel-netlink still provides addresses and
// routes. error-notify gives typed alerts (enfy.go), vici the control
// interface.
var Plugins = []string{
	"random", "nonce", "openssl", "pem", "pkcs1", "pubkey", "x509", "kdf",
	"sha1", "sha2", "hmac", "aes", "gcm",
	"kernel-libipsec", "kernel-netlink", "socket-default", "vici", "error-notify",
}

// Paths are the files of vgate's charon, all in one private directory of
// vgate's runtime directory.
type Paths struct {
	Dir         string // the directory
	Conf        string // strongswan.conf (STRONGSWAN_CONF)
	VICI        string // the VICI socket
	ErrorNotify string // the error-notify socket
	PID         string // vgate's record of its charon's PID
}

// PathsIn returns the paths of a charon that lives in dir.
func PathsIn(dir string) Paths {
	return Paths{
		Dir:         dir,
		Conf:        dir + "/strongswan.conf",
		VICI:        dir + "/charon.vici",
		ErrorNotify: dir + "/charon.enfy",
		PID:         dir + "/charon.pid",
	}
}

// charonTable and charonTablePrio: kernel-libipsec installs a route through
// its TUN for every policy whatever install_routes says; they go into
// their own table, looked up only after main and default (rule priority
// 32800 > 32767), so the routes vgate owns (protocol 76, main table)
// always decide.
const (
	charonTable     = 2200
	charonTablePrio = 32800
)

// halfOpenLimit is how many connecting IKE_SAs charon keeps before it
// drops new IKE_SA_INIT requests (init_limit_half_open): an unauthenticated
// source costs one until half_open_timeout (30 s). vgate initiates every
// peering itself, so dropping a device's own initiation under such a flood
// delays nothing that vgate's next attempt does not bring.
const halfOpenLimit = 100

// StrongswanConf is the private strongswan.conf of vgate's charon. It
// names every plugin (load_modular = no: nothing from /etc/strongswan.d
// is read), installs no virtual IPs and keeps charon's own routes out of
// the way (charonTable; vgate owns the routes, with protocol 76), retransmits so that an unanswered exchange fails in
// about 14 s (2 + 2.8 + 3.9 + 5.5 s), and logs IKE at level 1 to stderr,
// which vgate reads (level 1 never shows keys), not to the journal.
// daemon is the section the daemon reads (section: "charon-systemd" or
// "charon").
func StrongswanConf(daemon string, p Paths) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by vgate for its own charon; do not edit (rewritten at start).
%s {
  load_modular = no
  load = %s
  install_routes = no
  install_virtual_ip = no
  routing_table = %d
  routing_table_prio = %d
  retransmit_tries = 3
  retransmit_timeout = 2.0
  retransmit_base = 1.4
  make_before_break = yes
  init_limit_half_open = %d
  plugins {
    vici {
      socket = unix://%s
    }
    error-notify {
      socket = unix://%s
    }
    kernel-libipsec {
      allow_peer_ts = no
    }
  }
  filelog {
    stderr {
      default = 0
      ike = 1
      cfg = 1
      knl = 1
      net = 0
      time_format = %%s
    }
  }
  journal {
    default = -1
  }
}
`, daemon, strings.Join(Plugins, " "), charonTable, charonTablePrio, halfOpenLimit, p.VICI, p.ErrorNotify)
	return b.String()
}

// conn is the VICI load-conn message of one peering (its section).
type conn struct {
	Version     string         `vici:"version"`
	RemoteAddrs []string       `vici:"remote_addrs"`
	Proposals   []string       `vici:"proposals"`
	DPDDelay    string         `vici:"dpd_delay"`
	RekeyTime   string         `vici:"rekey_time"`
	OverTime    string         `vici:"over_time"`
	ReauthTime  string         `vici:"reauth_time"`
	KeyingTries string         `vici:"keyingtries"`
	Encap       string         `vici:"encap"`
	Mobike      string         `vici:"mobike"`
	Unique      string         `vici:"unique"`
	Local       auth           `vici:"local"`
	Remote      auth           `vici:"remote"`
	Children    map[string]*sa `vici:"children"`
}

type auth struct {
	Auth string `vici:"auth"`
	ID   string `vici:"id"`
}

type sa struct {
	LocalTS      []string `vici:"local_ts"`
	RemoteTS     []string `vici:"remote_ts"`
	ESPProposals []string `vici:"esp_proposals"`
	RekeyTime    string   `vici:"rekey_time"`
	LifeTime     string   `vici:"life_time"`
	RandTime     string   `vici:"rand_time"`
	Mode         string   `vici:"mode"`
	DPDAction    string   `vici:"dpd_action"`
	StartAction  string   `vici:"start_action"`
	CloseAction  string   `vici:"close_action"`
}

// sharedKey is the VICI load-shared message of one peering's PSK.
type sharedKey struct {
	ID     string   `vici:"id"`
	Type   string   `vici:"type"`
	Data   string   `vici:"data"`
	Owners []string `vici:"owners"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%ds", int64(d/time.Second)) }

// orDefault returns d when v is zero.
func orDefault[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

// remoteID is the identity the device authenticates with: remote_id, or
// its address (what Azure and most devices use by default).
func (p Peer) remoteID() string {
	if p.RemoteID != "" {
		return p.RemoteID
	}
	return p.Remote
}

// connFor builds the load-conn section of p. vgate always initiates
// (Azure needs the on-premises side to), so charon neither starts nor
// traps anything by itself (start_action = none: with kernel-libipsec a
// trap drops the packets that trigger it) and retries nothing
// (keyingtries = 1): Daemon re-initiates. A lifetime is the hard one (as
// Azure states it); rekeying starts 10% before it. ESP is always
// UDP-encapsulated (kernel-libipsec cannot send raw ESP).
func connFor(p Peer) conn {
	ike := orDefault(p.IKELifetime, DefaultIKELifetime)
	child := orDefault(p.ChildLifetime, DefaultChildLifetime)
	props := p.IKE
	if len(props) == 0 {
		props = DefaultIKE
	}
	esp := p.ESP
	if len(esp) == 0 {
		esp = DefaultESP
	}
	c := conn{
		Version:     "2",
		RemoteAddrs: []string{p.Remote},
		Proposals:   props,
		DPDDelay:    seconds(orDefault(p.DPD, DefaultDPD)),
		RekeyTime:   seconds(ike * 9 / 10),
		OverTime:    seconds(ike - ike*9/10),
		ReauthTime:  "0s",
		KeyingTries: "1",
		Encap:       "yes",
		Mobike:      "no",
		Unique:      "replace",
		Local:       auth{Auth: "psk", ID: p.LocalID},
		Remote:      auth{Auth: "psk", ID: p.remoteID()},
		Children: map[string]*sa{p.Name: {
			LocalTS:      prefixStrings(p.LocalTS),
			RemoteTS:     prefixStrings(p.RemoteTS),
			ESPProposals: esp,
			RekeyTime:    seconds(child * 9 / 10),
			LifeTime:     seconds(child),
			RandTime:     seconds(child / 20),
			Mode:         "tunnel",
			DPDAction:    "clear",
			StartAction:  "none",
			CloseAction:  "none",
		}},
	}
	return c
}

// sharedFor builds the load-shared message of p's PSK: its owner is the
// device's identity, so that each device gets its own key.
func sharedFor(p Peer) sharedKey {
	return sharedKey{ID: "vgate-" + p.Name, Type: "IKE", Data: p.PSK.value(), Owners: []string{p.remoteID()}}
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, q := range ps {
		out[i] = q.String()
	}
	return out
}
