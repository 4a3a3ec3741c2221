package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/control"
	"github.com/vgate-project/vgate/gateway/keys"
)

func vgate(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, strings.NewReader(stdin), &o, &e)
	return code, o.String(), e.String()
}

func writeConfig(t *testing.T, body string) (path string, key keys.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	key, _ = keys.GeneratePrivate()
	kf := filepath.Join(dir, "private.key")
	if err := keys.WritePrivateFile(kf, key); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "vgate.yaml")
	body = strings.ReplaceAll(body, "KEYFILE", kf)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, key
}

const validCfg = `name: east
address_spaces: [10.1.0.0/16]
tunnel_address: 10.1.255.254
private_key_file: KEYFILE
peerings:
  - name: west
    network: west
    public_key: "ojHvpBY28IJDDgEdSjBLFZ+x0IHjlB3Mg8QcqNwWaGk="
    endpoint: 198.18.0.2:51820
    address_spaces: [10.2.0.0/16]
`

func TestCheck(t *testing.T) {
	path, key := writeConfig(t, validCfg)
	code, out, errOut := vgate(t, "", "check", "--config", path)
	if code != 0 || !strings.Contains(out, "OK: gateway east") || !strings.Contains(out, key.Public().String()) || !strings.Contains(out, "1/10 tunnels") {
		t.Fatalf("valid config: code %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out, key.Base64()) {
		t.Fatal("check printed the private key")
	}

	bad := strings.Replace(validCfg, "10.2.0.0/16", "10.1.2.0/24", 1) + "bogus: 1\n"
	path, _ = writeConfig(t, bad)
	code, _, errOut = vgate(t, "", "check", "--config", path)
	if code != 1 || !strings.Contains(errOut, "2 problem(s)") || !strings.Contains(errOut, "bogus") ||
		!strings.Contains(errOut, "10.1.2.0/24") || !strings.Contains(errOut, ":10:") {
		t.Fatalf("invalid config: code %d\n%s", code, errOut)
	}

	if code, _, errOut := vgate(t, "", "check", "--config", "/nonexistent/vgate.yaml"); code != 1 || !strings.Contains(errOut, "/nonexistent/vgate.yaml") {
		t.Fatalf("missing file: code %d %s", code, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"check", "--config", "x", "extra"}, {"status", "--bogus"}, {"run", "--log-format", "xml", "--config", "x"}} {
		if code, _, _ := vgate(t, "", args...); code != 2 {
			t.Errorf("vgate %q: exit %d, want 2", args, code)
		}
	}
}

func TestKeygenPubkey(t *testing.T) {
	code, priv, _ := vgate(t, "", "keygen")
	if code != 0 {
		t.Fatal("keygen failed")
	}
	k, err := keys.ParsePrivate(priv)
	if err != nil {
		t.Fatal(err)
	}
	code, pub, _ := vgate(t, priv, "pubkey")
	if code != 0 || strings.TrimSpace(pub) != k.Public().String() {
		t.Fatalf("pubkey = %q", pub)
	}
	if code, _, errOut := vgate(t, "secret-garbage\n", "pubkey"); code != 1 || strings.Contains(errOut, "secret-garbage") {
		t.Fatalf("bad key: code %d, %q", code, errOut)
	}
}

// fakeAPI serves a fixed status; the methods it leaves to the embedded
// nil control.Gateway must not be called.
type fakeAPI struct {
	control.Gateway
	st api.Status
}

func (f *fakeAPI) Status(context.Context) (api.Status, error) { return f.st, nil }
func (f *fakeAPI) Reload(context.Context) error {
	return api.WithCode(api.CodeReloadFailed, errors.New(`peerings[10]: tunnel limit: refused peering "p11"`))
}

func TestStatusAndReloadOverSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vgate.sock")
	fake := &fakeAPI{st: api.Status{
		Name: "east", Started: time.Now().Add(-90 * time.Second), Tunnels: api.TunnelCount{Used: 1, Up: 1, Limit: 10},
		Peerings: []api.PeeringStatus{{Name: "west", Network: "west", State: api.StateUp, Endpoint: "198.18.0.2:51820",
			LastHandshake: time.Now().Add(-12 * time.Second), RxBytes: 3 << 20, TxBytes: 1500}},
	}}
	srv, err := control.Listen(sock, control.Handler(fake))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	// A second gateway on the same socket is refused.
	if _, err := control.Listen(sock, control.Handler(fake)); err == nil {
		t.Fatal("two servers on one socket")
	}

	code, out, errOut := vgate(t, "", "status", "--socket", sock)
	if code != 0 {
		t.Fatalf("status: %d %s", code, errOut)
	}
	for _, want := range []string{"gateway east", "1 configured, 1 up, limit 10", "west", "up", "12s ago", "3.0 MiB", "1.5 KiB", "1m30s"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = vgate(t, "", "status", "--json", "--socket", sock)
	var st api.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Peerings[0].RxBytes != 3<<20 {
		t.Fatalf("status --json: %d %s", code, out)
	}
	code, _, errOut = vgate(t, "", "reload", "--socket", sock)
	if code != 1 || !strings.Contains(errOut, `"p11"`) || !strings.Contains(errOut, "previous config") {
		t.Fatalf("reload: %d %s", code, errOut)
	}
	code, _, errOut = vgate(t, "", "status", "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != 1 || !strings.Contains(errOut, "is the gateway running") {
		t.Fatalf("no gateway: %d %s", code, errOut)
	}
}

func TestKeygenOutput(t *testing.T) {
	file := filepath.Join(t.TempDir(), "private.key")
	code, out, errOut := vgate(t, "", "keygen", "--output", file)
	if code != 0 || out != "" {
		t.Fatalf("keygen --output: %d %q %s", code, out, errOut)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", fi, err)
	}
	first, _ := os.ReadFile(file)
	if _, err := keys.ParsePrivate(string(first)); err != nil || strings.Contains(errOut, strings.TrimSpace(string(first))) {
		t.Fatalf("key file %v, or the key printed: %s", err, errOut)
	}
	if code, _, errOut := vgate(t, "", "keygen", "--output", file); code != 1 || !strings.Contains(errOut, "exists") {
		t.Fatalf("keygen over an existing file: %d %s", code, errOut)
	}
	if b, _ := os.ReadFile(file); !bytes.Equal(b, first) {
		t.Fatal("the existing key was changed without --force")
	}
	os.Chmod(file, 0o644)
	if code, _, errOut := vgate(t, "", "keygen", "--output", file, "--force"); code != 0 {
		t.Fatalf("keygen --force: %d %s", code, errOut)
	}
	if b, _ := os.ReadFile(file); bytes.Equal(b, first) {
		t.Fatal("--force kept the old key")
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Fatalf("--force left mode %v, want 0600", fi.Mode().Perm())
	}
}

// status --config reads only control_socket: a config that no longer
// validates still finds the gateway, with a warning.
func TestStatusConfigOnlySocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vgate.sock")
	srv, err := control.Listen(sock, control.Handler(&fakeAPI{st: api.Status{Name: "east"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := filepath.Join(dir, "vgate.yaml")
	os.WriteFile(cfg, []byte("name: east\nbogus: 1\ncontrol_socket: "+sock+"\n"), 0o600)
	code, out, errOut := vgate(t, "", "status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "gateway east") || !strings.Contains(errOut, "warning") || !strings.Contains(errOut, cfg) {
		t.Fatalf("status --config with an invalid config: %d\n%s%s", code, out, errOut)
	}
	// Not running: the hint names the config, and does not tell the user
	// to pass the --config they passed.
	srv.Close()
	code, _, errOut = vgate(t, "", "status", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "is the gateway of "+cfg+" running") || strings.Contains(errOut, "pass --") {
		t.Fatalf("not running: %d %s", code, errOut)
	}
}

// status --config still works when the file is not valid YAML: it uses the
// file's control_socket line, else the default socket, and says so,
// naming the line of the mistake.
func TestStatusConfigSyntaxError(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vgate.sock")
	srv, err := control.Listen(sock, control.Handler(&fakeAPI{st: api.Status{Name: "east"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := filepath.Join(dir, "vgate.yaml")
	os.WriteFile(cfg, []byte("name: east\naddress_spaces: [10.1.0.0/16\ncontrol_socket: "+sock+"\n"), 0o600)
	code, out, errOut := vgate(t, "", "status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "gateway east") {
		t.Fatalf("status --config with broken YAML: %d\n%s%s", code, out, errOut)
	}
	if want := cfg + ":2: "; !strings.Contains(errOut, "note") || !strings.Contains(errOut, want) || !strings.Contains(errOut, "using control socket "+sock) {
		t.Errorf("the note should name %s and the socket used:\n%s", want, errOut)
	}
	// No control_socket line: the default socket, named in the note.
	os.WriteFile(cfg, []byte("name: east\n\tlisten_port: 1\n"), 0o600)
	_, _, errOut = vgate(t, "", "status", "--config", cfg)
	if !strings.Contains(errOut, cfg+":2: ") || !strings.Contains(errOut, "using control socket "+config.DefaultControlSocket) {
		t.Errorf("broken YAML without control_socket:\n%s", errOut)
	}
}
