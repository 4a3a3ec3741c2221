package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/vgate-project/vgate/gateway/keys"
)

// ClientState is where a Client stands with its relay.
type ClientState string

const (
	StateConnecting ClientState = "connecting"
	StateConnected  ClientState = "connected"
	StateRefused    ClientState = "refused" // the relay does not accept our key
	StateFailed     ClientState = "failed"  // the last attempt failed; retrying
)

// ClientStatus is a Client's state for status and metrics.
type ClientStatus struct {
	URL   string      `json:"url"`
	State ClientState `json:"state"`
	Error string      `json:"error,omitempty"`
	Since time.Time   `json:"since"`
	// Relay is the relay's public key, once connected.
	Relay            keys.PublicKey `json:"relay_public_key"`
	Sent, Received   uint64         `json:"-"`
	DroppedQueueFull uint64         `json:"-"`
	DroppedDown      uint64         `json:"-"`
}

const (
	// clientQueueLen and clientQueueBytes bound the datagrams waiting for
	// the connection (as many pooled buffers fit in the byte bound).
	clientQueueLen   = 1024
	clientQueueBytes = clientQueueLen * poolBuf
	dialTimeout      = 10 * time.Second
	pingEvery        = 15 * time.Second
	backoffMin       = 200 * time.Millisecond
	backoffMax       = 3 * time.Second
	// A refused key is tried again after 1 s, doubling to 30 s: a relay
	// that follows a gateway's published keys learns a new key within a
	// second, so the first refusals are often a race, not a mistake.
	refusedMin = time.Second
	refusedMax = 30 * time.Second
)

// Client keeps one party's connection to one relay: it dials, proves its
// key, reconnects with a capped backoff, and carries datagrams for the
// peers registered on it. Send never blocks.
type Client struct {
	url, pin string
	key      keys.PrivateKey
	log      *slog.Logger
	http     *http.Client
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}

	out      chan *[]byte             // framed data messages waiting for the connection
	outBytes budget                   // their buffers' bytes
	dialed   atomic.Pointer[corkConn] // the connection the last dial made (cork.go)

	mu     sync.Mutex
	status ClientStatus
	recv   map[keys.PublicKey]receiver
	nextID uint64
	// fallback gets datagrams from peers nobody registered (a
	// point-to-site device, which has many peers).
	fallback atomic.Pointer[func(keys.PublicKey, []byte)]
	up       atomic.Bool

	sent, received, droppedFull, droppedDown atomic.Uint64
}

// NewClient starts a Client for the relay at url (wss://…), pinned by pin
// ("" to verify the certificate with the system roots), proving key.
func NewClient(url, pin string, key keys.PrivateKey, log *slog.Logger) (*Client, error) {
	tc, err := clientTLS(pin)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		url: url, pin: pin, key: key, log: log,
		done:     make(chan struct{}),
		out:      make(chan *[]byte, clientQueueLen),
		outBytes: budget{limit: clientQueueBytes},
		recv:     map[keys.PublicKey]receiver{},
	}
	d := &net.Dialer{}
	c.http = &http.Client{Transport: &http.Transport{
		TLSClientConfig: tc, ForceAttemptHTTP2: false, Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cc := &corkConn{Conn: nc}
			c.dialed.Store(cc)
			return cc, nil
		},
	}}
	c.status = ClientStatus{URL: url, State: StateConnecting, Since: time.Now()}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.run()
	return c, nil
}

// URL is the relay's URL.
func (c *Client) URL() string { return c.url }

// Pin is the pin the client checks.
func (c *Client) Pin() string { return c.pin }

// Close ends the connection and the reconnect loop.
func (c *Client) Close() {
	c.cancel()
	<-c.done
}

// Status reads the state and counters.
func (c *Client) Status() ClientStatus {
	c.mu.Lock()
	st := c.status
	c.mu.Unlock()
	st.Sent, st.Received = c.sent.Load(), c.received.Load()
	st.DroppedQueueFull, st.DroppedDown = c.droppedFull.Load(), c.droppedDown.Load()
	return st
}

// Connected reports whether the relay accepted us and the connection is up.
func (c *Client) Connected() bool { return c.up.Load() }

