// Package keys owns WireGuard key material for vgate: Curve25519 private and
// public keys in the base64 text form wg(8) uses, and loading a private key
// file with the permission checks invariant 5 requires.
//
// A PrivateKey never prints itself: String, GoString, MarshalText and LogValue
// all return a redaction, so a key cannot leak through fmt, slog or JSON.
package keys

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"golang.org/x/crypto/curve25519"
)

// Len is the length of a WireGuard key in bytes.
const Len = 32

// PublicKey is a Curve25519 public key.
type PublicKey [Len]byte

// PrivateKey is a clamped Curve25519 private key.
type PrivateKey [Len]byte

const redacted = "(private key redacted)"

// GeneratePrivate returns a new random, clamped private key.
func GeneratePrivate() (PrivateKey, error) {
	var k PrivateKey
	if _, err := rand.Read(k[:]); err != nil {
		return PrivateKey{}, fmt.Errorf("generate private key: %w", err)
	}
	k.clamp()
	return k, nil
}

func (k *PrivateKey) clamp() {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
}

// Public derives the public key.
func (k PrivateKey) Public() PublicKey {
	var pub PublicKey
	out, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		// Only possible for a low-order result, which a clamped scalar
		// times the base point cannot produce.
		panic("keys: X25519 with base point failed: " + err.Error())
	}
	copy(pub[:], out)
	return pub
}

// IsZero reports whether the key is all zeros (unset).
func (k PrivateKey) IsZero() bool { return k == PrivateKey{} }

// String returns a redaction, never the key.
func (k PrivateKey) String() string { return redacted }

// GoString returns a redaction, never the key.
func (k PrivateKey) GoString() string { return redacted }

// LogValue keeps the key out of slog output.
func (k PrivateKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText returns a redaction so JSON or YAML output never carries the key.
func (k PrivateKey) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Base64 returns the key in wg(8) text form. Only key files and client
// configs a user asked for may contain it.
func (k PrivateKey) Base64() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Hex returns the key in the hex form of the WireGuard UAPI.
func (k PrivateKey) Hex() string { return hex.EncodeToString(k[:]) }

// ParsePrivate parses a base64 private key as wg genkey prints it. Errors do
// not echo the input.
func ParsePrivate(s string) (PrivateKey, error) {
	var k PrivateKey
	if err := decode(strings.TrimSpace(s), k[:]); err != nil {
		return PrivateKey{}, fmt.Errorf("private key: %w", err)
	}
	return k, nil
}

// ParsePublic parses a base64 public key.
func ParsePublic(s string) (PublicKey, error) {
	var k PublicKey
	if err := decode(strings.TrimSpace(s), k[:]); err != nil {
		return PublicKey{}, fmt.Errorf("public key %q: %w", s, err)
	}
	return k, nil
}

func decode(s string, dst []byte) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != Len {
		return errors.New("not a base64-encoded 32-byte WireGuard key")
	}
	copy(dst, b)
	return nil
}

// String returns the base64 form.
func (k PublicKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Hex returns the key in the hex form of the WireGuard UAPI.
func (k PublicKey) Hex() string { return hex.EncodeToString(k[:]) }

// IsZero reports whether the key is all zeros (unset).
func (k PublicKey) IsZero() bool { return k == PublicKey{} }

// MarshalText implements encoding.TextMarshaler.
func (k PublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *PublicKey) UnmarshalText(b []byte) error {
	p, err := ParsePublic(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// ErrMode is wrapped by LoadPrivateFile's error for a key file whose mode
// gives any permission to group or other.
var ErrMode = errors.New("gives access to group or other")

// OwnerError is LoadPrivateFile's error for a key file owned by another
// user than the gateway's (the effective uid of the process): whoever owns
// the file can read it or open it up to others.
type OwnerError struct {
	Path     string
	Owner    int // uid owning the file
	Expected int // effective uid of the process
}

func (e *OwnerError) Error() string {
	return fmt.Sprintf("private key file %s: owned by uid %d, but the gateway runs as uid %d and only its own user may own its key; run chown %d %s",
		e.Path, e.Owner, e.Expected, e.Expected, e.Path)
}

// LoadPrivateFile reads a base64 private key from path. It refuses a file
// that is not a regular file, that is owned by another user than the
// process's effective uid (an *OwnerError) or that grants any permission to
// group or other (ErrMode; invariant 5), and never includes the file's
// content in an error.
func LoadPrivateFile(path string) (PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("private key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return PrivateKey{}, fmt.Errorf("private key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return PrivateKey{}, fmt.Errorf("private key file %s: not a regular file", path)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if owner, euid := int(sys.Uid), os.Geteuid(); owner != euid {
			return PrivateKey{}, &OwnerError{Path: path, Owner: owner, Expected: euid}
		}
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return PrivateKey{}, fmt.Errorf("private key file %s: mode %04o %w; run chmod 600 %s", path, perm, ErrMode, path)
	}
	buf := make([]byte, 256)
	n, _ := f.Read(buf)
	k, err := ParsePrivate(string(buf[:n]))
	if err != nil {
		return PrivateKey{}, fmt.Errorf("private key file %s: %w", path, err)
	}
	return k, nil
}

// WritePrivateFile writes k to path with mode 0600, failing if path exists.
func WritePrivateFile(path string, k PrivateKey) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(k.Base64() + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
