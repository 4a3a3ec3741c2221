package relay

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/curve25519"

	"github.com/vgate-project/vgate/gateway/keys"
)

// The relay protocol, version 2. Every message is one binary WebSocket
// message whose first byte is its type:
//
//	hello   relay → party   0x01 version(1) relay_public_key(32) nonce(32)
//	auth    party → relay   0x02 public_key(32) mac(32)
//	welcome relay → party   0x03
//	data    either way      0x10 peer_public_key(32) datagram(1..65535)
//
// In data from a party the key is the destination; in data from the relay
// it is the source. A refused party is closed with StatusKeyRefused.
// Version 2 binds the proof to the TLS session it travels in (binding);
// version 1 parties and relays refuse each other at the hello.
const (
	Version = 2

	msgHello   = 0x01
	msgAuth    = 0x02
	msgWelcome = 0x03
	msgData    = 0x10

	nonceLen   = 32
	macLen     = blake2s.Size
	helloLen   = 2 + keys.Len + nonceLen
	authLen    = 1 + keys.Len + macLen
	dataHeader = 1 + keys.Len

	// MaxDatagram is the largest datagram a data message carries.
	MaxDatagram = 1<<16 - 1
	// maxMessage bounds every message read (the WebSocket read limit).
	maxMessage = dataHeader + MaxDatagram

	// StatusKeyRefused closes a connection whose key the relay does not
	// accept, or whose proof is wrong (a WebSocket close code for
	// applications, 4000-4999).
	StatusKeyRefused = 4003

	authLabel = "vgate relay auth v2"
	// exporterLabel names the TLS exporter value the proof covers
	// (RFC 8446 section 7.5, RFC 5705).
	exporterLabel = "EXPORTER-vgate-relay-auth-v2"
)

// errMalformed is wrapped by every parse error.
var errMalformed = errors.New("malformed relay message")

// hello is the relay's first message.
type hello struct {
	Relay keys.PublicKey
	Nonce [nonceLen]byte
}

func (h hello) marshal() []byte {
	b := make([]byte, 0, helloLen)
	b = append(b, msgHello, Version)
	b = append(b, h.Relay[:]...)
	return append(b, h.Nonce[:]...)
}

func parseHello(b []byte) (hello, error) {
	var h hello
	if len(b) != helloLen || b[0] != msgHello {
		return h, fmt.Errorf("%w: hello: %d bytes, type %#x", errMalformed, len(b), first(b))
	}
	if b[1] != Version {
		return h, fmt.Errorf("%w: hello: relay speaks version %d, we speak %d", errMalformed, b[1], Version)
	}
	copy(h.Relay[:], b[2:2+keys.Len])
	copy(h.Nonce[:], b[2+keys.Len:])
	return h, nil
}

// auth is the party's answer to hello.
type auth struct {
	Key keys.PublicKey
	MAC [macLen]byte
}

func (a auth) marshal() []byte {
	b := make([]byte, 0, authLen)
	b = append(b, msgAuth)
	b = append(b, a.Key[:]...)
	return append(b, a.MAC[:]...)
}

func parseAuth(b []byte) (auth, error) {
	var a auth
	if len(b) != authLen || b[0] != msgAuth {
		return a, fmt.Errorf("%w: auth: %d bytes, type %#x", errMalformed, len(b), first(b))
	}
	copy(a.Key[:], b[1:1+keys.Len])
	copy(a.MAC[:], b[1+keys.Len:])
	return a, nil
}

