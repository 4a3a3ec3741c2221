package wgbind

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/keys"
)

// countBind counts what goes through a conn.Bind: datagrams and bytes
// received and sent, and handshake initiations sent.
type countBind struct {
	conn.Bind
	rxPkts, rxBytes, txPkts, txBytes, txInits atomic.Uint64
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
		if len(b) == initiationSize && binary.LittleEndian.Uint32(b) == msgInitiation {
			c.txInits.Add(1)
		}
	}
	return c.Bind.Send(bufs, ep)
}

// flooder sends spoofed initiations with a valid MAC1 to port from many
// loopback addresses and ports, in bursts, until stopped.
type flooder struct {
	sent atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func startFlood(t testing.TB, gwPub keys.PublicKey, port uint16, burst int, every time.Duration) *flooder {
	t.Helper()
	const sockets = 32
	f := &flooder{stop: make(chan struct{})}
	var conns []*net.UDPConn
	for i := range sockets {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(1 + i/200), byte(2 + i%200)}), 0)
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(src))
		if err != nil {
			t.Fatalf("flood socket %v: %v", src, err)
		}
		conns = append(conns, c)
	}
	spoofs := make([][]byte, 256)
	for i := range spoofs {
		spoofs[i] = spoofInitiation(gwPub)
	}
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; {
			for range burst {
				if _, err := conns[i%sockets].WriteToUDPAddrPort(spoofs[i%len(spoofs)], dst); err == nil {
					f.sent.Add(1)
				}
				i++
			}
			select {
			case <-f.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return f
}

func (f *flooder) halt() {
	close(f.stop)
	f.wg.Wait()
}

// Ten tunnels; a flood of spoofed initiations with a valid MAC1. The
// gateway sends fewer bytes than it receives, spends at most one X25519 per
// initiation, a tunnel re-handshakes within two attempts during the flood
// and the others keep carrying traffic.
func TestSpoofedInitiationFlood(t *testing.T) {
	// Bursts beyond underLoadQueue put the front door under load (cookie
	// replies); small ones leave it decrypting every spoof.
	for _, c := range []struct {
		name  string
		burst int
	}{{"under load", 200}, {"below load", 40}} {
		if raceEnabled {
			// Everything is several times slower: a flood the reader
			// cannot keep up with fills the socket buffer, and then the
			// kernel drops the other tunnels' packets too.
			c.burst = c.burst * 3 / 4
		}
		t.Run(c.name, func(t *testing.T) { testFlood(t, c.burst) })
	}
}

func testFlood(t *testing.T, burst int) {
	floodEvery := 20 * time.Millisecond
	if raceEnabled {
		floodEvery = 100 * time.Millisecond
	}
	under := &countBind{Bind: conn.NewStdNetBind()}
	g := newGatewayOver(t, 10, under)
	for _, p := range g.pairs {
		g.pingBoth(p, p.i%2 == 0)
	}
	rx0, tx0 := under.rxBytes.Load(), under.txBytes.Load()
	st0 := g.mux.Stats()

	flood := startFlood(t, keys.PublicKey(g.gwPub), g.port, burst, floodEvery)
	defer func() {
		if flood != nil {
			flood.halt()
		}
	}()
	// Let the flood put the front door under load.
	waitStats(t, g.mux, "flood", func(st api.PortStats) bool { return st.Initiations >= uint64(10*burst) })

	// Tunnel 0's remote restarts with its key: it must handshake again.
	p := g.pairs[0]
	g.startRemote(p)
	msg := tuntest.Ping(gwIP, p.remIP)
	p.remTun.Outbound <- msg
	deadline := time.Now().Add(3 * expectTimeout)
	for arrived := false; !arrived; {
		for _, q := range g.pairs[1:] {
			g.pingBoth(q, q.i%2 == 0) // the others keep flowing
		}
		select {
		case got := <-p.gwIn:
			if !bytes.Equal(got, msg) {
				t.Fatalf("tunnel 0: got a packet that is not ours")
			}
			arrived = true
		default:
		}
		if !arrived && time.Now().After(deadline) {
			t.Fatalf("tunnel 0 did not handshake during the flood; stats %+v", g.mux.Stats())
		}
	}
	attempts := p.remBind.txInits.Load()
	flood.halt()
	flood = nil
	g.ping(p, true)

	time.Sleep(50 * time.Millisecond) // what is in flight
	st := doorIdle(t, g.mux)
	rx, tx := under.rxBytes.Load()-rx0, under.txBytes.Load()-tx0
	t.Logf("flood: %d initiations, %d cookie replies, %d X25519, %d bad handshakes, %d busy, %d rate limited; "+
		"gateway received %d bytes, sent %d; tunnel 0 needed %d initiations",
		st.Initiations, st.CookieReplies, st.X25519, st.DroppedBadHandshake, st.DroppedHandshakeBusy, st.DroppedRateLimited,
		rx, tx, attempts)
	if attempts > 2 {
		t.Errorf("tunnel 0 needed %d handshake initiations, want at most 2", attempts)
	}
	if tx > rx {
		t.Errorf("the gateway sent %d bytes and received %d during the flood", tx, rx)
	}
	if st.CookieReplies > st.Initiations {
		t.Errorf("%d cookie replies for %d initiations", st.CookieReplies, st.Initiations)
	}
	// Every initiation that got as far as its static key cost one X25519.
	decrypted := st.Initiations - st.DroppedHandshakeBusy - st.DroppedBadMAC - st.CookieReplies - st.DroppedRateLimited
	if st.X25519 != decrypted {
		t.Errorf("%d X25519 for %d initiations decrypted, want one each", st.X25519, decrypted)
	}
	// Every spoof that got as far as decryption failed there: only tunnel
	// 0's initiations passed.
	if passed := (st.X25519 - st0.X25519) - (st.DroppedBadHandshake - st0.DroppedBadHandshake); passed > attempts {
		t.Errorf("%d initiations decrypted during the flood, tunnel 0 sent %d", passed, attempts)
	}
	for _, d := range st.Devices {
		if d.DroppedQueueFull != 0 {
			t.Errorf("device %s dropped %d packets", d.Name, d.DroppedQueueFull)
		}
	}
	g.noStrays()
}
