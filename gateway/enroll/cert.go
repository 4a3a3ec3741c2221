package enroll

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vgate-project/vgate/gateway/selfcert"
)

// Certificate and key files of the enrollment listener in state_dir.
const (
	CertFile = "enroll-cert.pem"
	KeyFile  = "enroll-key.pem"
)

// LoadOrCreateCert returns the enrollment certificate kept in dir,
// creating a self-signed one (ECDSA P-256, ten years) on first use, and
// its pin (SHA-256 of the DER certificate). The key file is written with
// mode 0600 through statefile's atomic writer; a pair that does not load
// is an error, never replaced (tokens already issued pin it).
func LoadOrCreateCert(dir, name string) (tls.Certificate, [32]byte, error) {
	cp, kp := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	_, cerr := os.Stat(cp)
	_, kerr := os.Stat(kp)
	if errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist) {
		if err := selfcert.Create(cp, kp, "vgate enrollment "+name, nil); err != nil {
			return tls.Certificate{}, [32]byte{}, err
		}
	}
	c, err := tls.LoadX509KeyPair(cp, kp)
	if err != nil {
		return tls.Certificate{}, [32]byte{}, fmt.Errorf("enrollment certificate %s / %s: %w (move both away to create a new one; issued invites then fail their pin)", cp, kp, err)
	}
	return c, sha256.Sum256(c.Certificate[0]), nil
}
