package wgbind

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/keys"
)

// Handshake messages that came over the relay pass the checks of those
// over UDP: an initiation the front door's (MAC1, the peer's key, a fresh
// timestamp) and also must be from the peer whose relay connection carried
// it; a response needs a valid MAC1 and one of the device's own indices,
// and goes through the handshake gate. Under load, no cookie is asked of
// the relay's (its sender proved its key to the relay), and none is sent
// over UDP.
func TestRelayReceive(t *testing.T) {
	m, _ := newFakeMux(t)
	gw := fakeGatewayKey
	ka, kb := mustKey(t), mustKey(t)
	if err := m.SetPeers(map[string]keys.PublicKey{"a": ka.Public(), "b": kb.Public()}); err != nil {
		t.Fatal(err)
	}
	a, fa := openBind(t, m, "a")
	b, fb := openBind(t, m, "b")

	initA := realInitiation(t, ka, gw.Public())
	badMAC := append([]byte(nil), initA...)
	badMAC[offMAC1] ^= 1
	Receive(a, badMAC, testEP)
	Receive(b, initA, testEP) // a's initiation over b's peer's connection
	st := doorIdle(t, m)
	want := api.PortStats{Initiations: 2, DroppedBadMAC: 1, DroppedUnknownPeer: 1, X25519: 1}
	if !sameCounters(st, want) {
		t.Fatalf("stats %+v\nwant  %+v", st, want)
	}
	Receive(a, initA, testEP)
	st = doorIdle(t, m)
	want.Initiations++
	want.X25519++
	want.Dispatched++
	if !sameCounters(st, want) {
		t.Fatalf("stats %+v\nwant  %+v", st, want)
	}
	if got := drain(t, a, fa); len(got) != 1 || !bytes.Equal(got[0], initA) {
		t.Fatalf("device a got %d packets, want its initiation", len(got))
	}
	if got := drain(t, b, fb); len(got) != 0 {
		t.Fatalf("device b got %d packets, want none", len(got))
	}
	// a answers it: the gate opens.
	if err := a.Send([][]byte{hsMsg(msgResponse, 9, binary.LittleEndian.Uint32(initA[4:8]))}, testEP); err != nil {
		t.Fatal(err)
	}
	Receive(a, initA, testEP) // the same again: a replay
	st = doorIdle(t, m)
	want.Initiations++
	want.X25519++
	want.DroppedReplay++
	if !sameCounters(st, want) {
		t.Fatalf("replay: stats %+v\nwant  %+v", st, want)
	}

	// Under load: no cookie reply, the initiation passes.
	m.underLoadUntil.Store(int64(time.Since(m.epoch) + time.Hour))
	time.Sleep(20 * time.Millisecond) // timestamps are whitened to ~17 ms
	initA2 := realInitiation(t, ka, gw.Public())
	sent := len(m.under.(*fakeBind).sentPackets())
	Receive(a, initA2, testEP)
	st = doorIdle(t, m)
	want.Initiations++
	want.X25519++
	want.Dispatched++
	if !sameCounters(st, want) {
		t.Fatalf("under load: stats %+v", st)
	}
	if n := len(m.under.(*fakeBind).sentPackets()) - sent; n != 0 {
		t.Fatalf("the mux sent %d packets over UDP for a relay's initiation", n)
	}
	// a answers the initiation (the gate opens) and sends its own (sender 10).
	if got := drain(t, a, fa); len(got) != 1 || !bytes.Equal(got[0], initA2) {
		t.Fatalf("device a got %d packets, want its initiation", len(got))
	}
	if err := a.Send([][]byte{hsMsg(msgResponse, 11, binary.LittleEndian.Uint32(initA2[4:8]))}, testEP); err != nil {
		t.Fatal(err)
	}
	if err := a.Send([][]byte{hsMsg(msgInitiation, 10, 0)}, testEP); err != nil {
		t.Fatal(err)
	}
	b.learn(msgInitiation, hsMsg(msgInitiation, 20, 0)) // b's index

	// Responses.
	bad := hsMsg(msgResponse, 30, 10)
	bad[len(bad)-32] ^= 1 // MAC1, then MAC2 (16 bytes each)
	before := m.Stats()
	Receive(a, bad, testEP)
	Receive(a, hsMsg(msgResponse, 31, 20), testEP) // b's index
	Receive(a, hsMsg(msgResponse, 32, 99), testEP) // nobody's
	st = m.Stats()
	if st.DroppedResponseBadMAC != before.DroppedResponseBadMAC+1 || st.DroppedUnknownIndex != before.DroppedUnknownIndex+2 {
		t.Fatalf("responses: stats %+v", st)
	}
	good := hsMsg(msgResponse, 33, 10)
	Receive(a, good, testEP)
	if got := drain(t, a, fa); len(got) != 1 || !bytes.Equal(got[0], good) {
		t.Fatalf("device a got %d packets, want the response to its initiation", len(got))
	}
	if got := drain(t, b, fb); len(got) != 0 {
		t.Fatalf("device b got %d packets, want none", len(got))
	}
	// The gate holds it: a copy (same ephemeral key) is dropped.
	Receive(a, good, testEP)
	if st := m.Stats(); st.DroppedResponseLater != before.DroppedResponseLater+1 {
		t.Fatalf("a copy of the held response: stats %+v", st)
	}
}
