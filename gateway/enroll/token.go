// Package enroll turns invite tokens into point-to-site clients: the
// token format (ParseToken, Token.String), the gateway's invite store in
// state_dir (Store: single use, expiring, revocable; secrets kept only as
// SHA-256 hashes), the enrollment HTTPS listener with its self-signed,
// pinned certificate and a rate limit on failed attempts (Server), and
// the laptop's side (Enroll: only the laptop's public key and the secret
// leave the laptop, over TLS to the pinned certificate).
package enroll

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// TokenPrefix starts every invite token (version 1).
const TokenPrefix = "vgate-invite1."

// MaxURL is the longest enrollment URL a token carries.
const MaxURL = 512

// Token is what an invite carries: where to enroll, the one-time secret
// and the SHA-256 pin of the enrollment listener's certificate.
type Token struct {
	URL    string
	Secret [32]byte
	Pin    [32]byte
}

// Layout after the prefix, base64url without padding: secret (32 bytes),
// pin (32), URL (the rest but 4), checksum (4: the first bytes of the
// SHA-256 of the prefix and everything before it).
const (
	secretLen = 32
	pinLen    = 32
	sumLen    = 4
)

// String is the token as printed; it holds the secret.
func (t Token) String() string {
	b := make([]byte, 0, secretLen+pinLen+len(t.URL)+sumLen)
	b = append(b, t.Secret[:]...)
	b = append(b, t.Pin[:]...)
	b = append(b, t.URL...)
	sum := checksum(b)
	b = append(b, sum[:]...)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// GoString keeps the secret out of %#v.
func (t Token) GoString() string {
	return fmt.Sprintf("enroll.Token{URL: %q, Pin: %s}", t.URL, PinString(t.Pin))
}

func checksum(b []byte) [sumLen]byte {
	h := sha256.New()
	h.Write([]byte(TokenPrefix))
	h.Write(b)
	var out [sumLen]byte
	copy(out[:], h.Sum(nil))
	return out
}

// ErrNotToken: the text is not an invite token at all, or is damaged.
var ErrNotToken = errors.New("not a vgate invite token")

// ParseToken parses a token as String prints it (surrounding white space
// is ignored). Errors never echo the token.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("%w: it must start with %q", ErrNotToken, TokenPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return Token{}, fmt.Errorf("%w: damaged (not base64url after the prefix; was it cut or wrapped?)", ErrNotToken)
	}
	if len(b) < secretLen+pinLen+len("https://x")+sumLen {
		return Token{}, fmt.Errorf("%w: damaged (too short; was it cut?)", ErrNotToken)
	}
	body, sum := b[:len(b)-sumLen], b[len(b)-sumLen:]
	if want := checksum(body); !bytes.Equal(sum, want[:]) {
		return Token{}, fmt.Errorf("%w: damaged (checksum mismatch; copy it again)", ErrNotToken)
	}
	var t Token
	copy(t.Secret[:], body[:secretLen])
	copy(t.Pin[:], body[secretLen:secretLen+pinLen])
	t.URL = string(body[secretLen+pinLen:])
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
