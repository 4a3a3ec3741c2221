package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Swan is a stock strongSwan (Debian's charon and swanctl, nothing of
// vgate) acting as the IPsec device of a lab network: it runs in the
// network's gateway namespace instead of a vgate gateway, so the host
// behind it sits behind a standard VPN device.
//
//	<prefix>-gw<i>: wan0 198.18.0.<i>, lan0 10.<i>.0.1
//	charon (kernel-libipsec: ESP on its TUN ipsec0; it installs its own
//	routes, table 220), configured with swanctl --load-all from
//	SwanctlConf, as its admin would
//
// charon records its PID in /var/run/charon.pid, a path compiled in: it
// runs under `unshare --mount` with a private tmpfs on /run, so that the
// lab's charons (and a system strongSwan) never see each other's.
// strongswan.conf, the VICI socket and the log live in the lab's
// directory.
type Swan struct {
	Net *Network
	Dir string
	// Conf is strongswan.conf, SwanctlConf the admin's swanctl.conf,
	// VICI the control socket.
	Conf, SwanctlConf, VICI, LogPath string

	lab  *Lab
	proc *Proc
}

// SwanBinaries are the programs a strongSwan interop test needs, and the
// Debian packages providing them (scripts/deps.sh installs them).
var SwanBinaries = map[string]string{
	"/usr/lib/ipsec/charon": "strongswan-charon",
	"swanctl":               "strongswan-swanctl",
	"/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so": "libcharon-extra-plugins",
	"/usr/lib/ipsec/plugins/libstrongswan-openssl.so":         "libstrongswan-standard-plugins",
}

// LookSwan reports what is missing for a strongSwan interop test.
func LookSwan() (missing []string) {
	for f, pkg := range SwanBinaries {
		if strings.HasPrefix(f, "/") {
			if _, err := os.Stat(f); err != nil {
				missing = append(missing, fmt.Sprintf("%s (%s)", f, pkg))
			}
		} else if lookSbin(f) == "" {
			missing = append(missing, fmt.Sprintf("%s (%s)", f, pkg))
		}
	}
	return missing
}

// SwanPlugins are the plugins the lab's strongSwan loads: the same set,
// in the same order, as vgate's charon (openssl before aes and gcm), so
// that benchmarks compare like with like.
const SwanPlugins = "random nonce openssl pem pkcs1 pubkey x509 kdf sha1 sha2 hmac aes gcm kernel-libipsec kernel-netlink socket-default vici updown"

// AddSwan prepares a strongSwan in network n's gateway namespace (not yet
// started).
func (l *Lab) AddSwan(n *Network) *Swan {
	dir := l.Path(fmt.Sprintf("swan%d", n.Index))
	return &Swan{Net: n, Dir: dir, Conf: filepath.Join(dir, "strongswan.conf"), SwanctlConf: filepath.Join(dir, "swanctl.conf"),
		VICI: filepath.Join(dir, "charon.vici"), LogPath: filepath.Join(dir, "charon.log"), lab: l}
}

// Start writes strongswan.conf and swanctl (the admin's swanctl.conf),
// starts charon and loads the config with swanctl --load-all.
func (s *Swan) Start(swanctl string) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	conf := fmt.Sprintf(`charon {
  load_modular = no
  load = %s
  plugins {
    vici {
      socket = unix://%s
    }
  }
  filelog {
    stderr {
      default = 1
      time_format = %%s
    }
  }
}
`, SwanPlugins, s.VICI)
	if err := os.WriteFile(s.Conf, []byte(conf), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(s.SwanctlConf, []byte(swanctl), 0o600); err != nil {
		return err
	}
	_ = os.Remove(s.VICI)
	p, err := s.lab.Start(s.Net.GatewayNS, s.LogPath, "unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", `mount -t tmpfs -o mode=0755 tmpfs /run && exec env STRONGSWAN_CONF="$0" /usr/lib/ipsec/charon`, s.Conf)
	if err != nil {
		return err
	}
	s.proc = p
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(s.VICI); err == nil {
			break
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("netlab: strongSwan did not open %s:\n%s", s.VICI, p.LogTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s.Load()
}

// Load runs swanctl --load-all with SwanctlConf (after changing it).
func (s *Swan) Load() error {
	out, err := s.Swanctl("--load-all", "--file", s.SwanctlConf)
	if err != nil {
		return fmt.Errorf("netlab: swanctl --load-all: %w\n%s", err, out)
	}
	return nil
}

// Swanctl runs swanctl command args... against this charon.
func (s *Swan) Swanctl(command string, args ...string) (string, error) {
	return s.lab.Run(s.Net.GatewayNS, append([]string{lookSbin("swanctl"), command, "--uri", "unix://" + s.VICI}, args...)...)
}

// Kill ends charon with SIGKILL, as a crash or power loss would (no IKE
// delete is sent).
func (s *Swan) Kill() error {
	if s.proc == nil {
		return errors.New("netlab: strongSwan not running")
	}
	// The Proc is `ip netns exec` → unshare → sh → exec charon: the
	// process is charon itself once sh has exec'd.
	err := s.proc.Signal(syscall.SIGKILL)
	<-s.proc.Done()
	s.proc = nil
	return err
}

// Proc is the running charon, or nil.
func (s *Swan) Proc() *Proc { return s.proc }

// Log returns charon's log so far.
func (s *Swan) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// StartBIRD runs BIRD 2 beside the strongSwan, in its namespace (a
// device that routes with BGP over its IPsec tunnel, as Azure's VPN
// gateway does), with conf and a private control socket in Dir.
func (s *Swan) StartBIRD(conf string) error {
	cp, sock := filepath.Join(s.Dir, "bird.conf"), filepath.Join(s.Dir, "bird.ctl")
	if err := os.WriteFile(cp, []byte(conf), 0o644); err != nil {
		return err
	}
	bin := lookSbin("bird")
	if out, err := s.lab.Run(s.Net.GatewayNS, bin, "-p", "-c", cp); err != nil {
		return fmt.Errorf("netlab: bird config check: %w\n%s", err, out)
	}
	p, err := s.lab.Start(s.Net.GatewayNS, filepath.Join(s.Dir, "bird.log"), bin, "-f", "-c", cp, "-s", sock, "-P", filepath.Join(s.Dir, "bird.pid"))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := s.Birdc("show", "status"); err == nil {
			return nil
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("netlab: bird did not answer on %s:\n%s", sock, p.LogTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Birdc runs birdc against the BIRD of StartBIRD.
func (s *Swan) Birdc(args ...string) (string, error) {
	return s.lab.Run(s.Net.GatewayNS, append([]string{lookSbin("birdc"), "-s", filepath.Join(s.Dir, "bird.ctl")}, args...)...)
}

// SwanctlPSK is a swanctl.conf as a device's admin writes it for vgate:
// one IKEv2 connection "vgate" from Local to Remote (the underlay
// addresses, which are also the identities), authenticated with PSK, with
// one child "vgate" between the traffic selectors LocalTS and RemoteTS
// (comma-separated). IKE and ESP are the proposal lists; Conn and Child
// are extra settings ("dpd_delay = 10s") for the connection and the child.
type SwanctlPSK struct {
	Local, Remote     netip.Addr
	PSK               string
	IKE, ESP          string
	LocalTS, RemoteTS string
	Conn, Child       []string
}

// String is the swanctl.conf text.
func (c SwanctlPSK) String() string {
	lines := func(indent string, ls []string) string {
		var b strings.Builder
		for _, l := range ls {
			b.WriteString(indent + l + "\n")
		}
		return b.String()
	}
	return fmt.Sprintf(`connections {
  vgate {
    version = 2
    local_addrs = %[1]s
    remote_addrs = %[2]s
    proposals = %[3]s
%[7]s    local {
      auth = psk
      id = %[1]s
    }
    remote {
      auth = psk
      id = %[2]s
    }
    children {
      vgate {
        local_ts = %[5]s
        remote_ts = %[6]s
        esp_proposals = %[4]s
%[8]s      }
    }
  }
}
secrets {
  ike-vgate {
    id = %[2]s
    secret = "%[9]s"
  }
}
`, c.Local, c.Remote, c.IKE, c.ESP, c.LocalTS, c.RemoteTS, lines("    ", c.Conn), lines("        ", c.Child), c.PSK)
}
