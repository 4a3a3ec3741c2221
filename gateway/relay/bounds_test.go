package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vgate-project/vgate/gateway/keys"
)

// rawLogin logs in as k with a bare WebSocket: unlike a Client it reads
// nothing unless the test does.
func rawLogin(t *testing.T, url, pin string, k keys.PrivateKey) *websocket.Conn {
	t.Helper()
	tc, err := clientTLS(pin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Login(ctx, ws, resp.TLS, k); err != nil {
		ws.CloseNow()
		t.Fatal(err)
	}
	return ws
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
	}
}

// A party that never reads holds at most QueueBytes of queue at the relay,
// however large the datagrams sent to it; when it logs in again, the
// replaced connection's queue is freed at once and the connection closed.
func TestQueueBytesAndReplace(t *testing.T) {
	a, sink := key(t), key(t)
	const qb = 256 << 10
	s := NewServer(key(t), Limits{QueueBytes: qb, RateBytes: -1}, nil)
	s.SetAccepted([]keys.PublicKey{a.Public(), sink.Public()})
	url, pin := startRelay(t, s)
	old := rawLogin(t, url, pin, sink)
	defer old.CloseNow()
	ca, _ := NewClient(url, pin, a, nil)
	waitState(t, ca, StateConnected)
	big := make([]byte, MaxDatagram)
	// Until the sink's socket buffers are full and its queue fills up.
	var most int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		ca.Send(sink.Public(), big)
		st := s.Stats()
		most = max(most, st.QueuedBytes)
		if st.DroppedQueueFull > 0 && st.QueuedBytes > qb-2*MaxDatagram {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue of a party that does not read never filled: %+v", st)
		}
	}
	if most > qb {
		t.Errorf("queued %d bytes for a party that does not read, want at most queue_bytes %d", most, qb)
	}
	// No more datagrams for the sink; then it logs in again.
	ca.Close()
	waitFor(t, "the sender's connection closed", func() bool { return s.Stats().Connections == 1 })
	fresh := rawLogin(t, url, pin, sink)
	defer fresh.CloseNow()
	if st := s.Stats(); st.QueuedBytes != 0 || st.Replaced != 1 {
		t.Errorf("after the same key logged in again: %d bytes queued, %d replaced; want the old queue freed at once", st.QueuedBytes, st.Replaced)
	}
	// The old connection is closed by the relay: reading it ends (after
	// the datagrams already in flight).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if _, _, err := old.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("the replaced connection is still open")
			}
			break
		}
	}
	waitFor(t, "only the new connection open", func() bool { return s.Stats().Open == 1 })
}

// The rate limit is per key: logging in again does not refill the bucket.
func TestRatePerKey(t *testing.T) {
	a, b := key(t), key(t)
	const rate = 200_000 // bytes per second, the burst too
	s := NewServer(key(t), Limits{RateBytes: rate}, nil)
	s.SetAccepted([]keys.PublicKey{a.Public(), b.Public()})
	url, pin := startRelay(t, s)
	cb, _ := NewClient(url, pin, b, nil)
	defer cb.Close()
	waitState(t, cb, StateConnected)
	payload := make([]byte, 10_000)
	msg := AppendData(nil, b.Public(), payload)
	// sendBurst logs a in on a new connection, sends 400 kB (twice the
	// burst) and returns what the relay forwarded and when it finished.
	sendBurst := func() (uint64, time.Time) {
		ws := rawLogin(t, url, pin, a)
		defer ws.CloseNow()
		before := s.Stats().ForwardedBytes
		for range 40 {
			if err := ws.Write(context.Background(), websocket.MessageBinary, msg); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the relay read the burst", func() bool {
			st := s.Stats()
			return st.ForwardedBytes+(st.DroppedRate)*uint64(len(payload)) >= before+40*uint64(len(payload))
		})
		return s.Stats().ForwardedBytes - before, time.Now()
	}
	start := time.Now()
	first, firstDone := sendBurst()
	second, secondDone := sendBurst()
	// What refilled while the bursts ran bounds what may pass beyond the
	// burst: a loaded host stretches the bursts, so the bound uses the
	// time they took rather than a guess.
	refill := func(from, to time.Time) uint64 { return uint64(to.Sub(from).Seconds()*rate) + 2*uint64(len(payload)) }
	t.Logf("forwarded %d bytes on the first connection (%v), %d on the next (%v)",
		first, firstDone.Sub(start), second, secondDone.Sub(firstDone))
	if first < rate/2 || first > rate+refill(start, firstDone) {
		t.Errorf("first connection forwarded %d bytes, want about the burst %d", first, rate)
	}
	// Only what refilled meanwhile: not a fresh burst.
	if second > refill(firstDone, secondDone) {
		t.Errorf("a new connection of the same key forwarded %d bytes after %d in %v: a fresh burst",
			second, first, secondDone.Sub(firstDone))
	}
}

