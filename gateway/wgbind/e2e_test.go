package wgbind

import (
	"bufio"
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/vgate-project/vgate/gateway/keys"
)

// The end-to-end tests run real wireguard-go devices on in-memory TUNs. The
// gateway's devices share one Mux over a real UDP socket; each remote device
// has its own socket. All traffic stays on 127.0.0.1.
//
//	remote 0 (10.1.0.1) ──┐                 ┌── gw dev 0 (peer: remote 0, 10.1.0.0/16)
//	remote 1 (10.2.0.1) ──┼── udp ── Mux ───┼── gw dev 1 (peer: remote 1, 10.2.0.0/16)
//	   ...                │   one port      │     ...
//	remote n (10.n+1...)──┘                 └── gw dev n; each gw dev is 10.0.0.1
//
// Set WGBIND_TEST_LOG=1 to see the devices' logs.

// expectTimeout only matters when something is broken (or the machine is
// starved: under -race on a loaded CI runner setup alone can take seconds).
const expectTimeout = 20 * time.Second

var gwIP = netip.MustParseAddr("10.0.0.1")

type wgKey [32]byte

func (k wgKey) hex() string { return hex.EncodeToString(k[:]) }

func newKeyPair(t testing.TB) (priv, pub wgKey) {
	t.Helper()
	if _, err := rand.Read(priv[:]); err != nil {
		t.Fatal(err)
	}
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		t.Fatal(err)
	}
	copy(pub[:], k.PublicKey().Bytes())
	return priv, pub
}

func testLogger(t testing.TB, prefix string) *device.Logger {
	if os.Getenv("WGBIND_TEST_LOG") == "" {
		return &device.Logger{Verbosef: device.DiscardLogf, Errorf: device.DiscardLogf}
	}
	return device.NewLogger(device.LogLevelVerbose, prefix+": ")
}

// collect forwards what a device writes to its TUN into a buffered channel,
// so the device never blocks and the test can look at every packet.
func collect(t testing.TB, ct *tuntest.ChannelTUN) chan []byte {
	ch := make(chan []byte, 256)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case p := <-ct.Inbound:
				select {
				case ch <- p:
				default:
				}
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop) })
	return ch
}

type pair struct {
	i       int
	remIP   netip.Addr
	remPriv wgKey
	remPub  wgKey
	remPort uint16

	gw     *device.Device
	gwTun  *tuntest.ChannelTUN
	gwIn   chan []byte
	gwBind conn.Bind

	rem     *device.Device
	remBind *countBind
	remTun  *tuntest.ChannelTUN
	remIn   chan []byte
}

type gateway struct {
	t      testing.TB
	mux    *Mux
	port   uint16
	gwPriv wgKey
	gwPub  wgKey
	pairs  []*pair
}

// newGateway starts a Mux and n tunnels, each a gateway device and its remote.
func newGateway(t testing.TB, n int) *gateway {
	t.Helper()
	return newGatewayOver(t, n, conn.NewStdNetBind())
}

// newGatewayOver is newGateway with the Mux over under.
func newGatewayOver(t testing.TB, n int, under conn.Bind) *gateway {
	t.Helper()
	g := &gateway{t: t, mux: NewMux(under, nil)}
	port, err := g.mux.Open(0)
	if err != nil {
		t.Fatalf("open mux: %v", err)
	}
	t.Cleanup(func() {
		if err := g.mux.Close(); err != nil {
			t.Errorf("close mux: %v", err)
		}
	})
	if got := g.mux.Port(); got != port {
		t.Fatalf("Port() = %d, Open returned %d", got, port)
	}
	g.port = port
	g.gwPriv, g.gwPub = newKeyPair(t)
	g.mux.SetPrivateKey(keys.PrivateKey(g.gwPriv))
	peers := make(map[string]keys.PublicKey)
	for i := range n {
		p := &pair{i: i, remIP: netip.AddrFrom4([4]byte{10, byte(i + 1), 0, 1})}
		p.remPriv, p.remPub = newKeyPair(t)
		g.startRemote(p)

		p.gwTun = tuntest.NewChannelTUN()
		p.gwIn = collect(t, p.gwTun)
		name := fmt.Sprintf("tunnel%d", i)
		peers[name] = keys.PublicKey(p.remPub)
		if err := g.mux.SetPeers(peers); err != nil {
			t.Fatal(err)
		}
		p.gwBind = g.mux.NewBind(name)
		p.gw = device.NewDevice(p.gwTun.TUN(), p.gwBind, testLogger(t, fmt.Sprintf("gw%d", i)))
		t.Cleanup(p.gw.Close)
		g.ipcSet(p.gw, "private_key", g.gwPriv.hex())
		g.addGatewayPeer(p)
		if err := p.gw.Up(); err != nil {
			t.Fatalf("gw%d up: %v", i, err)
		}
		if lp := ipcGet(t, p.gw, "listen_port"); lp != fmt.Sprint(port) {
			t.Fatalf("gw%d listen_port=%s, want the shared %d", i, lp, port)
		}
		g.pairs = append(g.pairs, p)
	}
	return g
}