// setState records the client's state; changed says whether the state or
// its error differs from the last one (what status shows changed).
func (c *Client) setState(s ClientState, err error, relay keys.PublicKey) (changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if c.status.State != s || c.status.Error != msg {
		c.status.Since = time.Now()
		changed = true
	}
	c.status.State, c.status.Error = s, msg
	if !relay.IsZero() {
		c.status.Relay = relay
	}
	return changed
}

// Register delivers datagrams from peer to fn (from the client's reader
// goroutine: fn must not block) until the returned function is called.
func (c *Client) Register(peer keys.PublicKey, fn func([]byte)) (unregister func()) {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.recv[peer] = receiver{id, fn}
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		// Only if it is still ours: a newer Register may have replaced it.
		if r, ok := c.recv[peer]; ok && r.id == id {
			delete(c.recv, peer)
		}
		c.mu.Unlock()
	}
}

// SetFallback delivers datagrams from peers no Register names to fn (from
// the reader goroutine: fn must not block); nil removes it.
func (c *Client) SetFallback(fn func(src keys.PublicKey, d []byte)) {
	if fn == nil {
		c.fallback.Store(nil)
		return
	}
	c.fallback.Store(&fn)
}

type receiver struct {
	id uint64
	fn func([]byte)
}

var errRelayDown = errors.New("relay not connected")

// Send queues datagram d for peer without waiting: it is dropped (and
// counted) when the relay is not connected or the queue is full.
func (c *Client) Send(peer keys.PublicKey, d []byte) error {
	if !c.up.Load() {
		c.droppedDown.Add(1)
		return errRelayDown
	}
	if len(d) == 0 || len(d) > MaxDatagram {
		return fmt.Errorf("relay: datagram of %d bytes", len(d))
	}
	b := getBuf(dataHeader + len(d))
	*b = appendData(*b, peer, d)
	if c.outBytes.take(cap(*b)) {
		select {
		case c.out <- b:
			return nil
		default:
			c.outBytes.give(cap(*b))
		}
	}
	putBuf(b)
	c.droppedFull.Add(1)
	return nil // a full queue is congestion, not an error of the device
}

