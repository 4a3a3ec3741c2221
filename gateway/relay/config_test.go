package relay

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/statefile"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Bad limits are refused, each naming its field; accept_gateway names the
// gateway's state_dir, its public keys file, or (as before) its config,
// whose key file is never opened.
func TestLoadConfig(t *testing.T) {
	k := key(t).Public().String()
	for _, tt := range []struct{ body, want string }{
		{"accept: [" + k + "]\nmax_connections: -1\n", "max_connections -1: must not be negative"},
		{"accept: [" + k + "]\nqueue_bytes: -5\n", "queue_bytes -5"},
		{"accept: [" + k + "]\nqueue_bytes: 100\n", "queue_bytes 100: less than one datagram"},
		{"accept: [" + k + "]\nmax_connections: 10\nmax_pending: 11\n", "max_pending 11: more than max_connections 10"},
		{"accept: [" + k + "]\nmax_pending: 10\nmax_pending_per_source: 11\n", "max_pending_per_source 11: more than max_pending 10"},
		{"accept_gateway: /etc/vgate/keys.txt\n", `accept_gateway: "/etc/vgate/keys.txt": name the gateway's state_dir`},
		{"accept_gateway: /nonexistent/vgate.yaml\n", "accept_gateway: gateway config"},
		{"max_pending_per_source: 3\n", "accept: no keys accepted"},
	} {
		_, err := LoadConfig(writeConfig(t, tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.body, err, tt.want)
		}
	}

	dir := t.TempDir()
	gwConf := filepath.Join(dir, "vgate.yaml")
	if err := os.WriteFile(gwConf, []byte("name: east\nprivate_key_file: /nonexistent/private.key\nstate_dir: /srv/gw-state\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noState := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(noState, []byte("name: west\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ gw, want string }{
		{"/var/lib/vgate", "/var/lib/vgate/" + PublicKeysFile},
		{"/var/lib/vgate/" + PublicKeysFile, "/var/lib/vgate/" + PublicKeysFile},
		{gwConf, "/srv/gw-state/" + PublicKeysFile},
		{noState, "/var/lib/vgate/" + PublicKeysFile},
	} {
		c, err := LoadConfig(writeConfig(t, "accept_gateway: "+tt.gw+"\nmax_connections: 50\nqueue_bytes: 65536\n"))
		if err != nil {
			t.Errorf("accept_gateway %s: %v", tt.gw, err)
			continue
		}
		if c.GatewayKeys != tt.want {
			t.Errorf("accept_gateway %s: reads %s, want %s", tt.gw, c.GatewayKeys, tt.want)
		}
		if l := c.Limits().withDefaults(); l.MaxConnections != 50 || l.MaxPending != 25 || l.QueueBytes != 65536 {
			t.Errorf("limits %+v", l)
		}
	}
}

// The relay follows the gateway's public keys file: a change is seen at
// the next poll, a missing file accepts none of its keys, a file that does
// not parse keeps the last good keys.
func TestKeyWatch(t *testing.T) {
	static := key(t).Public()
	gw, c1, c2 := key(t).Public(), key(t).Public(), key(t).Public()
	path := filepath.Join(t.TempDir(), PublicKeysFile)
	w := &keyWatch{log: slog.New(slog.DiscardHandler)}
	w.configure(&Config{Accept: []keys.PublicKey{static}, GatewayKeys: path})
	if w.poll() || !slices.Equal(w.keys(), []keys.PublicKey{static}) {
		t.Fatalf("no file yet: keys %v", w.keys())
	}
	write := func(p PublicKeys) {
		t.Helper()
		if err := statefile.WriteAtomic(path, p.Marshal()); err != nil {
			t.Fatal(err)
		}
	}
	write(PublicKeys{Gateway: gw, Clients: []NamedKey{{"a", c1}, {"b", c2}}})
	if !w.poll() || len(w.keys()) != 4 {
		t.Fatalf("file written: changed %v, keys %v", false, w.keys())
	}
	if w.poll() {
		t.Error("an unchanged file reported as changed")
	}
	write(PublicKeys{Gateway: gw, Clients: []NamedKey{{"a", c1}}}) // b revoked
	if !w.poll() || slices.Contains(w.keys(), c2) || !slices.Contains(w.keys(), c1) {
		t.Fatalf("after revoking b: keys %v", w.keys())
	}
	if err := statefile.WriteAtomic(path, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if w.poll() || !slices.Contains(w.keys(), c1) {
		t.Fatalf("a file that does not parse changed the keys: %v", w.keys())
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if !w.poll() || !slices.Equal(w.keys(), []keys.PublicKey{static}) {
		t.Fatalf("file removed: keys %v", w.keys())
	}
}

func TestParsePublicKeys(t *testing.T) {
	gw, c := key(t).Public(), key(t).Public()
	b := PublicKeys{Gateway: gw, Peerings: []NamedKey{{"z", c}, {"a", gw}}}.Marshal()
	p, err := ParsePublicKeys(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Peerings[0].Name != "a" || len(p.Keys()) != 3 {
		t.Errorf("parsed %+v", p)
	}
	for _, bad := range []string{
		`{"version": 2, "gateway": "` + gw.String() + `"}`,
		`{"version": 1}`,
		`{"version": 1, "gateway": "` + gw.String() + `", "clients": [{"name": "x"}]}`,
		`{"version": 1, "gateway": "short"}`,
		`[]`,
	} {
		if _, err := ParsePublicKeys([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// Without state_dir the relay keeps using the key and certificate of the
// directory relays used before, if the new default holds no key yet.
func TestLegacyStateDir(t *testing.T) {
	old := legacyStateDir
	defer func() { legacyStateDir = old }()
	legacyStateDir = t.TempDir()
	fresh := filepath.Join(t.TempDir(), "vgate-relay")
	c := &Config{StateDir: fresh}
	if d, legacy := c.stateDir(); d != fresh || legacy {
		t.Errorf("no key anywhere: %s %v", d, legacy)
	}
	if _, err := loadOrCreateKey(filepath.Join(legacyStateDir, KeyFile)); err != nil {
		t.Fatal(err)
	}
	if d, legacy := c.stateDir(); d != legacyStateDir || !legacy {
		t.Errorf("a key in the old directory: %s %v", d, legacy)
	}
	c.stateDirGiven = true
	if d, _ := c.stateDir(); d != fresh {
		t.Errorf("state_dir given: %s", d)
	}
}
