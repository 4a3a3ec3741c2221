package enroll

import (
	"errors"
	"strings"
	"testing"
)

func testToken() Token {
	t := Token{URL: "https://198.18.0.1:8443/"}
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
		t.Fatalf("token %q: want the prefix and at most 200 characters", s)
	}
	got, err := ParseToken("  " + s + "\n")
	if err != nil || got != tok {
		t.Fatalf("ParseToken = %#v, %v", got, err)
	}
	if strings.Contains(tok.GoString(), "0001020304") {
		t.Errorf("GoString shows the secret: %s", tok.GoString())
	}
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
	tests := []struct{ name, in, want string }{
		{"empty", "", "must start with"},
		{"other text", "hello", "must start with"},
		{"wireguard key", "4gqO7PS24rEjqowgn5GQtaEbKlVjT7SNOwLPquRM4xs=", "must start with"},
		{"cut", good[:60], "too short"},
		{"cut long", good[:len(good)-3], "checksum"},
		{"one character changed", string(flip), "checksum"},
		{"not base64", TokenPrefix + "!!!!", "not base64url"},
		{"http url", http.String(), "not an https"},
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

func FuzzParseToken(f *testing.F) {
	f.Add(testToken().String())
	f.Add(TokenPrefix)
	f.Add(TokenPrefix + "AAAA")
	f.Add("vgate-invite1.\x00")
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
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("round trip: %#v %v", again, err)
		}
	})
}
