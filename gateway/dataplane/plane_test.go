package dataplane

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/wgspec"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// side is one gateway's Plane over in-memory TUNs and a channel bind: the
// production Plane code with only the three seams swapped.
type side struct {
	plane *Plane
	key   keys.PrivateKey
	tuns  map[string]*tuntest.ChannelTUN
}

func newSide(t *testing.T, bind conn.Bind) *side {
	k, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	s := &side{key: k, tuns: map[string]*tuntest.ChannelTUN{}}
	s.plane = &Plane{
		NewBind: func(string) conn.Bind { return bind },
		NewTUN: func(ifname string, mtu int) (tun.Device, error) {
			c := tuntest.NewChannelTUN()
			s.tuns[ifname] = c
			return c.TUN(), nil
		},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if err := s.plane.SetPrivateKey(k); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.plane.Close)
	return s
}

// send writes pkt into a's TUN (as the kernel would) and reports whether
// it comes out of b's TUN.
func send(t *testing.T, a, b *tuntest.ChannelTUN, pkt []byte) bool {
	t.Helper()
	select {
	case a.Outbound <- pkt:
	case <-time.After(2 * time.Second):
		t.Fatal("TUN not read")
	}
	select {
	case got := <-b.Inbound:
		return string(got) == string(pkt)
	case <-time.After(1 * time.Second):
		return false
	}
}

func TestPlaneLifecycle(t *testing.T) {
	binds := bindtest.NewChannelBinds()
	a, b := newSide(t, binds[0]), newSide(t, binds[1])
	hostA, hostB := netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.2.0.2")

	specA := TunnelSpec{Name: "b", IfName: "vg-b", MTU: 1420, Peer: wgspec.PeerSpec{
		PublicKey: b.key.Public(), Endpoint: netip.MustParseAddrPort("127.0.0.1:1"),
		AllowedIPs: pfx("10.2.0.0/16")}}
	specB := TunnelSpec{Name: "a", IfName: "vg-a", MTU: 1420, Peer: wgspec.PeerSpec{
		PublicKey: a.key.Public(), Endpoint: netip.MustParseAddrPort("127.0.0.1:2"),
		AllowedIPs: pfx("10.1.0.0/16")}}
	if plan, err := a.plane.Set([]TunnelSpec{specA}); err != nil || len(plan.Create) != 1 {
		t.Fatalf("set a: %v %+v", err, plan)
	}
	if _, err := b.plane.Set([]TunnelSpec{specB}); err != nil {
		t.Fatal(err)
	}
	ta, tb := a.tuns["vg-b"], b.tuns["vg-a"]
	if !send(t, ta, tb, tuntest.Ping(hostB, hostA)) {
		t.Fatal("ping a -> b not delivered")
	}
	if !send(t, tb, ta, tuntest.Ping(hostA, hostB)) {
		t.Fatal("ping b -> a not delivered")
	}

	// b starts using 10.9.0.0/16, which a does not allow yet: dropped by
	// wireguard-go's source check (the anti-spoofing filter).
	spoof := netip.MustParseAddr("10.9.0.1")
	specB.Peer.AllowedIPs = pfx("10.1.0.0/16")
	if send(t, tb, ta, tuntest.Ping(hostA, spoof)) {
		t.Fatal("packet from an address outside the peer's AllowedIPs was accepted")
	}

	// Reconfigure a: same tunnel, AllowedIPs by diff, no new device.
	before := a.plane.Tunnel("b")
	specA.Peer.AllowedIPs = pfx("10.2.0.0/16", "10.9.0.0/16")
	plan, err := a.plane.Set([]TunnelSpec{specA})
	if err != nil || len(plan.Update) != 1 || len(plan.Create)+len(plan.Recreate)+len(plan.Remove) != 0 {
		t.Fatalf("update: %v %+v", err, plan)
	}
	if a.plane.Tunnel("b") != before {
		t.Fatal("an AllowedIPs change rebuilt the tunnel")
	}
	if !send(t, tb, ta, tuntest.Ping(hostA, spoof)) {
		t.Fatal("packet from a newly allowed prefix not delivered")
	}
	st, err := before.Stats()
	if err != nil || st.RxBytes == 0 || st.LastHandshake.IsZero() || len(st.AllowedIPs) != 2 {
		t.Fatalf("stats = %+v, %v", st, err)
	}

	// The same desired state again is a no-op.
	if plan, _ := a.plane.Set([]TunnelSpec{specA}); !plan.Empty() {
		t.Fatalf("idempotent Set planned %+v", plan)
	}
	// Removing the peering closes the device.
	if plan, _ := a.plane.Set(nil); len(plan.Remove) != 1 || a.plane.Tunnel("b") != nil {
		t.Fatalf("remove: %+v", plan)
	}
}

func TestPlanTunnels(t *testing.T) {
	k1, k2 := mustKey(t).Public(), mustKey(t).Public()
	base := TunnelSpec{Name: "b", IfName: "vg-b", MTU: 1420, Peer: wgspec.PeerSpec{PublicKey: k1, AllowedIPs: pfx("10.2.0.0/16")}}
	have := map[string]TunnelSpec{"b": base, "c": {Name: "c", IfName: "vg-c", MTU: 1420, Peer: wgspec.PeerSpec{PublicKey: k2}}}
	mtu := base
	mtu.MTU = 1380
	key := base
	key.Peer.PublicKey = k2
	p := PlanTunnels(have, []TunnelSpec{mtu, {Name: "d", IfName: "vg-d"}})
	if len(p.Recreate) != 1 || len(p.Create) != 1 || len(p.Remove) != 1 || p.Remove[0] != "c" || len(p.Update) != 0 {
		t.Fatalf("plan = %+v", p)
	}
	p = PlanTunnels(have, []TunnelSpec{key, have["c"]})
	if len(p.Update) != 1 || len(p.Recreate)+len(p.Create)+len(p.Remove) != 0 {
		t.Fatalf("key change plan = %+v", p)
	}
}
