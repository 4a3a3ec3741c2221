package wgbind

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/device"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/keys"
)

// waitStats polls until done(stats) or fails after expectTimeout.
func waitStats(t testing.TB, m *Mux, what string, done func(api.PortStats) bool) api.PortStats {
	t.Helper()
	deadline := time.Now().Add(expectTimeout)
	for {
		st := m.Stats()
		if done(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats %+v", what, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// doorIdle waits until the front door has finished with every initiation
// received so far, and returns the stats then.
func doorIdle(t testing.TB, m *Mux) api.PortStats {
	t.Helper()
	waitStats(t, m, "front door", func(st api.PortStats) bool {
		return m.doorDone.Load()+st.DroppedHandshakeBusy == st.Initiations
	})
	// Read again: the snapshot the condition saw was taken before
	// doorDone was, so a worker may have finished in between. Every
	// counter a worker bumps comes before its doorDone.
	return m.Stats()
}

func TestFrontDoor(t *testing.T) {
	m, r := newFakeMux(t)
	gw := mustKey(t)
	m.SetPrivateKey(gw)
	remotes := map[string]keys.PrivateKey{"a": mustKey(t), "b": mustKey(t), "c": mustKey(t)}
	peers := map[string]keys.PublicKey{}
	for name, k := range remotes {
		peers[name] = k.Public()
	}
	if err := m.SetPeers(peers); err != nil {
		t.Fatal(err)
	}
	a, fa := openBind(t, m, "a")
	b, fb := openBind(t, m, "b")
	m.NewBind("c") // never opened

	initA := realInitiation(t, remotes["a"], gw.Public())
	initB := realInitiation(t, remotes["b"], gw.Public())
	badMAC := append([]byte(nil), initA...)
	badMAC[offMAC1] ^= 1
	batch := [][]byte{
		initA,
		initB,
		realInitiation(t, remotes["c"], gw.Public()),         // c is not open
		realInitiation(t, mustKey(t), gw.Public()),           // nobody's peer
		forgeInitiation(t, gw.Public(), peers["a"]),          // claims a's key
		spoofInitiation(gw.Public()),                         // does not decrypt
		badMAC,                                               // wrong MAC1
		realInitiation(t, remotes["a"], mustKey(t).Public()), // to another gateway: MAC1 wrong
	}
	for i, p := range batch {
		r.put(i, p)
	}
	r.dispatch(len(batch))
	st := doorIdle(t, m)
	want := api.PortStats{
		Dispatched: 2, DroppedNotOpen: 1,
		Initiations: uint64(len(batch)), DroppedBadMAC: 2, DroppedBadHandshake: 2, DroppedUnknownPeer: 1,
		X25519: 6, // one per initiation with a valid MAC1
	}
	if !sameCounters(st, want) {
		t.Errorf("stats %+v\nwant  %+v", st, want)
	}
	if got := drain(t, a, fa); len(got) != 1 || !bytes.Equal(got[0], initA) {
		t.Errorf("device a got %d packets, want its initiation", len(got))
	}
	if got := drain(t, b, fb); len(got) != 1 || !bytes.Equal(got[0], initB) {
		t.Errorf("device b got %d packets, want its initiation", len(got))
	}
	if sent := m.under.(*fakeBind).sentPackets(); len(sent) != 0 {
		t.Errorf("the mux sent %d packets, want none while not under load", len(sent))
	}

	// A replay of a's initiation authenticates but is no later than the
	// one admitted: dropped before the device and its handshake gate.
	r.put(0, initA)
	r.dispatch(1)
	st = doorIdle(t, m)
	want.Initiations++
	want.X25519++ // one: the static-static secret is precomputed
	want.DroppedReplay = 1
	if !sameCounters(st, want) {
		t.Errorf("replay: stats %+v\nwant  %+v", st, want)
	}
	if got := drain(t, a, fa); len(got) != 0 {
		t.Errorf("device a got %d packets from a replay, want none", len(got))
	}

	// Under load, an initiation without MAC2 draws one cookie reply and
	// no X25519; with the cookie's MAC2 it goes through.
	m.underLoadUntil.Store(int64(time.Since(m.epoch) + time.Hour))
	before := m.Stats()
	// A later initiation of a's: timestamps are whitened to ~17 ms, and
	// one no later than initA's is a replay.
	time.Sleep(20 * time.Millisecond)
	initA2 := realInitiation(t, remotes["a"], gw.Public())
	r.put(0, initA2)
	r.dispatch(1)
	st = waitStats(t, m, "cookie", func(st api.PortStats) bool { return st.CookieReplies == 1 })
	if st.X25519 != before.X25519 || st.Dispatched != before.Dispatched {
		t.Errorf("under load without MAC2: stats %+v", st)
	}
	sent := m.under.(*fakeBind).sentPackets()
	if len(sent) != 1 || len(sent[0]) != cookieReplySize || binary.LittleEndian.Uint32(sent[0]) != msgCookieReply ||
		binary.LittleEndian.Uint32(sent[0][4:]) != binary.LittleEndian.Uint32(initA2[4:]) {
		t.Fatalf("sent %d packets, want one cookie reply to the initiation's sender index", len(sent))
	}
	// The initiator (a wireguard-go cookie generator for the gateway's
	// key) accepts the reply and adds MAC2.
	var gen device.CookieGenerator
	gen.Init(device.NoisePublicKey(gw.Public()))
	retry := append([]byte(nil), initA2...)
	gen.AddMacs(retry)
	var reply device.MessageCookieReply
	reply.Type = binary.LittleEndian.Uint32(sent[0])
	reply.Receiver = binary.LittleEndian.Uint32(sent[0][4:])
	copy(reply.Nonce[:], sent[0][8:])
	copy(reply.Cookie[:], sent[0][8+len(reply.Nonce):])
	if !gen.ConsumeReply(&reply) {
		t.Fatal("wireguard-go rejects the mux's cookie reply")
	}
	gen.AddMacs(retry)
	r.put(0, retry)
	r.dispatch(1)
	st = waitStats(t, m, "retry with MAC2", func(st api.PortStats) bool { return st.Dispatched == before.Dispatched+1 })
	if st.CookieReplies != 1 || st.X25519 != before.X25519+1 {
		t.Errorf("after the retry: stats %+v", st)
	}
	if got := drain(t, a, fa); len(got) != 1 || !bytes.Equal(got[0], retry) {
		t.Errorf("device a got %d packets, want the retry", len(got))
	}
}

func TestSetPeers(t *testing.T) {
	m, _ := newFakeMux(t)
	m.SetPrivateKey(keys.PrivateKey{})
	k1, k2 := mustKey(t).Public(), mustKey(t).Public()
	if err := m.SetPeers(map[string]keys.PublicKey{"x": k1, "y": k2}); err != nil {
		t.Fatal(err)
	}
	m.NewBind("x")
	err := m.SetPeers(map[string]keys.PublicKey{"x": k1, "y": k2, "z": k1})
	if want := `wgbind: peer of device "z": same public key as the peer of device "x"`; err == nil || err.Error() != want {
		t.Errorf("duplicate key: %v, want %q", err, want)
	}
	if err := m.SetPeers(map[string]keys.PublicKey{"x": {}}); err == nil {
		t.Error("zero key accepted")
	}
	if n := len(m.door.Load().peers); n != 0 {
		t.Errorf("front door has %d peers before any private key, want 0", n)
	}
	m.SetPrivateKey(mustKey(t))
	d := m.door.Load()
	if len(d.peers) != 2 || d.peers[k1].b == nil || d.peers[k2].b != nil {
		t.Errorf("front door after refused updates: %+v", d.peers)
	}
	// Stats list named devices and open ones; a closed device whose name
	// is gone is forgotten.
	if got := fmt.Sprint(m.Stats().Devices); got != fmt.Sprintf("[{x false 0 %d 0 0 0 0001-01-01 00:00:00 +0000 UTC 0 0001-01-01 00:00:00 +0000 UTC  0}]", queueLen) {
		t.Errorf("devices %s", got)
	}
	if err := m.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	if n := len(m.Stats().Devices); n != 0 {
		t.Errorf("%d devices listed after their names went", n)
	}
}

// freshTimestamp admits a peer's initiation only with a later timestamp
// than the last it admitted from that peer; another peer key starts afresh.
func TestFreshTimestamp(t *testing.T) {
	b := &bind{}
	p1, p2 := [keyLen]byte{1}, [keyLen]byte{2}
	ts := func(sec, nsec byte) [12]byte { return [12]byte{7: sec, 11: nsec} }
	for i, c := range []struct {
		peer [keyLen]byte
		ts   [12]byte
		want bool
	}{
		{p1, ts(5, 0), true},
		{p1, ts(5, 0), false}, // replay
		{p1, ts(4, 9), false}, // older
		{p1, ts(5, 1), true},
		{p2, ts(1, 0), true}, // another key: afresh
		{p2, ts(1, 0), false},
		{p1, ts(5, 1), true}, // back to p1: afresh too (one peer per device)
	} {
		if got := b.freshTimestamp(c.peer, c.ts); got != c.want {
			t.Errorf("step %d: freshTimestamp(peer %d, % x) = %v, want %v", i, c.peer[0], c.ts, got, c.want)
		}
	}
}
