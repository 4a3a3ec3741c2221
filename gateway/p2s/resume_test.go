package p2s

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/keys"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// A restarted server that remembers a client's endpoint initiates the
// handshake itself: a client without a keepalive and with nothing to send
// gets a new session and receives the gateway's packets. Unknown keys are
// ignored and a client the device already knows keeps its endpoint.
func TestServerResume(t *testing.T) {
	dir := t.TempDir()
	gw, _ := keys.GeneratePrivate()
	cfg := testP2SConfig()
	s := openTestServer(t, dir, gw, cfg)
	add := func(name string) api.AddedClient {
		t.Helper()
		a, err := s.Add(api.AddClientRequest{Name: name, Groups: []string{"devs"}})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	alice, bob := add("alice"), add("bob")
	aliceKey, _ := keys.ParsePublic(alice.Client.PublicKey)
	bobKey, _ := keys.ParsePublic(bob.Client.PublicKey)
	noKeepalive := strings.Replace(alice.Config, "PersistentKeepalive = 25\n", "", 1)
	if noKeepalive == alice.Config {
		t.Fatalf("no keepalive line to strip:\n%s", alice.Config)
	}
	ca := newTestClient(t, noKeepalive, s.port)
	ca.tun.Outbound <- tuntest.Ping(ma("10.1.0.2"), ca.addr[0])
	receive(t, s.tun.Inbound, "alice -> 10.1.0.2")

	eps, err := s.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 || eps[aliceKey].Endpoint.Addr() != ma("127.0.0.1") || eps[aliceKey].LastHandshake.IsZero() {
		t.Fatalf("endpoints = %v; want alice's only, with a handshake", eps)
	}
	handshake := func() time.Time {
		dump, err := ca.dev.IpcGet()
		if err != nil {
			t.Fatal(err)
		}
		st, _, _ := dataplane.ParsePeerStats(dump, gw.Public())
		return st.LastHandshake
	}
	first := handshake()
	// From here on alice's own handshakes go nowhere: only the gateway's
	// initiation, to the address alice sends from, can bring a new one.
	if err := ca.dev.IpcSet("public_key=" + gw.Public().Hex() + "\nupdate_only=true\nendpoint=127.0.0.1:9\n"); err != nil {
		t.Fatal(err)
	}

	// Restart on the same port.
	port := s.port
	s.Close()
	cfg2 := *cfg
	cfg2.ListenPort = port
	time.Sleep(1100 * time.Millisecond) // handshake times have second resolution here
	s = openTestServer(t, dir, gw, &cfg2)
	defer s.Close()
	stranger, _ := keys.GeneratePrivate()
	resumed, err := s.Resume(map[keys.PublicKey]netip.AddrPort{
		aliceKey:          eps[aliceKey].Endpoint,
		stranger.Public(): netip.MustParseAddrPort("127.0.0.1:9"),
		bobKey:            {}, // no endpoint: nothing to do
	})
	if err != nil || !slices.Equal(resumed, []string{"alice"}) {
		t.Fatalf("resumed %v, %v; want [alice]", resumed, err)
	}
	waitFor(t, "alice's handshake with the restarted gateway", func() bool { return handshake().After(first) })
	s.tun.Outbound <- tuntest.Ping(ca.addr[0], ma("10.1.0.2"))
	if got := receive(t, ca.tun.Inbound, "10.1.0.2 -> alice after restart"); srcDst(got) != "10.1.0.2 -> 172.16.201.1" {
		t.Fatalf("alice got %s", srcDst(got))
	}

	// Fresher information wins: alice is known now.
	resumed, err = s.Resume(map[keys.PublicKey]netip.AddrPort{aliceKey: netip.MustParseAddrPort("127.0.0.1:9")})
	if err != nil || len(resumed) != 0 {
		t.Fatalf("resumed %v, %v; want none", resumed, err)
	}
	if now, _ := s.Endpoints(); now[aliceKey].Endpoint != eps[aliceKey].Endpoint {
		t.Fatalf("alice's endpoint %v, want %v", now[aliceKey], eps[aliceKey])
	}
	// A revoked client is no longer remembered.
	if _, err := s.Revoke("alice"); err != nil {
		t.Fatal(err)
	}
	if now, _ := s.Endpoints(); len(now) != 0 {
		t.Fatalf("endpoints after revoke: %v", now)
	}
}
