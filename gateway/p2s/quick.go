package p2s

import (
	"bufio"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/overlap"
)

// DefaultKeepalive is the PersistentKeepalive of client configs, in
// seconds: it keeps NAT mappings open so the gateway can reach the client.
const DefaultKeepalive = 25

// QuickConfig is a client config in wg-quick(8) format, as the official
// WireGuard apps import it.
type QuickConfig struct {
	// PrivateKey is zero when the private key never left the laptop
	// (client add --public-key): the rendered config then says where it
	// goes instead.
	PrivateKey keys.PrivateKey
	// PublicKey is the client's public key (rendered as a comment).
	PublicKey  keys.PublicKey
	Addresses  []netip.Prefix
	DNS        []string
	MTU        int
	ListenPort int
	Peers      []QuickPeer
}

// QuickPeer is one [Peer] section.
type QuickPeer struct {
	PublicKey  keys.PublicKey
	Endpoint   string
	AllowedIPs []netip.Prefix
	Keepalive  int // seconds; 0: off
}

// Render returns the config text. When PrivateKey is set the text
// contains it: show it to whoever asked for it, never log it.
func (q QuickConfig) Render(comment string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(comment), "\n") {
		if l != "" {
			fmt.Fprintf(&b, "# %s\n", l)
		}
	}
	b.WriteString("[Interface]\n")
	if q.PrivateKey.IsZero() {
		fmt.Fprintf(&b, "# PrivateKey = (your own private key; its public key is %s)\n", q.PublicKey)
	} else {
		fmt.Fprintf(&b, "PrivateKey = %s\n", q.PrivateKey.Base64())
	}
	if len(q.Addresses) > 0 {
		fmt.Fprintf(&b, "Address = %s\n", overlap.Join(q.Addresses))
	}
	if len(q.DNS) > 0 {
		fmt.Fprintf(&b, "DNS = %s\n", strings.Join(q.DNS, ", "))
	}
	if q.MTU > 0 {
		fmt.Fprintf(&b, "MTU = %d\n", q.MTU)
	}
	if q.ListenPort > 0 {
		fmt.Fprintf(&b, "ListenPort = %d\n", q.ListenPort)
	}
	for _, p := range q.Peers {
		b.WriteString("\n[Peer]\n")
		fmt.Fprintf(&b, "PublicKey = %s\n", p.PublicKey)
		if p.Endpoint != "" {
			fmt.Fprintf(&b, "Endpoint = %s\n", p.Endpoint)
		}
		if len(p.AllowedIPs) > 0 {
			fmt.Fprintf(&b, "AllowedIPs = %s\n", overlap.Join(p.AllowedIPs))
		}
		if p.Keepalive > 0 {
			fmt.Fprintf(&b, "PersistentKeepalive = %d\n", p.Keepalive)
		}
	}
	return b.String()
}

// ParseQuick parses a wg-quick config. Keys are case-insensitive; lines
// wg-quick runs as commands (PreUp, PostUp, …) and Table, SaveConfig and
// PresharedKey are refused rather than ignored, so a config never means
// more than the client does. Errors name the line; they never echo a
// private key.
func ParseQuick(text string) (QuickConfig, error) {
	q, err := parseQuick(text)
	if err != nil {
		return QuickConfig{}, err
	}
	if q.PrivateKey.IsZero() {
		return QuickConfig{}, fmt.Errorf("[Interface] has no PrivateKey (a config made with --public-key needs your own private key added)")
	}
	q.PublicKey = q.PrivateKey.Public()
	return q, nil
}

// ParseQuickWithoutKey parses a config the gateway made for a key it does
// not know (client add --public-key, an enrollment answer) as ParseQuick
// does, but refuses one that holds a private key: the laptop's key is the
// laptop's own.
func ParseQuickWithoutKey(text string) (QuickConfig, error) {
	q, err := parseQuick(text)
	if err != nil {
		return QuickConfig{}, err
	}
	if !q.PrivateKey.IsZero() {
		return QuickConfig{}, fmt.Errorf("[Interface] holds a PrivateKey: the config must leave the key to this machine")
	}
	return q, nil
}

