package routing

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func freePort(t *testing.T, a netip.Addr) int32 {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(a, 0).String())
	if err != nil {
		t.Skipf("cannot listen on %s: %v", a, err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() && os.Getenv("ROUTING_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func startSpeaker(t *testing.T, asn uint32, id string, port int32) *Speaker {
	t.Helper()
	cfg := Config{ASN: asn, RouterID: addr(id), ListenPort: port, Log: testLogger(t).With("as", asn)}
	if port > 0 {
		cfg.ListenAddresses = []netip.Addr{addr(id)}
	}
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// waitRIB polls s until cond holds on its snapshot (or fails after a long
// deadline: the test asserts on what happens, never on how fast).
func waitRIB(t *testing.T, s *Speaker, what string, cond func(RIB) bool) RIB {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var rib RIB
	for time.Now().Before(deadline) {
		var err error
		rib, err = s.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if cond(rib) {
			return rib
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not reached; last snapshot:\n%s", what, dump(rib))
	return rib
}

func dump(r RIB) string {
	var b strings.Builder
	for _, n := range r.Neighbors {
		fmt.Fprintf(&b, "  neighbor %+v\n", n)
	}
	for _, x := range r.Routes {
		fmt.Fprintf(&b, "  route %+v\n", x)
	}
	return b.String()
}

func find(r RIB, neighbor, prefix string) (Route, bool) {
	for _, x := range r.Routes {
		if x.Neighbor == neighbor && x.Prefix == pfx(prefix) {
			return x, true
		}
	}
	return Route{}, false
}

func neighbor(r RIB, name string) NeighborStatus {
	for _, n := range r.Neighbors {
		if n.Name == name {
			return n
		}
	}
	return NeighborStatus{}
}

// Three speakers on loopback in a chain a – b – c (a listens, b listens and
// dials a, c only dials b): origination, filtered import, transit with the
// AS path, policy changes without a reset, holds, and the prefix limit.
func TestSpeakersOnLoopback(t *testing.T) {
	aAddr, bAddr, cAddr := addr("127.0.0.1"), addr("127.0.0.2"), addr("127.0.0.3")
	aPort, bPort := freePort(t, aAddr), freePort(t, bAddr)
	a := startSpeaker(t, 65001, "127.0.0.1", aPort)
	b := startSpeaker(t, 65002, "127.0.0.2", bPort)
	c := startSpeaker(t, 65003, "127.0.0.3", -1)
	ctx := context.Background()

	aState := State{
		Originate: []netip.Prefix{pfx("10.1.0.0/16"), pfx("fd00:1::/48")},
		Protected: []Protected{{Prefix: pfx("10.1.0.0/16"), Owner: "local address space"}, {Prefix: pfx("fd00:1::/48"), Owner: "local address space"}},
		Neighbors: []Neighbor{{Name: "b", Address: bAddr, ASN: 65002, Passive: true,
			Allowed: []netip.Prefix{pfx("10.2.0.0/16"), pfx("10.3.0.0/16"), pfx("fd00:2::/48")}}},
	}
	if err := a.Set(ctx, aState); err != nil {
		t.Fatal(err)
	}
	bState := State{
		Originate: []netip.Prefix{pfx("10.2.0.0/16"), pfx("fd00:2::/48"),
			pfx("10.1.5.0/24"),    // hijack of a's space
			pfx("10.0.0.0/8"),     // covers a's space
			pfx("192.168.0.0/16"), // outside what a allows b
		},
		Protected: []Protected{{Prefix: pfx("10.2.0.0/16"), Owner: "local address space"}},
		Neighbors: []Neighbor{
			{Name: "a", Address: aAddr, ASN: 65001, LocalAddress: bAddr, Port: uint16(aPort)},
			{Name: "c", Address: cAddr, ASN: 65003, Passive: true},
		},
	}
	if err := b.Set(ctx, bState); err != nil {
		t.Fatal(err)
	}
	cState := State{
		Originate: []netip.Prefix{pfx("10.3.0.0/16")},
		Neighbors: []Neighbor{{Name: "b", Address: bAddr, ASN: 65002, LocalAddress: cAddr, Port: uint16(bPort)}},
	}
	if err := c.Set(ctx, cState); err != nil {
		t.Fatal(err)
	}

	// a: b's own prefixes and c's (transit through b) accepted, the rest
	// rejected with a reason, and counted.
	rib := waitRIB(t, a, "a learns from b", func(r RIB) bool {
		_, ok := find(r, "b", "10.3.0.0/16")
		return neighbor(r, "b").Received == 6 && ok
	})
	for _, tc := range []struct {
		prefix string
		ok     bool
		reason string
	}{
		{"10.2.0.0/16", true, ""},
		{"fd00:2::/48", true, ""},
		{"10.3.0.0/16", true, ""},
		{"10.1.5.0/24", false, "overlaps local address space 10.1.0.0/16"},
		{"10.0.0.0/8", false, "overlaps local address space 10.1.0.0/16"},
		{"192.168.0.0/16", false, "outside the peering's address_spaces"},
	} {
		r, _ := find(rib, "b", tc.prefix)
		if r.Accepted != tc.ok || r.Best != tc.ok || !strings.Contains(r.Reason.String(), tc.reason) {
			t.Errorf("a: route %s from b = %+v, want accepted=%v reason %q", tc.prefix, r, tc.ok, tc.reason)
		}
	}
	if r, _ := find(rib, "b", "10.3.0.0/16"); !slices.Equal(r.ASPath, []uint32{65002, 65003}) {
		t.Errorf("a: AS path of 10.3.0.0/16 = %v, want [65002 65003]", r.ASPath)
	}
	if n := neighbor(rib, "b"); n.State != "established" || n.Accepted != 3 || n.Rejected != 3 || n.RejectedTotal != 3 || n.Since.IsZero() {
		t.Errorf("a: neighbor b = %+v", n)
	}

	// c learns a's prefixes through b, AS path b a; a never gets its own
	// prefixes back (loop prevention), and nothing a rejected is
	// re-advertised... except by b, which accepted it: c sees b's hijack.
	rib = waitRIB(t, c, "c learns a through b", func(r RIB) bool {
		_, ok := find(r, "b", "10.1.0.0/16")
		_, ok6 := find(r, "b", "fd00:1::/48")
		return ok && ok6
	})
	if r, _ := find(rib, "b", "10.1.0.0/16"); !slices.Equal(r.ASPath, []uint32{65002, 65001}) || !r.Best {
		t.Errorf("c: 10.1.0.0/16 = %+v, want AS path [65002 65001], best", r)
	}
	if _, ok := find(must(a.Snapshot(ctx)), "b", "10.1.0.0/16"); ok {
		t.Error("a received its own prefix back")
	}

	// Dropping the allow-list re-filters what a holds, without a reset.
	aState.Neighbors[0].Allowed = nil
	if err := a.Set(ctx, aState); err != nil {
		t.Fatal(err)
	}
	rib = waitRIB(t, a, "192.168/16 accepted without allow-list", func(r RIB) bool {
		x, _ := find(r, "b", "192.168.0.0/16")
		return x.Accepted && x.Best
	})
	if r, _ := find(rib, "b", "10.1.5.0/24"); r.Accepted {
		t.Error("hijack accepted after allow-list removal")
	}

	// A hold (the probe's) withdraws b's routes at once; releasing it
	// brings the session and the routes back.
	if err := a.SetDown(ctx, "b", HoldProbe, "tunnel probe: no answer"); err != nil {
		t.Fatal(err)
	}
	// Routes go first; GoBGP reports the session state a moment later.
	rib = waitRIB(t, a, "held down", func(r RIB) bool {
		n := neighbor(r, "b")
		return n.Received == 0 && n.State != "established"
	})
	if n := neighbor(rib, "b"); n.State == "established" || n.Down != "tunnel probe: no answer" || n.DownCode != DownProbe {
		t.Errorf("held neighbor = %+v", n)
	}
	if err := a.SetDown(ctx, "b", HoldProbe, ""); err != nil {
		t.Fatal(err)
	}
	waitRIB(t, a, "released", func(r RIB) bool {
		x, _ := find(r, "b", "10.2.0.0/16")
		return neighbor(r, "b").State == "established" && x.Best
	})

	// Max-prefix: b announces 6 (5 own, 1 of c); a limit of 3 tears the session down
	// and keeps it down, with the reason.
	aState.Neighbors[0].MaxPrefixes = 3
	if err := a.Set(ctx, aState); err != nil {
		t.Fatal(err)
	}
	rib = waitRIB(t, a, "max-prefix", func(r RIB) bool {
		n := neighbor(r, "b")
		return strings.Contains(n.Down, "max-prefix") && n.Received == 0
	})
	// Down is the reason vgate holds the session (what `vgate bgp` shows);
	// GoBGP's LastDown names whichever side saw the close first.
	if n := neighbor(rib, "b"); !strings.Contains(n.Down, "max-prefix: more than 3") || n.State == "established" ||
		n.DownCode != DownMaxPrefix || n.LastDownCode != DownMaxPrefix {
		t.Errorf("after max-prefix: %+v", n)
	}
	// Raising the limit releases it.
	aState.Neighbors[0].MaxPrefixes = 100
	if err := a.Set(ctx, aState); err != nil {
		t.Fatal(err)
	}
	waitRIB(t, a, "limit raised", func(r RIB) bool {
		n := neighbor(r, "b")
		return n.State == "established" && n.Down == "" && n.DownCode == DownNone && n.Received == 6
	})

	// Removing the neighbor withdraws its routes.
	aState.Neighbors = nil
	if err := a.Set(ctx, aState); err != nil {
		t.Fatal(err)
	}
	if rib := must(a.Snapshot(ctx)); len(rib.Routes) != 0 || len(rib.Neighbors) != 0 {
		t.Errorf("after removing b: %s", dump(rib))
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestFingerprintStable: an idle speaker with several sessions gives the
// same fingerprint every time. GoBGP lists peers from a map, so without a
// canonical order an unchanged speaker looked changed several times a
// second and every poll replanned the gateway.
func TestFingerprintStable(t *testing.T) {
	s := startSpeaker(t, 65001, "127.0.0.1", -1)
	var st State
	for i := range 12 {
		st.Neighbors = append(st.Neighbors, Neighbor{
			Name: fmt.Sprintf("n%d", i), Address: netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)}), ASN: uint32(65100 + i), Passive: true,
		})
	}
	if err := s.Set(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	first := s.fingerprint()
	if strings.Count(first, ";") < 11 {
		t.Fatalf("fingerprint lists too few peers: %q", first)
	}
	for range 50 {
		if fp := s.fingerprint(); fp != first {
			t.Fatalf("fingerprint of an unchanged speaker changed:\n%s\n%s", first, fp)
		}
	}
}

func TestCanonicalFingerprintOrder(t *testing.T) {
	a := canonicalFingerprint([]string{"10.0.0.2/x", "10.0.0.1/y"}, []string{"1/1", "2/2"})
	b := canonicalFingerprint([]string{"10.0.0.1/y", "10.0.0.2/x"}, []string{"1/1", "2/2"})
	if a != b {
		t.Fatalf("peer order changes the fingerprint: %q vs %q", a, b)
	}
	if c := canonicalFingerprint([]string{"10.0.0.1/y", "10.0.0.2/x"}, []string{"1/1", "2/3"}); c == a {
		t.Fatal("a table change does not change the fingerprint")
	}
}

// TestPeerConfGracefulRestart: graceful restart is announced only when
// configured, for both families, with the Restart and Forwarding State
// bits clear (GoBGP ties them to LocalRestarting): vgate's forwarding does
// not survive its restart. A change of it is a new session.
func TestPeerConfGracefulRestart(t *testing.T) {
	n := Neighbor{Name: "frr", Address: netip.MustParseAddr("10.8.255.254"), ASN: 65008}
	if p := peerConf(n, false); p.GracefulRestart != nil || p.AfiSafis[0].MpGracefulRestart != nil {
		t.Fatalf("graceful restart announced without being configured: %v", p.GracefulRestart)
	}
	g := n
	g.GracefulRestart = GracefulRestart{RestartTime: 90 * time.Second, LongLived: time.Hour}
	p := peerConf(g, false)
	gr := p.GracefulRestart
	if gr == nil || !gr.Enabled || gr.RestartTime != 90 || gr.LocalRestarting || !gr.LonglivedEnabled {
		t.Fatalf("graceful restart: %v", gr)
	}
	for _, af := range p.AfiSafis {
		if !af.GetMpGracefulRestart().GetConfig().GetEnabled() || af.GetLongLivedGracefulRestart().GetConfig().GetRestartTime() != 3600 {
			t.Errorf("family %v: %v %v", af.Config.Family, af.MpGracefulRestart, af.LongLivedGracefulRestart)
		}
	}
	if sessionEqual(n, g) {
		t.Error("a change of graceful restart keeps the session")
	}
}
