package relay

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vgate-project/vgate/gateway/keys"
)

// The relay's framing as a party can send it: after a real TLS handshake
// and WebSocket upgrade, the fuzzer's bytes go raw onto the connection —
// WebSocket frames of any kind, length, masking and fragmentation carrying
// auth and data messages — either in place of the proof (login false) or
// after a valid login (login true). The relay must not panic, must register
// no key but the one that proved itself, and must release the connection
// (descriptor, queue) once the party hangs up.
func FuzzServerStream(f *testing.F) {
	k := key(f)
	for _, seed := range serverStreamSeeds(k.Public()) {
		f.Add(seed.b, seed.login)
	}
	s := NewServer(key(f), Limits{RateBytes: -1, ProofTimeout: 5 * time.Second, IdleTimeout: 2 * time.Second}, nil)
	s.SetAccepted([]keys.PublicKey{k.Public()})
	url, pin := startRelayTB(f, s)
	tc, err := clientTLS(pin)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte, login bool) {
		var mu sync.Mutex
		var raw net.Conn
		hc := &http.Client{Transport: &http.Transport{
			DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&tls.Dialer{Config: tc}).DialContext(ctx, network, addr)
				mu.Lock()
				raw = c
				mu.Unlock()
				return c, err
			},
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		if login {
			if _, err := Login(ctx, ws, resp.TLS, k); err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		c := raw
		mu.Unlock()
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Write(b)
		if st := s.Stats(); st.Connections > 1 {
			t.Fatalf("%d parties registered from one connection", st.Connections)
		}
		s.mu.RLock()
		for key := range s.conns {
			if key != k.Public() {
				t.Errorf("registered key %s, which proved nothing", key)
			}
		}
		s.mu.RUnlock()
		c.Close()
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(time.Millisecond) {
			st := s.Stats()
			if st.Open == 0 && st.Connections == 0 && st.QueuedBytes == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the party hung up: %+v", st)
			}
		}
	})
}

type streamSeed struct {
	b     []byte
	login bool
}

// wsFrame is one client (masked) WebSocket frame: fin, opcode, payload.
func wsFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n < 1<<16:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i%4])
	}
	return out
}

func serverStreamSeeds(self keys.PublicKey) []streamSeed {
	data := AppendData(nil, self, []byte("datagram"))
	var other keys.PublicKey
	other[0] = 9
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	return []streamSeed{
		{wsFrame(true, 2, auth{Key: self}.marshal()), false},                       // a proof that does not verify
		{wsFrame(true, 2, auth{Key: other}.marshal()), false},                      // a key not accepted
		{wsFrame(true, 1, []byte("hello")), false},                                 // text instead of auth
		{wsFrame(true, 2, data), true},                                             // a datagram to itself
		{cat(wsFrame(false, 2, data[:10]), wsFrame(true, 0, data[10:])), true},     // fragmented
		{cat(wsFrame(true, 9, []byte("ping")), wsFrame(true, 2, data)), true},      // ping, then data
		{wsFrame(true, 8, []byte{0x03, 0xe8}), true},                               // close
		{[]byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true}, // huge length
		{[]byte{0x82, 0x05, 'a', 'b', 'c', 'd', 'e'}, false},                       // unmasked
	}
}

// The framing as a relay can send it to a party: after the upgrade, the
// fuzzer's bytes go raw to a party that logs in and then reads datagrams.
// The party must not panic, must not report a login unless it got a hello
// and a welcome, and must end when the relay hangs up.
func FuzzClientStream(f *testing.F) {
	relayKey := key(f)
	var hl hello
	hl.Relay = relayKey.Public()
	helloFrame := serverFrame(2, hl.marshal())
	welcome := serverFrame(2, []byte{msgWelcome})
	f.Add(append(append(append([]byte{}, helloFrame...), welcome...), serverFrame(2, AppendData(nil, keys.PublicKey{1}, []byte("x")))...))
	f.Add(helloFrame)
	f.Add(append(append([]byte{}, helloFrame...), serverFrame(8, []byte{0x0f, 0xa3})...)) // closed 4003
	f.Add(serverFrame(2, []byte{msgHello, 1}))
	f.Add([]byte{0x82, 0x7f, 0, 0, 0, 0, 0, 0x10, 0, 0})

	cert, pin, err := LoadOrCreateCert("", "", f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	var mu sync.Mutex
	var stream []byte
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h, ok := w.(http.Hijacker)
			if !ok {
				return
			}
			conn, brw, err := h.Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			key := r.Header.Get("Sec-WebSocket-Key")
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(key) + "\r\n\r\n")
			mu.Lock()
			brw.Write(stream)
			mu.Unlock()
			brw.Flush()
			if cw, ok := conn.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite() // the party reads the stream, then its end
			}
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 4096)
			for { // what the party answers, until it hangs up
				if _, err := conn.Read(buf); err != nil {
					return
				}
			}
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "")
	f.Cleanup(func() { srv.Close() })
	url := "wss://" + ln.Addr().String() + "/"
	tc, err := clientTLS(pin)
	if err != nil {
		f.Fatal(err)
	}
	party := key(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		mu.Lock()
		stream = b
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}, CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
		defer lcancel()
		if _, err := Login(lctx, ws, resp.TLS, party); err != nil {
			return
		}
		c := &Client{recv: map[keys.PublicKey]receiver{}}
		c.SetFallback(func(keys.PublicKey, []byte) {})
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = c.readLoop(ws)
		}()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatal("the party still reads 3 s after the relay hung up")
		}
	})
}

// acceptKey is the Sec-WebSocket-Accept answering key (RFC 6455 4.2.2).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// serverFrame is one unmasked (server) WebSocket frame.
func serverFrame(op byte, payload []byte) []byte {
	out := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		out = append(out, byte(n))
	default:
		out = append(out, 126, byte(n>>8), byte(n))
	}
	return append(out, payload...)
}
