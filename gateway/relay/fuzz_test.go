package relay

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/vgate-project/vgate/gateway/keys"
)

// The relay parses what any client sends (auth, data) and a party parses
// what the relay sends (hello, data): none may panic, and what parses
// marshals back to the same bytes.
func FuzzParse(f *testing.F) {
	var k keys.PublicKey
	k[0] = 9
	f.Add(hello{Relay: k}.marshal())
	f.Add(auth{Key: k}.marshal())
	f.Add(appendData(nil, k, []byte{4, 0, 0, 0, 1, 2, 3}))
	f.Add([]byte{msgData})
	f.Add([]byte{msgHello, 2})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := parseHello(b); err == nil && !bytes.Equal(h.marshal(), b) {
			t.Errorf("hello round trip: %x", b)
		}
		if a, err := parseAuth(b); err == nil && !bytes.Equal(a.marshal(), b) {
			t.Errorf("auth round trip: %x", b)
		}
		if peer, d, err := parseData(b); err == nil {
			if len(d) == 0 || !bytes.Equal(appendData(nil, peer, d), b) {
				t.Errorf("data round trip: %x", b)
			}
		}
	})
}

// verify never panics and accepts only a proof made with the key.
func FuzzVerify(f *testing.F) {
	f.Add(make([]byte, authLen), []byte{1})
	f.Fuzz(func(t *testing.T, b []byte, nonce []byte) {
		a, err := parseAuth(b)
		if err != nil {
			return
		}
		var n [nonceLen]byte
		copy(n[:], nonce)
		var relay keys.PrivateKey
		relay[0] = 1
		if verify(relay, n, a, binding{}) == nil {
			t.Errorf("a fuzzed proof verified: %x", b)
		}
	})
}

// The relay's config loader never panics, and what it accepts has a
// listen address and accepts some key.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte("listen: \":443\"\naccept: [\"" + keys.PublicKey{1}.String() + "\"]\n"))
	f.Add([]byte("accept_gateway: /nonexistent.yaml\nmetrics: {listen: \"127.0.0.1:9\"}\nrate_limit_mbit: -1\n"))
	f.Add([]byte("listen: 443\n"))
	f.Add([]byte("cert_file: a\n"))
	f.Add([]byte("unknown: 1\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "relay.yaml")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(p)
		if err != nil {
			return
		}
		if c.Listen == "" || len(c.Accept) == 0 && c.AcceptGateway == "" {
			t.Errorf("accepted a config without listen or keys: %+v", c)
		}
		_ = c.Limits()
	})
}

// The gateway's public keys file parses or is refused; what parses names
// only valid keys and marshals back to what parses the same.
func FuzzParsePublicKeys(f *testing.F) {
	var k keys.PublicKey
	k[0] = 7
	f.Add(PublicKeys{Gateway: k, Clients: []NamedKey{{"lap", k}}}.Marshal())
	f.Add([]byte(`{"version": 1, "gateway": "` + k.String() + `", "peerings": [{"name": "x"}]}`))
	f.Add([]byte(`{"version": 2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePublicKeys(b)
		if err != nil {
			return
		}
		for _, key := range p.Keys() {
			if key.IsZero() {
				t.Errorf("zero key accepted: %s", b)
			}
		}
		q, err := ParsePublicKeys(p.Marshal())
		if err != nil || len(q.Keys()) != len(p.Keys()) {
			t.Errorf("round trip: %v, %d keys, want %d", err, len(q.Keys()), len(p.Keys()))
		}
	})
}
