package ipsec

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// ESPMode is where ESP runs.
type ESPMode string

// ESPLibipsec: userspace ESP in charon's kernel-libipsec plugin, on the
// TUN IfName (UDP-encapsulated ESP). The only mode that ships: it is the
// one the tests here run.
const ESPLibipsec ESPMode = "libipsec"

// Why says why the mode is used (logged when charon starts): whatever
// the kernel offers, only the mode tests here run ships.
func (m ESPMode) Why() string {
	switch m {
	case ESPLibipsec:
		return "userspace ESP in charon's kernel-libipsec is the only mode vgate ships: the test machines have no kernel ESP (XFRM), and untested XFRM code does not ship"
	}
	return ""
}

// Describe is the mode as `vgate status` shows it.
func (m ESPMode) Describe() string {
	switch m {
	case ESPLibipsec:
		return "libipsec userspace"
	}
	return string(m)
}

// IfName is the TUN kernel-libipsec creates in charon's network namespace;
// every IPsec peering's routes go through it.
const IfName = "ipsec0"

// MTU is the MTU kernel-libipsec gives IfName.
const MTU = 1400

// Defaults: IKE proposals that Azure VPN Gateway's default policy accepts
// (without its 1024-bit group), ESP with Azure's first offer (AES-GCM, no
// PFS) and PFS variants.
var (
	DefaultIKE = []string{"aes256gcm16-prfsha384-ecp384", "aes256gcm16-prfsha256-ecp256", "aes256-sha256-modp2048", "aes256-sha384-ecp384"}
	DefaultESP = []string{"aes256gcm16", "aes256gcm16-ecp384", "aes256gcm16-modp2048", "aes256-sha256"}
)

// Defaults of the lifetimes and dead-peer detection.
const (
	DefaultIKELifetime   = 8 * time.Hour                // Azure: 28,800 s
	DefaultChildLifetime = 7*time.Hour + 30*time.Minute // Azure: 27,000 s
	DefaultDPD           = 10 * time.Second
)

// Peer is the desired state of one IPsec peering.
type Peer struct {
	Name string
	// Remote is the device's address or DNS name (UDP 500/4500).
	Remote            string
	PSK               Secret
	LocalID, RemoteID string
	IKE, ESP          []string // proposals; nil: the defaults
	IKELifetime       time.Duration
	ChildLifetime     time.Duration
	DPD               time.Duration
	// LocalTS and RemoteTS are the child SA's traffic selectors
	// (TrafficSelectors).
	LocalTS, RemoteTS []netip.Prefix
}

// Equal reports whether p and q configure charon the same way.
func (p Peer) Equal(q Peer) bool {
	return p.Name == q.Name && p.Remote == q.Remote && p.PSK.Equal(q.PSK) &&
		p.LocalID == q.LocalID && p.RemoteID == q.RemoteID &&
		slices.Equal(p.IKE, q.IKE) && slices.Equal(p.ESP, q.ESP) &&
		p.IKELifetime == q.IKELifetime && p.ChildLifetime == q.ChildLifetime && p.DPD == q.DPD &&
		slices.Equal(p.LocalTS, q.LocalTS) && slices.Equal(p.RemoteTS, q.RemoteTS)
}

// Secret is a pre-shared key. It never prints, logs or serializes its
// value (invariant "Secrets stay secret").
type Secret struct{ b []byte }

// NewSecret wraps b (not copied).
func NewSecret(b []byte) Secret { return Secret{b: b} }

func (s Secret) String() string                { return "[redacted]" }
func (s Secret) GoString() string              { return "ipsec.Secret{[redacted]}" }
func (s Secret) MarshalText() ([]byte, error)  { return []byte("[redacted]"), nil }
func (s Secret) IsZero() bool                  { return len(s.b) == 0 }
func (s Secret) Equal(o Secret) bool           { return string(s.b) == string(o.b) }
func (s Secret) LogValue() string              { return "[redacted]" }
func (s Secret) value() string                 { return string(s.b) }
func (s Secret) Format(f fmt.State, verb rune) { fmt.Fprint(f, "[redacted]") }

// TrafficSelectors are the child SA's selectors for a peering: locally
// everything (0.0.0.0/0 and ::/0, so that traffic vgate routes in transit
// from other peerings may use the tunnel; the device narrows this to what
// its admin allows), remotely the peering's declared address spaces plus,
// for BGP over IPsec, the BGP peer's address when the spaces do not cover
// it. With kernel-libipsec every IPsec peering shares one TUN, so the
// remote selectors are what picks a peering's SA for a packet the kernel
// routed into the TUN: they must not overlap between peerings (the
// overlap checks of the config ensure it for peerings to different
// networks).
func TrafficSelectors(remoteSpaces []netip.Prefix, bgpPeer netip.Addr) (local, remote []netip.Prefix) {
	local = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	for _, q := range remoteSpaces {
		remote = append(remote, q.Masked())
	}
	if bgpPeer.IsValid() && !slices.ContainsFunc(remote, func(q netip.Prefix) bool { return q.Contains(bgpPeer) }) {
		remote = append(remote, netip.PrefixFrom(bgpPeer, bgpPeer.BitLen()))
	}
	return local, remote
}

