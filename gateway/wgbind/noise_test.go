package wgbind

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/vgate-project/vgate/gateway/keys"
)

// captureBind is a conn.Bind that receives nothing and hands what its
// device sends to a channel.
type captureBind struct {
	sent   chan []byte
	closed chan struct{}
}

func newCaptureBind() *captureBind {
	return &captureBind{sent: make(chan []byte, 64)}
}

func (c *captureBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) {
	c.closed = make(chan struct{})
	done := c.closed
	fn := func([][]byte, []int, []conn.Endpoint) (int, error) {
		<-done
		return 0, net.ErrClosed
	}
	return []conn.ReceiveFunc{fn}, 1, nil
}

func (c *captureBind) Close() error {
	if c.closed != nil {
		close(c.closed)
		c.closed = nil
	}
	return nil
}
func (c *captureBind) SetMark(uint32) error { return nil }
func (c *captureBind) BatchSize() int       { return 1 }
func (c *captureBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	return (&conn.StdNetBind{}).ParseEndpoint(s)
}
func (c *captureBind) Send(bufs [][]byte, _ conn.Endpoint) error {
	for _, b := range bufs {
		select {
		case c.sent <- append([]byte(nil), b...):
		default:
		}
	}
	return nil
}

// realInitiation has a wireguard-go device with key remPriv, whose peer is
// gwPub, create a handshake initiation, and returns it.
func realInitiation(t testing.TB, remPriv keys.PrivateKey, gwPub keys.PublicKey) []byte {
	t.Helper()
	tn := tuntest.NewChannelTUN()
	cb := newCaptureBind()
	d := device.NewDevice(tn.TUN(), cb, testLogger(t, "initiator"))
	defer d.Close()
	if err := d.IpcSet(fmt.Sprintf("private_key=%s\npublic_key=%s\nendpoint=127.0.0.1:9\nallowed_ip=10.0.0.1/32\n",
		remPriv.Hex(), gwPub.Hex())); err != nil {
		t.Fatal(err)
	}
	if err := d.Up(); err != nil {
		t.Fatal(err)
	}
	tn.Outbound <- tuntest.Ping(gwIP, gwIP) // the first packet starts a handshake
	timer := time.NewTimer(expectTimeout)
	defer timer.Stop()
	for {
		select {
		case b := <-cb.sent:
			if len(b) == initiationSize && binary.LittleEndian.Uint32(b) == msgInitiation {
				return b
			}
		case <-timer.C:
			t.Fatal("wireguard-go sent no initiation")
		}
	}
}

