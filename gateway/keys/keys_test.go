package keys

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrivateKeyNeverPrints(t *testing.T) {
	k, err := GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("x", "key", k)
	j, _ := json.Marshal(struct{ K PrivateKey }{k})
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), sb.String(), string(j)} {
		if strings.Contains(s, k.Base64()) || strings.Contains(s, k.Hex()) {
			t.Fatalf("private key leaked: %s", s)
		}
		if !strings.Contains(s, "redacted") {
			t.Fatalf("no redaction in %q", s)
		}
	}
}

func TestLoadPrivateFilePermissions(t *testing.T) {
	k, _ := GeneratePrivate()
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	if err := WritePrivateFile(p, k); err != nil {
		t.Fatal(err)
	}
	got, err := LoadPrivateFile(p)
	if err != nil || got != k {
		t.Fatalf("load 0600: %v", err)
	}
	if err := WritePrivateFile(p, k); err == nil {
		t.Fatal("WritePrivateFile overwrote an existing file")
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		os.Chmod(p, mode)
		_, err := LoadPrivateFile(p)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %o: err = %v", mode, err)
		}
		if strings.Contains(err.Error(), k.Base64()) {
			t.Fatal("error contains the key")
		}
	}
	os.Chmod(p, 0o600)
	os.WriteFile(p, []byte("not-a-key-but-secret\n"), 0o600)
	if _, err := LoadPrivateFile(p); err == nil || strings.Contains(err.Error(), "not-a-key-but-secret") {
		t.Fatalf("bad key file: err = %v (must not echo the content)", err)
	}
	if _, err := LoadPrivateFile(dir); err == nil {
		t.Fatal("directory accepted as key file")
	}
}

// The public key must match what wireguard-tools derive, when wg is there.
func TestPublicMatchesWg(t *testing.T) {
	wg, err := exec.LookPath("wg")
	if err != nil {
		t.Skip("wg (wireguard-tools) not installed; scripts/deps.sh installs it")
	}
	k, _ := GeneratePrivate()
	cmd := exec.Command(wg, "pubkey")
	cmd.Stdin = strings.NewReader(k.Base64() + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != k.Public().String() {
		t.Fatalf("wg pubkey %s, ours %s", out, k.Public())
	}
	pub, err := ParsePublic(string(out))
	if err != nil || pub != k.Public() {
		t.Fatalf("ParsePublic: %v", err)
	}
	if _, err := ParsePublic("abc"); err == nil {
		t.Fatal("short key accepted")
	}
}