func first(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// errWeakKey: the DH gave the all-zero value (a low-order public key).
var errWeakKey = errors.New("public key of low order")

// dh is X25519(priv, pub), refusing low-order points.
func dh(priv keys.PrivateKey, pub keys.PublicKey) ([32]byte, error) {
	var out [32]byte
	s, err := curve25519.X25519(priv[:], pub[:])
	if err != nil {
		return out, errWeakKey
	}
	copy(out[:], s)
	return out, nil
}

// binding is what ties a proof to one TLS session with one relay: the
// session's exporter value, which both ends of that session and nobody
// else compute, and the SHA-256 of the relay's certificate, the one the
// party checked (pinned) and the one the relay presents. A relay in the
// middle that forwards another relay's hello holds a different session
// with the party, so the proof it forwards does not verify there.
type binding struct {
	Exporter [32]byte
	Cert     [32]byte
}

// errNoBinding: the connection has no TLS 1.3 session to bind the proof to.
var errNoBinding = errors.New("relay: no TLS 1.3 session to bind the proof to")

// channelBinding is the binding of TLS session cs with the relay whose
// leaf certificate is cert (DER).
func channelBinding(cs *tls.ConnectionState, cert []byte) (binding, error) {
	var b binding
	if cs == nil || cs.Version < tls.VersionTLS13 || len(cert) == 0 {
		return b, errNoBinding
	}
	ekm, err := cs.ExportKeyingMaterial(exporterLabel, nil, len(b.Exporter))
	if err != nil {
		return b, fmt.Errorf("%w: %w", errNoBinding, err)
	}
	copy(b.Exporter[:], ekm)
	b.Cert = sha256.Sum256(cert)
	return b, nil
}

// authMAC is the proof: BLAKE2s-256 keyed by the shared DH value, over the
// label, the relay's key, the nonce, the party's key and the binding.
func authMAC(shared [32]byte, relay keys.PublicKey, nonce [nonceLen]byte, party keys.PublicKey, b binding) [macLen]byte {
	h, _ := blake2s.New256(shared[:]) // a 32-byte key is always valid
	h.Write([]byte(authLabel))
	h.Write(relay[:])
	h.Write(nonce[:])
	h.Write(party[:])
	h.Write(b.Exporter[:])
	h.Write(b.Cert[:])
	var out [macLen]byte
	copy(out[:], h.Sum(nil))
	return out
}

// prove is the party's side: its answer to h within the session of b.
func prove(priv keys.PrivateKey, h hello, b binding) (auth, error) {
	shared, err := dh(priv, h.Relay)
	if err != nil {
		return auth{}, fmt.Errorf("relay key: %w", err)
	}
	pub := priv.Public()
	return auth{Key: pub, MAC: authMAC(shared, h.Relay, h.Nonce, pub, b)}, nil
}

// errBadProof: the MAC does not match the claimed key.
var errBadProof = errors.New("proof of key does not verify")

// verify is the relay's side: whether a proves the private key of a.Key,
// for the hello the relay sent (its key pair priv, nonce) in the session
// of b.
func verify(priv keys.PrivateKey, nonce [nonceLen]byte, a auth, b binding) error {
	shared, err := dh(priv, a.Key)
	if err != nil {
		return err
	}
	want := authMAC(shared, priv.Public(), nonce, a.Key, b)
	if subtle.ConstantTimeCompare(want[:], a.MAC[:]) != 1 {
		return errBadProof
	}
	return nil
}

// appendData frames datagram d for peer into dst (reused when it has the
// capacity).
func appendData(dst []byte, peer keys.PublicKey, d []byte) []byte {
	return AppendData(dst[:0], peer, d)
}

// AppendData appends the data message carrying datagram d for peer to dst:
// what a party sends over its WebSocket for peer.
func AppendData(dst []byte, peer keys.PublicKey, d []byte) []byte {
	dst = append(dst, msgData)
	dst = append(dst, peer[:]...)
	return append(dst, d...)
}

// parseData splits a data message into the peer key and the datagram,
// which aliases b.
func parseData(b []byte) (keys.PublicKey, []byte, error) {
	var k keys.PublicKey
	if len(b) <= dataHeader || b[0] != msgData {
		return k, nil, fmt.Errorf("%w: data: %d bytes, type %#x", errMalformed, len(b), first(b))
	}
	if len(b) > maxMessage {
		return k, nil, fmt.Errorf("%w: data: %d bytes, more than %d", errMalformed, len(b), maxMessage)
	}
	copy(k[:], b[1:dataHeader])
	return k, b[dataHeader:], nil
}
