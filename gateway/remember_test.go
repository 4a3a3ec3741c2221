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

	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
)

func TestMemoryFile(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{StateDir: dir}
	k1, _ := keys.GeneratePrivate()
	k2, _ := keys.GeneratePrivate()
	m := memory{Version: 1,
		Peerings: []peerEndpoint{
			{Peering: "west", PublicKey: k2.Public(), Endpoint: netip.MustParseAddrPort("198.18.0.2:51820")},
			{Peering: "east", PublicKey: k1.Public(), Endpoint: netip.MustParseAddrPort("[2001:db8::1]:4000")},
		},
		Clients: []clientEndpoint{{PublicKey: k1.Public(), Endpoint: netip.MustParseAddrPort("198.18.0.101:40000")}},
	}.sorted()
	if m.Peerings[0].Peering != "east" {
		t.Fatalf("not sorted: %+v", m.Peerings)
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(endpointsPath(cfg), b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readMemory(endpointsPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	in := got.planInput()
	if len(in) != 2 || in[1].Peering != "west" || in[1].PublicKey != k2.Public() || in[1].Endpoint != m.Peerings[1].Endpoint {
		t.Fatalf("plan input %+v", in)
	}
	if c := got.clients(); len(c) != 1 || c[k1.Public()] != m.Clients[0].Endpoint {
		t.Fatalf("clients %+v", c)
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
		var logs bytes.Buffer
		g := &Gateway{log: slog.New(slog.NewTextHandler(&logs, nil)), memory: got}
		g.loadMemory(cfg)
		if len(g.memory.Peerings)+len(g.memory.Clients) != 0 || !strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("%q: memory %+v, log %q", bad, g.memory, logs.String())
		}
	}
}
