package relay

import (
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/curve25519"

	"github.com/vgate-project/vgate/gateway/keys"
)

// The relay protocol, version 1. Every message is one binary WebSocket
// message whose first byte is its type:
//
//	hello   relay → party   0x01 version(1) relay_public_key(32) nonce(32)
//	auth    party → relay   0x02 public_key(32) mac(32)
//	welcome relay → party   0x03
//	data    either way      0x10 peer_public_key(32) datagram(1..65535)
//
// In data from a party the key is the destination; in data from the relay
// it is the source. A refused party is closed with StatusKeyRefused.
const (
	Version = 1

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

	authLabel = "vgate relay auth v1"
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

// authMAC is the proof: BLAKE2s-256 keyed by the shared DH value, over the
// label, the relay's key, the nonce and the party's key.
func authMAC(shared [32]byte, relay keys.PublicKey, nonce [nonceLen]byte, party keys.PublicKey) [macLen]byte {
	h, _ := blake2s.New256(shared[:]) // a 32-byte key is always valid
	h.Write([]byte(authLabel))
	h.Write(relay[:])
	h.Write(nonce[:])
	h.Write(party[:])
	var out [macLen]byte
	copy(out[:], h.Sum(nil))
	return out
}

// prove is the party's side: its answer to h.
func prove(priv keys.PrivateKey, h hello) (auth, error) {
	shared, err := dh(priv, h.Relay)
	if err != nil {
		return auth{}, fmt.Errorf("relay key: %w", err)
	}
	pub := priv.Public()
	return auth{Key: pub, MAC: authMAC(shared, h.Relay, h.Nonce, pub)}, nil
}

// errBadProof: the MAC does not match the claimed key.
var errBadProof = errors.New("proof of key does not verify")

// verify is the relay's side: whether a proves the private key of a.Key,
// for the hello the relay sent (its key pair priv, nonce).
func verify(priv keys.PrivateKey, nonce [nonceLen]byte, a auth) error {
	shared, err := dh(priv, a.Key)
	if err != nil {
		return err
	}
	want := authMAC(shared, priv.Public(), nonce, a.Key)
	if subtle.ConstantTimeCompare(want[:], a.MAC[:]) != 1 {
		return errBadProof
	}
	return nil
}

// appendData frames datagram d for peer into dst (reused when it has the
// capacity).
func appendData(dst []byte, peer keys.PublicKey, d []byte) []byte {
	dst = append(dst[:0], msgData)
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
