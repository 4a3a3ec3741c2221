// Command frontdoor measures what a flood of spoofed WireGuard handshake
// initiations costs the gateway's shared tunnel port (gateway/wgbind).
//
// Ten tunnels run on loopback, each a wireguard-go device of the gateway
// (in-memory TUN, all sharing one wgbind.Mux over one UDP socket) and a
// remote device with its own socket. Spoofed initiations carry a valid MAC1
// (anyone can compute it from the gateway's public key) and random content,
// sent from many loopback addresses and ports.
//
// burst: n initiations at once; reported are the datagrams and bytes the
// gateway received and sent, its cookie replies, and the X25519 operations
// per initiation (the Mux's counter; for a Mux without one, derived as the
// initiations handed to devices minus the cookie replies they sent, since a
// device either answers with a cookie or computes one X25519).
//
// sustained: bursts every 20 ms for a few seconds while tunnel 0's remote
// restarts and must handshake again, and the nine others exchange pings;
// reported are tunnel 0's initiations until it passed traffic and the
// pings lost on the others.
//
// It never asserts on the figures and needs no root. It compiles against
// Mux versions without a front door too (SetPrivateKey and SetPeers are
// called when present), to measure a baseline:
//
//	go run ./bench/frontdoor [-n 400] [-burst 200] [-seconds 8] [-json]
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/wgbind"
)

const (
	tunnels        = 10
	initiationSize = 148
	cookieSize     = 64
)

var gwIP = netip.MustParseAddr("10.0.0.1")

type burstResult struct {
	Initiations        int     `json:"initiations"`
	RxPackets          uint64  `json:"gateway_rx_packets"`
	RxBytes            uint64  `json:"gateway_rx_bytes"`
	TxPackets          uint64  `json:"gateway_tx_packets"`
	TxBytes            uint64  `json:"gateway_tx_bytes"`
	CookieReplies      uint64  `json:"cookie_replies"`
	X25519             uint64  `json:"x25519"`
	X25519Derived      bool    `json:"x25519_derived"`
	X25519PerInit      float64 `json:"x25519_per_initiation"`
	AmplificationBytes float64 `json:"amplification_bytes"` // sent / received
}

type sustainedResult struct {
	Seconds         float64 `json:"seconds"`
	Initiations     uint64  `json:"initiations"`
	RxBytes         uint64  `json:"gateway_rx_bytes"`
	TxBytes         uint64  `json:"gateway_tx_bytes"`
	CookieReplies   uint64  `json:"cookie_replies"`
	Tunnel0Attempts uint64  `json:"tunnel0_initiations"`
	Tunnel0Seconds  float64 `json:"tunnel0_handshake_s"`
	Tunnel0OK       bool    `json:"tunnel0_ok"`
	PingsSent       int     `json:"other_pings_sent"`
	PingsLost       int     `json:"other_pings_lost"`
}

type result struct {
	Burst     burstResult     `json:"burst"`
	Sustained sustainedResult `json:"sustained"`
}

func main() {
	n := flag.Int("n", 400, "initiations in the burst")
	burst := flag.Int("burst", 200, "initiations per 20 ms in the sustained flood")
	seconds := flag.Float64("seconds", 8, "length of the sustained flood")
	asJSON := flag.Bool("json", false, "print JSON")
	flag.Parse()

	g, err := newGateway()
	if err != nil {
		fmt.Fprintln(os.Stderr, "frontdoor:", err)
		os.Exit(1)
	}
	defer g.close()
	var res result
	if res.Burst, err = g.burst(*n); err == nil {
		res.Sustained, err = g.sustained(*burst, time.Duration(*seconds*float64(time.Second)))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "frontdoor:", err)
		os.Exit(1)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	b, s := res.Burst, res.Sustained
	derived := ""
	if b.X25519Derived {
		derived = " (derived)"
	}
	fmt.Printf("burst of %d spoofed initiations (valid MAC1), %d tunnels:\n", b.Initiations, tunnels)
	fmt.Printf("  gateway received %d datagrams, %d bytes; sent %d datagrams, %d bytes (%.2fx)\n",
		b.RxPackets, b.RxBytes, b.TxPackets, b.TxBytes, b.AmplificationBytes)
	fmt.Printf("  cookie replies %d; X25519 %d%s = %.2f per initiation\n", b.CookieReplies, b.X25519, derived, b.X25519PerInit)
	fmt.Printf("sustained flood, %.1f s, %d initiations:\n", s.Seconds, s.Initiations)
	fmt.Printf("  gateway received %d bytes, sent %d bytes; cookie replies %d\n", s.RxBytes, s.TxBytes, s.CookieReplies)
	fmt.Printf("  tunnel 0 re-handshake: ok=%v after %d initiations, %.2f s\n", s.Tunnel0OK, s.Tunnel0Attempts, s.Tunnel0Seconds)
	fmt.Printf("  other tunnels: %d of %d pings lost\n", s.PingsLost, s.PingsSent)
}

