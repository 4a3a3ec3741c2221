package wgbind

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
)

// hsMsg builds a handshake message or transport packet with sender and
// receiver indices where its type carries them: an initiation has a sender
// only, a response both (4:8 and 8:12), a transport packet a receiver only.
func hsMsg(typ, sender, receiver uint32) []byte {
	var b []byte
	switch typ {
	case msgInitiation:
		b = make([]byte, initiationSize)
		binary.LittleEndian.PutUint32(b[4:], sender)
	case msgResponse:
		b = make([]byte, responseSize)
		binary.LittleEndian.PutUint32(b[4:], sender)
		binary.LittleEndian.PutUint32(b[8:], receiver)
	default:
		b = make([]byte, transportMin)
		binary.LittleEndian.PutUint32(b[4:], receiver)
	}
	binary.LittleEndian.PutUint32(b, typ)
	return b
}

// describe names the packets a device received: "i77" for an initiation
// from sender 77, "r55" for a response from sender 55, "t" for transport.
func describe(pkts [][]byte) string {
	var s []string
	for _, p := range pkts {
		switch binary.LittleEndian.Uint32(p) {
		case msgInitiation:
			s = append(s, fmt.Sprintf("i%d", binary.LittleEndian.Uint32(p[4:])))
		case msgResponse:
			s = append(s, fmt.Sprintf("r%d", binary.LittleEndian.Uint32(p[4:])))
		default:
			s = append(s, "t")
		}
	}
	return fmt.Sprint(s)
}

