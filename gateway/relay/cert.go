package relay

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vgate-project/vgate/gateway/selfcert"
)

// Files the relay keeps in its state directory.
const (
	SelfSignedCert = "relay-cert.pem"
	SelfSignedKey  = "relay-cert.key"
	KeyFile        = "relay.key" // its static X25519 key (WireGuard format)
)

// Pin is the SHA-256 pin of a certificate as peers write it:
// "sha256:" and the hex digest of its DER encoding (what
// `openssl x509 -outform der | sha256sum` prints).
func Pin(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParsePin checks a pin's form and returns its digest.
func ParsePin(s string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return d, fmt.Errorf("pin %q: want sha256:<64 hex digits>", s)
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return d, fmt.Errorf("pin %q: want sha256:<64 hex digits>", s)
	}
	copy(d[:], b)
	return d, nil
}

// LoadOrCreateCert returns the relay's certificate: certFile and keyFile
// when given, else the self-signed one in stateDir, created on first use
// (for names, valid ten years; its key file mode 0600). It also returns the
// leaf's pin.
func LoadOrCreateCert(certFile, keyFile, stateDir string, names []string) (tls.Certificate, string, error) {
	if certFile != "" || keyFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return c, "", fmt.Errorf("cert_file %s / key_file %s: %w", certFile, keyFile, err)
		}
		return c, Pin(c.Certificate[0]), nil
	}
	cp, kp := filepath.Join(stateDir, SelfSignedCert), filepath.Join(stateDir, SelfSignedKey)
	c, err := tls.LoadX509KeyPair(cp, kp)
	if err == nil {
		return c, Pin(c.Certificate[0]), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return c, "", fmt.Errorf("self-signed certificate in %s: %w", stateDir, err)
	}
	if len(names) == 0 {
		names = []string{"vgate-relay"}
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return c, "", err
	}
	if err := selfcert.Create(cp, kp, names[0], names); err != nil {
		return c, "", fmt.Errorf("self-signed certificate in %s: %w", stateDir, err)
	}
	if c, err = tls.LoadX509KeyPair(cp, kp); err != nil {
		return c, "", err
	}
	return c, Pin(c.Certificate[0]), nil
}

// clientTLS is the TLS config a party dials with: the pinned leaf when
// pin is set (any issuer, any name: the pin is the trust), else the
// system's roots.
func clientTLS(pin string) (*tls.Config, error) {
	if pin == "" {
		return &tls.Config{MinVersion: tls.VersionTLS13}, nil
	}
	want, err := ParsePin(pin)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("relay sent no certificate")
			}
			if got := sha256.Sum256(cs.PeerCertificates[0].Raw); got != want {
				return &PinError{Got: Pin(cs.PeerCertificates[0].Raw), Want: pin}
			}
			return nil
		},
	}, nil
}

// PinError: the relay's certificate is not the pinned one.
type PinError struct{ Got, Want string }

func (e *PinError) Error() string {
	return fmt.Sprintf("relay certificate %s does not match the pin %s", e.Got, e.Want)
}