// A key removed while its proof is being checked is refused, not
// registered: it never stays connected.
func TestRevokedWhileProving(t *testing.T) {
	a := key(t)
	s := NewServer(key(t), Limits{}, nil)
	s.SetAccepted([]keys.PublicKey{a.Public()})
	s.afterVerify = func() { s.SetAccepted(nil) }
	url, pin := startRelay(t, s)
	ca, _ := NewClient(url, pin, a, nil)
	defer ca.Close()
	waitState(t, ca, StateRefused)
	if st := s.Stats(); st.Connections != 0 || st.Refused == 0 {
		t.Errorf("stats %+v: want the party refused and not connected", st)
	}
}

// A key no longer accepted is closed within kickGrace, even when it does
// not answer the close message, and nothing more is forwarded from it.
func TestRevokedDropped(t *testing.T) {
	a, b := key(t), key(t)
	s := NewServer(key(t), Limits{}, nil)
	s.SetAccepted([]keys.PublicKey{a.Public(), b.Public()})
	url, pin := startRelay(t, s)
	wa := rawLogin(t, url, pin, a) // never reads: never answers the close
	defer wa.CloseNow()
	cb, _ := NewClient(url, pin, b, nil)
	defer cb.Close()
	waitState(t, cb, StateConnected)
	waitFor(t, "two parties", func() bool { return s.Stats().Connections == 2 })
	revoked := time.Now()
	s.SetAccepted([]keys.PublicKey{b.Public()})
	fwd := s.Stats().Forwarded
	_ = wa.Write(context.Background(), websocket.MessageBinary, AppendData(nil, b.Public(), []byte("after")))
	waitFor(t, "the revoked connection closed", func() bool { return s.Stats().Open == 1 })
	if d := time.Since(revoked); d > kickGrace+500*time.Millisecond {
		t.Errorf("revoked party closed after %v, want within %v", d, kickGrace)
	}
	if got := s.Stats().Forwarded; got != fwd {
		t.Errorf("%d datagrams forwarded from a revoked key", got-fwd)
	}
}

// A proved party from which nothing arrives for IdleTimeout is closed.
func TestIdleTimeout(t *testing.T) {
	a := key(t)
	s := NewServer(key(t), Limits{IdleTimeout: 1500 * time.Millisecond}, nil)
	s.SetAccepted([]keys.PublicKey{a.Public()})
	url, pin := startRelay(t, s)
	ws := rawLogin(t, url, pin, a) // sends no pings
	defer ws.CloseNow()
	waitFor(t, "the silent party closed", func() bool { return s.Stats().Open == 0 })
}

// A plain HTTP request gets its answer and the connection closes: no
// keep-alive to hold, and no HTTP/2.
func TestPlainRequestCloses(t *testing.T) {
	s := NewServer(key(t), Limits{}, nil)
	url, _ := startRelay(t, s)
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "wss://"), "/")
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p == "h2" {
		t.Fatal("the relay speaks HTTP/2")
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: relay\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the answer to a plain GET: %v, want the connection closed", err)
	}
	waitFor(t, "nothing open", func() bool { return s.Stats().Open == 0 })
}

// Headers beyond maxHeaderBytes are refused.
func TestHeaderBound(t *testing.T) {
	s := NewServer(key(t), Limits{}, nil)
	url, _ := startRelay(t, s)
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "wss://"), "/")
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	go io.WriteString(c, "GET / HTTP/1.1\r\nHost: relay\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return // closed without an answer: also refused
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers: status %d, want 431", resp.StatusCode)
	}
}

// The listener closes a connection over MaxConnections right after
// accepting it.
func TestListenerCountsFromAccept(t *testing.T) {
	s := NewServer(key(t), Limits{MaxConnections: 3, MaxPending: 3, MaxPendingPerSource: 3}, nil)
	url, _ := startRelay(t, s)
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "wss://"), "/")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 5 { // TCP only: not even a TLS handshake
		c, err := net.Dial("tcp", addr)
		if err == nil { // a reset may beat the dial's return
			held = append(held, c)
		}
	}
	waitFor(t, "two refused", func() bool { return s.Stats().RefusedFull+s.Stats().RefusedPending == 2 })
	if st := s.Stats(); st.Open != 3 {
		t.Errorf("stats %+v: want 3 open", st)
	}
}