// countBind counts what passes through the gateway's socket.
type countBind struct {
	conn.Bind
	rxPkts, rxBytes, txPkts, txBytes, txCookies, txInits atomic.Uint64
}

func (c *countBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := c.Bind.Open(port)
	for i, fn := range fns {
		fns[i] = func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			n, err := fn(bufs, sizes, eps)
			for _, s := range sizes[:n] {
				c.rxPkts.Add(1)
				c.rxBytes.Add(uint64(s))
			}
			return n, err
		}
	}
	return fns, actual, err
}

func (c *countBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	for _, b := range bufs {
		c.txPkts.Add(1)
		c.txBytes.Add(uint64(len(b)))
		switch {
		case len(b) == cookieSize && b[0] == 3:
			c.txCookies.Add(1)
		case len(b) == initiationSize && b[0] == 1:
			c.txInits.Add(1)
		}
	}
	return c.Bind.Send(bufs, ep)
}

type tunnel struct {
	i                int
	remIP            netip.Addr
	remPriv          keys.PrivateKey
	remPort          uint16
	gw, rem          *device.Device
	gwTun, remTun    *tuntest.ChannelTUN
	remBind          *countBind
	gwInbox, remInbx chan []byte
}

type gateway struct {
	under  *countBind
	mux    *wgbind.Mux
	port   uint16
	priv   keys.PrivateKey
	tun    []*tunnel
	quiet  *device.Logger
	closed []func()
}

func (g *gateway) close() {
	for i := len(g.closed) - 1; i >= 0; i-- {
		g.closed[i]()
	}
}

func inbox(ct *tuntest.ChannelTUN) chan []byte {
	ch := make(chan []byte, 1024)
	go func() {
		for p := range ct.Inbound {
			select {
			case ch <- p:
			default:
			}
		}
	}()
	return ch
}

func ipc(d *device.Device, kv ...string) error {
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		fmt.Fprintf(&b, "%s=%s\n", kv[i], kv[i+1])
	}
	return d.IpcSet(b.String())
}

func listenPort(d *device.Device) (uint16, error) {
	s, err := d.IpcGet()
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(l, "listen_port="); ok {
			var p uint16
			_, err := fmt.Sscan(v, &p)
			return p, err
		}
	}
	return 0, fmt.Errorf("no listen_port")
}

