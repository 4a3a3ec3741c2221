package laptop

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/enroll"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/overlap"
)

// InviteTokenPrefix starts every invite token (`vgate connect --invite -`
// finds the token in its input by it).
const InviteTokenPrefix = enroll.TokenPrefix

// EnrollTimeout bounds an enrollment from dial to answer.
const EnrollTimeout = enroll.EnrollTimeout

// Bounds of an enrolled config beyond the token's: what the gateway's own
// configs never exceed.
const (
	maxAddresses = 2 // one per address family of the pool
	maxRoutes    = 512
	maxDNS       = 16
	minMTU       = 1280
	maxMTU       = 9000
)

// Enrolled is a laptop enrolled with an invite: its client name, its
// config as checked (with the private key made here) and as text, and the
// enrollment URL.
type Enrolled struct {
	Name   string
	Quick  p2s.QuickConfig
	Config string
	URL    string
}

// ParseInvite parses an invite token (before anything is sent).
func ParseInvite(token string) (enroll.Token, error) { return enroll.ParseToken(token) }

// EnrollInvite enrolls this laptop with an invite token (`vgate connect
// --invite`): it makes a key pair here, sends only the public key and the
// token's secret to the token's URL over TLS pinned to the token's
// certificate, and checks the answer (CheckAnswer) before returning it.
// The error says why the token or the answer was refused (a
// *enroll.Refused with its code, a *enroll.PinError, an *AnswerError, or a
// damaged token); it never holds the secret or the private key.
func EnrollInvite(ctx context.Context, tok enroll.Token) (Enrolled, error) {
	priv, err := keys.GeneratePrivate()
	if err != nil {
		return Enrolled{}, err
	}
	resp, err := enroll.Enroll(ctx, tok, priv.Public())
	if err != nil {
		return Enrolled{}, err
	}
	return CheckAnswer(resp, tok, priv)
}

// AnswerError: the gateway's answer is refused; the laptop saved and
// configured nothing. The invite is spent on the gateway's side.
type AnswerError struct {
	URL string
	Err error
}

func (e *AnswerError) Error() string {
	return fmt.Sprintf("the enrollment server at %s answered a config this laptop refuses: %v; nothing was saved or set up (ask the gateway's admin: the invite is used up)", e.URL, e.Err)
}

func (e *AnswerError) Unwrap() error { return e.Err }

// CheckAnswer checks the gateway's answer to an enrollment as hostile
// input and returns what the laptop saves and brings up: the name must be
// a client name (p2s.CheckName, which keeps it a plain file name); the
// config must parse (no wg-quick hooks, Table, SaveConfig: ParseQuick
// refuses them), hold no private key and exactly one peer, addresses
// only from the token's pool (host addresses), AllowedIPs only within
// the token's routes, DNS servers only inside its AllowedIPs and search
// domains that are DNS names, an endpoint that is host:port, no
// ListenPort, and bounded counts. The config returned is rendered anew
// from what was checked, with priv, so nothing unchecked is saved.
func CheckAnswer(resp enroll.Response, tok enroll.Token, priv keys.PrivateKey) (Enrolled, error) {
	refuse := func(format string, args ...any) (Enrolled, error) {
		return Enrolled{}, &AnswerError{URL: tok.URL, Err: fmt.Errorf(format, args...)}
	}
	if err := p2s.CheckName(resp.Name); err != nil {
		return refuse("%v", err)
	}
	if len(resp.Config) > enroll.MaxConfig {
		return refuse("config of %d bytes, at most %d", len(resp.Config), enroll.MaxConfig)
	}
	q, err := p2s.ParseQuickWithoutKey(resp.Config)
	if err != nil {
		return refuse("config: %s", enroll.Printable(err.Error(), 300))
	}
	q.PrivateKey, q.PublicKey = priv, priv.Public()
	if len(q.Peers) != 1 {
		return refuse("config has %d [Peer] sections; the gateway is the only peer", len(q.Peers))
	}
	p := &q.Peers[0]
	switch {
	case p.PublicKey == q.PublicKey:
		return refuse("the peer's public key is this laptop's own")
	case len(q.Addresses) == 0 || len(q.Addresses) > maxAddresses:
		return refuse("config has %d addresses; want 1 to %d (one per family of the pool)", len(q.Addresses), maxAddresses)
	case len(p.AllowedIPs) > maxRoutes:
		return refuse("AllowedIPs has %d prefixes, at most %d", len(p.AllowedIPs), maxRoutes)
	case len(q.DNS) > maxDNS:
		return refuse("DNS has %d entries, at most %d", len(q.DNS), maxDNS)
	case q.ListenPort != 0:
		return refuse("config sets ListenPort %d; a client config never opens a port", q.ListenPort)
	case q.MTU != 0 && (q.MTU < minMTU || q.MTU > maxMTU):
		return refuse("MTU %d outside %d-%d", q.MTU, minMTU, maxMTU)
	case p.Keepalive < 0 || p.Keepalive > 65535:
		return refuse("PersistentKeepalive %d outside 0-65535", p.Keepalive)
	}
	for _, a := range q.Addresses {
		if !a.IsSingleIP() || a.Addr().Zone() != "" || a.Addr().Is4In6() {
			return refuse("address %s is not one address (the gateway gives /32 or /128)", a)
		}
	}
	if out := enroll.Outside(q.Addresses, tok.Bound.Pool); len(out) > 0 {
		return refuse("address %s is outside the invite's pool %s", out[0], joinOrNone(tok.Bound.Pool))
	}
	if out := enroll.Outside(p.AllowedIPs, tok.Bound.Routes); len(out) > 0 {
		return refuse("AllowedIPs %s outside what the invite lets it route (%s)", cmp.Or(overlap.Join(out), "-"), joinOrNone(tok.Bound.Routes))
	}
	servers, domains := SplitDNS(q.DNS)
	var hosts []netip.Prefix
	for _, s := range servers {
		hosts = append(hosts, netip.PrefixFrom(s, s.BitLen()))
	}
	if out := enroll.Outside(hosts, p.AllowedIPs); len(out) > 0 {
		return refuse("DNS server %s is outside the tunnel's AllowedIPs (queries would go elsewhere)", out[0].Addr())
	}
	for _, d := range domains {
		if !config.IsDNSName(d) {
			return refuse("DNS search domain %q is not a DNS name", d)
		}
	}
	if p.Endpoint == "" {
		return refuse("the peer has no Endpoint")
	}
	if err := config.CheckEndpoint(p.Endpoint); err != nil {
		return refuse("Endpoint: %v", err)
	}
	if ap, err := netip.ParseAddrPort(p.Endpoint); err == nil {
		if a := ap.Addr(); a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
			return refuse("Endpoint %s is not a gateway's address", a)
		}
	}
	text := q.Render(fmt.Sprintf("vgate point-to-site client %s, enrolled at %s", resp.Name, tok.URL))
	return Enrolled{Name: resp.Name, Quick: q, Config: text, URL: tok.URL}, nil
}

func joinOrNone(ps []netip.Prefix) string {
	return cmp.Or(overlap.Join(ps), "nothing")
}