func (c *Client) run() {
	defer close(c.done)
	backoff, refusedWait := backoffMin, refusedMin
	for c.ctx.Err() == nil {
		err := c.session()
		c.up.Store(false)
		if c.ctx.Err() != nil {
			return
		}
		wait := backoff
		var connected *connectedErr
		switch {
		case websocket.CloseStatus(err) == StatusKeyRefused:
			lv := slog.LevelDebug // said once per change, as status shows it
			if c.setState(StateRefused, errors.New("the relay does not accept this gateway's key"), keys.PublicKey{}) {
				lv = slog.LevelWarn
			}
			c.log.Log(c.ctx, lv, "relay refused our key; add this gateway's public key to the relay's accepted keys", "url", c.url, "retry_in", refusedWait)
			wait = refusedWait
			refusedWait = min(2*refusedWait, refusedMax)
		case errors.As(err, &connected):
			c.setState(StateFailed, connected.err, keys.PublicKey{})
			c.log.Warn("relay connection lost; reconnecting", "url", c.url, "error", connected.err)
			backoff, refusedWait = backoffMin, refusedMin
			wait = backoff
		default:
			// A new failure (a wrong pin, a relay that does not answer)
			// is logged once at warn, as status shows it; its retries
			// are debug.
			lv := slog.LevelDebug
			if c.setState(StateFailed, err, keys.PublicKey{}) {
				lv = slog.LevelWarn
			}
			c.log.Log(c.ctx, lv, "relay connection failed; retrying", "url", c.url, "error", err, "retry_in", wait)
			backoff = min(2*backoff, backoffMax)
		}
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// connectedErr ends a session that had been accepted.
type connectedErr struct{ err error }

func (e *connectedErr) Error() string { return e.err.Error() }

// session dials, authenticates and carries traffic until the connection
// ends.
func (c *Client) session() error {
	dctx, cancel := context.WithTimeout(c.ctx, dialTimeout)
	defer cancel()
	c.dialed.Store(nil)
	ws, resp, err := websocket.Dial(dctx, c.url, &websocket.DialOptions{HTTPClient: c.http, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return err
	}
	cc := c.dialed.Load() // nil if the transport dialled otherwise
	defer ws.CloseNow()
	relayKey, err := Login(dctx, ws, resp.TLS, c.key)
	if err != nil {
		return err
	}
	cancel()

	ctx, stop := context.WithCancel(c.ctx)
	defer stop()
	c.setState(StateConnected, nil, relayKey)
	c.up.Store(true)
	c.log.Info("relay connected", "url", c.url, "relay_public_key", relayKey.String())
	var wd watchdog
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		wd.run(ctx, ws)
	}()
	go func() {
		defer wg.Done()
		defer stop()
		c.writeLoop(ctx, ws, cc, &wd)
	}()
	go func() {
		defer wg.Done()
		defer stop()
		t := time.NewTicker(pingEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(ctx, pingEvery)
			err := ws.Ping(pctx)
			cancel()
			if err != nil {
				return
			}
		}
	}()
	err = c.readLoop(ws)
	stop()
	ws.CloseNow()
	wg.Wait()
	if c.ctx.Err() != nil {
		return c.ctx.Err()
	}
	return &connectedErr{err}
}

// Login is the party's side of hello, auth and welcome on ws, a WebSocket
// to a relay over the TLS session cs: it proves key, bound to that session
// and to the certificate the relay presented in it, and returns the relay's
// public key. ws's read limit is set for data messages.
func Login(ctx context.Context, ws *websocket.Conn, cs *tls.ConnectionState, key keys.PrivateKey) (keys.PublicKey, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return keys.PublicKey{}, errNoBinding
	}
	bind, err := channelBinding(cs, cs.PeerCertificates[0].Raw)
	if err != nil {
		return keys.PublicKey{}, err
	}
	ws.SetReadLimit(maxMessage)
	typ, b, err := ws.Read(ctx)
	if err != nil {
		return keys.PublicKey{}, err
	}
	if typ != websocket.MessageBinary {
		return keys.PublicKey{}, errors.New("relay hello: not a binary message")
	}
	h, err := parseHello(b)
	if err != nil {
		return keys.PublicKey{}, err
	}
	a, err := prove(key, h, bind)
	if err != nil {
		return keys.PublicKey{}, err
	}
	if err := ws.Write(ctx, websocket.MessageBinary, a.marshal()); err != nil {
		return keys.PublicKey{}, err
	}
	typ, b, err = ws.Read(ctx)
	if err != nil {
		return keys.PublicKey{}, err
	}
	if typ != websocket.MessageBinary || len(b) != 1 || b[0] != msgWelcome {
		return keys.PublicKey{}, errors.New("relay: no welcome after auth")
	}
	return h.Relay, nil
}

// readLoop hands datagrams to their receivers until the connection ends
// (the watchdog closes it when the session ends).
func (c *Client) readLoop(ws *websocket.Conn) error {
	buf := make([]byte, maxMessage)
	for {
		typ, rd, err := ws.Reader(context.Background())
		if err != nil {
			return err
		}
		n, err := io.ReadFull(rd, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return err
		}
		if typ != websocket.MessageBinary {
			continue
		}
		src, d, err := parseData(buf[:n])
		if err != nil {
			continue
		}
		c.mu.Lock()
		r := c.recv[src]
		c.mu.Unlock()
		switch fb := c.fallback.Load(); {
		case r.fn != nil:
			c.received.Add(1)
			r.fn(d)
		case fb != nil:
			c.received.Add(1)
			(*fb)(src, d)
		}
	}
}

func (c *Client) writeLoop(ctx context.Context, ws *websocket.Conn, cc *corkConn, wd *watchdog) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-c.out:
			c.outBytes.give(cap(*b)) // the one being written is not queued
			if cc != nil {
				cc.k.cork(len(c.out) > 0) // cork.go
			}
			err := wd.write(ws, *b)
			putBuf(b)
			if err != nil {
				return
			}
			c.sent.Add(1)
		}
	}
}