func newGateway() (*gateway, error) {
	g := &gateway{under: &countBind{Bind: conn.NewStdNetBind()}}
	g.quiet = &device.Logger{Verbosef: device.DiscardLogf, Errorf: device.DiscardLogf}
	g.mux = wgbind.NewMux(g.under, nil)
	port, err := g.mux.Open(0)
	if err != nil {
		return nil, err
	}
	g.closed = append(g.closed, func() { g.mux.Close() })
	g.port = port
	if g.priv, err = keys.GeneratePrivate(); err != nil {
		return nil, err
	}
	// The front door's API, when this Mux has one.
	if fd, ok := any(g.mux).(interface{ SetPrivateKey(keys.PrivateKey) }); ok {
		fd.SetPrivateKey(g.priv)
	}
	peers := map[string]keys.PublicKey{}
	for i := range tunnels {
		t := &tunnel{i: i, remIP: netip.AddrFrom4([4]byte{10, byte(i + 1), 0, 1})}
		if t.remPriv, err = keys.GeneratePrivate(); err != nil {
			return nil, err
		}
		if err := g.startRemote(t); err != nil {
			return nil, err
		}
		name := fmt.Sprintf("tunnel%d", i)
		peers[name] = t.remPriv.Public()
		if fd, ok := any(g.mux).(interface {
			SetPeers(map[string]keys.PublicKey) error
		}); ok {
			if err := fd.SetPeers(peers); err != nil {
				return nil, err
			}
		}
		t.gwTun = tuntest.NewChannelTUN()
		t.gwInbox = inbox(t.gwTun)
		t.gw = device.NewDevice(t.gwTun.TUN(), g.mux.NewBind(name), g.quiet)
		g.closed = append(g.closed, t.gw.Close)
		if err := ipc(t.gw, "private_key", g.priv.Hex(), "public_key", t.remPriv.Public().Hex(),
			"endpoint", fmt.Sprintf("127.0.0.1:%d", t.remPort), "allowed_ip", fmt.Sprintf("10.%d.0.0/16", i+1)); err != nil {
			return nil, err
		}
		if err := t.gw.Up(); err != nil {
			return nil, err
		}
		g.tun = append(g.tun, t)
	}
	for _, t := range g.tun {
		if err := g.ping(t, true, 10*time.Second); err != nil {
			return nil, err
		}
		if err := g.ping(t, false, 10*time.Second); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (g *gateway) startRemote(t *tunnel) error {
	if t.rem != nil {
		t.rem.Close()
	}
	t.remTun = tuntest.NewChannelTUN()
	t.remInbx = inbox(t.remTun)
	t.remBind = &countBind{Bind: conn.NewStdNetBind()}
	t.rem = device.NewDevice(t.remTun.TUN(), t.remBind, g.quiet)
	g.closed = append(g.closed, t.rem.Close)
	if err := ipc(t.rem, "private_key", t.remPriv.Hex(), "listen_port", "0", "public_key", g.priv.Public().Hex(),
		"endpoint", fmt.Sprintf("127.0.0.1:%d", g.port), "allowed_ip", "10.0.0.1/32"); err != nil {
		return err
	}
	if err := t.rem.Up(); err != nil {
		return err
	}
	var err error
	t.remPort, err = listenPort(t.rem)
	return err
}

// ping sends one packet through t and waits for it on the other side.
func (g *gateway) ping(t *tunnel, fromGateway bool, wait time.Duration) error {
	src, dst, out, in := t.remIP, gwIP, t.remTun.Outbound, t.gwInbox
	if fromGateway {
		src, dst, out, in = gwIP, t.remIP, t.gwTun.Outbound, t.remInbx
	}
	msg := tuntest.Ping(dst, src)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case out <- msg:
	case <-timer.C:
		return fmt.Errorf("tunnel %d: device did not read", t.i)
	}
	for {
		select {
		case got := <-in:
			if bytes.Equal(got, msg) {
				return nil
			}
		case <-timer.C:
			return fmt.Errorf("tunnel %d: ping lost", t.i)
		}
	}
}

// stats returns the Mux's counters by JSON name, whatever its version.
func (g *gateway) stats() map[string]float64 {
	b, _ := json.Marshal(g.mux.Stats())
	var m map[string]any
	json.Unmarshal(b, &m)
	out := map[string]float64{}
	for k, v := range m {
		if f, ok := v.(float64); ok {
			out[k] = f
		}
	}
	return out
}

// spoofs returns k initiations of random content with a valid MAC1.
func (g *gateway) spoofs(k int) [][]byte {
	var gen device.CookieGenerator
	gen.Init(device.NoisePublicKey(g.priv.Public()))
	out := make([][]byte, k)
	for i := range out {
		b := make([]byte, initiationSize)
		rand.Read(b[4:116])
		binary.LittleEndian.PutUint32(b, 1)
		gen.AddMacs(b)
		out[i] = b
	}
	return out
}

// sockets opens k UDP sockets on distinct loopback addresses.
func sockets(k int) ([]*net.UDPConn, error) {
	var out []*net.UDPConn
	for i := range k {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(1 + i/200), byte(2 + i%200)}), 0)
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(a))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (g *gateway) burst(n int) (burstResult, error) {
	conns, err := sockets(64)
	if err != nil {
		return burstResult{}, err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	pkts := g.spoofs(n)
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), g.port)
	st0 := g.stats()
	rxP, rxB, txP, txB, ck := g.under.rxPkts.Load(), g.under.rxBytes.Load(), g.under.txPkts.Load(), g.under.txBytes.Load(), g.under.txCookies.Load()
	for i, p := range pkts {
		if _, err := conns[i%len(conns)].WriteToUDPAddrPort(p, dst); err != nil {
			return burstResult{}, err
		}
	}
	// Wait until the counters settle.
	last := uint64(0)
	for range 100 {
		time.Sleep(100 * time.Millisecond)
		now := g.under.rxPkts.Load() + g.under.txPkts.Load()
		if now == last && g.under.rxPkts.Load()-rxP >= uint64(n) {
			break
		}
		last = now
	}
	time.Sleep(500 * time.Millisecond)
	st := g.stats()
	r := burstResult{
		Initiations:   n,
		RxPackets:     g.under.rxPkts.Load() - rxP,
		RxBytes:       g.under.rxBytes.Load() - rxB,
		TxPackets:     g.under.txPkts.Load() - txP,
		TxBytes:       g.under.txBytes.Load() - txB,
		CookieReplies: g.under.txCookies.Load() - ck,
	}
	if _, ok := st["x25519"]; ok {
		r.X25519 = uint64(st["x25519"] - st0["x25519"])
	} else {
		// Each device given an initiation either answers with a cookie
		// reply or computes one X25519 (wireguard-go RoutineHandshake).
		r.X25519Derived = true
		r.X25519 = uint64(st["dispatched"]-st0["dispatched"]) - r.CookieReplies
	}
	r.X25519PerInit = float64(r.X25519) / float64(n)
	if r.RxBytes > 0 {
		r.AmplificationBytes = float64(r.TxBytes) / float64(r.RxBytes)
	}
	return r, nil
}