// Algorithm keywords charon accepts in proposals, by role. Legacy ones
// (weak: 3DES, SHA-1, MD5, groups below 2048 bits) are only allowed with
// a peering's legacy: true.
var (
	encAlgs = []string{"aes128", "aes192", "aes256", "aes128gcm16", "aes192gcm16", "aes256gcm16", "aes128gcm12", "aes256gcm12", "aes128gcm8", "aes256gcm8", "chacha20poly1305", "aes128ctr", "aes256ctr"}
	intAlgs = []string{"sha256", "sha384", "sha512", "sha256_96", "aes128xcbc", "aes128cmac"}
	prfAlgs = []string{"prfsha256", "prfsha384", "prfsha512", "prfaes128xcbc", "prfaes128cmac"}
	dhAlgs  = []string{"modp2048", "modp3072", "modp4096", "modp6144", "modp8192", "ecp256", "ecp384", "ecp521", "ecp256bp", "ecp384bp", "ecp512bp", "curve25519", "x25519", "curve448", "x448", "modp2048s256"}

	legacyEnc = []string{"3des", "des", "blowfish128", "cast128"}
	legacyInt = []string{"sha1", "md5", "sha1_160", "aesxcbc"}
	legacyPRF = []string{"prfsha1", "prfmd5"}
	legacyDH  = []string{"modp768", "modp1024", "modp1536", "modp1024s160", "modp2048s224"}
	espOnly   = []string{"esn", "noesn"}
)

// ErrLegacy marks a proposal that uses a legacy algorithm (errors.Is).
var ErrLegacy = errors.New("uses a legacy algorithm (weak); allowed only with legacy: true")

// CheckProposal checks one proposal ("enc-int-prf-dh", '-' separated
// keywords, as charon and Azure's custom policy name them). esp selects the
// ESP rules (no PRF, an optional DH group for PFS, esn/noesn). A weak
// algorithm is an error wrapping ErrLegacy unless legacy is set.
func CheckProposal(s string, esp, legacy bool) error {
	if s == "" {
		return errors.New("empty proposal")
	}
	if len(s) > 200 {
		return fmt.Errorf("proposal of %d characters is too long", len(s))
	}
	var enc, aead, integ, dh bool
	var weak []string
	for _, kw := range strings.Split(s, "-") {
		switch {
		case kw == "":
			return fmt.Errorf("%q: empty algorithm between '-'", s)
		case slices.Contains(encAlgs, kw):
			enc = true
			aead = aead || strings.Contains(kw, "gcm") || kw == "chacha20poly1305"
		case slices.Contains(intAlgs, kw):
			integ = true
		case slices.Contains(prfAlgs, kw):
			if esp {
				return fmt.Errorf("%q: %s is a PRF, which ESP proposals do not have", s, kw)
			}
		case slices.Contains(dhAlgs, kw):
			dh = true
		case slices.Contains(legacyEnc, kw):
			enc = true
			weak = append(weak, kw)
		case slices.Contains(legacyInt, kw):
			integ = true
			weak = append(weak, kw)
		case slices.Contains(legacyPRF, kw):
			if esp {
				return fmt.Errorf("%q: %s is a PRF, which ESP proposals do not have", s, kw)
			}
			weak = append(weak, kw)
		case slices.Contains(legacyDH, kw):
			dh = true
			weak = append(weak, kw)
		case esp && slices.Contains(espOnly, kw):
		default:
			return fmt.Errorf("%q: unknown algorithm %q", s, kw)
		}
	}
	switch {
	case !enc:
		return fmt.Errorf("%q: no encryption algorithm (e.g. aes256gcm16 or aes256)", s)
	case !aead && !integ:
		return fmt.Errorf("%q: a non-AEAD cipher needs an integrity algorithm (e.g. sha256)", s)
	case !esp && !dh:
		return fmt.Errorf("%q: an IKE proposal needs a DH group (e.g. ecp384 or modp2048)", s)
	}
	if len(weak) > 0 && !legacy {
		return fmt.Errorf("%q: %s %w", s, strings.Join(weak, ", "), ErrLegacy)
	}
	return nil
}