// A device gets its handshake messages one at a time: the next waits until
// it answered the last (a response to an initiation's sender, transport to
// a response's sender), and a newer message replaces a waiting one of its
// kind. Transport, cookie replies and responses to a handshake the device
// no longer has are never held.
func TestHandshakeGate(t *testing.T) {
	m, r := newFakeMux(t)
	m.hsSettle = time.Minute // only answers open the gate (TestHandshakeGateSettle)
	a, fa := openBind(t, m, "a")
	// a's own initiation (sender 10): responses to 10 reach a.
	if err := a.Send([][]byte{hsMsg(msgInitiation, 10, 0)}, testEP); err != nil {
		t.Fatal(err)
	}
	// initiation stands in for the front door admitting one to a.
	initiation := func(sender uint32) { m.deliverHandshake(a, m.copyPacket(hsMsg(msgInitiation, sender, 0), testEP)) }
	receive := func(pkts ...[]byte) {
		for i, p := range pkts {
			r.put(i, p)
		}
		r.dispatch(len(pkts))
	}
	send := func(pkt []byte) {
		t.Helper()
		if err := a.Send([][]byte{pkt}, testEP); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(what, want string) {
		t.Helper()
		if got := describe(drain(t, a, fa)); got != want {
			t.Fatalf("%s: device got %s, want %s", what, got, want)
		}
	}

	initiation(77)
	expect("first initiation", "[i77]")
	// The peer's response to a's initiation 10 arrives while the device
	// works on 77: held. Transport and a cookie reply pass.
	receive(hsMsg(msgResponse, 55, 10), hsMsg(msgTransport, 0, 10), message(msgCookieReply, 10, cookieReplySize))
	expect("response while an initiation is with the device", "[t t]")
	initiation(78)
	initiation(79) // replaces 78
	expect("initiations while one is with the device", "[]")
	// Not the answer: transport to 77, or to another index.
	send(hsMsg(msgTransport, 0, 77))
	send(hsMsg(msgTransport, 0, 99))
	expect("no answer to 77 yet", "[]")
	// The answer to 77, a response: the device gave up its own handshake
	// 10 for the peer's, so the response to 10 can no longer touch it and
	// passes as it is; 79 goes through the gate.
	send(hsMsg(msgResponse, 21, 77))
	expect("after the answer to 77", "[i79 r55]")
	send(hsMsg(msgResponse, 22, 79))
	if a.hsWaiting.Load() {
		t.Fatal("gate closed after the answer to 79 with nothing waiting")
	}

	// a initiates again (11); the peer's response passes, and while it is
	// with the device the peer's initiation 91 and a duplicate of the
	// response wait. The keepalive to 56 completes a's handshake: the
	// duplicate can no longer touch it and passes as it is, 91 goes
	// through the gate, and later copies pass at once.
	send(hsMsg(msgInitiation, 11, 0))
	receive(hsMsg(msgResponse, 56, 11))
	expect("the response to 11", "[r56]")
	initiation(91)
	receive(hsMsg(msgResponse, 56, 11))
	expect("while the response to 11 is with the device", "[]")
	send(hsMsg(msgTransport, 0, 56))
	expect("after the keepalive to 56", "[i91 r56]")
	receive(hsMsg(msgResponse, 56, 11))
	expect("a replayed response to a completed handshake", "[r56]")
	if a.hs.held != 5 || a.hs.superseded != 1 {
		t.Errorf("held %d, superseded %d; want 5, 1", a.hs.held, a.hs.superseded)
	}
	send(hsMsg(msgResponse, 23, 91))
	initiation(92)
	expect("with the gate open", "[i92]")
}

// What the device sends over the relay instead of the shared port reaches
// the gate through Learn (relay.go): the initiation it sends makes the
// response to it wait behind the peer's initiation, and the response it
// sends to that initiation is the answer that opens the gate.
func TestHandshakeGateLearn(t *testing.T) {
	m, r := newFakeMux(t)
	m.hsSettle = time.Minute // only an answer can open the gate here
	a, fa := openBind(t, m, "a")
	Learn(a, hsMsg(msgInitiation, 12, 0))
	m.deliverHandshake(a, m.copyPacket(hsMsg(msgInitiation, 70, 0), testEP))
	r.put(0, hsMsg(msgResponse, 57, 12))
	r.dispatch(1)
	if got := describe(drain(t, a, fa)); got != "[i70]" {
		t.Fatalf("device got %s, want [i70] (the response to 12 waiting)", got)
	}
	Learn(a, hsMsg(msgResponse, 24, 70))
	if got := describe(drain(t, a, fa)); got != "[r57]" {
		t.Fatalf("after the relayed answer to 70: device got %s, want [r57]", got)
	}
	if a.hsWaiting.Load() {
		t.Error("gate still closed after the relayed answer")
	}
}

// A message the device does not answer (it rejected it) holds the next one
// back for hsSettle, no less; then a waiting response goes before a waiting
// initiation.
func TestHandshakeGateSettle(t *testing.T) {
	m, r := newFakeMux(t)
	m.hsSettle = 100 * time.Millisecond
	a, fa := openBind(t, m, "a")
	if err := a.Send([][]byte{hsMsg(msgInitiation, 11, 0)}, testEP); err != nil {
		t.Fatal(err)
	}
	passed := time.Now()
	m.deliverHandshake(a, m.copyPacket(hsMsg(msgInitiation, 90, 0), testEP))
	m.deliverHandshake(a, m.copyPacket(hsMsg(msgInitiation, 91, 0), testEP))
	r.put(0, hsMsg(msgResponse, 56, 11))
	r.dispatch(1)
	if got := describe(drain(t, a, fa)); got != "[i90]" {
		t.Fatalf("device got %s, want [i90]", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	var got string
	for got == "" || got == "[]" {
		if time.Now().After(deadline) {
			t.Fatalf("still held %v after an unanswered initiation", 5*time.Second)
		}
		time.Sleep(10 * time.Millisecond)
		got = describe(drain(t, a, fa))
	}
	// i91 follows r56 after another hsSettle, or sooner on a slow runner.
	if waited := time.Since(passed); !strings.HasPrefix(got, "[r56") || waited < m.hsSettle {
		t.Fatalf("%v after 90 passed: device got %s, want r56 first, no sooner than %v", waited, got, m.hsSettle)
	}
}
