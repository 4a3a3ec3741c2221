package wgbind

import (
	"crypto/hmac"
	"errors"
	"hash"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// The responder's side of the first WireGuard handshake message (Noise IK:
// the e, es and s tokens, then the timestamp under ss), as wireguard-go's
// device/noise-protocol.go ConsumeMessageInitiation does it. The front door
// runs it once per initiation to learn which tunnel's peer sent it; the
// device it is delivered to runs the whole handshake again.

const (
	noiseConstruction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
	wgIdentifier      = "WireGuard v1 zx2c4 Jason@zx2c4.com"

	keyLen = 32

	// Offsets in an initiation: type and sender (8), ephemeral (32), static
	// (32 + 16 tag), timestamp (12 + 16 tag), mac1 (16), mac2 (16).
	offEphemeral = 8
	offStatic    = offEphemeral + keyLen
	offTimestamp = offStatic + keyLen + chacha20poly1305.Overhead
	offMAC1      = offTimestamp + 12 + chacha20poly1305.Overhead
	offMAC2      = offMAC1 + blake2s.Size128
)

var (
	initialChainKey [blake2s.Size]byte
	initialHash     [blake2s.Size]byte
	zeroNonce       [chacha20poly1305.NonceSize]byte
)

func init() {
	initialChainKey = blake2s.Sum256([]byte(noiseConstruction))
	mixHash(&initialHash, &initialChainKey, []byte(wgIdentifier))
}

var (
	errLowOrder     = errors.New("wgbind: X25519 result is all zeros (low-order point)")
	errStaticKey    = errors.New("wgbind: initiation's static key does not decrypt")
	errTimestamp    = errors.New("wgbind: initiation's timestamp does not decrypt")
	errInitiationSz = errors.New("wgbind: not a handshake initiation")
)

func newBlake2s() hash.Hash {
	h, _ := blake2s.New256(nil)
	return h
}

func hmac1(sum *[blake2s.Size]byte, key, in0 []byte) {
	mac := hmac.New(newBlake2s, key)
	mac.Write(in0)
	mac.Sum(sum[:0])
}

func hmac2(sum *[blake2s.Size]byte, key, in0, in1 []byte) {
	mac := hmac.New(newBlake2s, key)
	mac.Write(in0)
	mac.Write(in1)
	mac.Sum(sum[:0])
}

// kdf1 and kdf2 are WireGuard's HKDF with HMAC-BLAKE2s.
func kdf1(t0 *[blake2s.Size]byte, key, input []byte) {
	hmac1(t0, key, input)
	hmac1(t0, t0[:], []byte{0x1})
}

func kdf2(t0, t1 *[blake2s.Size]byte, key, input []byte) {
	var prk [blake2s.Size]byte
	hmac1(&prk, key, input)
	hmac1(t0, prk[:], []byte{0x1})
	hmac2(t1, prk[:], t0[:], []byte{0x2})
	clear(prk[:])
}

func mixHash(dst, h *[blake2s.Size]byte, data []byte) {
	hh, _ := blake2s.New256(nil)
	hh.Write(h[:])
	hh.Write(data)
	hh.Sum(dst[:0])
}

// x25519 is the Diffie-Hellman function; a low-order point is an error.
func x25519(priv, pub *[keyLen]byte) ([keyLen]byte, error) {
	var ss [keyLen]byte
	out, err := curve25519.X25519(priv[:], pub[:])
	if err != nil {
		return ss, errLowOrder
	}
	copy(ss[:], out)
	return ss, nil
}

// responder is the gateway's static identity, shared by all its devices.
type responder struct {
	priv  [keyLen]byte
	pub   [keyLen]byte
	hash0 [blake2s.Size]byte // Hash(InitialHash || responder's public key)
}

func newResponder(priv, pub [keyLen]byte) *responder {
	r := &responder{priv: priv, pub: pub}
	mixHash(&r.hash0, &initialHash, pub[:])
	return r
}

// handshakeState is the initiation's hash and chaining key after a step.
type handshakeState struct {
	hash     [blake2s.Size]byte
	chainKey [blake2s.Size]byte
}

// openStatic processes msg (a 148-byte initiation) up to and including
// decrypting the initiator's static public key: one X25519 with the
// responder's private key. dh is called once per X25519 (a counter).
func (r *responder) openStatic(msg []byte, st *handshakeState, dh func()) ([keyLen]byte, error) {
	var peer [keyLen]byte
	if len(msg) != initiationSize {
		return peer, errInitiationSz
	}
	eph := (*[keyLen]byte)(msg[offEphemeral:offStatic])
	mixHash(&st.hash, &r.hash0, eph[:])
	kdf1(&st.chainKey, initialChainKey[:], eph[:])

	dh()
	ss, err := x25519(&r.priv, eph)
	if err != nil {
		return peer, err
	}
	var key [chacha20poly1305.KeySize]byte
	kdf2(&st.chainKey, &key, st.chainKey[:], ss[:])
	clear(ss[:])
	aead, _ := chacha20poly1305.New(key[:])
	clear(key[:])
	if _, err := aead.Open(peer[:0], zeroNonce[:], msg[offStatic:offTimestamp], st.hash[:]); err != nil {
		return peer, errStaticKey
	}
	mixHash(&st.hash, &st.hash, msg[offStatic:offTimestamp])
	return peer, nil
}

// openTimestamp continues after openStatic: it authenticates the initiator
// by decrypting the timestamp under the precomputed static-static secret of
// the peer the static key named, and returns the timestamp (TAI64N). The
// front door drops replays (frontdoor.go); the device checks again, and
// alone keeps the flood check.
func openTimestamp(msg []byte, st *handshakeState, staticStatic *[keyLen]byte) (ts [12]byte, err error) {
	var key [chacha20poly1305.KeySize]byte
	kdf2(&st.chainKey, &key, st.chainKey[:], staticStatic[:])
	aead, _ := chacha20poly1305.New(key[:])
	clear(key[:])
	if _, err := aead.Open(ts[:0], zeroNonce[:], msg[offTimestamp:offMAC1], st.hash[:]); err != nil {
		return ts, errTimestamp
	}
	return ts, nil
}
