package relay

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vgate-project/vgate/gateway/keys"
)

func key(t testing.TB) keys.PrivateKey {
	t.Helper()
	k, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startRelay runs a Server behind TLS with a fresh self-signed certificate
// and returns its wss URL and pin.
func startRelay(t *testing.T, s *Server) (url, pin string) { return startRelayTB(t, s) }

func startRelayTB(t testing.TB, s *Server) (url, pin string) {
	t.Helper()
	cert, pin, err := LoadOrCreateCert("", "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Serve(ln, cert); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return "wss://" + ln.Addr().String() + "/", pin
}

func waitState(t *testing.T, c *Client, want ClientState) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c.Status().State == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("client state %+v, want %s", c.Status(), want)
}

// Two accepted parties exchange datagrams through the relay, both ways,
// byte for byte; an unaccepted key is refused; a wrong pin never connects.
func TestRelayForwards(t *testing.T) {
	a, b, stranger := key(t), key(t), key(t)
	s := NewServer(key(t), Limits{}, nil)
	s.SetAccepted([]keys.PublicKey{a.Public(), b.Public()})
	url, pin := startRelay(t, s)

	ca, err := NewClient(url, pin, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := NewClient(url, pin, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	gotA, gotB := make(chan []byte, 10), make(chan []byte, 10)
	ca.Register(b.Public(), func(d []byte) { gotA <- bytes.Clone(d) })
	cb.Register(a.Public(), func(d []byte) { gotB <- bytes.Clone(d) })
	waitState(t, ca, StateConnected)
	waitState(t, cb, StateConnected)
	if st := ca.Status(); st.Relay != s.PublicKey() {
		t.Errorf("client saw relay key %s, want %s", st.Relay, s.PublicKey())
	}

	big := bytes.Repeat([]byte{0xab}, MaxDatagram)
	for _, msg := range [][]byte{[]byte("hello"), big} {
		if err := ca.Send(b.Public(), msg); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-gotB:
			if !bytes.Equal(d, msg) {
				t.Fatalf("b got %d bytes, want %d", len(d), len(msg))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("b got nothing (relay stats %+v)", s.Stats())
		}
	}
	if err := cb.Send(a.Public(), []byte("back")); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-gotA:
		if string(d) != "back" {
			t.Fatalf("a got %q", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a got nothing")
	}

	cs, err := NewClient(url, pin, stranger, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	waitState(t, cs, StateRefused)
	if s.Stats().Refused == 0 {
		t.Error("refusal not counted")
	}

	wrong := "sha256:" + strings.Repeat("00", 32)
	cw, err := NewClient(url, wrong, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cw.Close()
	waitState(t, cw, StateFailed)
	if e := cw.Status().Error; !strings.Contains(e, "does not match the pin") {
		t.Errorf("wrong pin error %q", e)
	}
	// Dropping a's key closes its connection.
	s.SetAccepted([]keys.PublicKey{b.Public()})
	waitState(t, ca, StateRefused)
}

// A party that never reads fills only its own queue at the relay: while
// another party keeps flooding it, a third party's datagrams to a fourth
// all arrive.
func TestRelaySlowPartyStallsNobody(t *testing.T) {
	a, b, c, slow := key(t), key(t), key(t), key(t)
	s := NewServer(key(t), Limits{QueueLen: 8}, nil)
	s.SetAccepted([]keys.PublicKey{a.Public(), b.Public(), c.Public(), slow.Public()})
	url, pin := startRelay(t, s)
	ca, _ := NewClient(url, pin, a, nil)
	defer ca.Close()
	cc, _ := NewClient(url, pin, c, nil)
	defer cc.Close()
	cb, _ := NewClient(url, pin, b, nil)
	defer cb.Close()
	cslow, _ := NewClient(url, pin, slow, nil)
	defer cslow.Close()
	block := make(chan struct{})
	defer close(block)
	cslow.Register(a.Public(), func([]byte) { <-block }) // never returns while the test runs
	got := make(chan struct{}, 1000)
	cb.Register(c.Public(), func([]byte) { got <- struct{}{} })
	for _, cl := range []*Client{ca, cb, cc, cslow} {
		waitState(t, cl, StateConnected)
	}
	payload := make([]byte, 1200)
	for range 2000 {
		ca.Send(slow.Public(), payload)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().DroppedQueueFull == 0 && time.Now().Before(deadline) {
		ca.Send(slow.Public(), payload)
		time.Sleep(time.Millisecond)
	}
	if s.Stats().DroppedQueueFull == 0 {
		t.Fatalf("the slow party's queue never overflowed: %+v", s.Stats())
	}
	// a keeps flooding the stalled party while c sends to b.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				ca.Send(slow.Public(), payload)
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	// One at a time: each must arrive while the flood goes on.
	for i := range 100 {
		if err := cc.Send(b.Public(), payload); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("b got %d of 100 datagrams while the slow party stalled (%+v)", i, s.Stats())
		}
	}
}

func TestConnectionCap(t *testing.T) {
	a, b := key(t), key(t)
	s := NewServer(key(t), Limits{MaxConnections: 1}, nil)
	s.SetAccepted([]keys.PublicKey{a.Public(), b.Public()})
	url, pin := startRelay(t, s)
	ca, _ := NewClient(url, pin, a, nil)
	defer ca.Close()
	waitState(t, ca, StateConnected)
	cb, _ := NewClient(url, pin, b, nil)
	defer cb.Close()
	waitState(t, cb, StateFailed)
	if s.Stats().RefusedFull == 0 {
		t.Errorf("cap not counted: %+v", s.Stats())
	}
}

func TestProof(t *testing.T) {
	relay, party, other := key(t), key(t), key(t)
	h := hello{Relay: relay.Public()}
	h.Nonce[0] = 7
	var b binding
	b.Exporter[0], b.Cert[0] = 1, 2
	a, err := prove(party, h, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(relay, h.Nonce, a, b); err != nil {
		t.Fatalf("a valid proof: %v", err)
	}
	// Another key claimed with this proof, another nonce, a flipped bit.
	claim := a
	claim.Key = other.Public()
	if err := verify(relay, h.Nonce, claim, b); !errors.Is(err, errBadProof) {
		t.Errorf("a proof for another key: %v", err)
	}
	n2 := h.Nonce
	n2[0] = 8
	if err := verify(relay, n2, a, b); !errors.Is(err, errBadProof) {
		t.Errorf("a replayed proof: %v", err)
	}
	flip := a
	flip.MAC[3] ^= 1
	if err := verify(relay, h.Nonce, flip, b); !errors.Is(err, errBadProof) {
		t.Errorf("a corrupted proof: %v", err)
	}
	// The same proof in another TLS session, or for another certificate
	// (a relay in the middle forwarding the hello).
	other1, other2 := b, b
	other1.Exporter[0] ^= 1
	other2.Cert[31] ^= 1
	for _, ob := range []binding{other1, other2} {
		if err := verify(relay, h.Nonce, a, ob); !errors.Is(err, errBadProof) {
			t.Errorf("a proof made for binding %x verified for %x: %v", b, ob, err)
		}
	}
	// A low-order public key.
	var zero keys.PublicKey
	if err := verify(relay, h.Nonce, auth{Key: zero}, b); !errors.Is(err, errWeakKey) {
		t.Errorf("the zero key: %v", err)
	}
}

func TestRoute(t *testing.T) {
	tests := []struct {
		name                   string
		toRelay, init, probing bool
		unanswered             int32
		fresh                  bool
		haveRelay, haveUDP     bool
		udp, relay             bool
	}{
		{"no relay: udp", false, false, false, 0, true, false, true, true, false},
		{"udp data with a relay", false, false, false, 5, false, true, true, true, false},
		{"udp data before any answer", false, false, false, 1, true, true, true, true, false},
		{"first initiation: both ways", false, true, false, 1, true, true, true, true, true},
		{"second initiation, nothing over udp yet: both ways", false, true, false, 2, true, true, true, true, true},
		{"udp worked: first initiation", false, true, false, 1, false, true, true, true, false},
		{"udp worked: second initiation", false, true, false, 2, false, true, true, true, false},
		{"udp worked: third initiation, two failed: relay too", false, true, false, 3, false, true, true, true, true},
		{"failed, no relay configured", false, true, false, 9, true, false, true, true, false},
		{"relay data", true, false, false, 0, false, true, true, false, true},
		{"relay initiation: udp too", true, true, false, 0, false, true, true, true, true},
		{"probe: udp only", true, true, true, 0, false, true, true, true, false},
		{"probe without udp endpoint", true, true, true, 0, true, true, false, false, true},
		{"relay removed", true, false, false, 0, false, false, true, true, false},
	}
	for _, tt := range tests {
		udp, relay := route(tt.toRelay, tt.init, tt.probing, tt.unanswered, tt.fresh, tt.haveRelay, tt.haveUDP)
		if udp != tt.udp || relay != tt.relay {
			t.Errorf("%s: route = udp %v relay %v; want %v %v", tt.name, udp, relay, tt.udp, tt.relay)
		}
	}
}

func TestPin(t *testing.T) {
	dir := t.TempDir()
	_, p1, err := LoadOrCreateCert("", "", dir, []string{"relay.example"})
	if err != nil {
		t.Fatal(err)
	}
	_, p2, err := LoadOrCreateCert("", "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 {
		t.Errorf("the self-signed certificate changed across starts: %s, %s", p1, p2)
	}
	if _, err := ParsePin(p1); err != nil {
		t.Errorf("own pin does not parse: %v", err)
	}
	for _, bad := range []string{"", "sha256:", "sha1:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("g", 64), "sha256:" + strings.Repeat("a", 62)} {
		if _, err := ParsePin(bad); err == nil {
			t.Errorf("ParsePin(%q) accepted", bad)
		}
	}
}

// dialFrom opens a WebSocket to url from local address src that never
// answers the hello.
func dialFrom(t *testing.T, url, pin, src string) (*websocket.Conn, error) {
	t.Helper()
	tc, err := clientTLS(pin)
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	httpc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DialContext: d.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpc})
	return c, err
}

// One source holds at most MaxPendingPerSource connections that have not
// proved a key, all sources together at most MaxPending; the silent ones
// are closed at their proof deadline, and a party that proves its key gets
// in.
func TestPendingCaps(t *testing.T) {
	a := key(t)
	s := NewServer(key(t), Limits{MaxConnections: 40, MaxPending: 12, MaxPendingPerSource: 5, ProofTimeout: 2 * time.Second}, nil)
	s.SetAccepted([]keys.PublicKey{a.Public()})
	url, pin := startRelay(t, s)
	var silent []*websocket.Conn
	defer func() {
		for _, c := range silent {
			c.CloseNow()
		}
	}()
	upgraded := map[string]int{}
	for _, src := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		for range 8 {
			if c, err := dialFrom(t, url, pin, src); err == nil {
				silent = append(silent, c)
				upgraded[src]++
			}
		}
	}
	if upgraded["127.0.0.2"] != 5 || upgraded["127.0.0.3"] != 5 || upgraded["127.0.0.4"] != 2 {
		t.Errorf("silent connections upgraded by source %v, want 5, 5 and 2 (per source 5, 12 in all)", upgraded)
	}
	st := s.Stats()
	if st.Pending != 12 || st.RefusedSource != 6 || st.RefusedPending != 6 {
		t.Errorf("stats %+v: want 12 pending, 6 refused per source, 6 over max_pending", st)
	}
	// The deadline frees every slot; then a party proves its key.
	for deadline := time.Now().Add(5 * time.Second); s.Stats().Pending > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("silent connections not closed at their proof deadline: %+v", s.Stats())
		}
	}
	if st := s.Stats(); st.ProofTimeouts != 12 || st.Open != 0 {
		t.Errorf("after the deadline: %+v, want 12 proof timeouts and nothing open", st)
	}
	ca, _ := NewClient(url, pin, a, nil)
	defer ca.Close()
	waitState(t, ca, StateConnected)
}

// The relay's metrics follow the Prometheus conventions and count what
// the relay did.
func TestMetricsLint(t *testing.T) {
	a := key(t)
	s := NewServer(key(t), Limits{}, nil)
	s.SetAccepted([]keys.PublicKey{a.Public()})
	s.refused.Add(2)
	s.droppedNoPeer.Add(3)
	reg, err := newRegistry(s)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	want := `
# HELP vgate_relay_accepted_keys Public keys the relay accepts (accept, accept_gateway).
# TYPE vgate_relay_accepted_keys gauge
vgate_relay_accepted_keys 1
# HELP vgate_relay_refused_connections_total Connections refused or closed before they proved a key, by reason: key (not accepted, or the proof did not verify), full (max_connections), pending (max_pending), source (max_pending_per_source), timeout (no proof in time).
# TYPE vgate_relay_refused_connections_total counter
vgate_relay_refused_connections_total{reason="full"} 0
vgate_relay_refused_connections_total{reason="key"} 2
vgate_relay_refused_connections_total{reason="pending"} 0
vgate_relay_refused_connections_total{reason="source"} 0
vgate_relay_refused_connections_total{reason="timeout"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "vgate_relay_accepted_keys", "vgate_relay_refused_connections_total"); err != nil {
		t.Error(err)
	}
}
