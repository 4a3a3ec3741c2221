package p2s

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// These tests run the real Server (wireguard-go device, filter, registry)
// over in-memory TUNs and UDP on loopback: no root needed.

func testP2SConfig() *config.PointToSite {
	return &config.PointToSite{
		ListenPort:  0, // the kernel picks; tests ask ListenPort()
		Endpoint:    "vpn.example.net:51821",
		AddressPool: []netip.Prefix{mp("172.16.201.0/24"), mp("fd00:cafe::/64")},
		MaxClients:  128,
		DNS:         []netip.Addr{ma("10.1.0.53")},
		Groups: []config.Group{
			{Name: "devs", Allow: []netip.Prefix{mp("10.1.0.0/16"), mp("fd00:1::/48")}, Interconnected: true},
			{Name: "ops", Allow: []netip.Prefix{mp("10.9.0.0/16")}},
		},
	}
}

type testServer struct {
	*Server
	tun  *tuntest.ChannelTUN
	port uint16
}

func openTestServer(t testing.TB, dir string, priv keys.PrivateKey, cfg *config.PointToSite) *testServer {
	t.Helper()
	ct := tuntest.NewChannelTUN()
	s, err := Open(Options{
		Config: cfg, PrivateKey: priv, StateDir: dir,
		NewTUN: func(string, int) (tun.Device, error) { return ct.TUN(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	port, err := s.ListenPort()
	if err != nil || port == 0 {
		t.Fatalf("listen port %d: %v", port, err)
	}
	return &testServer{Server: s, tun: ct, port: port}
}

type testClient struct {
	dev  *device.Device
	tun  *tuntest.ChannelTUN
	addr []netip.Addr
}

// newTestClient runs a wireguard-go device configured from a client
// config, dialing the server on loopback. allowed, if not empty, replaces
// the config's AllowedIPs (a client editing its config).
func newTestClient(t testing.TB, text string, port uint16, allowed ...netip.Prefix) *testClient {
	t.Helper()
	q, err := ParseQuick(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(allowed) > 0 {
		q.Peers[0].AllowedIPs = allowed
	}
	uapi, err := q.UAPI(func(string) (netip.AddrPort, error) {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ct := tuntest.NewChannelTUN()
	dev := device.NewDevice(ct.TUN(), conn.NewStdNetBind(), device.NewLogger(device.LogLevelSilent, ""))
	if err := dev.IpcSet(uapi); err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dev.Close)
	c := &testClient{dev: dev, tun: ct}
	for _, p := range q.Addresses {
		c.addr = append(c.addr, p.Addr())
	}
	return c
}

// waitFor polls cond; the bound only turns a hang into a failure.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func receive(t testing.TB, ch chan []byte, what string) []byte {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-time.After(20 * time.Second):
		t.Fatalf("gave up waiting for %s", what)
		return nil
	}
}

func srcDst(b []byte) string {
	s, d, _ := addrs(b)
	return s.String() + " -> " + d.String()
}

func TestServerEndToEnd(t *testing.T) {
	dir := t.TempDir()
	gw, _ := keys.GeneratePrivate()
	cfg := testP2SConfig()
	s := openTestServer(t, dir, gw, cfg)
	defer func() { s.Close() }()

	add := func(name string, groups ...string) api.AddedClient {
		t.Helper()
		a, err := s.Add(api.AddClientRequest{Name: name, Groups: groups})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	alice, bob, carol, dave := add("alice", "devs"), add("bob", "devs"), add("carol", "ops"), add("dave", "ops")
	if !strings.Contains(alice.Config, "PublicKey = "+gw.Public().String()) || !strings.Contains(alice.Config, "Endpoint = vpn.example.net:51821") ||
		!strings.Contains(alice.Config, "AllowedIPs = 10.1.0.0/16, 172.16.201.0/24, fd00:1::/48, fd00:cafe::/64") ||
		!strings.Contains(alice.Config, "DNS = 10.1.0.53") || !strings.Contains(alice.Config, "Address = 172.16.201.1/32, fd00:cafe::1/128") {
		t.Fatalf("alice's config:\n%s", alice.Config)
	}
	if _, err := s.Add(api.AddClientRequest{Name: "eve", Groups: []string{"nosuch"}}); err == nil || !strings.Contains(err.Error(), "devs, ops") {
		t.Fatalf("unknown group: %v", err)
	}
	if _, err := s.Add(api.AddClientRequest{Name: "eve"}); err == nil {
		t.Fatal("client without group accepted")
	}

	h1 := ma("10.1.0.2")
	ca := newTestClient(t, alice.Config, s.port)
	cb := newTestClient(t, bob.Config, s.port)
	// carol and dave edit their configs to route everything to the gateway.
	all := []netip.Prefix{mp("0.0.0.0/0"), mp("::/0")}
	cc := newTestClient(t, carol.Config, s.port, all...)
	cd := newTestClient(t, dave.Config, s.port, all...)

	// alice reaches net 1, over IPv4 and IPv6.
	ca.tun.Outbound <- tuntest.Ping(h1, ca.addr[0])
	if got := receive(t, s.tun.Inbound, "alice -> 10.1.0.2"); srcDst(got) != "172.16.201.1 -> 10.1.0.2" {
		t.Fatalf("got %s", srcDst(got))
	}
	ca.tun.Outbound <- packet(ca.addr[1], ma("fd00:1::2"))
	if got := receive(t, s.tun.Inbound, "alice -> fd00:1::2"); srcDst(got) != "fd00:cafe::1 -> fd00:1::2" {
		t.Fatalf("got %s", srcDst(got))
	}

	// alice -> bob: through the gateway (the kernel would route it back
	// into the P2S interface) and out to bob.
	ca.tun.Outbound <- tuntest.Ping(cb.addr[0], ca.addr[0])
	got := receive(t, s.tun.Inbound, "alice -> bob at the gateway")
	s.tun.Outbound <- got
	if got := receive(t, cb.tun.Inbound, "alice -> bob at bob"); srcDst(got) != "172.16.201.1 -> 172.16.201.2" {
		t.Fatalf("bob got %s", srcDst(got))
	}

	// carol -> net 1 and carol -> dave are dropped at the gateway, although
	// her edited config sends them.
	denied := func(v Verdict) uint64 { return s.Filter().counts[v].Load() }
	before := denied(DenyDestination)
	cc.tun.Outbound <- tuntest.Ping(h1, cc.addr[0])
	waitFor(t, "carol's packet to be denied", func() bool { return denied(DenyDestination) == before+1 })
	before = denied(DenyClient)
	cc.tun.Outbound <- tuntest.Ping(cd.addr[0], cc.addr[0])
	waitFor(t, "carol -> dave to be denied", func() bool { return denied(DenyClient) == before+1 })
	select {
	case b := <-s.tun.Inbound:
		t.Fatalf("denied packet reached the kernel: %s", srcDst(b))
	default:
	}
	// carol may reach net 9.
	cc.tun.Outbound <- tuntest.Ping(ma("10.9.0.2"), cc.addr[0])
	if got := receive(t, s.tun.Inbound, "carol -> 10.9.0.2"); srcDst(got) != "172.16.201.3 -> 10.9.0.2" {
		t.Fatalf("got %s", srcDst(got))
	}
	_ = cd

	list, err := s.Clients()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]api.ClientInfo{}
	for _, c := range list {
		byName[c.Name] = c
	}
	if len(list) != 4 || !byName["alice"].Connected || byName["alice"].RxBytes == 0 || byName["carol"].Denied != 2 {
		t.Fatalf("clients = %+v", list)
	}
	st := s.Status()
	if st.Registered != 4 || st.Connected < 3 || st.PoolFree != 254-4 || st.Denied != 2 {
		t.Fatalf("status = %+v", st)
	}

	// Revoke bob: gone from the device at once; his address is not reused.
	if _, err := s.Revoke("bob"); err != nil {
		t.Fatal(err)
	}
	dump, _ := s.dev.IpcGet()
	bobKey, err := keys.ParsePublic(bob.Client.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dump, bobKey.Hex()) {
		t.Fatal("revoked client still a peer of the device")
	}
	if v := s.Filter().Policy().Decide(cb.addr[0], h1); v != DenySource {
		t.Fatalf("revoked client's packets: %v", v)
	}
	erin := add("erin", "devs")
	if erin.Client.Addresses[0] == bob.Client.Addresses[0] {
		t.Fatal("revoked address reused at once")
	}
	if _, err := s.Revoke("bob"); err == nil {
		t.Fatal("revoking twice succeeded")
	}

	// Restart: same clients, same addresses; alice (same key) connects.
	s.Close()
	s = openTestServer(t, dir, gw, cfg)
	list2, err := s.Clients()
	if err != nil {
		t.Fatal(err)
	}
	if len(list2) != 4 {
		t.Fatalf("after restart %d clients, want 4", len(list2))
	}
	for _, c := range list2 {
		if old, ok := byName[c.Name]; ok && old.Addresses[0] != c.Addresses[0] {
			t.Fatalf("client %s moved from %v to %v", c.Name, old.Addresses, c.Addresses)
		}
	}
	ca2 := newTestClient(t, alice.Config, s.port)
	ca2.tun.Outbound <- tuntest.Ping(h1, ca2.addr[0])
	if got := receive(t, s.tun.Inbound, "alice after restart"); srcDst(got) != "172.16.201.1 -> 10.1.0.2" {
		t.Fatalf("got %s", srcDst(got))
	}

	// A reload that drops the pool the clients live in is refused.
	cfg2 := *cfg
	cfg2.AddressPool = []netip.Prefix{mp("172.16.209.0/24")}
	if err := s.Update(&cfg2, gw); err == nil || !strings.Contains(err.Error(), "alice") {
		t.Fatalf("pool change with clients in it: %v", err)
	}
	// Changing groups takes effect at once: devs loses net 1.
	cfg3 := *cfg
	cfg3.Groups = []config.Group{{Name: "devs", Allow: []netip.Prefix{mp("10.2.0.0/16")}, Interconnected: true}, cfg.Groups[1]}
	if err := s.Update(&cfg3, gw); err != nil {
		t.Fatal(err)
	}
	if v := s.Filter().Policy().Decide(ca.addr[0], h1); v != DenyDestination {
		t.Fatalf("after reload alice -> net 1: %v", v)
	}
}

// A client added with its own public key: the config holds no private key
// and the laptop's key works.
func TestServerOwnKey(t *testing.T) {
	gw, _ := keys.GeneratePrivate()
	s := openTestServer(t, t.TempDir(), gw, testP2SConfig())
	defer s.Close()
	laptop, _ := keys.GeneratePrivate()
	a, err := s.Add(api.AddClientRequest{Name: "alice", Groups: []string{"devs"}, PublicKey: laptop.Public().String()})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(a.Config, "\nPrivateKey") || a.Client.KeyGenerated {
		t.Fatalf("config for an own key:\n%s", a.Config)
	}
	text := strings.Replace(a.Config, "[Interface]\n", "[Interface]\nPrivateKey = "+laptop.Base64()+"\n", 1)
	c := newTestClient(t, text, s.port)
	c.tun.Outbound <- tuntest.Ping(ma("10.1.0.2"), c.addr[0])
	receive(t, s.tun.Inbound, "own-key client's packet")
	if _, err := s.Add(api.AddClientRequest{Name: "bob", Groups: []string{"devs"}, PublicKey: laptop.Public().String()}); err == nil {
		t.Fatal("second client with the same key accepted")
	}
	if _, err := s.Add(api.AddClientRequest{Name: "gw", Groups: []string{"devs"}, PublicKey: gw.Public().String()}); err == nil {
		t.Fatal("client with the gateway's key accepted")
	}
}

func TestServerMaxClients(t *testing.T) {
	gw, _ := keys.GeneratePrivate()
	cfg := testP2SConfig()
	cfg.MaxClients = 2
	s := openTestServer(t, t.TempDir(), gw, cfg)
	defer s.Close()
	for i := 0; i < 3; i++ {
		_, err := s.Add(api.AddClientRequest{Name: fmt.Sprintf("c%d", i), Groups: []string{"ops"}})
		if (err != nil) != (i == 2) {
			t.Fatalf("client %d: %v", i, err)
		}
	}
}

// The errors the control API passes on carry their codes.
func TestServerErrorCodes(t *testing.T) {
	gw, _ := keys.GeneratePrivate()
	s := openTestServer(t, t.TempDir(), gw, testP2SConfig())
	defer s.Close()
	if _, err := s.Add(api.AddClientRequest{Name: "alice", Groups: []string{"devs"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(api.AddClientRequest{Name: "alice", Groups: []string{"devs"}}); !errors.Is(err, api.CodeConflict) {
		t.Errorf("adding alice twice: %v, want code conflict", err)
	}
	if _, err := s.Revoke("nosuch"); !errors.Is(err, api.CodeNotFound) {
		t.Errorf("revoking an unknown client: %v, want code not_found", err)
	}
	c, err := s.Revoke("alice")
	if err != nil || c.QuarantinedUntil.Before(time.Now().Add(DefaultQuarantine-time.Minute)) {
		t.Errorf("revoke alice: %+v, %v: want quarantined for %v", c, err, DefaultQuarantine)
	}
}

// A registry opened with a smaller pool (point_to_site re-added): the
// clients left outside show in error, and only a pool change that would
// leave out more clients is refused — an unchanged pool is not.
func TestCheckUpdateRefusesOnlyNewlyOrphanedClients(t *testing.T) {
	gw, _ := keys.GeneratePrivate()
	dir := t.TempDir()
	cfg := testP2SConfig()
	s := openTestServer(t, dir, gw, cfg)
	for _, name := range []string{"a", "b"} {
		if _, err := s.Add(api.AddClientRequest{Name: name, Groups: []string{"ops"}}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	small := testP2SConfig()
	small.AddressPool = small.AddressPool[:1] // the IPv6 prefix dropped: both clients outside
	s = openTestServer(t, dir, gw, small)
	defer s.Close()
	if err := s.CheckUpdate(small); err != nil {
		t.Fatalf("an unchanged pool refused: %v", err)
	}
	v4 := testP2SConfig()
	v4.AddressPool = []netip.Prefix{mp("172.16.201.0/25")}
	if err := s.CheckUpdate(v4); err != nil {
		t.Fatalf("a pool that leaves out no one new refused: %v", err)
	}
	if err := s.Update(v4, gw); err != nil {
		t.Fatal(err)
	}
	// Now a client that is inside the running pool would be left out.
	if _, err := s.Add(api.AddClientRequest{Name: "c", Groups: []string{"ops"}}); err != nil {
		t.Fatal(err)
	}
	tiny := testP2SConfig()
	tiny.AddressPool = []netip.Prefix{mp("172.16.201.128/25")}
	err := s.CheckUpdate(tiny)
	if err == nil || !strings.Contains(err.Error(), "outside the new pool") {
		t.Fatalf("a pool leaving out clients inside the running pool: %v, want a refusal", err)
	}
}
