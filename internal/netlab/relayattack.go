package netlab

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/relay"
	"github.com/vgate-project/vgate/gateway/selfcert"
)

// The attacks on a relay's listener that lab tests make from the underlay,
// from inside a lab namespace (DialInNS), against a real `vgate relay`.

// RelayFlood is the unauthenticated attack from one address: HalfOpen
// workers each hold a connection upgraded to WebSocket that never answers
// the relay's hello, KeepAlive workers each hold a TLS connection after one
// plain GET /. Every worker dials again when its connection ends (after
// 0.5 s if it lasted less than a second), until the flood is stopped.
type RelayFlood struct {
	NS              string
	Relay           netip.AddrPort
	HalfOpen, Alive int
}

// RelayFloodStats is what the attacker saw.
type RelayFloodStats struct {
	Dials    int64 // TCP connections the relay accepted
	Sessions int64 // of those, TLS handshakes completed
	Upgraded int64 // upgrade requests answered 101 Switching Protocols
	Answered int64 // plain GETs answered
	// Held and MaxHeld: connections past the TLS handshake open now and
	// at most at once.
	Held, MaxHeld int64
}

// RelayFloodRun is a running RelayFlood.
type RelayFloodRun struct {
	f      RelayFlood
	cancel context.CancelFunc
	wg     sync.WaitGroup

	dials, sessions, upgraded, answered, held, maxHeld atomic.Int64
}

// StartRelayFlood starts f's workers.
func (l *Lab) StartRelayFlood(f RelayFlood) *RelayFloodRun {
	ctx, cancel := context.WithCancel(context.Background())
	r := &RelayFloodRun{f: f, cancel: cancel}
	for i := range f.HalfOpen + f.Alive {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for ctx.Err() == nil {
				began := time.Now()
				r.once(ctx, i < f.HalfOpen)
				if time.Since(began) < time.Second {
					select {
					case <-ctx.Done():
					case <-time.After(500 * time.Millisecond):
					}
				}
			}
		}()
	}
	return r
}

// Stats reads the counters so far.
func (r *RelayFloodRun) Stats() RelayFloodStats {
	return RelayFloodStats{
		Dials: r.dials.Load(), Sessions: r.sessions.Load(), Upgraded: r.upgraded.Load(), Answered: r.answered.Load(),
		Held: r.held.Load(), MaxHeld: r.maxHeld.Load(),
	}
}

// Stop ends every worker and its connection.
func (r *RelayFloodRun) Stop() RelayFloodStats {
	r.cancel()
	r.wg.Wait()
	return r.Stats()
}

const upgradeRequest = "GET / HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

const plainRequest = "GET / HTTP/1.1\r\nHost: relay\r\n\r\n"

// once makes one connection and holds it until the relay closes it.
func (r *RelayFloodRun) once(ctx context.Context, upgrade bool) {
	c, err := DialInNS(ctx, r.f.NS, netip.Addr{}, r.f.Relay)
	if err != nil {
		return
	}
	defer c.Close()
	r.dials.Add(1)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}})
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.HandshakeContext(ctx); err != nil {
		return
	}
	r.sessions.Add(1)
	n := r.held.Add(1)
	defer r.held.Add(-1)
	for m := r.maxHeld.Load(); n > m && !r.maxHeld.CompareAndSwap(m, n); m = r.maxHeld.Load() {
	}
	req := plainRequest
	if upgrade {
		req = upgradeRequest
	}
	if _, err := io.WriteString(tc, req); err != nil {
		return
	}
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return
	}
	if upgrade && resp.StatusCode == http.StatusSwitchingProtocols {
		r.upgraded.Add(1)
	}
	if !upgrade {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		r.answered.Add(1)
	}
	// Hold the connection, reading whatever comes (the hello), answering
	// nothing, until the relay closes it.
	_ = tc.SetDeadline(time.Time{})
	_, _ = io.Copy(io.Discard, br)
}

// ListenInNS opens a TCP listener at addr inside namespace ns (the socket
// is made there and stays there).
func ListenInNS(ns string, addr netip.AddrPort) (net.Listener, error) {
	var ln net.Listener
	err := InNS(ns, func() (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: listen on %v in %s: %w", addr, ns, err)
	}
	return ln, nil
}

// RelayHTTPClient is an HTTP client whose connections are made in namespace
// ns, trusting any certificate (an attacker does not care whom it talks to).
func RelayHTTPClient(ns string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, err
			}
			return DialInNS(ctx, ns, netip.Addr{}, ap)
		},
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13},
	}}
}

