package enroll

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/keys"
)

// fakeClients is a registry with one group routing 10.1.0.0/16.
type fakeClients struct {
	routes []netip.Prefix
	added  []api.AddClientRequest
}

func (f *fakeClients) Registered(name string) bool {
	for _, a := range f.added {
		if a.Name == name {
			return true
		}
	}
	return false
}
func (f *fakeClients) CheckClient(string, []string) error { return nil }
func (f *fakeClients) ClientRoutes([]string) (pool, routes []netip.Prefix) {
	return []netip.Prefix{netip.MustParsePrefix("172.16.201.0/24")}, f.routes
}
func (f *fakeClients) Add(req api.AddClientRequest) (api.AddedClient, error) {
	f.added = append(f.added, req)
	return api.AddedClient{Config: "[Interface]\n"}, nil
}

// Without the listener invites are refused (ErrNotConfigured); with it an
// invite is created, listed, redeemed into the registry once, and a
// second one revoked. An invite whose groups route more than its bound
// is refused as stale and stays pending.
func TestComponentInvites(t *testing.T) {
	c := NewComponent(Invites{}, slog.New(slog.DiscardHandler))
	defer c.Close()
	reg := &fakeClients{routes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}
	if _, err := c.Invite(api.InviteRequest{Name: "ann", Groups: []string{"devs"}}, reg); !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("without the listener: %v, want ErrNotConfigured", err)
	}
	if err := c.Set(context.Background(), Want{Listen: "127.0.0.1:0", URL: "https://vpn.example:8443/", StateDir: t.TempDir(), Gateway: "east"}); err != nil {
		t.Fatal(err)
	}
	inv, err := c.Invite(api.InviteRequest{Name: "ann", Groups: []string{"devs", "devs"}}, reg)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseToken(inv.Token)
	if err != nil || tok.URL != "https://vpn.example:8443/" || len(inv.Groups) != 1 {
		t.Fatalf("invite %+v, token %+v %v", inv, tok, err)
	}
	if !c.PendingName("ann") || !c.PendingSecret(tok.Secret) {
		t.Fatal("the invite is not pending")
	}
	if l, err := c.List(); err != nil || len(l) != 1 || l[0].Name != "ann" {
		t.Fatalf("list %+v %v", l, err)
	}
	k, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	clients := func() (Clients, error) { return reg, nil }
	reg.routes = append(reg.routes, netip.MustParsePrefix("10.9.0.0/16")) // the config changed since
	if _, err := c.Redeem(context.Background(), tok.Secret, k.Public(), clients); !errors.As(err, new(*Refused)) || !c.PendingName("ann") {
		t.Fatalf("stale invite: %v, pending %v", err, c.PendingName("ann"))
	}
	reg.routes = reg.routes[:1]
	resp, err := c.Redeem(context.Background(), tok.Secret, k.Public(), clients)
	if err != nil || resp.Name != "ann" || len(reg.added) != 1 || reg.added[0].PublicKey != k.Public().String() {
		t.Fatalf("redeem %+v %v, registry %+v", resp, err, reg.added)
	}
	if c.PendingName("ann") {
		t.Error("a redeemed invite is still pending")
	}
	if _, err := c.Invite(api.InviteRequest{Name: "bob", Groups: []string{"devs"}}, reg); err != nil {
		t.Fatal(err)
	}
	if i, err := c.Revoke("bob"); err != nil || i.Name != "bob" || c.PendingName("bob") {
		t.Fatalf("revoke %+v %v", i, err)
	}
	if _, err := c.Revoke("nobody"); api.CodeOf(err) != api.CodeNotFound {
		t.Errorf("revoking no invite: %v, want code %s", err, api.CodeNotFound)
	}
}
