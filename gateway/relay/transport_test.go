package relay

import (
	"log/slog"
	"testing"

	"golang.zx2c4.com/wireguard/conn/bindtest"

	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/wgbind"
)

// One connection per relay (and gateway key), shared by the peerings and
// the point-to-site device that name it; closed when nothing names it.
func TestRelaysShareConnections(t *testing.T) {
	priv, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	peer := func() keys.PublicKey {
		k, _ := keys.GeneratePrivate()
		return k.Public()
	}
	x := Target{URL: "wss://127.0.0.1:1/x"}
	y := Target{URL: "wss://127.0.0.1:1/y"}
	r := NewTransport(wgbind.NewMux(bindtest.NewChannelBinds()[0], nil), slog.New(slog.DiscardHandler))
	defer r.Close()
	binds := map[string]*Bind{}
	for _, n := range []string{"a", "b", "c"} {
		binds[n] = r.NewBind(n).(*Bind)
	}
	tun := func(name string, target Target) Peer {
		return Peer{Name: name, Relay: target, PublicKey: peer()}
	}
	pl := &dataplane.Plane{}

	r.Set(priv, []Peer{tun("a", x), tun("b", x), tun("c", Target{})}, pl)
	if len(r.clients) != 1 || binds["a"].Relay() == nil || binds["a"].Relay() != binds["b"].Relay() || binds["c"].Relay() != nil {
		t.Fatalf("after set: %d connections; a %p b %p c %p", len(r.clients), binds["a"].Relay(), binds["b"].Relay(), binds["c"].Relay())
	}
	shared := binds["a"].Relay()
	p2s := NewBind(bindtest.NewChannelBinds()[1], nil)
	r.SetP2S(priv, p2s, x)
	if len(r.clients) != 1 || p2s.Relay() != shared {
		t.Fatalf("point-to-site did not share the connection: %d connections", len(r.clients))
	}
	r.Set(priv, []Peer{tun("a", y)}, pl)
	if len(r.clients) != 2 || binds["a"].Relay() == shared || p2s.Relay() != shared || binds["b"].Relay() != nil {
		t.Fatalf("after a moved to y and b, c went: %d connections", len(r.clients))
	}
	if _, ok := r.binds["b"]; ok {
		t.Error("a removed tunnel's bind is still tracked")
	}
	r.SetP2S(priv, nil, Target{})
	if len(r.clients) != 1 || p2s.Relay() != nil {
		t.Fatalf("point-to-site gone: %d connections, its bind's relay %p", len(r.clients), p2s.Relay())
	}
	// A recreated device takes the name over; the old bind lets go.
	old := binds["a"]
	nb := r.NewBind("a").(*Bind)
	if old.Relay() != nil {
		t.Error("the old bind of a recreated device kept its relay")
	}
	r.Set(priv, []Peer{tun("a", y)}, pl)
	if nb.Relay() == nil || len(r.clients) != 1 {
		t.Errorf("the recreated device's bind has relay %p, %d connections", nb.Relay(), len(r.clients))
	}
	r.Close()
	if len(r.clients) != 0 {
		t.Errorf("%d connections after close", len(r.clients))
	}
}