// RelayQueueFlood is an accepted key's attack on a relay's memory: from
// namespace NS it logs in as Key and sends datagrams of Size bytes to
// Dest (zero: itself) at Rate bytes per second, never reading what the
// relay sends back. Every Every it logs in again with the same key without
// closing the connections it has (up to Conns at once; the oldest is then
// closed), as a reconnecting party would leave a connection behind.
type RelayQueueFlood struct {
	NS         string
	URL        string
	Key        keys.PrivateKey
	Dest       keys.PublicKey
	Size, Rate int
	Conns      int
	Every      time.Duration
}

// RelayQueueFloodStats is what the attacker saw.
type RelayQueueFloodStats struct {
	Logins   int64 // connections the relay accepted (welcome)
	Failed   int64 // logins that failed
	Sent     int64 // datagrams written
	SentByte int64
	// Dropped: connections the relay closed while the attacker held them.
	Dropped int64
}

// RelayQueueFloodRun is a running RelayQueueFlood.
type RelayQueueFloodRun struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	logins, failed, sent, sentBytes, dropped atomic.Int64
}

// StartRelayQueueFlood starts f.
func (l *Lab) StartRelayQueueFlood(f RelayQueueFlood) *RelayQueueFloodRun {
	ctx, cancel := context.WithCancel(context.Background())
	r := &RelayQueueFloodRun{cancel: cancel}
	if f.Dest.IsZero() {
		f.Dest = f.Key.Public()
	}
	hc := RelayHTTPClient(f.NS)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		var open []context.CancelFunc
		defer func() {
			for _, c := range open {
				c()
			}
		}()
		t := time.NewTicker(f.Every)
		defer t.Stop()
		for {
			cctx, ccancel := context.WithCancel(ctx)
			open = append(open, ccancel)
			if len(open) > f.Conns {
				open[0]()
				open = open[1:]
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.session(cctx, hc, f)
			}()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return r
}

func (r *RelayQueueFloodRun) session(ctx context.Context, hc *http.Client, f RelayQueueFlood) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, f.URL, &websocket.DialOptions{HTTPClient: hc, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		r.failed.Add(1)
		return
	}
	defer ws.CloseNow()
	if _, err := relay.Login(dctx, ws, resp.TLS, f.Key); err != nil {
		r.failed.Add(1)
		return
	}
	r.logins.Add(1)
	msg := relay.AppendData(nil, f.Dest, make([]byte, f.Size))
	gap := time.Duration(float64(time.Second) * float64(len(msg)) / float64(f.Rate))
	next := time.Now()
	for ctx.Err() == nil {
		if err := ws.Write(ctx, websocket.MessageBinary, msg); err != nil {
			if ctx.Err() == nil {
				r.dropped.Add(1)
			}
			return
		}
		r.sent.Add(1)
		r.sentBytes.Add(int64(len(msg)))
		next = next.Add(gap)
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		} else if d < -time.Second {
			next = time.Now() // fell behind: no catching up in a burst
		}
	}
}

// Stats reads the counters so far.
func (r *RelayQueueFloodRun) Stats() RelayQueueFloodStats {
	return RelayQueueFloodStats{Logins: r.logins.Load(), Failed: r.failed.Load(), Sent: r.sent.Load(),
		SentByte: r.sentBytes.Load(), Dropped: r.dropped.Load()}
}

// Stop ends the flood and its connections.
func (r *RelayQueueFloodRun) Stop() RelayQueueFloodStats {
	r.cancel()
	r.wg.Wait()
	return r.Stats()
}

// RelayForwarder is a malicious relay: parties that pin it (its URL and
// Pin) and dial it have each of their connections forwarded, message by
// message, to the honest relay at Upstream: the upstream's hello to the
// party, the party's proof to the upstream, and so on both ways. It tries
// to log in at the upstream as the party with the party's own proof.
type RelayForwarder struct {
	URL, Pin string

	up  string // the honest relay's URL
	srv *http.Server
	hc  *http.Client

	mu       sync.Mutex
	outcomes []ForwardOutcome
}

// ForwardOutcome is how one forwarded login ended at the upstream relay.
type ForwardOutcome struct {
	// Welcome: the upstream accepted the forwarded proof (the attacker is
	// logged in as the party there).
	Welcome bool
	// CloseCode is the upstream's WebSocket close code when it refused
	// (-1: none).
	CloseCode int
	Err       string
}

