package enroll

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/connlimit"
	"github.com/vgate-project/vgate/gateway/keys"
)

// BenchmarkRefusedRequest is the listener's own work for a request that
// carries no pending secret from a limited source (read and parse the
// body, one SHA-256 and a scan of 100 invites, the limiter, a 429), as a
// ratio to one TLS 1.3 handshake with the listener's certificate (both
// ends, in memory; measured in the same run), which every request costs
// before that: the work per refused request stays a small part of what
// the attacker's connection costs anyway.
func BenchmarkRefusedRequest(b *testing.B) {
	dir := b.TempDir()
	cert, _, err := LoadOrCreateCert(dir, "bench")
	if err != nil {
		b.Fatal(err)
	}
	store, err := OpenStore(filepath.Join(dir, StoreFile))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range 100 {
		if _, _, err := store.Create(string(rune('a'+i%26))+string(rune('a'+i/26)), nil, testBound, time.Hour, now, func(string) bool { return false }); err != nil {
			b.Fatal(err)
		}
	}
	s := &Server{log: slog.New(slog.DiscardHandler), limit: NewLimiter(), now: time.Now, attempts: map[string]uint64{},
		inv: Invites{Pending: func(secret [32]byte) bool { return store.PendingSecret(secret, now) }}}
	var secret [32]byte
	rand.Read(secret[:])
	priv, _ := keys.GeneratePrivate()
	body, _ := json.Marshal(Request{Secret: base64.StdEncoding.EncodeToString(secret[:]), PublicKey: priv.Public().String()})
	src := connlimit.Source(netip.AddrFrom4([4]byte{198, 18, 0, 9}))
	for s.limit.Take(src, now) {
	}

	// The baseline, in the same run: handshakes on loopback TCP.
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	const handshakes = 50
	began := time.Now()
	for range handshakes {
		done := make(chan error, 1)
		go func() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err == nil {
				err = tls.Client(c, &tls.Config{InsecureSkipVerify: true}).Handshake()
				c.Close()
			}
			done <- err
		}()
		c, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		if err := tls.Server(c, cfg).Handshake(); err != nil {
			b.Fatal(err)
		}
		c.Close()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	handshake := float64(time.Since(began).Nanoseconds()) / handshakes
	b.ResetTimer()
	for b.Loop() {
		r := httptest.NewRequest("POST", Path, bytes.NewReader(body))
		r.RemoteAddr = "198.18.0.9:40000"
		w := httptest.NewRecorder()
		s.enroll(w, r)
		if w.Code != http.StatusTooManyRequests {
			b.Fatalf("status %d, want 429", w.Code)
		}
	}
	perReq := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perReq/handshake, "x-handshake")
	b.ReportMetric(handshake, "handshake-ns")
}
