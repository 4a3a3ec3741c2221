// Package enroll turns invite tokens into point-to-site clients: the
// token format (ParseToken, Token.String), the gateway's invite store in
// state_dir (Store: single use, expiring, revocable; secrets kept only as
// SHA-256 hashes), the enrollment HTTPS listener with its self-signed,
// pinned certificate, its connection bounds and a rate limit on failed
// attempts that never refuses a pending invite (Server), and the laptop's
// side (Enroll: only the laptop's public key and the secret leave the
// laptop, over TLS to the pinned certificate; the answer is read bounded
// in size and time).
package enroll

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// TokenPrefix starts every invite token (version 2).
const TokenPrefix = "vgate-invite2."

// tokenPrefixV1 started the tokens of vgate before invites bounded their
// routes; they are refused with a reason.
const tokenPrefixV1 = "vgate-invite1."

// MaxURL is the longest enrollment URL a token carries.
const MaxURL = 512

// Token is what an invite carries: where to enroll, the one-time secret,
// the SHA-256 pin of the enrollment listener's certificate and the bound
// of the config the gateway may answer with.
type Token struct {
	URL    string
	Secret [32]byte
	Pin    [32]byte
	Bound  Bound
}

// Layout after the prefix, base64url without padding: secret (32 bytes),
// pin (32), the bound's pool and routes (each a count byte and that many
// prefixes, see appendPrefix), URL (the rest but 4), checksum (4: the first
// bytes of the SHA-256 of the prefix and everything before it).
const (
	secretLen = 32
	pinLen    = 32
	sumLen    = 4
)

// String is the token as printed; it holds the secret.
func (t Token) String() string {
	b := make([]byte, 0, secretLen+pinLen+len(t.URL)+sumLen+64)
	b = append(b, t.Secret[:]...)
	b = append(b, t.Pin[:]...)
	for _, list := range [][]netip.Prefix{t.Bound.Pool, t.Bound.Routes} {
		b = append(b, byte(len(list)))
		for _, p := range list {
			b = appendPrefix(b, p)
		}
	}
	b = append(b, t.URL...)
	sum := checksum(b)
	b = append(b, sum[:]...)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// GoString keeps the secret out of %#v.
func (t Token) GoString() string {
	return fmt.Sprintf("enroll.Token{URL: %q, Pin: %s, Bound: %v}", t.URL, PinString(t.Pin), t.Bound)
}

// Equal reports whether t and u are the same token.
func (t Token) Equal(u Token) bool {
	return t.URL == u.URL && t.Secret == u.Secret && t.Pin == u.Pin &&
		slices.Equal(t.Bound.Pool, u.Bound.Pool) && slices.Equal(t.Bound.Routes, u.Bound.Routes)
}

func checksum(b []byte) [sumLen]byte {
	h := sha256.New()
	h.Write([]byte(TokenPrefix))
	h.Write(b)
	var out [sumLen]byte
	copy(out[:], h.Sum(nil))
	return out
}

// A prefix in a token: one byte, the length for IPv4 (0-32) or 64 plus the
// length for IPv6 (64-192), then the address bytes the length covers.
// Bits past the length are zero (one encoding per prefix).
func appendPrefix(b []byte, p netip.Prefix) []byte {
	p = p.Masked()
	tag := byte(p.Bits())
	if p.Addr().Is6() {
		tag += 64
	}
	b = append(b, tag)
	return append(b, p.Addr().AsSlice()[:(p.Bits()+7)/8]...)
}

// readPrefix reads one prefix at the start of b and returns the rest.
func readPrefix(b []byte) (netip.Prefix, []byte, bool) {
	if len(b) == 0 {
		return netip.Prefix{}, nil, false
	}
	tag, b := int(b[0]), b[1:]
	size, bits := 4, tag
	if tag >= 64 {
		size, bits = 16, tag-64
	}
	if bits > size*8 || (tag > 32 && tag < 64) {
		return netip.Prefix{}, nil, false
	}
	n := (bits + 7) / 8
	if len(b) < n {
		return netip.Prefix{}, nil, false
	}
	var raw [16]byte
	copy(raw[:], b[:n])
	a, _ := netip.AddrFromSlice(raw[:size])
	p := netip.PrefixFrom(a, bits)
	if p.Masked() != p {
		return netip.Prefix{}, nil, false
	}
	return p, b[n:], true
}

// ErrNotToken: the text is not an invite token at all, or is damaged.
var ErrNotToken = errors.New("not a vgate invite token")

// ParseToken parses a token as String prints it (surrounding white space
// is ignored). Errors never echo the token.
func ParseToken(s string) (Token, error) {
	// White space is never part of a token: a token pasted with a space
	// or a line break inside (a wrapped terminal, a chat client) is the
	// token without them.
	s = strings.Join(strings.Fields(s), "")
	if strings.HasPrefix(s, tokenPrefixV1) {
		return Token{}, fmt.Errorf("%w: this invite was made by an older vgate gateway, whose invites do not bound the routes it may give; ask for a new invite", ErrNotToken)
	}
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("%w: it must start with %q", ErrNotToken, TokenPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return Token{}, fmt.Errorf("%w: damaged (not base64url after the prefix; was it cut or wrapped?)", ErrNotToken)
	}
	if len(b) < secretLen+pinLen+2+len("https://x")+sumLen {
		return Token{}, fmt.Errorf("%w: damaged (too short; was it cut?)", ErrNotToken)
	}
	body, sum := b[:len(b)-sumLen], b[len(b)-sumLen:]
	if want := checksum(body); !bytes.Equal(sum, want[:]) {
		return Token{}, fmt.Errorf("%w: damaged (checksum mismatch; copy it again)", ErrNotToken)
	}
	var t Token
	copy(t.Secret[:], body[:secretLen])
	copy(t.Pin[:], body[secretLen:secretLen+pinLen])
	rest2 := body[secretLen+pinLen:]
	for _, list := range []*[]netip.Prefix{&t.Bound.Pool, &t.Bound.Routes} {
		if len(rest2) == 0 {
			return Token{}, fmt.Errorf("%w: damaged (its routes are cut)", ErrNotToken)
		}
		n := int(rest2[0])
		rest2 = rest2[1:]
		if n > MaxBound {
			return Token{}, fmt.Errorf("%w: %d prefixes in a list, at most %d", ErrNotToken, n, MaxBound)
		}
		for range n {
			p, r, ok := readPrefix(rest2)
			if !ok {
				return Token{}, fmt.Errorf("%w: damaged (a route is not a prefix)", ErrNotToken)
			}
			*list = append(*list, p)
			rest2 = r
		}
	}
	if len(t.Bound.Pool) == 0 {
		return Token{}, fmt.Errorf("%w: it names no address pool", ErrNotToken)
	}
	t.URL = string(rest2)
	if err := CheckURL(t.URL); err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrNotToken, err)
	}
	return t, nil
}

// CheckURL accepts an https URL with a host and nothing after the path.
func CheckURL(s string) error {
	if len(s) > MaxURL {
		return fmt.Errorf("enrollment URL longer than %d bytes", MaxURL)
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("enrollment URL %q is not an https://host[:port]/ URL", s)
	}
	return nil
}

// PinString is a pin as configs and messages show it: "sha256:" and the
// hex digest of the certificate's DER encoding (what `openssl x509
// -fingerprint -sha256` prints, without the colons).
func PinString(p [32]byte) string { return "sha256:" + hex.EncodeToString(p[:]) }
