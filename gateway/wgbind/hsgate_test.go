package wgbind

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
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
		binary.LittleEndian.PutUint32(b[12:], sender) // the ephemeral key: one per response
	default:
		b = make([]byte, transportMin)
		binary.LittleEndian.PutUint32(b[4:], receiver)
	}
	binary.LittleEndian.PutUint32(b, typ)
	if typ == msgResponse {
		withMAC1(b)
	}
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

// gateRig drives the gate of one device "a" on a fake Mux: what the device
// sends, what arrives over the shared port, what the front door admits,
// and what reaches the device.
type gateRig struct {
	t  *testing.T
	m  *Mux
	r  *reader
	a  *bind
	fa conn.ReceiveFunc
}

func newGateRig(t *testing.T, settle time.Duration) *gateRig {
	m, r := newFakeMux(t)
	m.hsSettle = settle
	a, fa := openBind(t, m, "a")
	return &gateRig{t: t, m: m, r: r, a: a, fa: fa}
}

// send is the device sending pkt on the shared port.
func (g *gateRig) send(pkt []byte) {
	g.t.Helper()
	if err := g.a.Send([][]byte{pkt}, testEP); err != nil {
		g.t.Fatal(err)
	}
}

// receive is one batch arriving on the shared port.
func (g *gateRig) receive(pkts ...[]byte) {
	for i, p := range pkts {
		g.r.put(i, p)
	}
	g.r.dispatch(len(pkts))
}

// initiation stands in for the front door admitting an initiation to a.
func (g *gateRig) initiation(sender uint32) {
	g.m.deliverHandshake(g.a, g.m.copyPacket(hsMsg(msgInitiation, sender, 0), testEP))
}

// expect checks what reached the device since the last look (describe).
func (g *gateRig) expect(what, want string) {
	g.t.Helper()
	if got := describe(drain(g.t, g.a, g.fa)); got != want {
		g.t.Fatalf("%s: device got %s, want %s", what, got, want)
	}
}

// A device never holds an initiation and a response at once: one waits
// until the device answered the other (a response to an initiation's
// sender, transport to a response's sender), and a newer initiation
// replaces a waiting one. Transport, cookie replies and responses to a
// handshake the device no longer has are never held.
func TestHandshakeGate(t *testing.T) {
	g := newGateRig(t, time.Minute) // only answers open the gate (TestHandshakeGateSettle)
	a, send, receive, initiation, expect := g.a, g.send, g.receive, g.initiation, g.expect
	// a's own initiation (sender 10): responses to 10 reach a.
	send(hsMsg(msgInitiation, 10, 0))

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

// A message the device does not answer (it rejected it) holds back one of
// the other kind for hsSettle, no less; then what waits goes in the order
// it came, so an initiation waits behind at most one response.
func TestHandshakeGateSettle(t *testing.T) {
	m, r := newFakeMux(t)
	m.hsSettle = 100 * time.Millisecond
	a, fa := openBind(t, m, "a")
	if err := a.Send([][]byte{hsMsg(msgInitiation, 11, 0)}, testEP); err != nil {
		t.Fatal(err)
	}
	passed := time.Now()
	m.deliverHandshake(a, m.copyPacket(hsMsg(msgResponse, 56, 11), testEP))
	m.deliverHandshake(a, m.copyPacket(hsMsg(msgInitiation, 90, 0), testEP))
	r.put(0, hsMsg(msgResponse, 57, 11)) // came after 90: goes after it
	r.dispatch(1)
	// Collect what reaches the device, and when (no sooner than the
	// settle times; later on a slow runner).
	type arrival struct {
		what  string
		after time.Duration
	}
	var got []arrival
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		for _, p := range drain(t, a, fa) {
			got = append(got, arrival{describe([][]byte{p}), time.Since(passed)})
		}
		time.Sleep(5 * time.Millisecond)
	}
	want := []struct {
		what     string
		noSooner time.Duration
	}{{"[r56]", 0}, {"[i90]", m.hsSettle}, {"[r57]", 2 * m.hsSettle}}
	if len(got) != len(want) {
		t.Fatalf("device got %v, want r56, i90, r57", got)
	}
	for i, w := range want {
		if got[i].what != w.what || got[i].after < w.noSooner {
			t.Fatalf("device got %v; want %s no sooner than %v", got, w.what, w.noSooner)
		}
	}
}

