package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/ipsec"
)

// Peering types (Peering.Type).
const (
	TypeWireGuard = api.PeeringWireGuard
	TypeIPsec     = api.PeeringIPsec
)

// IPsec is the IKEv2/IPsec side of a type: ipsec peering (README.md,
// "Connecting to an on-premises device").
type IPsec struct {
	// PSKFile holds the pre-shared key (mode 0600, owned by the gateway's
	// user); it is never logged or shown.
	PSKFile  string `yaml:"psk_file" json:"psk_file"`
	LocalID  string `yaml:"local_id,omitempty" json:"local_id,omitempty"`
	RemoteID string `yaml:"remote_id,omitempty" json:"remote_id,omitempty"`
	// IKE and ESP are proposals (charon's names, e.g.
	// aes256gcm16-prfsha384-ecp384); empty means ipsec.DefaultIKE/ESP.
	IKE []string `yaml:"ike,omitempty" json:"ike,omitempty"`
	ESP []string `yaml:"esp,omitempty" json:"esp,omitempty"`
	// IKELifetime and ChildLifetime are the hard lifetimes (rekeying
	// starts 10% earlier); 0 means 8h and 7.5h (Azure's values).
	IKELifetime   time.Duration `yaml:"ike_lifetime,omitempty" json:"ike_lifetime,omitempty"`
	ChildLifetime time.Duration `yaml:"child_lifetime,omitempty" json:"child_lifetime,omitempty"`
	// DPD is the dead-peer detection interval; 0 means 10s.
	DPD time.Duration `yaml:"dpd,omitempty" json:"dpd,omitempty"`
	// Legacy allows weak algorithms (3DES, SHA-1, MD5, DH groups below
	// 2048 bits) in ike and esp; the gateway warns at start and reload.
	Legacy bool `yaml:"legacy,omitempty" json:"legacy,omitempty"`

	// PSK is loaded from PSKFile by Load; never serialized.
	PSK ipsec.Secret `yaml:"-" json:"-"`
}

// IsIPsec reports whether p is an IPsec peering.
func (p *Peering) IsIPsec() bool { return p.Type == TypeIPsec }

// LookCharon checks that charon and its plugins are installed; Load calls
// it for a config with an IPsec peering (tests replace it).
var LookCharon = func() error {
	_, err := ipsec.FindCharon()
	return err
}

// validateIPsec checks the fields of peering i that depend on its type.
func validateIPsec(d *doc, base string, p *Peering) {
	switch p.Type {
	case "", TypeWireGuard:
		if p.IPsec != nil {
			d.errorf(base+".ipsec", "only for type: ipsec (this peering is %s)", orWG(p.Type))
		}
		return
	case TypeIPsec:
	default:
		d.errorf(base+".type", "%q is not a peering type; use wireguard (the default) or ipsec", p.Type)
		return
	}
	if !p.PublicKey.IsZero() {
		d.errorf(base+".public_key", "a type: ipsec peering has no WireGuard public key (it authenticates with ipsec.psk_file)")
	}
	if p.PersistentKeepalive != 0 {
		d.errorf(base+".persistent_keepalive", "is for WireGuard peerings; an IPsec peering uses ipsec.dpd")
	}
	switch {
	case p.Endpoint == "":
		d.errorf(base+".endpoint", "required: the device's public address (vgate always initiates IPsec, on UDP 500/4500)")
	default:
		if err := checkIPsecEndpoint(p.Endpoint); err != nil {
			d.errorf(base+".endpoint", "%v", err)
		}
	}
	x := p.IPsec
	if x == nil {
		d.errorf(base+".ipsec", "required for type: ipsec: at least psk_file")
		return
	}
	ib := base + ".ipsec"
	if x.PSKFile == "" {
		d.errorf(ib+".psk_file", "required: path of the pre-shared key file (mode 0600)")
	}
	for _, id := range []struct{ path, v string }{{ib + ".local_id", x.LocalID}, {ib + ".remote_id", x.RemoteID}} {
		if len(id.v) > 255 || strings.ContainsAny(id.v, "\"\n\r\x00") {
			d.errorf(id.path, "%q: an IKE identity is up to 255 characters without quotes or line breaks", id.v)
		}
	}
	for j, s := range x.IKE {
		if err := ipsec.CheckProposal(s, false, x.Legacy); err != nil {
			d.errorf(fmt.Sprintf("%s.ike[%d]", ib, j), "%v", err)
		}
	}
	for j, s := range x.ESP {
		if err := ipsec.CheckProposal(s, true, x.Legacy); err != nil {
			d.errorf(fmt.Sprintf("%s.esp[%d]", ib, j), "%v", err)
		}
	}
	for _, lt := range []struct {
		path string
		v    time.Duration
	}{{ib + ".ike_lifetime", x.IKELifetime}, {ib + ".child_lifetime", x.ChildLifetime}} {
		if lt.v != 0 && (lt.v < 10*time.Second || lt.v > 24*time.Hour || lt.v%time.Second != 0) {
			d.errorf(lt.path, "must be whole seconds from 10s to 24h, got %v", lt.v)
		}
	}
	if x.IKELifetime != 0 && x.ChildLifetime != 0 && x.ChildLifetime > x.IKELifetime {
		d.errorf(ib+".child_lifetime", "%v is longer than ike_lifetime %v; a child SA cannot outlive its IKE SA", x.ChildLifetime, x.IKELifetime)
	}
	if x.DPD != 0 && (x.DPD < 2*time.Second || x.DPD > time.Hour || x.DPD%time.Second != 0) {
		d.errorf(ib+".dpd", "must be whole seconds from 2s to 1h, got %v", x.DPD)
	}
}

