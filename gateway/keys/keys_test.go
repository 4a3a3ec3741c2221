package keys

import (
	"encoding/json"
	"errors"
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
		if !errors.Is(err, ErrMode) || !strings.Contains(err.Error(), "chmod 600") {
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

// A key file owned by another user than the gateway's is refused, naming
// the file, its owner and the expected uid; mode 0600 does not excuse it.
func TestLoadPrivateFileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another uid needs root: run as root (CI does)")
	}
	k, _ := GeneratePrivate()
	p := filepath.Join(t.TempDir(), "k")
	if err := WritePrivateFile(p, k); err != nil {
		t.Fatal(err)
	}
	const other = 4242
	if err := os.Chown(p, other, other); err != nil {
		t.Fatal(err)
	}
	_, err := LoadPrivateFile(p)
	var oe *OwnerError
	if !errors.As(err, &oe) {
		t.Fatalf("key owned by uid %d loaded by uid %d: err = %v, want *OwnerError", other, os.Geteuid(), err)
	}
	if oe.Path != p || oe.Owner != other || oe.Expected != os.Geteuid() {
		t.Fatalf("OwnerError %+v, want path %s owner %d expected %d", *oe, p, other, os.Geteuid())
	}
	msg := err.Error()
	for _, want := range []string{p, fmt.Sprintf("uid %d", other), fmt.Sprintf("uid %d", os.Geteuid()), "chown"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	if strings.Contains(msg, k.Base64()) {
		t.Fatal("error contains the key")
	}
	// Back to the gateway's own user: accepted again.
	if err := os.Chown(p, os.Geteuid(), os.Getegid()); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadPrivateFile(p); err != nil || got != k {
		t.Fatalf("key owned by the gateway's user: %v", err)
	}
}
