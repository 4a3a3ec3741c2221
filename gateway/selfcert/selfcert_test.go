package selfcert

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
)

func TestCreateLoadsAndKeyIsPrivate(t *testing.T) {
	dir := t.TempDir()
	cp, kp := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := Create(cp, kp, "relay.example.net", []string{"relay.example.net"}); err != nil {
		t.Fatal(err)
	}
	c, err := tls.LoadX509KeyPair(cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf == nil || c.Leaf.Subject.CommonName != "relay.example.net" || len(c.Leaf.DNSNames) != 1 {
		t.Fatalf("leaf %+v", c.Leaf)
	}
	if st, err := os.Stat(kp); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v, want 0600", st.Mode(), err)
	}
}
