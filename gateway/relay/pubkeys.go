package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/vgate-project/vgate/gateway/keys"
)

// PublicKeysFile is the file a gateway keeps in its state_dir for a relay
// that accepts it (accept_gateway): the public keys of the gateway, its
// peerings and its point-to-site clients, rewritten atomically whenever
// they change. A relay reads this, never the gateway's config or key.
const PublicKeysFile = "public-keys.json"

// PublicKeys is the content of PublicKeysFile.
type PublicKeys struct {
	Version  int            `json:"version"`
	Gateway  keys.PublicKey `json:"gateway"`
	Peerings []NamedKey     `json:"peerings"`
	Clients  []NamedKey     `json:"clients"`
}

// NamedKey is a peering's or a client's public key.
type NamedKey struct {
	Name      string         `json:"name"`
	PublicKey keys.PublicKey `json:"public_key"`
}

// Marshal encodes p (version 1), sorted by name, ending in a newline.
func (p PublicKeys) Marshal() []byte {
	p.Version = 1
	for _, l := range [][]NamedKey{p.Peerings, p.Clients} {
		slices.SortFunc(l, func(a, b NamedKey) int { return bytes.Compare([]byte(a.Name), []byte(b.Name)) })
	}
	if p.Peerings == nil {
		p.Peerings = []NamedKey{}
	}
	if p.Clients == nil {
		p.Clients = []NamedKey{}
	}
	b, _ := json.MarshalIndent(p, "", "  ") // plain strings and keys: never fails
	return append(b, '\n')
}

// errPublicKeys is wrapped by every ParsePublicKeys error.
var errPublicKeys = errors.New("gateway public keys")

// ParsePublicKeys decodes a PublicKeysFile. Every key must be a valid,
// non-zero public key; unknown fields are ignored (a newer gateway may add
// some).
func ParsePublicKeys(b []byte) (PublicKeys, error) {
	var p PublicKeys
	if err := json.Unmarshal(b, &p); err != nil {
		return PublicKeys{}, fmt.Errorf("%w: %w", errPublicKeys, err)
	}
	if p.Version != 1 {
		return PublicKeys{}, fmt.Errorf("%w: version %d, want 1", errPublicKeys, p.Version)
	}
	if p.Gateway.IsZero() {
		return PublicKeys{}, fmt.Errorf("%w: no gateway key", errPublicKeys)
	}
	for _, l := range [][]NamedKey{p.Peerings, p.Clients} {
		for _, k := range l {
			if k.PublicKey.IsZero() {
				return PublicKeys{}, fmt.Errorf("%w: %q has no public key", errPublicKeys, k.Name)
			}
		}
	}
	return p, nil
}

// Keys lists every key p names.
func (p PublicKeys) Keys() []keys.PublicKey {
	out := []keys.PublicKey{p.Gateway}
	for _, l := range [][]NamedKey{p.Peerings, p.Clients} {
		for _, k := range l {
			out = append(out, k.PublicKey)
		}
	}
	return out
}

// ReadPublicKeys reads and parses the PublicKeysFile at path. A missing
// file is an error matching os.ErrNotExist.
func ReadPublicKeys(path string) (PublicKeys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return PublicKeys{}, err
	}
	p, err := ParsePublicKeys(b)
	if err != nil {
		return PublicKeys{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}
