package gateway

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
)

func testPub(t *testing.T) keys.PublicKey {
	k, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

var ap = netip.MustParseAddrPort

func TestMemoryFile(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{StateDir: dir}
	now := time.Now().UTC().Truncate(time.Second)
	k1, k2 := testPub(t), testPub(t)
	m := memory{Version: 1,
		Peerings: []peerEndpoint{
			{Peering: "west", PublicKey: k2, Endpoint: ap("198.18.0.2:51820"), LastHandshake: now},
			{Peering: "east", PublicKey: k1, Endpoint: ap("[2001:db8::1]:4000"), LastHandshake: now.Add(-time.Hour)},
		},
		Clients: []clientEndpoint{{PublicKey: k1, Endpoint: ap("198.18.0.101:40000"), LastHandshake: now.Add(-time.Minute)}},
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(endpointsPath(cfg), b, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	g := &Gateway{log: slog.New(slog.NewTextHandler(&logs, nil))}
	g.loadMemory(cfg)
	// east was seen an hour ago: not dialed.
	in := g.mem.loaded.planInput()
	if len(in) != 1 || in[0].Peering != "west" || in[0].PublicKey != k2 || in[0].Endpoint != ap("198.18.0.2:51820") {
		t.Fatalf("plan input %+v", in)
	}
	if c := g.mem.loaded.clients(); len(c) != 1 || c[k1] != ap("198.18.0.101:40000") {
		t.Fatalf("clients %+v", c)
	}
	if logs.Len() != 0 {
		t.Fatalf("logged: %s", logs.String())
	}

	// Missing: empty, no error. Corrupt or unknown version: an error, and
	// a start warns and goes on without.
	if m, err := readMemory(filepath.Join(dir, "none.json")); err != nil || len(m.Peerings)+len(m.Clients) != 0 {
		t.Fatalf("missing file: %+v %v", m, err)
	}
	for _, bad := range []string{"{not json", `{"version": 2, "peerings": []}`, `{"version": 1, "peerings": [{"peering": "x", "endpoint": "nowhere"}]}`} {
		if err := os.WriteFile(endpointsPath(cfg), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := readMemory(endpointsPath(cfg)); err == nil {
			t.Errorf("%q read without error", bad)
		}
		logs.Reset()
		g.loadMemory(cfg)
		if len(g.mem.loaded.Peerings)+len(g.mem.loaded.Clients) != 0 || !strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("%q: memory %+v, log %q", bad, g.mem.loaded, logs.String())
		}
	}
}

// settle: what the devices report, with a peer dialed from memory but not
// answering yet keeping its old handshake time; peers gone from the
// devices (removed, revoked) and peers never heard from are dropped.
func TestMemorySettle(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	kw, ke, kn, ka, kb, kr := testPub(t), testPub(t), testPub(t), testPub(t), testPub(t), testPub(t)
	prev := memory{Version: 1,
		Peerings: []peerEndpoint{
			{Peering: "west", PublicKey: kw, Endpoint: ap("198.18.0.2:51820"), LastHandshake: t0},
			{Peering: "east", PublicKey: ke, Endpoint: ap("198.18.0.3:51820"), LastHandshake: t0},
			{Peering: "removed", PublicKey: kr, Endpoint: ap("198.18.0.9:51820"), LastHandshake: t0},
		},
		Clients: []clientEndpoint{
			{PublicKey: ka, Endpoint: ap("198.18.0.101:40000"), LastHandshake: t0},
			{PublicKey: kr, Endpoint: ap("198.18.0.109:40000"), LastHandshake: t0}, // revoked since
		},
	}
	devices := memory{Version: 1,
		Peerings: []peerEndpoint{
			{Peering: "west", PublicKey: kw, Endpoint: ap("198.18.0.2:51820")},                                  // dialed, no answer yet
			{Peering: "east", PublicKey: ke, Endpoint: ap("198.18.0.33:1"), LastHandshake: t0.Add(time.Minute)}, // roamed
			{Peering: "new", PublicKey: kn, Endpoint: ap("198.18.0.4:51820")},                                   // configured, never up
		},
		Clients: []clientEndpoint{
			{PublicKey: kb, Endpoint: ap("198.18.0.102:40000"), LastHandshake: t0.Add(2 * time.Minute)},
			{PublicKey: ka, Endpoint: ap("198.18.0.101:40000")},
		},
	}
	got := devices.settle(prev)
	want := memory{Version: 1,
		Peerings: []peerEndpoint{
			{Peering: "east", PublicKey: ke, Endpoint: ap("198.18.0.33:1"), LastHandshake: t0.Add(time.Minute)},
			{Peering: "west", PublicKey: kw, Endpoint: ap("198.18.0.2:51820"), LastHandshake: t0},
		},
	}
	want.Clients = []clientEndpoint{
		{PublicKey: ka, Endpoint: ap("198.18.0.101:40000"), LastHandshake: t0},
		{PublicKey: kb, Endpoint: ap("198.18.0.102:40000"), LastHandshake: t0.Add(2 * time.Minute)},
	}
	if bytes.Compare(ka[:], kb[:]) > 0 {
		want.Clients[0], want.Clients[1] = want.Clients[1], want.Clients[0]
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("settle:\n got %s\nwant %s", gb, wb)
	}
	if !sameEndpoints(got, want) {
		t.Fatal("sameEndpoints of equal memories is false")
	}
	moved := got.settle(got)
	moved.Clients[0].Endpoint = ap("198.18.0.200:1")
	if sameEndpoints(got, moved) {
		t.Fatal("a moved client counts as the same endpoints")
	}
	later := got.settle(got)
	later.Peerings[0].LastHandshake = later.Peerings[0].LastHandshake.Add(time.Minute)
	if !sameEndpoints(got, later) {
		t.Fatal("a new handshake time counts as a changed endpoint")
	}

	// fresh: only peers seen within the window.
	f := got.fresh(t0.Add(90*time.Second), time.Minute)
	if len(f.Peerings) != 1 || f.Peerings[0].Peering != "east" || len(f.Clients) != 1 || f.Clients[0].PublicKey != kb {
		t.Fatalf("fresh: %+v", f)
	}
}