func mustKey(t testing.TB) keys.PrivateKey {
	t.Helper()
	k, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNoiseAgainstWireGuardGo(t *testing.T) {
	gw := mustKey(t)
	id := newResponder(gw, gw.Public())
	var dhs int
	count := func() { dhs++ }
	for range 3 {
		rem := mustKey(t)
		msg := realInitiation(t, rem, gw.Public())

		var st handshakeState
		dhs = 0
		peer, err := id.openStatic(msg, &st, count)
		if err != nil {
			t.Fatalf("openStatic: %v", err)
		}
		if peer != rem.Public() {
			t.Fatalf("static key %x, want the initiator's %x", peer, rem.Public())
		}
		if dhs != 1 {
			t.Errorf("%d X25519 operations to open the static key, want 1", dhs)
		}
		ss, err := curve25519.X25519(gw[:], peer[:])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := openTimestamp(msg, &st, (*[keyLen]byte)(ss)); err != nil {
			t.Errorf("openTimestamp: %v", err)
		}

		// Any flipped bit of the ephemeral key or the static ciphertext
		// fails the static key; of the timestamp, the timestamp.
		for _, c := range []struct {
			at   int
			want error
		}{
			{offEphemeral + 3, errStaticKey},
			{offStatic, errStaticKey},
			{offStatic + keyLen + 5, errStaticKey}, // the tag
			{offTimestamp + 1, errTimestamp},
			{offMAC1 - 1, errTimestamp},
		} {
			bad := append([]byte(nil), msg...)
			bad[c.at] ^= 0x10
			var st handshakeState
			_, err := id.openStatic(bad, &st, count)
			if err == nil {
				_, err = openTimestamp(bad, &st, (*[keyLen]byte)(ss))
			}
			if !errors.Is(err, c.want) {
				t.Errorf("bit flipped at %d: %v, want %v", c.at, err, c.want)
			}
		}
		// The wrong responder key cannot open it.
		other := mustKey(t)
		var st2 handshakeState
		if _, err := newResponder(other, gw.Public()).openStatic(msg, &st2, count); !errors.Is(err, errStaticKey) {
			t.Errorf("opened with another private key: %v", err)
		}
		// The wrong static-static secret (another peer's) fails the timestamp.
		var st3 handshakeState
		if _, err := id.openStatic(msg, &st3, count); err != nil {
			t.Fatal(err)
		}
		otherPub := other.Public()
		wrong, _ := curve25519.X25519(gw[:], otherPub[:])
		if _, err := openTimestamp(msg, &st3, (*[keyLen]byte)(wrong)); !errors.Is(err, errTimestamp) {
			t.Errorf("timestamp opened with another peer's secret: %v", err)
		}
	}
}

// forgeInitiation builds an initiation to gwPub that names static as its
// sender's key, which anyone can do without the matching private key; the
// timestamp is random, so it does not authenticate. MAC1 is valid.
func forgeInitiation(t testing.TB, gwPub, static keys.PublicKey) []byte {
	t.Helper()
	msg := make([]byte, initiationSize)
	binary.LittleEndian.PutUint32(msg, msgInitiation)
	rand.Read(msg[4:8])
	e := mustKey(t)
	eph := e.Public()
	copy(msg[offEphemeral:], eph[:])
	var hash, ck [32]byte
	mixHash(&hash, &initialHash, gwPub[:])
	mixHash(&hash, &hash, eph[:])
	kdf1(&ck, initialChainKey[:], eph[:])
	ss, err := curve25519.X25519(e[:], gwPub[:])
	if err != nil {
		t.Fatal(err)
	}
	var key [32]byte
	kdf2(&ck, &key, ck[:], ss)
	aead, _ := chacha20poly1305.New(key[:])
	aead.Seal(msg[offStatic:offStatic], zeroNonce[:], static[:], hash[:])
	rand.Read(msg[offTimestamp:offMAC1])
	addMAC1(gwPub, msg)
	return msg
}

// spoofInitiation is random bytes with a valid MAC1: what a flood costs
// least to make.
func spoofInitiation(gwPub keys.PublicKey) []byte {
	msg := make([]byte, initiationSize)
	rand.Read(msg)
	binary.LittleEndian.PutUint32(msg, msgInitiation)
	clear(msg[offMAC1:])
	addMAC1(gwPub, msg)
	return msg
}

func addMAC1(gwPub keys.PublicKey, msg []byte) {
	var g device.CookieGenerator
	g.Init(device.NoisePublicKey(gwPub))
	g.AddMacs(msg)
}

func TestForgedInitiation(t *testing.T) {
	gw := mustKey(t)
	id := newResponder(gw, gw.Public())
	claimed := mustKey(t).Public()
	msg := forgeInitiation(t, gw.Public(), claimed)
	var c device.CookieChecker
	c.Init(device.NoisePublicKey(gw.Public()))
	if !c.CheckMAC1(msg) {
		t.Fatal("forged initiation's MAC1 is not valid")
	}
	var st handshakeState
	peer, err := id.openStatic(msg, &st, func() {})
	if err != nil || peer != claimed {
		t.Fatalf("openStatic: %x, %v; want the claimed key", peer, err)
	}
	ss, _ := curve25519.X25519(gw[:], claimed[:])
	if _, err := openTimestamp(msg, &st, (*[keyLen]byte)(ss)); !errors.Is(err, errTimestamp) {
		t.Errorf("a forged timestamp authenticated: %v", err)
	}
}
