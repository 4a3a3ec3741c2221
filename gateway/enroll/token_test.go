package enroll

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func testToken() Token {
	t := Token{URL: "https://198.18.0.1:8443/", Bound: Bound{
		Pool:   []netip.Prefix{netip.MustParsePrefix("172.16.201.0/24"), netip.MustParsePrefix("fd00:c1::/64")},
		Routes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.2.0.53/32"), netip.MustParsePrefix("fd00:1::/48"), netip.MustParsePrefix("0.0.0.0/0")},
	}}
	for i := range t.Secret {
		t.Secret[i] = byte(i)
		t.Pin[i] = byte(255 - i)
	}
	return t
}

func TestTokenRoundTrip(t *testing.T) {
	tok := testToken()
	s := tok.String()
	if !strings.HasPrefix(s, TokenPrefix) || len(s) > 200 {
		t.Fatalf("token %q (%d characters): want the prefix and at most 200 characters", s, len(s))
	}
	got, err := ParseToken("  " + s + "\n")
	if err != nil || !got.Equal(tok) {
		t.Fatalf("ParseToken = %#v, %v", got, err)
	}
	// Pasted with white space inside (a wrapped line, a stray space).
	for _, pasted := range []string{s[:30] + " " + s[30:], s[:20] + "\n" + s[20:50] + "\r\n  " + s[50:], s[:len(TokenPrefix)] + "\t" + s[len(TokenPrefix):]} {
		if got, err := ParseToken(pasted); err != nil || !got.Equal(tok) {
			t.Errorf("ParseToken(%q) = %v, want the token", pasted, err)
		}
	}
	if strings.Contains(tok.GoString(), "0001020304") {
		t.Errorf("GoString shows the secret: %s", tok.GoString())
	}
	t.Logf("token with 2 pool and 4 route prefixes: %d characters", len(s))
}

func TestParseTokenErrors(t *testing.T) {
	good := testToken().String()
	flip := []byte(good)
	flip[len(TokenPrefix)+10] ^= 1 // another base64 character
	if flip[len(TokenPrefix)+10] == '-' || flip[len(TokenPrefix)+10] == '_' {
		t.Fatal("test flips to a non-alphabet character")
	}
	http := testToken()
	http.URL = "http://198.18.0.1:8443/"
	noPool := testToken()
	noPool.Bound.Pool = nil
	tests := []struct{ name, in, want string }{
		{"empty", "", "must start with"},
		{"other text", "hello", "must start with"},
		{"wireguard key", "4gqO7PS24rEjqowgn5GQtaEbKlVjT7SNOwLPquRM4xs=", "must start with"},
		{"version 1", "vgate-invite1.GEDO5BKAW4p53OTF4ETwk3t8PJ1KD8x7P5F_tsw", "older vgate"},
		{"cut", good[:60], "too short"},
		{"cut long", good[:len(good)-4], "checksum"},
		{"one character changed", string(flip), "checksum"},
		{"not base64", TokenPrefix + "!!!!", "not base64url"},
		{"http url", http.String(), "not an https"},
		{"no pool", noPool.String(), "no address pool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseToken(tt.in)
			if err == nil || !errors.Is(err, ErrNotToken) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseToken: %v, want ErrNotToken with %q", err, tt.want)
			}
			if len(tt.in) > 40 && strings.Contains(err.Error(), tt.in[len(TokenPrefix):len(TokenPrefix)+20]) {
				t.Errorf("the error echoes the token: %v", err)
			}
		})
	}
}

// A prefix in a token has one encoding: host bits set, an IPv4 length
// above 32 or an IPv6 length above 128 are refused.
func TestReadPrefix(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want string
	}{
		{[]byte{0}, "0.0.0.0/0"},
		{[]byte{16, 10, 1}, "10.1.0.0/16"},
		{[]byte{12, 10, 0x10}, "10.16.0.0/12"},
		{[]byte{12, 10, 0x11}, ""}, // a host bit
		{[]byte{33, 1, 2, 3, 4, 5}, ""},
		{[]byte{64}, "::/0"},
		{[]byte{64 + 16, 0xfd, 0}, "fd00::/16"},
		{[]byte{64 + 129}, ""},
		{[]byte{24, 10, 1}, ""}, // cut
		{nil, ""},
	} {
		p, _, ok := readPrefix(c.b)
		if got := map[bool]string{true: p.String(), false: ""}[ok]; got != c.want {
			t.Errorf("readPrefix(%v) = %q, want %q", c.b, got, c.want)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(testToken().String())
	f.Add(TokenPrefix)
	f.Add(TokenPrefix + "AAAA")
	f.Add("vgate-invite2.\x00")
	f.Add("vgate-invite1.GEDO5BKAW4p53OTF4ETwk3t8PJ1KD8x7P5F_tsw")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrNotToken) {
				t.Fatalf("error without ErrNotToken: %v", err)
			}
			return
		}
		if CheckURL(tok.URL) != nil {
			t.Fatalf("accepted URL %q", tok.URL)
		}
		if len(tok.Bound.Pool) == 0 || len(tok.Bound.Pool) > MaxBound || len(tok.Bound.Routes) > MaxBound {
			t.Fatalf("accepted bound %v", tok.Bound)
		}
		for _, p := range append(tok.Bound.Pool, tok.Bound.Routes...) {
			if !p.IsValid() || p.Masked() != p {
				t.Fatalf("accepted prefix %v", p)
			}
		}
		again, err := ParseToken(tok.String())
		if err != nil || !again.Equal(tok) {
			t.Fatalf("round trip: %#v %v", again, err)
		}
	})
}
