package dataplane

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn/bindtest"

	"github.com/vgate-project/vgate/gateway/wgspec"
)

// A tunnel with nothing to send initiates a handshake when asked, and its
// keepalive stays off; a tunnel without an endpoint cannot and does not.
func TestInitiateHandshake(t *testing.T) {
	binds := bindtest.NewChannelBinds()
	a, b := newSide(t, binds[0]), newSide(t, binds[1])
	specA := TunnelSpec{Name: "b", IfName: "vg-b", MTU: 1420, Peer: wgspec.PeerSpec{
		PublicKey: b.key.Public(), Endpoint: netip.MustParseAddrPort("127.0.0.1:1"),
		AllowedIPs: pfx("10.2.0.0/16")}}
	specB := TunnelSpec{Name: "a", IfName: "vg-a", MTU: 1420, Peer: wgspec.PeerSpec{ // dial-in only
		PublicKey: a.key.Public(), AllowedIPs: pfx("10.1.0.0/16")}}
	if _, err := a.plane.Set([]TunnelSpec{specA}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.plane.Set([]TunnelSpec{specB}); err != nil {
		t.Fatal(err)
	}
	handshake := func(s *side, name string) time.Time {
		st, err := s.plane.Tunnel(name).Stats()
		if err != nil {
			t.Fatal(err)
		}
		return st.LastHandshake
	}
	time.Sleep(200 * time.Millisecond)
	if !handshake(a, "b").IsZero() || !handshake(b, "a").IsZero() {
		t.Fatal("handshake without traffic before anyone asked")
	}
	if err := b.plane.Tunnel("a").InitiateHandshake(); err != nil { // no endpoint: nothing to do
		t.Fatal(err)
	}
	if err := a.plane.Tunnel("b").InitiateHandshake(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for handshake(b, "a").IsZero() || handshake(a, "b").IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("no handshake after InitiateHandshake")
		}
		time.Sleep(10 * time.Millisecond)
	}
	dump, err := a.plane.Tunnel("b").dev.IpcGet()
	if err != nil || !strings.Contains(dump, "persistent_keepalive_interval=0\n") {
		t.Fatalf("keepalive left on after the handshake: %v\n%s", err, dump)
	}
}

func TestInitiateUAPI(t *testing.T) {
	k := mustKey(t).Public()
	on, off := InitiateUAPI(k, netip.MustParseAddrPort("198.18.0.101:40000"))
	want := "public_key=" + k.Hex() + "\nupdate_only=true\nendpoint=198.18.0.101:40000\npersistent_keepalive_interval=1\n"
	if on != want {
		t.Fatalf("on:\n%s\nwant\n%s", on, want)
	}
	if off != "public_key="+k.Hex()+"\nupdate_only=true\npersistent_keepalive_interval=0\n" {
		t.Fatalf("off:\n%s", off)
	}
	if on, _ := InitiateUAPI(k, netip.AddrPort{}); strings.Contains(on, "endpoint=") {
		t.Fatalf("no endpoint, but:\n%s", on)
	}
}