func (g *gateway) sustained(burst int, d time.Duration) (sustainedResult, error) {
	conns, err := sockets(64)
	if err != nil {
		return sustainedResult{}, err
	}
	pkts := g.spoofs(512)
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), g.port)
	rxB, txB, ck := g.under.rxBytes.Load(), g.under.txBytes.Load(), g.under.txCookies.Load()
	var sent atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; {
			for range burst {
				if _, err := conns[i%len(conns)].WriteToUDPAddrPort(pkts[i%len(pkts)], dst); err == nil {
					sent.Add(1)
				}
				i++
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(500 * time.Millisecond)

	var r sustainedResult
	t0 := g.tun[0]
	if err := g.startRemote(t0); err != nil {
		return r, err
	}
	msg := tuntest.Ping(gwIP, t0.remIP)
	hsStart := time.Now()
	t0.remTun.Outbound <- msg
	end := start.Add(d)
	for time.Now().Before(end) {
		for _, t := range g.tun[1:] {
			for _, fromGW := range []bool{true, false} {
				r.PingsSent++
				if g.ping(t, fromGW, time.Second) != nil {
					r.PingsLost++
				}
			}
		}
		if !r.Tunnel0OK {
			select {
			case got := <-t0.gwInbox:
				if bytes.Equal(got, msg) {
					r.Tunnel0OK = true
					r.Tunnel0Seconds = time.Since(hsStart).Seconds()
					r.Tunnel0Attempts = t0.remBind.txInits.Load()
				}
			default:
			}
		}
	}
	close(stop)
	wg.Wait()
	if !r.Tunnel0OK {
		r.Tunnel0Attempts = t0.remBind.txInits.Load()
	}
	r.Seconds = time.Since(start).Seconds()
	r.Initiations = sent.Load()
	r.RxBytes = g.under.rxBytes.Load() - rxB
	r.TxBytes = g.under.txBytes.Load() - txB
	r.CookieReplies = g.under.txCookies.Load() - ck
	return r, nil
}