// startRemote (re)starts p's remote device with its key on a fresh socket.
func (g *gateway) startRemote(p *pair) {
	t := g.t
	t.Helper()
	if p.rem != nil {
		p.rem.Close()
	}
	p.remTun = tuntest.NewChannelTUN()
	p.remIn = collect(t, p.remTun)
	p.remBind = &countBind{Bind: conn.NewStdNetBind()}
	p.rem = device.NewDevice(p.remTun.TUN(), p.remBind, testLogger(t, fmt.Sprintf("rem%d", p.i)))
	t.Cleanup(p.rem.Close)
	g.ipcSet(p.rem,
		"private_key", p.remPriv.hex(),
		"listen_port", "0",
		"public_key", g.gwPub.hex(),
		"endpoint", fmt.Sprintf("127.0.0.1:%d", g.port),
		"allowed_ip", "10.0.0.1/32",
	)
	if err := p.rem.Up(); err != nil {
		t.Fatalf("rem%d up: %v", p.i, err)
	}
	p.remPort = remotePort(t, p)
}

func (g *gateway) addGatewayPeer(p *pair) {
	g.ipcSet(p.gw,
		"public_key", p.remPub.hex(),
		"endpoint", fmt.Sprintf("127.0.0.1:%d", p.remPort),
		"allowed_ip", fmt.Sprintf("10.%d.0.0/16", p.i+1),
	)
}

func remotePort(t testing.TB, p *pair) uint16 {
	var port uint16
	if _, err := fmt.Sscan(ipcGet(t, p.rem, "listen_port"), &port); err != nil || port == 0 {
		t.Fatalf("rem%d listen_port: %v", p.i, err)
	}
	return port
}

func (g *gateway) ipcSet(d *device.Device, kv ...string) {
	g.t.Helper()
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		fmt.Fprintf(&b, "%s=%s\n", kv[i], kv[i+1])
	}
	if err := d.IpcSet(b.String()); err != nil {
		g.t.Fatalf("IpcSet: %v", err)
	}
}

// ipcGet returns the first value of key in d's UAPI dump.
func ipcGet(t testing.TB, d *device.Device, key string) string {
	t.Helper()
	s, err := d.IpcGet()
	if err != nil {
		t.Fatalf("IpcGet: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && k == key {
			return v
		}
	}
	return ""
}

// ping sends one packet through tunnel p, from the gateway side or from the
// remote side, and requires that it is the next packet on the other end.
func (g *gateway) ping(p *pair, fromGateway bool) {
	t := g.t
	t.Helper()
	src, dst, out, in, dir := p.remIP, gwIP, p.remTun.Outbound, p.gwIn, "remote→gw"
	if fromGateway {
		src, dst, out, in, dir = gwIP, p.remIP, p.gwTun.Outbound, p.remIn, "gw→remote"
	}
	msg := tuntest.Ping(dst, src)
	timer := time.NewTimer(expectTimeout)
	defer timer.Stop()
	select {
	case out <- msg:
	case <-timer.C:
		t.Fatalf("tunnel %d %s: device did not read the packet", p.i, dir)
	}
	select {
	case got := <-in:
		if !bytes.Equal(got, msg) {
			t.Fatalf("tunnel %d %s: got a packet that is not ours: % x", p.i, dir, got[:min(len(got), 20)])
		}
	case <-timer.C:
		t.Fatalf("tunnel %d %s: ping did not arrive (stats %+v)", p.i, dir, g.mux.Stats())
	}
}

// pingBoth checks both directions, starting from the gateway or the remote.
func (g *gateway) pingBoth(p *pair, gatewayFirst bool) {
	g.t.Helper()
	g.ping(p, gatewayFirst)
	g.ping(p, !gatewayFirst)
}

// noStrays requires that no TUN holds a packet nobody expected.
func (g *gateway) noStrays() {
	g.t.Helper()
	for _, p := range g.pairs {
		for side, ch := range map[string]chan []byte{"gateway": p.gwIn, "remote": p.remIn} {
			select {
			case got := <-ch:
				g.t.Errorf("tunnel %d %s TUN got a stray packet: % x", p.i, side, got[:min(len(got), 20)])
			default:
			}
		}
	}
}