func orWG(t api.PeeringType) api.PeeringType {
	if t == "" {
		return TypeWireGuard
	}
	return t
}

// checkIPsecEndpoint validates an IPsec endpoint: an IP address or a DNS
// name, without a port (IKE uses UDP 500 and 4500).
func checkIPsecEndpoint(s string) error {
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	if _, _, err := net.SplitHostPort(s); err == nil {
		return fmt.Errorf("%q: an IPsec endpoint is an address or DNS name without a port (IKE uses UDP 500 and 4500)", s)
	}
	if strings.Contains(s, ":") || !isDNSName(s) {
		return fmt.Errorf("%q is neither an IP address nor a DNS name", s)
	}
	return nil
}

// loadPSKs reads the pre-shared key of every IPsec peering (relative
// paths are relative to dir) and checks that charon is installed.
func loadPSKs(c *Config, d *doc, dir string) {
	any := false
	for i := range c.Peerings {
		p := &c.Peerings[i]
		if !p.IsIPsec() || p.IPsec == nil || p.IPsec.PSKFile == "" {
			continue
		}
		any = true
		path := p.IPsec.PSKFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		s, err := LoadPSKFile(path)
		if err != nil {
			d.errorf(fmt.Sprintf("peerings[%d].ipsec.psk_file", i), "%v", err)
			continue
		}
		p.IPsec.PSK = s
	}
	if any {
		if err := LookCharon(); err != nil {
			d.errorf("peerings", "IPsec peerings need strongSwan's charon: %v", err)
		}
	}
}

// LoadPSKFile reads a pre-shared key: one line, 8 to 256 bytes. Like a
// private key file it must be a regular file owned by the gateway's user
// with no group or other permissions (keys.ErrMode); the key never
// appears in an error.
func LoadPSKFile(path string) (ipsec.Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return ipsec.Secret{}, fmt.Errorf("pre-shared key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ipsec.Secret{}, fmt.Errorf("pre-shared key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return ipsec.Secret{}, fmt.Errorf("pre-shared key file %s: not a regular file", path)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if owner, euid := int(sys.Uid), os.Geteuid(); owner != euid {
			return ipsec.Secret{}, &keys.OwnerError{Path: path, Owner: owner, Expected: euid}
		}
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return ipsec.Secret{}, fmt.Errorf("pre-shared key file %s: mode %04o %w; run chmod 600 %s", path, perm, keys.ErrMode, path)
	}
	buf := make([]byte, 1024)
	n, _ := f.Read(buf)
	v := strings.TrimRight(string(buf[:n]), "\r\n")
	switch {
	case strings.ContainsAny(v, "\r\n\x00"):
		return ipsec.Secret{}, fmt.Errorf("pre-shared key file %s: holds more than one line", path)
	case len(v) < 8 || len(v) > 256:
		return ipsec.Secret{}, fmt.Errorf("pre-shared key file %s: the key must be 8 to 256 bytes, got %d", path, len(v))
	}
	return ipsec.NewSecret([]byte(v)), nil
}

// checkIPsecSelectors refuses two IPsec peerings whose remote traffic
// selectors overlap, even to the same network: with kernel-libipsec
// every IPsec peering shares one TUN and the selectors are what tells them
// apart (docs/architecture.md, "IPsec peerings"), so redundant IPsec
// paths to one network cannot be told apart.
func checkIPsecSelectors(c *Config, d *doc) {
	type sel struct {
		i int
		q netip.Prefix
	}
	var seen []sel
	for i := range c.Peerings {
		p := &c.Peerings[i]
		if !p.IsIPsec() {
			continue
		}
		_, remote := ipsec.TrafficSelectors(p.AddressSpaces, p.PeerTunnelAddress())
		reported := false
		for _, q := range remote {
			if !q.IsValid() {
				continue
			}
			for _, o := range seen {
				if o.q.Overlaps(q) && !reported {
					d.errorf(fmt.Sprintf("peerings[%d].address_spaces", i), "%s (IPsec peering %q) overlaps %s of IPsec peering %q: IPsec peerings share one kernel-libipsec TUN and are told apart by their remote traffic selectors, so these must not overlap (not even for one network)",
						q, p.Name, o.q, c.Peerings[o.i].Name)
					reported = true
				}
			}
		}
		for _, q := range remote {
			seen = append(seen, sel{i, q})
		}
	}
}
