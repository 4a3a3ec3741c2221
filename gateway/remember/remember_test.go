package remember

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
	now := time.Now().UTC().Truncate(time.Second)
	k1, k2 := testPub(t), testPub(t)
	m := memory{Version: 1,
		Peerings: []PeerEndpoint{
			{Peering: "west", PublicKey: k2, Endpoint: ap("198.18.0.2:51820"), LastHandshake: now},
			{Peering: "east", PublicKey: k1, Endpoint: ap("[2001:db8::1]:4000"), LastHandshake: now.Add(-time.Hour)},
		},
		Clients: []ClientEndpoint{{PublicKey: k1, Endpoint: ap("198.18.0.101:40000"), LastHandshake: now.Add(-time.Minute)}},
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(endpointsPath(dir), b, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	mem := Load(dir, log)
	// east was seen an hour ago: not dialed.
	in := mem.Remembered()
	if len(in) != 1 || in[0].Peering != "west" || in[0].PublicKey != k2 || in[0].Endpoint != ap("198.18.0.2:51820") {
		t.Fatalf("plan input %+v", in)
	}
	if c := mem.Clients(); len(c) != 1 || c[k1] != ap("198.18.0.101:40000") {
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
		if err := os.WriteFile(endpointsPath(dir), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := readMemory(endpointsPath(dir)); err == nil {
			t.Errorf("%q read without error", bad)
		}
		logs.Reset()
		mem := Load(dir, log)
		if len(mem.loaded.Peerings)+len(mem.loaded.Clients) != 0 || !strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("%q: memory %+v, log %q", bad, mem.loaded, logs.String())
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
		Peerings: []PeerEndpoint{
			{Peering: "west", PublicKey: kw, Endpoint: ap("198.18.0.2:51820"), LastHandshake: t0},
			{Peering: "east", PublicKey: ke, Endpoint: ap("198.18.0.3:51820"), LastHandshake: t0},
			{Peering: "removed", PublicKey: kr, Endpoint: ap("198.18.0.9:51820"), LastHandshake: t0},
		},
		Clients: []ClientEndpoint{
			{PublicKey: ka, Endpoint: ap("198.18.0.101:40000"), LastHandshake: t0},
			{PublicKey: kr, Endpoint: ap("198.18.0.109:40000"), LastHandshake: t0}, // revoked since
		},
	}
	devices := memory{Version: 1,
		Peerings: []PeerEndpoint{
			{Peering: "west", PublicKey: kw, Endpoint: ap("198.18.0.2:51820")},                                  // dialed, no answer yet
			{Peering: "east", PublicKey: ke, Endpoint: ap("198.18.0.33:1"), LastHandshake: t0.Add(time.Minute)}, // roamed
			{Peering: "new", PublicKey: kn, Endpoint: ap("198.18.0.4:51820")},                                   // configured, never up
		},
		Clients: []ClientEndpoint{
			{PublicKey: kb, Endpoint: ap("198.18.0.102:40000"), LastHandshake: t0.Add(2 * time.Minute)},
			{PublicKey: ka, Endpoint: ap("198.18.0.101:40000")},
		},
	}
	got := devices.settle(prev)
	want := memory{Version: 1,
		Peerings: []PeerEndpoint{
			{Peering: "east", PublicKey: ke, Endpoint: ap("198.18.0.33:1"), LastHandshake: t0.Add(time.Minute)},
			{Peering: "west", PublicKey: kw, Endpoint: ap("198.18.0.2:51820"), LastHandshake: t0},
		},
	}
	want.Clients = []ClientEndpoint{
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

// Record writes what the devices report, keeps the clients last saved
// while point-to-site is unreadable, and after Close writes nothing: a
// loop tick that gathered before the stop does not replace the last
// record.
func TestMemoryRecordAndClose(t *testing.T) {
	dir := t.TempDir()
	mem := Load(dir, slog.New(slog.DiscardHandler))
	now := time.Now().UTC().Truncate(time.Second)
	kw, kc := testPub(t), testPub(t)
	west := PeerEndpoint{Peering: "west", PublicKey: kw, Endpoint: ap("198.18.0.2:51820"), LastHandshake: now}
	client := ClientEndpoint{PublicKey: kc, Endpoint: ap("198.18.0.101:40000"), LastHandshake: now}
	read := func() memory {
		t.Helper()
		m, err := readMemory(endpointsPath(dir))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	mem.Record(Seen{StateDir: dir, Peerings: []PeerEndpoint{west}, Clients: []ClientEndpoint{client}}, false)
	if m := read(); len(m.Peerings) != 1 || len(m.Clients) != 1 {
		t.Fatalf("after a record: %+v", m)
	}
	mem.Record(Seen{StateDir: dir, Peerings: []PeerEndpoint{west}, KeepClients: true}, true)
	if m := read(); len(m.Clients) != 1 || m.Clients[0].Endpoint != client.Endpoint {
		t.Fatalf("point-to-site unreadable: clients %+v, want the saved one", m.Clients)
	}
	mem.Close(Seen{StateDir: dir, Peerings: []PeerEndpoint{west}})
	moved := west
	moved.Endpoint = ap("198.18.0.22:1")
	mem.Record(Seen{StateDir: dir, Peerings: []PeerEndpoint{moved}}, true)
	if m := read(); len(m.Peerings) != 1 || m.Peerings[0].Endpoint != west.Endpoint || len(m.Clients) != 0 {
		t.Fatalf("after Close: %+v, want the record Close wrote", m)
	}
	Load("", slog.New(slog.DiscardHandler)).Record(Seen{Peerings: []PeerEndpoint{west}}, true) // no state_dir: nothing written
}
