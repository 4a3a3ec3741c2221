package enroll

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/vgate-project/vgate/gateway/statefile"
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
		if err := createCert(cp, kp, name); err != nil {
			return tls.Certificate{}, [32]byte{}, err
		}
	}
	c, err := tls.LoadX509KeyPair(cp, kp)
	if err != nil {
		return tls.Certificate{}, [32]byte{}, fmt.Errorf("enrollment certificate %s / %s: %w (move both away to create a new one; issued invites then fail their pin)", cp, kp, err)
	}
	return c, sha256.Sum256(c.Certificate[0]), nil
}

func createCert(cp, kp, name string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "vgate enrollment " + name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := statefile.WriteAtomic(kp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})); err != nil {
		return fmt.Errorf("enrollment key: %w", err)
	}
	if err := statefile.WriteAtomic(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return fmt.Errorf("enrollment certificate: %w", err)
	}
	return nil
}