// Forged responses to the device's handshake in flight — anyone who saw
// its initiation and knows the gateway's public key can make them — never
// hold back the genuine one: responses go to the device side by side. A
// copy of one it holds is dropped, and so is one whose MAC1 is wrong, before
// it counts as an answer to the initiation.
func TestHandshakeGateForgedResponses(t *testing.T) {
	g := newGateRig(t, time.Minute) // only answers open the gate here
	m, a, send, receive, expect := g.m, g.a, g.send, g.receive, g.expect
	send(hsMsg(msgInitiation, 10, 0))
	badMAC := hsMsg(msgResponse, 40, 10)
	badMAC[60] ^= 1
	receive(badMAC)
	expect("a response with a wrong MAC1", "[]")
	if d := deviceStats(t, m, "a"); d.UnansweredSince.IsZero() {
		t.Error("a response with a wrong MAC1 counted as the peer's answer")
	}
	receive(hsMsg(msgResponse, 41, 10), hsMsg(msgResponse, 42, 10))
	receive(hsMsg(msgResponse, 55, 10)) // the genuine one, after two forgeries
	receive(hsMsg(msgResponse, 41, 10)) // a copy of one the device holds
	expect("forgeries and the genuine response", "[r41 r42 r55]")
	// The device consumed 55 (its keepalive goes to 55): the gate opens,
	// and later responses to 10 no longer reach it through the gate.
	send(hsMsg(msgTransport, 0, 55))
	if a.hsWaiting.Load() || a.ownInit.Load() != 0 {
		t.Fatalf("after the keepalive to 55: gate closed %v, own handshake %d", a.hsWaiting.Load(), a.ownInit.Load())
	}
	receive(hsMsg(msgResponse, 43, 10))
	expect("a response to a completed handshake", "[r43]")
	if st := m.Stats(); st.DroppedResponseBadMAC != 1 || st.DroppedResponseLater != 1 {
		t.Errorf("dropped: bad MAC1 %d, later %d; want 1, 1", st.DroppedResponseBadMAC, st.DroppedResponseLater)
	}
}

// While the device holds the peer's initiation, the first response to its
// own handshake waits and later ones are dropped (a flood of forgeries
// cannot push the first out); a response that came before a waiting
// initiation goes first, one that came after goes after it.
func TestHandshakeGateFirstResponseWins(t *testing.T) {
	g := newGateRig(t, time.Minute) // only answers open the gate here
	m, a, send, receive, initiation, expect := g.m, g.a, g.send, g.receive, g.initiation, g.expect
	send(hsMsg(msgInitiation, 10, 0))
	initiation(77)
	expect("the peer's initiation", "[i77]")
	for sender := uint32(60); sender < 80; sender++ {
		receive(hsMsg(msgResponse, sender, 10))
	}
	expect("responses while the initiation is with the device", "[]")
	// The device rejects 77 and starts again: its own handshake is now 11,
	// so the response waiting for 10 is stale and a new one may wait.
	send(hsMsg(msgInitiation, 11, 0))
	receive(hsMsg(msgResponse, 81, 11))
	expect("a response to the new handshake", "[r60]")
	receive(hsMsg(msgResponse, 82, 11))
	initiation(78)
	// The answer to 77 never comes; pretend the settle time passed.
	a.hs.mu.Lock()
	gen := a.hs.gen
	a.hs.mu.Unlock()
	m.hsSettled(a, gen)
	expect("after the initiation settled", "[r81]")
	send(hsMsg(msgTransport, 0, 81)) // consumed: 78 is next
	expect("after the keepalive to 81", "[i78]")
	if st := m.Stats(); st.DroppedResponseLater != 20 {
		t.Errorf("later responses dropped: %d, want 20 (19 to 10, 82 to 11)", st.DroppedResponseLater)
	}
}