func TestTenDevicesOneSocket(t *testing.T) {
	g := newGateway(t, 10)
	// Even tunnels: the gateway initiates (responses dispatched by learned
	// index). Odd tunnels: the remote initiates (initiation offered to all ten).
	for round := range 2 {
		for _, p := range g.pairs {
			g.pingBoth(p, (p.i+round)%2 == 0)
		}
	}
	g.noStrays()
	st := g.mux.Stats()
	t.Logf("stats: %+v, index table: %d", st, g.mux.indexCount())
	if st.DroppedUnknownIndex != 0 || st.DroppedMalformed != 0 || st.DroppedQueueFull != 0 {
		t.Errorf("unexpected drops: %+v", st)
	}
	// Every registered index points at the device that sent it.
	binds := make(map[*bind]int)
	for i, p := range g.pairs {
		binds[p.gwBind.(*bind)] = i
	}
	for _, b := range g.mux.indexSnapshot() {
		if _, ok := binds[b]; !ok {
			t.Errorf("index table points at an unknown bind %q", b.name)
		}
	}
}

func TestRoaming(t *testing.T) {
	g := newGateway(t, 2)
	p := g.pairs[0]
	g.pingBoth(p, false)
	g.pingBoth(g.pairs[1], true)

	oldPort := p.remPort
	for p.remPort == oldPort {
		g.ipcSet(p.rem, "listen_port", "0") // BindUpdate: close and reopen on a new port
		p.remPort = remotePort(t, p)
	}
	// The remote speaks first from its new port; the gateway device learns it
	// from the authenticated packet and replies there.
	g.ping(p, false)
	if got, want := ipcGet(t, p.gw, "endpoint"), fmt.Sprintf("127.0.0.1:%d", p.remPort); got != want {
		t.Fatalf("gateway endpoint=%s, want %s", got, want)
	}
	g.ping(p, true)
	g.pingBoth(g.pairs[1], true)
	g.noStrays()
}

func TestRehandshake(t *testing.T) {
	g := newGateway(t, 2)
	p, other := g.pairs[0], g.pairs[1]
	g.pingBoth(p, true)
	g.pingBoth(other, false)

	const rounds = 3 * indicesPerDevice / 2
	var lastRemoteInit time.Time
	for r := range rounds {
		if r%2 == 0 {
			// Restart the remote with the same key on a new port: it
			// initiates, and the gateway device answers from the table.
			// wireguard-go rejects initiations from one peer closer than
			// HandshakeInitationRate (and timestamps are whitened to ~17 ms).
			time.Sleep(time.Until(lastRemoteInit.Add(25 * time.Millisecond)))
			g.startRemote(p)
			g.ping(p, false)
			lastRemoteInit = time.Now()
			g.ping(p, true)
		} else {
			// Forget the peer on the gateway side: the gateway initiates.
			g.ipcSet(p.gw, "public_key", p.remPub.hex(), "remove", "true")
			g.addGatewayPeer(p)
			g.pingBoth(p, true)
		}
		g.pingBoth(other, r%2 == 0)
	}
	g.noStrays()

	per := make(map[*bind]int)
	for _, b := range g.mux.indexSnapshot() {
		per[b]++
	}
	t.Logf("after %d rehandshakes: index table %d entries, stats %+v", rounds, g.mux.indexCount(), g.mux.Stats())
	for b, n := range per {
		if n > indicesPerDevice {
			t.Errorf("%s has %d indices, want at most %d", b.name, n, indicesPerDevice)
		}
	}
	if n := g.mux.indexCount(); n > 2*indicesPerDevice {
		t.Errorf("index table has %d entries for 2 devices", n)
	}
	if per[p.gwBind.(*bind)] != indicesPerDevice {
		t.Errorf("rehandshaking device has %d indices, want a full ring of %d", per[p.gwBind.(*bind)], indicesPerDevice)
	}
}

func TestBindUpdate(t *testing.T) {
	g := newGateway(t, 3)
	for _, p := range g.pairs {
		g.pingBoth(p, p.i%2 == 0)
	}
	p := g.pairs[1]
	for range 3 {
		if err := p.gw.BindUpdate(); err != nil {
			t.Fatalf("BindUpdate: %v", err)
		}
		// Keypairs and learned indices survive a rebind: no new handshake.
		g.pingBoth(p, false)
		g.pingBoth(p, true)
	}
	// Down/Up drops the device's keypairs; it handshakes again.
	if err := p.gw.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	for _, q := range []*pair{g.pairs[0], g.pairs[2]} {
		g.pingBoth(q, q.i == 0)
	}
	if err := p.gw.Up(); err != nil {
		t.Fatalf("Up: %v", err)
	}
	g.pingBoth(p, true)
	for _, q := range g.pairs {
		g.pingBoth(q, q.i != 0)
	}
	g.noStrays()
	open := 0
	for _, d := range g.mux.Stats().Devices {
		if d.Open {
			open++
		}
	}
	if open != 3 {
		t.Errorf("%d open devices, want 3", open)
	}
}