func parseQuick(text string) (QuickConfig, error) {
	var q QuickConfig
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if i := strings.IndexAny(l, "#;"); i >= 0 {
			l = l[:i]
		}
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			section = strings.ToLower(strings.TrimSpace(l[1 : len(l)-1]))
			switch section {
			case "interface":
			case "peer":
				q.Peers = append(q.Peers, QuickPeer{})
			default:
				return QuickConfig{}, fmt.Errorf("line %d: unknown section [%s]", line, section)
			}
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return QuickConfig{}, fmt.Errorf("line %d: want Key = Value", line)
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if err := q.set(section, k, v); err != nil {
			return QuickConfig{}, fmt.Errorf("line %d: %s: %w", line, k, err)
		}
	}
	if err := sc.Err(); err != nil {
		return QuickConfig{}, err
	}
	if len(q.Peers) == 0 {
		return QuickConfig{}, fmt.Errorf("no [Peer] section")
	}
	for i, p := range q.Peers {
		if p.PublicKey.IsZero() {
			return QuickConfig{}, fmt.Errorf("[Peer] %d has no PublicKey", i+1)
		}
	}
	return q, nil
}

// wgQuickHooks are the keys wg-quick runs as shell commands.
var wgQuickHooks = map[string]bool{"preup": true, "postup": true, "predown": true, "postdown": true}

func unsupported(k string) error {
	if wgQuickHooks[k] {
		return fmt.Errorf("not supported (wg-quick would run it as a command; vgate runs nothing a config says)")
	}
	return fmt.Errorf("not supported")
}

func (q *QuickConfig) set(section, k, v string) error {
	list := func() []string {
		var out []string
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	prefixes := func() ([]netip.Prefix, error) {
		var out []netip.Prefix
		for _, f := range list() {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				a, aerr := netip.ParseAddr(f)
				if aerr != nil {
					return nil, fmt.Errorf("%q is not an address or prefix", f)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			out = append(out, p)
		}
		return out, nil
	}
	var err error
	switch section {
	case "interface":
		switch k {
		case "privatekey":
			q.PrivateKey, err = keys.ParsePrivate(v)
		case "address":
			q.Addresses, err = prefixes()
		case "dns":
			q.DNS = list()
		case "mtu":
			q.MTU, err = strconv.Atoi(v)
		case "listenport":
			q.ListenPort, err = strconv.Atoi(v)
		default:
			return unsupported(k)
		}
	case "peer":
		p := &q.Peers[len(q.Peers)-1]
		switch k {
		case "publickey":
			p.PublicKey, err = keys.ParsePublic(v)
		case "endpoint":
			p.Endpoint = v
		case "allowedips":
			p.AllowedIPs, err = prefixes()
		case "persistentkeepalive":
			if v == "off" {
				p.Keepalive = 0
			} else {
				p.Keepalive, err = strconv.Atoi(v)
			}
		default:
			return unsupported(k)
		}
	default:
		return fmt.Errorf("outside a section")
	}
	return err
}

// wgQuickOnly are the [Interface] keys wg-quick handles itself and wg(8)
// setconf refuses.
var wgQuickOnly = map[string]bool{
	"address": true, "dns": true, "mtu": true, "table": true, "saveconfig": true,
	"preup": true, "postup": true, "predown": true, "postdown": true,
}

// StripQuick turns a wg-quick config into what `wg setconf` accepts, as
// `wg-quick strip` does: the keys only wg-quick understands (Address, DNS,
// MTU, Table, Pre/PostUp/Down, SaveConfig) are removed from [Interface];
// everything else is kept as it is.
func StripQuick(text string) string {
	var b strings.Builder
	section := ""
	for _, l := range strings.SplitAfter(text, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") {
			section = strings.ToLower(strings.Trim(t, "[] \t"))
		}
		if k, _, ok := strings.Cut(t, "="); ok && section == "interface" && wgQuickOnly[strings.ToLower(strings.TrimSpace(k))] {
			continue
		}
		b.WriteString(l)
	}
	return b.String()
}

// UAPI is the wireguard-go "set" text for this config: private key,
// listen port and peers. Endpoints are resolved with resolve (host names
// are not part of the UAPI). The text contains the private key.
func (q QuickConfig) UAPI(resolve func(hostport string) (netip.AddrPort, error)) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\nlisten_port=%d\nreplace_peers=true\n", q.PrivateKey.Hex(), q.ListenPort)
	for _, p := range q.Peers {
		fmt.Fprintf(&b, "public_key=%s\n", p.PublicKey.Hex())
		if p.Endpoint != "" {
			ep, err := resolve(p.Endpoint)
			if err != nil {
				return "", fmt.Errorf("endpoint %s: %w", p.Endpoint, err)
			}
			fmt.Fprintf(&b, "endpoint=%s\n", ep)
		}
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\nreplace_allowed_ips=true\n", p.Keepalive)
		for _, a := range p.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", a.Masked())
		}
	}
	return b.String(), nil
}
