package p2s

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// Scale figures: a gateway with 1,000 registered clients.
// `make bench` prints them; CI runs each once.

func benchConfig() *config.PointToSite {
	cfg := testP2SConfig()
	cfg.AddressPool = []netip.Prefix{mp("172.16.0.0/16"), mp("fd00:cafe::/64")}
	cfg.MaxClients = 65535
	return cfg
}

// registered opens a server in dir and registers n clients in it.
func registered(b *testing.B, dir string, gw keys.PrivateKey, n int) {
	s := openTestServer(b, dir, gw, benchConfig())
	defer s.Close()
	for i := 0; i < n; i++ {
		if _, err := s.Add(api.AddClientRequest{Name: fmt.Sprintf("c%04d", i), Groups: []string{"devs"}}); err != nil {
			b.Fatal(err)
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkClientAddAt1000: one `client add` (registry written and
// fsynced, peer added to the device, policy recompiled) on a gateway that
// already has 1,000 clients.
func BenchmarkClientAddAt1000(b *testing.B) {
	dir := b.TempDir()
	gw, _ := keys.GeneratePrivate()
	registered(b, dir, gw, 1000)
	s := openTestServer(b, dir, gw, benchConfig())
	defer s.Close()
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("x%d", i)
		i++
		if _, err := s.Add(api.AddClientRequest{Name: name, Groups: []string{"devs"}}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, err := s.Revoke(name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkRestart1000: a gateway restart's P2S part with 1,000 clients:
// load the registry, create the device with 1,000 peers, compile the
// policy. Reports the heap the running server holds.
func BenchmarkRestart1000(b *testing.B) {
	dir := b.TempDir()
	gw, _ := keys.GeneratePrivate()
	registered(b, dir, gw, 1000)
	base := heapInUse()
	var heap uint64
	for b.Loop() {
		s := openTestServer(b, dir, gw, benchConfig())
		b.StopTimer()
		heap = heapInUse() - base
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(heap)/(1<<20), "MiB-heap-1000-clients")
}

// BenchmarkHandshake100: 100 clients handshake at once and each gets a
// packet through (UDP on loopback, in-memory TUNs). One op is the whole
// burst.
func BenchmarkHandshake100(b *testing.B) {
	const n = 100
	dir := b.TempDir()
	gw, _ := keys.GeneratePrivate()
	s := openTestServer(b, dir, gw, benchConfig())
	defer s.Close()
	var confs []string
	for i := 0; i < n; i++ {
		a, err := s.Add(api.AddClientRequest{Name: fmt.Sprintf("c%03d", i), Groups: []string{"devs"}})
		if err != nil {
			b.Fatal(err)
		}
		// No keepalive: the first packet starts the handshake.
		confs = append(confs, a.Config[:len(a.Config)-len("PersistentKeepalive = 25\n")])
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		clients := make([]*testClient, n)
		for j := range clients {
			clients[j] = newTestClient(b, confs[j], s.port)
		}
		b.StartTimer()
		for _, c := range clients {
			go func() { c.tun.Outbound <- tuntest.Ping(ma("10.1.0.2"), c.addr[0]) }()
		}
		for range n {
			receive(b, s.tun.Inbound, "a client's first packet")
		}
		b.StopTimer()
		for _, c := range clients {
			c.dev.Close()
		}
		b.StartTimer()
	}
}
