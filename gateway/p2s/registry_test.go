package p2s

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"golang.zx2c4.com/wireguard/tun"
)

func pubKey(t testing.TB) keys.PublicKey {
	t.Helper()
	k, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

var testPool = NewPool([]netip.Prefix{netip.MustParsePrefix("172.16.201.0/29"), netip.MustParsePrefix("fd00:cafe::/64")})

func TestRegistryAddRemoveQuarantine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, RegistryFile)
	r, err := OpenRegistry(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	add := func(name string) Client {
		t.Helper()
		c, err := r.Add(Client{Name: name, PublicKey: pubKey(t), Groups: []string{"devs"}}, testPool, 10, now)
		if err != nil {
			t.Fatalf("add %s: %v", name, err)
		}
		return c
	}
	a := add("alice")
	if len(a.Addresses) != 2 || a.Addresses[0] != netip.MustParseAddr("172.16.201.1") || a.Addresses[1] != netip.MustParseAddr("fd00:cafe::1") {
		t.Fatalf("alice addresses = %v", a.Addresses)
	}
	b := add("bob")
	if b.Addresses[0] != netip.MustParseAddr("172.16.201.2") {
		t.Fatalf("bob = %v", b.Addresses)
	}
	if _, err := r.Add(Client{Name: "alice", PublicKey: pubKey(t)}, testPool, 10, now); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := r.Add(Client{Name: "eve", PublicKey: a.PublicKey}, testPool, 10, now); err == nil || !strings.Contains(err.Error(), "alice") {
		t.Fatalf("duplicate key: %v", err)
	}
	if _, err := r.Add(Client{Name: "-x", PublicKey: pubKey(t)}, testPool, 10, now); err == nil {
		t.Fatal("bad name accepted")
	}
	if _, err := r.Add(Client{Name: "carol", PublicKey: pubKey(t)}, testPool, 2, now); err == nil || !strings.Contains(err.Error(), "max_clients") {
		t.Fatalf("max_clients: %v", err)
	}

	// Revoke alice: her addresses are quarantined, not reused at once.
	if _, err := r.Remove("alice", now, time.Hour); err != nil {
		t.Fatal(err)
	}
	c := add("carol")
	if c.Addresses[0] == a.Addresses[0] || c.Addresses[1] == a.Addresses[1] {
		t.Fatalf("carol got alice's quarantined address: %v", c.Addresses)
	}
	// The /29 has 6 usable addresses: alice (quarantined), bob, carol, and 3 more.
	for _, n := range []string{"d1", "d2", "d3"} {
		add(n)
	}
	if _, err := r.Add(Client{Name: "d4", PublicKey: pubKey(t)}, testPool, 10, now); err == nil || !strings.Contains(err.Error(), "no free IPv4") {
		t.Fatalf("full pool: %v", err)
	}
	if v4, _ := r.Free(testPool, now); v4 != 0 {
		t.Fatalf("free v4 = %d, want 0", v4)
	}
	// After the quarantine, alice's address returns.
	later := now.Add(time.Hour + time.Second)
	if v4, _ := r.Free(testPool, later); v4 != 1 {
		t.Fatalf("free v4 after quarantine = %d, want 1", v4)
	}
	d4, err := r.Add(Client{Name: "d4", PublicKey: pubKey(t)}, testPool, 10, later)
	if err != nil || d4.Addresses[0] != a.Addresses[0] {
		t.Fatalf("after quarantine: %v %v, want alice's old address", d4.Addresses, err)
	}

	// Reopen: same clients, same addresses; the file holds no private key.
	r2, err := OpenRegistry(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(r2.Clients()), len(r.Clients()); got != want {
		t.Fatalf("reopened registry has %d clients, want %d", got, want)
	}
	for _, c := range r.Clients() {
		c2, ok := r2.Get(c.Name)
		if !ok || c2.Addresses[0] != c.Addresses[0] || c2.PublicKey != c.PublicKey {
			t.Fatalf("client %s after reopen: %+v, want %+v", c.Name, c2, c)
		}
	}
	raw, _ := os.ReadFile(path)
	var f map[string]any
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(string(raw)), "private") {
		t.Fatalf("registry mentions private keys:\n%s", raw)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("registry mode %v, want 0600", st.Mode().Perm())
	}
	// No temporary files left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("state dir holds %d files, want only the registry", len(ents))
	}
}

// A registry that does not parse (e.g. edited by hand) is an error and is
// left alone; a torn temporary file from a crash mid-write is ignored.
func TestRegistryCorruptAndCrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, RegistryFile)
	r, _ := OpenRegistry(path)
	if _, err := r.Add(Client{Name: "alice", PublicKey: pubKey(t), Groups: []string{"g"}}, testPool, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	// A crash between writing the temporary file and renaming it.
	if err := os.WriteFile(filepath.Join(dir, "."+RegistryFile+".123.tmp"), good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	r2, err := OpenRegistry(path)
	if err != nil || r2.Len() != 1 {
		t.Fatalf("after a torn temp file: %v, %d clients", err, r2.Len())
	}
	if err := os.WriteFile(path, good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRegistry(path); !errors.Is(err, ErrCorruptRegistry) || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt registry: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(good[:len(good)/2]) {
		t.Fatal("corrupt registry was modified")
	}
}

// Every kind of corrupt content is ErrCorruptRegistry, naming the file
// and the problem; a file that cannot be read is another error.
func TestRegistryCorruptKinds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, RegistryFile)
	k := pubKey(t)
	for name, tc := range map[string]struct{ content, want string }{
		"not json":       {"{\"version\": 1, \"clients\": [", "unexpected end of JSON input"},
		"wrong type":     {`{"version": "1"}`, "cannot unmarshal string"},
		"version":        {`{"version": 2, "clients": []}`, "unknown version 2"},
		"duplicate name": {`{"version": 1, "clients": [{"name": "a", "public_key": "` + k.String() + `"}, {"name": "a"}]}`, `client "a": registered twice`},
	} {
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenRegistry(path)
		if !errors.Is(err, ErrCorruptRegistry) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil { // unreadable as a file
		t.Fatal(err)
	}
	if _, err := OpenRegistry(path); err == nil || errors.Is(err, ErrCorruptRegistry) {
		t.Errorf("registry path is a directory: %v", err)
	}
}

// Open on a corrupt registry fails with ErrCorruptRegistry before it
// creates an interface, and leaves the file as it is.
func TestOpenCorruptRegistry(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, RegistryFile)
	const garbage = "{ this is not json"
	if err := os.WriteFile(path, []byte(garbage), 0o600); err != nil {
		t.Fatal(err)
	}
	gw, _ := keys.GeneratePrivate()
	_, err := Open(Options{
		Config: testP2SConfig(), PrivateKey: gw, StateDir: dir,
		NewTUN: func(string, int) (tun.Device, error) {
			t.Fatal("Open created an interface despite a corrupt registry")
			return nil, nil
		},
	})
	if !errors.Is(err, ErrCorruptRegistry) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != garbage {
		t.Fatalf("corrupt registry rewritten: %q", b)
	}
}

// A failed write changes nothing in memory either.
func TestRegistryWriteFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	r, err := OpenRegistry(filepath.Join(dir, RegistryFile))
	if err != nil {
		t.Fatal(err)
	}
	// state_dir is not a directory: every write fails, even as root.
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add(Client{Name: "alice", PublicKey: pubKey(t)}, testPool, 0, time.Now()); err == nil {
		t.Fatal("add succeeded although the registry cannot be written")
	}
	if r.Len() != 0 {
		t.Fatal("failed add left a client in memory")
	}
}