// StartRelayForwarder runs a RelayForwarder at listen in namespace ns,
// with a fresh self-signed certificate in the lab's directory.
func (l *Lab) StartRelayForwarder(ns string, listen netip.AddrPort, upstream string) (*RelayForwarder, error) {
	dir := l.Path("forwarder-" + strconv.Itoa(int(listen.Port())))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cp, kp := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := selfcert.Create(cp, kp, "relay.evil.test", []string{"relay.evil.test"}); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(cp, kp)
	if err != nil {
		return nil, err
	}
	ln, err := ListenInNS(ns, listen)
	if err != nil {
		return nil, err
	}
	f := &RelayForwarder{URL: fmt.Sprintf("wss://%s/", listen), Pin: relay.Pin(cert.Certificate[0]), up: upstream, hc: RelayHTTPClient(ns)}
	f.srv = &http.Server{
		Handler:           http.HandlerFunc(f.serve),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = f.srv.ServeTLS(ln, "", "") }()
	return f, nil
}

// Close stops the forwarder.
func (f *RelayForwarder) Close() { f.srv.Close() }

// Outcomes lists the forwarded logins so far.
func (f *RelayForwarder) Outcomes() []ForwardOutcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ForwardOutcome(nil), f.outcomes...)
}

func (f *RelayForwarder) record(o ForwardOutcome) {
	f.mu.Lock()
	f.outcomes = append(f.outcomes, o)
	f.mu.Unlock()
}

func (f *RelayForwarder) serve(w http.ResponseWriter, r *http.Request) {
	party, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	defer party.CloseNow()
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	up, _, err := websocket.Dial(ctx, f.up, &websocket.DialOptions{HTTPClient: f.hc, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		f.record(ForwardOutcome{CloseCode: -1, Err: "dial upstream: " + err.Error()})
		return
	}
	defer up.CloseNow()
	up.SetReadLimit(1 << 17)
	party.SetReadLimit(1 << 17)
	// hello: upstream → party; auth: party → upstream; answer: upstream → party.
	pass := func(from, to *websocket.Conn) ([]byte, error) {
		typ, b, err := from.Read(ctx)
		if err != nil {
			return nil, err
		}
		return b, to.Write(ctx, typ, b)
	}
	if _, err := pass(up, party); err != nil {
		f.record(ForwardOutcome{CloseCode: -1, Err: "hello: " + err.Error()})
		return
	}
	if _, err := pass(party, up); err != nil {
		f.record(ForwardOutcome{CloseCode: -1, Err: "auth: " + err.Error()})
		return
	}
	b, err := pass(up, party)
	switch {
	case err != nil:
		f.record(ForwardOutcome{CloseCode: int(websocket.CloseStatus(err)), Err: err.Error()})
		if code := websocket.CloseStatus(err); code != -1 {
			party.Close(code, "forwarded")
		}
		return
	case len(b) == 1 && b[0] == 0x03:
		f.record(ForwardOutcome{Welcome: true, CloseCode: -1})
	default:
		f.record(ForwardOutcome{CloseCode: -1, Err: fmt.Sprintf("unexpected answer %x", b)})
		return
	}
	// Logged in as the party: carry both ways until either side ends.
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	go func() {
		defer rcancel()
		for {
			typ, b, err := up.Read(rctx)
			if err != nil || party.Write(rctx, typ, b) != nil {
				return
			}
		}
	}()
	for {
		typ, b, err := party.Read(rctx)
		if err != nil || up.Write(rctx, typ, b) != nil {
			return
		}
	}
}

// ProcUsage is a process's open descriptors and memory, sampled.
type ProcUsage struct {
	Samples        int
	FDs, MaxFDs    int
	RSS, MaxRSS    int64 // bytes
	HWM            int64 // VmHWM: the peak resident set the kernel saw
	Threads, MaxTh int
}

// WatchProc samples process pid's descriptors (/proc/PID/fd) and memory
// (/proc/PID/status) every interval until the returned function is
// called, which returns the figures.
func WatchProc(pid int, every time.Duration) (stop func() ProcUsage) {
	var mu sync.Mutex
	var u ProcUsage
	done := make(chan struct{})
	finished := make(chan struct{})
	sample := func() {
		fds, err := CountFDs(pid)
		if err != nil {
			return
		}
		st, err := ProcStatus(pid)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		u.Samples++
		u.FDs = fds
		u.MaxFDs = max(u.MaxFDs, fds)
		u.RSS = kB(st["VmRSS"])
		u.MaxRSS = max(u.MaxRSS, u.RSS)
		u.HWM = max(u.HWM, kB(st["VmHWM"]))
		u.Threads, _ = strconv.Atoi(st["Threads"])
		u.MaxTh = max(u.MaxTh, u.Threads)
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() ProcUsage {
		close(done)
		<-finished
		sample()
		mu.Lock()
		defer mu.Unlock()
		return u
	}
}

// CountFDs counts process pid's open file descriptors.
func CountFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}

// kB parses a /proc status size ("1234 kB") into bytes.
func kB(s string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(s, " kB"), 10, 64)
	return n << 10
}
