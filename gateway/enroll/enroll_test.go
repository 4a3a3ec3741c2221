package enroll

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
)

// A gateway side (Store, Server, certificate in a temporary state_dir)
// and the laptop side (Enroll) on loopback.
func TestEnrollEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cert, pin, err := LoadOrCreateCert(dir, "net1")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	if _, pin2, err := LoadOrCreateCert(dir, "net1"); err != nil || pin2 != pin {
		t.Fatalf("second load: pin %s (was %s), %v", PinString(pin2), PinString(pin), err)
	}
	store, err := OpenStore(filepath.Join(dir, StoreFile))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clients := map[string]keys.PublicKey{}
	redeem := func(ctx context.Context, secret [32]byte, pub keys.PublicKey) (Response, error) {
		inv, cfg, err := store.Redeem(secret, now, func(inv Invite) (string, error) {
			clients[inv.Name] = pub
			return "[Interface]\n# PrivateKey = (your own private key)\nAddress = 172.16.201.1/32\n", nil
		})
		return Response{Name: inv.Name, Config: cfg}, err
	}
	pending := func(secret [32]byte) bool { return store.PendingSecret(secret, now) }
	srv, err := Listen("127.0.0.1:0", cert, Invites{Pending: pending, Redeem: redeem}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.now = func() time.Time { return now }
	addr := srvAddr(t, srv)
	token := func(name string, ttl time.Duration) Token {
		t.Helper()
		_, secret, err := store.Create(name, []string{"devs"}, testBound, ttl, now, func(string) bool { return false })
		if err != nil {
			t.Fatal(err)
		}
		return Token{URL: "https://" + addr + "/", Secret: secret, Pin: pin, Bound: testBound}
	}
	ctx := context.Background()
	priv, _ := keys.GeneratePrivate()

	alice := token("alice", time.Hour)
	resp, err := Enroll(ctx, alice, priv.Public())
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	if resp.Name != "alice" || clients["alice"] != priv.Public() || !strings.HasPrefix(resp.Config, "[Interface]\n") {
		t.Fatalf("enrolled %q with %v: %q", resp.Name, clients, resp.Config)
	}
	b, _ := os.ReadFile(filepath.Join(dir, StoreFile))
	if strings.Contains(string(b), base64.StdEncoding.EncodeToString(alice.Secret[:])) || strings.Contains(string(b), hex.EncodeToString(alice.Secret[:])) ||
		!strings.Contains(string(b), HashSecret(alice.Secret)) {
		t.Fatalf("the store must hold the secret's hash only:\n%s", b)
	}

	refused := func(what string, tok Token, code Code) {
		t.Helper()
		_, err := Enroll(ctx, tok, priv.Public())
		var r *Refused
		if !errors.As(err, &r) || r.Code != code {
			t.Fatalf("%s: %v, want refused with %s", what, err, code)
		}
		t.Logf("%s: %v", what, err)
	}
	refused("reuse", alice, CodeUsed)

	bob := token("bob", time.Hour)
	if _, err := store.Revoke("bob", now); err != nil {
		t.Fatal(err)
	}
	refused("revoked", bob, CodeRevoked)

	carol := token("carol", time.Minute)
	now = now.Add(time.Minute)
	refused("expired", carol, CodeExpired)

	wrongPin := token("dave", time.Hour)
	wrongPin.Pin[0] ^= 1
	_, err = Enroll(ctx, wrongPin, priv.Public())
	var pe *PinError
	if !errors.As(err, &pe) || pe.Got != pin {
		t.Fatalf("wrong pin: %v, want a PinError", err)
	}
	t.Logf("wrong pin: %v", err)
	if store.Pending("dave", now) != true {
		t.Fatal("a wrong pin must not spend the invite")
	}

	// The bucket of 127.0.0.1 refilled during the minute; the expired
	// attempt took one failure: four more, then limited.
	var unknown Token
	unknown.URL, unknown.Pin = "https://"+addr+"/", pin
	for range Burst - 1 {
		refused("unknown", unknown, CodeUnknown)
	}
	refused("rate limited", unknown, CodeRateLimited)
	// A pending invite is never limited, from the limited source too.
	erin := token("erin", time.Hour)
	if resp, err := Enroll(ctx, erin, priv.Public()); err != nil || resp.Name != "erin" {
		t.Fatalf("a valid invite from a limited source: %v", err)
	}
	refused("spent, from the limited source", erin, CodeRateLimited)
	now = now.Add(Refill)
	refused("after a refill", unknown, CodeUnknown)
	want := map[string]uint64{"enrolled": 2, "invite_used": 1, "invite_revoked": 1, "invite_expired": 1, "invite_unknown": 5, "rate_limited": 2}
	if got := srv.Attempts(); !maps.Equal(got, want) {
		t.Errorf("attempts %v, want %v", got, want)
	}
}

var testBound = Bound{Pool: []netip.Prefix{netip.MustParsePrefix("172.16.201.0/24")}, Routes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}

func srvAddr(t *testing.T, s *Server) string {
	t.Helper()
	return s.boundAddr // Listen was given port 0
}

func TestStoreCreateRules(t *testing.T) {
	s, err := OpenStore(filepath.Join(t.TempDir(), StoreFile))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	none := func(string) bool { return false }
	if _, _, err := s.Create("a", nil, testBound, 0, now, none); err == nil {
		t.Error("ttl 0 accepted")
	}
	if _, _, err := s.Create("a", nil, testBound, MaxExpiry+time.Second, now, none); err == nil {
		t.Error("ttl above the maximum accepted")
	}
	if _, _, err := s.Create("a", nil, testBound, time.Hour, now, func(string) bool { return true }); !errors.As(err, new(*Conflict)) {
		t.Errorf("name of a client: %v, want Conflict", err)
	}
	if _, _, err := s.Create("a", nil, testBound, time.Hour, now, none); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create("a", nil, testBound, time.Hour, now, none); !errors.As(err, new(*Conflict)) {
		t.Errorf("second pending invite: %v, want Conflict", err)
	}
	if _, _, err := s.Create("a", nil, testBound, time.Hour, now.Add(time.Hour), none); err != nil {
		t.Errorf("after the first expired: %v", err)
	}
	if _, err := s.Revoke("zz", now); !errors.As(err, new(*NotFound)) {
		t.Errorf("revoke unknown: %v", err)
	}
	// Reopened, the store is the same; spent invites are forgotten Keep
	// after they expired.
	s2, err := OpenStore(s.path)
	if err != nil || len(s2.List()) != 2 {
		t.Fatalf("reopen: %v %v", s2.List(), err)
	}
	if _, _, err := s2.Create("b", nil, testBound, time.Hour, now.Add(Keep+3*time.Hour), none); err != nil {
		t.Fatal(err)
	}
	if l := s2.List(); len(l) != 1 || l[0].Name != "b" {
		t.Errorf("after Keep: %+v", l)
	}
}
