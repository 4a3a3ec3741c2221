package routing

import (
	"context"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// An idle speaker is event-driven: Sessions answers without reading a
// route table, nothing polls GoBGP at the fast rate while nothing happens,
// and a route that arrives still calls OnChange.
func TestIdleSpeakerIsEventDriven(t *testing.T) {
	aAddr, bAddr := addr("127.0.0.1"), addr("127.0.0.2")
	aPort := freePort(t, aAddr)
	var changes atomic.Int64
	a, err := Start(context.Background(), Config{ASN: 65001, RouterID: aAddr, ListenPort: aPort,
		ListenAddresses: []netip.Addr{aAddr}, Log: testLogger(t), OnChange: func() { changes.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	b := startSpeaker(t, 65002, "127.0.0.2", -1)
	ctx := context.Background()
	if err := a.Set(ctx, State{Neighbors: []Neighbor{{Name: "b", Address: bAddr, ASN: 65002, Passive: true,
		Allowed: []netip.Prefix{pfx("10.2.0.0/16")}}}}); err != nil {
		t.Fatal(err)
	}
	bState := State{
		Originate: []netip.Prefix{pfx("10.2.0.0/16"), pfx("192.168.0.0/16")},
		Neighbors: []Neighbor{{Name: "a", Address: aAddr, ASN: 65001, LocalAddress: bAddr, Port: uint16(aPort)}},
	}
	if err := b.Set(ctx, bState); err != nil {
		t.Fatal(err)
	}
	rib := waitRIB(t, a, "a learns from b", func(r RIB) bool { return neighbor(r, "b").Received == 2 })

	// Sessions: the session part of a snapshot, without a full read.
	before := a.snapshots.Load()
	ns, err := a.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := a.snapshots.Load() - before; n != 0 {
		t.Errorf("Sessions read the RIB %d times, want 0", n)
	}
	want := neighbor(rib, "b")
	if len(ns) != 1 {
		t.Fatalf("Sessions = %+v, want one session", ns)
	}
	got := ns[0]
	if got.Name != "b" || got.State != "established" || got.State != want.State || got.Received != want.Received ||
		got.Accepted != want.Accepted || got.Rejected != want.Rejected || got.RejectedTotal != want.RejectedTotal ||
		got.DownCode != want.DownCode || !got.Since.Equal(want.Since) || got.MaxPrefixes != want.MaxPrefixes {
		t.Errorf("Sessions()[0] = %+v\nsnapshot has %+v", got, want)
	}

	// Idle: once settled (activeFor after the last event), counters are
	// read at most every slowPoll, and nothing changes. The old 10 Hz
	// poll read them 20 times in this window.
	// (After the one resend to a new session, resendAfterUp.)
	time.Sleep(resendAfter + activeFor + 3*pollInterval)
	fp, ch := a.fingerprints.Load(), changes.Load()
	time.Sleep(2 * time.Second)
	if n := a.fingerprints.Load() - fp; n > 1 {
		t.Errorf("idle speaker read its counters %d times in 2 s, want at most 1 (slow poll every %v)", n, slowPoll)
	}
	if n := changes.Load() - ch; n != 0 {
		t.Errorf("idle speaker reported %d changes", n)
	}

	// A route arriving is still noticed: OnChange runs and the snapshot
	// read after it has the route.
	ch = changes.Load()
	bState.Originate = append(bState.Originate, pfx("10.2.1.0/24"))
	if err := b.Set(ctx, bState); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for changes.Load() == ch && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if changes.Load() == ch {
		t.Fatal("a new route did not call OnChange")
	}
	waitRIB(t, a, "a learns 10.2.1.0/24", func(r RIB) bool { x, ok := find(r, "b", "10.2.1.0/24"); return ok && x.Accepted })

	// Sessions follows GoBGP's peer events (it lists no peer): b going
	// away shows as a session that is not established, without a
	// Snapshot in between.
	b.Close()
	before = a.snapshots.Load()
	deadline = time.Now().Add(30 * time.Second)
	for {
		ns, err := a.Sessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ns) == 1 && ns[0].State != "established" && ns[0].Since.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b closed 30 s ago; Sessions still says %+v", ns)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := a.snapshots.Load() - before; n != 0 {
		t.Errorf("Sessions read the RIB %d times, want 0", n)
	}
}

// A speaker's empty tables are small: GoBGP builds a global and a
// route-server table per family of its global config, each with 2048
// shards, so a speaker must name only the families it uses
// (docs/routing.md).
func TestSpeakerEmptyTablesAreSmall(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := startSpeaker(t, 65001, "127.0.0.1", -1)
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("live heap grew by %.1f MB for an empty speaker", float64(grew)/1e6)
	if grew > 4e6 {
		t.Errorf("an empty speaker holds %.1f MB of live heap, want < 4 MB (tables for families vgate never uses?)", float64(grew)/1e6)
	}
	runtime.KeepAlive(s)
}

// A new session gets its routes once more resendAfter after it came up
// (resendAfterUp: GoBGP v4.8.0 can miss routes that arrive in the moment
// a session comes up): the peer receives UPDATEs again with no change.
func TestNewSessionGetsRoutesAgain(t *testing.T) {
	aAddr, bAddr := addr("127.0.0.1"), addr("127.0.0.2")
	aPort := freePort(t, aAddr)
	a := startSpeaker(t, 65001, "127.0.0.1", aPort)
	b := startSpeaker(t, 65002, "127.0.0.2", -1)
	ctx := context.Background()
	if err := a.Set(ctx, State{Neighbors: []Neighbor{{Name: "b", Address: bAddr, ASN: 65002, Passive: true}}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, State{Originate: []netip.Prefix{pfx("10.2.0.0/16")},
		Neighbors: []Neighbor{{Name: "a", Address: aAddr, ASN: 65001, LocalAddress: bAddr, Port: uint16(aPort)}}}); err != nil {
		t.Fatal(err)
	}
	waitRIB(t, a, "a learns from b", func(r RIB) bool { return neighbor(r, "b").Received == 1 })
	updates := func() uint64 {
		var n uint64
		_ = a.bgp.ListPeer(ctx, &api.ListPeerRequest{Address: bAddr.String()}, func(p *api.Peer) {
			n = p.GetState().GetMessages().GetReceived().GetUpdate()
		})
		return n
	}
	first := updates()
	deadline := time.Now().Add(resendAfter + 10*time.Second)
	for updates() <= first {
		if time.Now().After(deadline) {
			t.Fatalf("b sent no UPDATE again after the session came up (%d UPDATEs)", first)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fsmStateName (peer events) and sessionState (ListPeer) name every state
// alike.
func TestFSMStateNames(t *testing.T) {
	for st, want := range map[bgp.FSMState]string{bgp.BGP_FSM_IDLE: "idle", bgp.BGP_FSM_CONNECT: "connect", bgp.BGP_FSM_ACTIVE: "active",
		bgp.BGP_FSM_OPENSENT: "opensent", bgp.BGP_FSM_OPENCONFIRM: "openconfirm", bgp.BGP_FSM_ESTABLISHED: "established"} {
		if got := fsmStateName(st); string(got) != want {
			t.Errorf("fsmStateName(%v) = %q, want %q", st, got, want)
		}
	}
}
