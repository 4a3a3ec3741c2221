package gateway

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/config"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/p2s"
	"github.com/vgate-project/vgate/gateway/relay"
)

// The public keys a relay reads follow the config and every client added
// or revoked, carry no private key, and are not rewritten when nothing
// changed.
func TestPublishedKeys(t *testing.T) {
	dir := t.TempDir()
	gen := func() keys.PrivateKey {
		k, err := keys.GeneratePrivate()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	gw, west := gen(), gen()
	pcfg := &config.PointToSite{
		Endpoint:    "vpn.example.net:51821",
		AddressPool: []netip.Prefix{netip.MustParsePrefix("172.16.201.0/24")},
		MaxClients:  8,
		Groups:      []config.Group{{Name: "devs", Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}},
	}
	cfg := &config.Config{
		StateDir: dir, PrivateKey: gw, PointToSite: pcfg,
		Peerings: []config.Peering{{Name: "west", PublicKey: west.Public()}, {Name: "hq", Type: "ipsec"}},
	}
	pk := relay.NewPublisher(slog.New(slog.DiscardHandler))
	ct := tuntest.NewChannelTUN()
	s, err := p2s.Open(p2s.Options{
		Config: pcfg, PrivateKey: gw, StateDir: dir,
		NewTUN:    func(string, int) (tun.Device, error) { return ct.TUN(), nil },
		OnClients: func(cs []p2s.Client) { pk.SetClients(clientKeys(cs)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	publishConfig(pk, cfg)
	path := filepath.Join(dir, relay.PublicKeysFile)
	read := func() relay.PublicKeys {
		t.Helper()
		p, err := relay.ReadPublicKeys(path)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := read()
	if p.Gateway != gw.Public() || len(p.Peerings) != 1 || p.Peerings[0].PublicKey != west.Public() || len(p.Clients) != 0 {
		t.Fatalf("published %+v, want the gateway, west and no client", p)
	}
	before, _ := os.Stat(path)
	publishConfig(pk, cfg)
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Error("the file was rewritten although nothing changed")
	}

	added, err := s.Add(api.AddClientRequest{Name: "lap", Groups: []string{"devs"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := read(); len(p.Clients) != 1 || p.Clients[0].Name != "lap" || p.Clients[0].PublicKey.String() != added.Client.PublicKey {
		t.Fatalf("after client add: %+v", p.Clients)
	}
	if _, err := s.Revoke("lap"); err != nil {
		t.Fatal(err)
	}
	if p := read(); len(p.Clients) != 0 {
		t.Fatalf("after revoke: clients %+v", p.Clients)
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), gw.Base64()) {
		t.Error("the public keys file holds the gateway's private key")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	// Without point_to_site no client is published.
	cfg2 := *cfg
	cfg2.PointToSite = nil
	if _, err := s.Add(api.AddClientRequest{Name: "lap2", Groups: []string{"devs"}}); err != nil {
		t.Fatal(err)
	}
	publishConfig(pk, &cfg2)
	if p := read(); len(p.Clients) != 0 || !slices.Contains(p.Keys(), west.Public()) {
		t.Fatalf("without point_to_site: %+v", p)
	}
}
