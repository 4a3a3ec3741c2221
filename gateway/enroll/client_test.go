package enroll

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
)

// hostileServer serves h over TLS on loopback and returns a token pinned
// to it.
func hostileServer(t *testing.T, h http.HandlerFunc) Token {
	t.Helper()
	cert, pin, err := LoadOrCreateCert(t.TempDir(), "hostile")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return Token{URL: "https://" + ln.Addr().String() + "/", Pin: pin, Bound: testBound}
}

// The laptop reads a hostile answer within bounds: no redirect followed,
// at most MaxAnswer bytes of body and maxAnswerHeader of header, and a
// refusal's text shown without control characters.
func TestEnrollHostileAnswers(t *testing.T) {
	priv, _ := keys.GeneratePrivate()
	ctx := context.Background()
	followed := false
	cases := []struct {
		name  string
		h     http.HandlerFunc
		check func(t *testing.T, resp Response, err error)
	}{
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != Path {
				followed = true
			}
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}, func(t *testing.T, _ Response, err error) {
			if !errors.Is(err, ErrRedirect) || followed {
				t.Errorf("redirect: %v (followed %v), want ErrRedirect and not followed", err, followed)
			}
		}},
		{"huge body", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"name":"erin","config":"`))
			w.Write(bytes.Repeat([]byte("A"), 4<<20))
		}, func(t *testing.T, _ Response, err error) {
			if err == nil || !strings.Contains(err.Error(), "larger than") {
				t.Errorf("huge body: %v", err)
			}
		}},
		{"huge config", func(w http.ResponseWriter, r *http.Request) {
			json.NewEncoder(w).Encode(Response{Name: "erin", Config: strings.Repeat("#", MaxConfig+1)})
		}, func(t *testing.T, _ Response, err error) {
			if err == nil || !strings.Contains(err.Error(), "at most") {
				t.Errorf("huge config: %v", err)
			}
		}},
		{"huge header", func(w http.ResponseWriter, r *http.Request) {
			for i := range 64 {
				w.Header().Set(fmt.Sprintf("X-Junk-%d", i), strings.Repeat("B", 1000))
			}
			json.NewEncoder(w).Encode(Response{Name: "erin", Config: "[Interface]\n"})
		}, func(t *testing.T, _ Response, err error) {
			if err == nil || !strings.Contains(err.Error(), "header") {
				t.Errorf("huge header: %v", err)
			}
		}},
		{"refusal with escapes", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(answerError{Error: "\x1b[2J\x1b]0;owned\x07" + strings.Repeat("x", 1000), Code: "\x1b[31m"})
		}, func(t *testing.T, _ Response, err error) {
			var r *Refused
			if !errors.As(err, &r) || strings.ContainsAny(r.Msg+string(r.Code), "\x1b\x07") || len(r.Msg) > maxRefusal+4 {
				t.Errorf("refusal: %q %v", err, err)
			}
		}},
		{"sound", func(w http.ResponseWriter, r *http.Request) {
			json.NewEncoder(w).Encode(Response{Name: "erin", Config: "[Interface]\n"})
		}, func(t *testing.T, resp Response, err error) {
			if err != nil || resp.Name != "erin" {
				t.Errorf("sound answer: %+v %v", resp, err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := hostileServer(t, c.h)
			began := time.Now()
			resp, err := Enroll(ctx, tok, priv.Public())
			c.check(t, resp, err)
			t.Logf("%v after %v", err, time.Since(began).Round(time.Millisecond))
		})
	}
}

func FuzzParseRequest(f *testing.F) {
	priv, _ := keys.GeneratePrivate()
	good, _ := json.Marshal(Request{Secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", PublicKey: priv.Public().String()})
	f.Add(good)
	f.Add([]byte(`{"secret":"","public_key":""}`))
	f.Add([]byte(`{"secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","public_key":"x","extra":1}`))
	f.Add([]byte(`{}{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		secret, pub, err := ParseRequest(b)
		if err != nil {
			var r *Refused
			if !errors.As(err, &r) || r.Code != CodeBadRequest {
				t.Fatalf("error is not a bad request: %v", err)
			}
			if len(r.Msg) > 120 {
				t.Fatalf("refusal of %d bytes (it may echo the request): %q", len(r.Msg), r.Msg)
			}
			return
		}
		if len(b) > MaxRequest {
			t.Fatalf("accepted %d bytes", len(b))
		}
		again, _ := json.Marshal(Request{Secret: base64.StdEncoding.EncodeToString(secret[:]), PublicKey: pub.String()})
		if s2, p2, err := ParseRequest(again); err != nil || s2 != secret || p2 != pub {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(`{"name":"erin","config":"[Interface]\n"}`))
	f.Add([]byte(`{"name":"","config":""}`))
	f.Add([]byte(`{"name":"../../x","config":"[Interface]\nPostUp = id\n"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResponse(b)
		if err != nil {
			return
		}
		if len(b) > MaxAnswer || r.Name == "" || r.Config == "" || len(r.Config) > MaxConfig {
			t.Fatalf("accepted %d bytes: name %q, config of %d bytes", len(b), r.Name, len(r.Config))
		}
	})
}
