package relay

import (
	"context"
	"crypto/rand"
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

// Limits bound what one relay holds. Zero fields take the defaults.
type Limits struct {
	// MaxConnections caps the TCP connections, counted from accept to
	// close whatever they do: it bounds the relay's descriptors. More are
	// reset right after accept. Default 1000.
	MaxConnections int
	// MaxPending caps the connections that have not proved a key yet (in
	// the TLS handshake, the HTTP request, or the hello), so that they
	// cannot take every slot from parties that do. Default
	// MaxConnections/2.
	MaxPending int
	// MaxPendingPerSource caps those per source: an IPv4 address, an
	// IPv6 /64. Default 16.
	MaxPendingPerSource int
	// ProofTimeout is how long after accept a connection may take to
	// prove a key (TLS, upgrade, hello and auth); then it is closed.
	// Default 5 s.
	ProofTimeout time.Duration
	// QueueLen and QueueBytes bound each connection's send queue, in
	// datagrams and in bytes of buffer. A datagram for a connection whose
	// queue is full is dropped: a slow party never stalls the others.
	// Defaults 512 and 1 MiB.
	QueueLen   int
	QueueBytes int
	// RateBytes limits what one key may send, in bytes per second (a
	// token bucket with a burst of one second, kept per key across its
	// connections). Default 125 MB/s (1 Gbit/s); negative means no limit.
	RateBytes int64
	// IdleTimeout closes a proved connection on which nothing arrived for
	// that long (parties ping every 15 s). Default 45 s.
	IdleTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxConnections <= 0 {
		l.MaxConnections = 1000
	}
	if l.MaxPending <= 0 {
		l.MaxPending = max(l.MaxConnections/2, 1)
	}
	if l.MaxPendingPerSource <= 0 {
		l.MaxPendingPerSource = 16
	}
	if l.ProofTimeout <= 0 {
		l.ProofTimeout = 5 * time.Second
	}
	if l.QueueLen <= 0 {
		l.QueueLen = 512
	}
	if l.QueueBytes <= 0 {
		l.QueueBytes = 1 << 20
	}
	if l.RateBytes == 0 {
		l.RateBytes = 125_000_000
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 45 * time.Second
	}
	return l
}

const (
	// writeTimeout: a connection that cannot take a message for this long
	// is closed (its queue keeps dropping meanwhile).
	writeTimeout = 10 * time.Second
	// kickGrace: a party whose key is no longer accepted gets its close
	// message for this long, then its connection is closed.
	kickGrace = 500 * time.Millisecond
	// httpTimeout bounds each step of the HTTP exchange before the
	// upgrade (TLS handshake, request headers, the response).
	httpTimeout = 5 * time.Second
	// maxHeaderBytes bounds a request's headers (net/http adds 4 KiB).
	maxHeaderBytes = 4 << 10
)

// ServerStats counts what the relay did.
type ServerStats struct {
	Connections      int    `json:"connections"`          // authenticated now
	Open             int    `json:"open"`                 // TCP connections now, from accept
	Pending          int    `json:"pending"`              // of those, not proved yet
	Refused          uint64 `json:"refused"`              // key not accepted or proof wrong
	RefusedFull      uint64 `json:"refused_full"`         // over MaxConnections
	RefusedPending   uint64 `json:"refused_pending"`      // over MaxPending
	RefusedSource    uint64 `json:"refused_source"`       // over MaxPendingPerSource
	ProofTimeouts    uint64 `json:"proof_timeouts"`       // no proof within ProofTimeout
	Forwarded        uint64 `json:"forwarded"`            // datagrams queued to their destination
	ForwardedBytes   uint64 `json:"forwarded_bytes"`      // their sizes
	DroppedNoPeer    uint64 `json:"dropped_no_peer"`      // destination not connected
	DroppedQueueFull uint64 `json:"dropped_queue_full"`   // destination's queue full
	DroppedRate      uint64 `json:"dropped_rate"`         // sender over its rate
	DroppedMalformed uint64 `json:"dropped_malformed"`    // not a data message
	QueuedBytes      int64  `json:"queued_bytes"`         // in every send queue now
	Replaced         uint64 `json:"replaced_connections"` // closed for a newer one of the same key
}

// Server is the relay: it accepts TLS connections (Serve), upgrades them
// to WebSocket, authenticates the party and forwards its datagrams.
type Server struct {
	key    keys.PrivateKey
	pub    keys.PublicKey
	limits Limits
	log    *slog.Logger

	accepted atomic.Pointer[map[keys.PublicKey]bool]

	mu      sync.RWMutex
	conns   map[keys.PublicKey]*peerConn
	buckets map[keys.PublicKey]*bucket // per key, across its connections

	lnMu sync.Mutex
	ln   *listener
	hs   *http.Server
	cert []byte // the leaf certificate served (DER): the proof's binding

	refusals logLimit
	// afterVerify, if set, runs between a verified proof and the party's
	// registration (tests: a key removed while its proof is in flight).
	afterVerify func()

	refused, forwarded, forwardedBytes, replaced           atomic.Uint64
	droppedNoPeer, droppedFull, droppedRate, droppedMalfmd atomic.Uint64
	queued                                                 atomic.Int64
}

// NewServer returns a relay with static key pair key. It accepts no key
// until SetAccepted.
func NewServer(key keys.PrivateKey, limits Limits, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		key: key, pub: key.Public(), limits: limits.withDefaults(), log: log,
		conns: map[keys.PublicKey]*peerConn{}, buckets: map[keys.PublicKey]*bucket{},
		refusals: logLimit{every: 100 * time.Millisecond},
	}
	s.accepted.Store(&map[keys.PublicKey]bool{})
	return s
}

// PublicKey is the relay's static public key.
func (s *Server) PublicKey() keys.PublicKey { return s.pub }

// Serve accepts connections on ln with TLS certificate cert until Close:
// every connection is counted from accept (listener.go), HTTP/1.1 only,
// one request per connection, each step of the exchange timed.
func (s *Server) Serve(ln net.Listener, cert tls.Certificate) error {
	if len(cert.Certificate) == 0 {
		return errors.New("relay: no certificate")
	}
	hs := &http.Server{
		Handler: http.HandlerFunc(s.serveHTTP),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS13,
			NextProtos:   []string{"http/1.1"},
		},
		// HTTP/2 off: one connection, one request, one upgrade.
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ReadHeaderTimeout: httpTimeout,
		ReadTimeout:       httpTimeout,
		WriteTimeout:      httpTimeout,
		IdleTimeout:       httpTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnContext:       connContext,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	hs.SetKeepAlivesEnabled(false)
	l := newListener(ln, s.limits)
	s.lnMu.Lock()
	if s.ln != nil {
		s.lnMu.Unlock()
		return errors.New("relay: Serve called twice")
	}
	s.ln, s.hs, s.cert = l, hs, cert.Certificate[0]
	s.lnMu.Unlock()
	err := hs.ServeTLS(l, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops Serve and closes every connection.
func (s *Server) Close() error {
	s.lnMu.Lock()
	hs, l := s.hs, s.ln
	s.lnMu.Unlock()
	if hs == nil {
		return nil
	}
	err := hs.Close()
	l.Close() // hijacked connections too
	return err
}

// SetAccepted replaces the accepted keys. Connected parties whose key is
// no longer accepted stop being forwarded at once and are closed within
// kickGrace; a party whose proof is being checked meanwhile is refused
// (serveHTTP checks again when it registers).
func (s *Server) SetAccepted(list []keys.PublicKey) {
	m := make(map[keys.PublicKey]bool, len(list))
	for _, k := range list {
		m[k] = true
	}
	s.mu.Lock()
	s.accepted.Store(&m)
	var gone []*peerConn
	for k, pc := range s.conns {
		if !m[k] {
			gone = append(gone, pc)
			delete(s.conns, k)
		}
	}
	for k := range s.buckets {
		if !m[k] {
			delete(s.buckets, k)
		}
	}
	s.mu.Unlock()
	for _, pc := range gone {
		s.log.Info("relay: key no longer accepted; closing", "public_key", pc.key.String())
		pc.kick(StatusKeyRefused, "key not accepted")
	}
}

// Stats reads the counters.
func (s *Server) Stats() ServerStats {
	s.mu.RLock()
	n := len(s.conns)
	s.mu.RUnlock()
	st := ServerStats{
		Connections: n, Refused: s.refused.Load(),
		Forwarded: s.forwarded.Load(), ForwardedBytes: s.forwardedBytes.Load(),
		DroppedNoPeer: s.droppedNoPeer.Load(), DroppedQueueFull: s.droppedFull.Load(),
		DroppedRate: s.droppedRate.Load(), DroppedMalformed: s.droppedMalfmd.Load(),
		QueuedBytes: s.queued.Load(), Replaced: s.replaced.Load(),
	}
	s.lnMu.Lock()
	l := s.ln
	s.lnMu.Unlock()
	if l != nil {
		st.Open, st.Pending = l.counts()
		st.RefusedFull = l.refused[refuseFull].Load()
		st.RefusedPending = l.refused[refusePending].Load()
		st.RefusedSource = l.refused[refuseSource].Load()
		st.ProofTimeouts = l.refused[refuseTimeout].Load()
	}
	return st
}

// peerConn is one authenticated party.
type peerConn struct {
	key     keys.PublicKey
	c       *websocket.Conn
	tc      *trackedConn
	q       chan *[]byte
	qBytes  budget        // buffer bytes in q
	queued  *atomic.Int64 // the server's total
	stopped atomic.Bool
	done    chan struct{}
	once    sync.Once
}

// enqueue offers a framed message without waiting.
func (pc *peerConn) enqueue(b *[]byte) bool {
	if pc.stopped.Load() {
		return false
	}
	n := cap(*b)
	if !pc.qBytes.take(n) {
		return false
	}
	select {
	case pc.q <- b:
		pc.queued.Add(int64(n))
		return true
	default:
		pc.qBytes.give(n)
		return false
	}
}

// dequeued accounts for a message taken from q.
func (pc *peerConn) dequeued(b *[]byte) {
	n := cap(*b)
	pc.qBytes.give(n)
	pc.queued.Add(-int64(n))
}

// stop ends forwarding to and from pc and frees its queue now.
func (pc *peerConn) stop() {
	pc.once.Do(func() {
		pc.stopped.Store(true)
		close(pc.done)
		for {
			select {
			case b := <-pc.q:
				pc.dequeued(b)
				putBuf(b)
			default:
				return
			}
		}
	})
}

// kick stops pc and closes its connection: with a close message when code
// is not zero (for at most kickGrace), at once otherwise.
func (pc *peerConn) kick(code websocket.StatusCode, reason string) {
	pc.stop()
	if code == 0 {
		pc.tc.Close()
		return
	}
	go func() {
		t := time.AfterFunc(kickGrace, func() { pc.tc.Close() })
		defer t.Stop()
		pc.c.Close(code, reason)
	}()
}

// serveHTTP serves one party for as long as its connection lasts.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	tc, _ := r.Context().Value(connKey{}).(*trackedConn)
	if tc == nil { // not through Serve: unbounded, refused
		http.Error(w, "relay: connection not counted", http.StatusInternalServerError)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // no browsers: the Origin header means nothing here
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept wrote the HTTP error
	}
	defer c.CloseNow()
	c.SetReadLimit(maxMessage)
	ctx, cancel := context.WithDeadline(r.Context(), tc.deadline())
	defer cancel()

	key, err := s.authenticate(ctx, c, r.TLS)
	if err != nil && ctx.Err() != nil { // no proof in time: not a refused key
		tc.expire()
		return
	}
	if err == nil && s.afterVerify != nil {
		s.afterVerify()
	}
	var pc *peerConn
	if err == nil {
		pc, err = s.register(key, c, tc)
	}
	if err != nil {
		s.refused.Add(1)
		if n, ok := s.refusals.allow(time.Now()); ok {
			s.log.Info("relay: party refused", "remote", r.RemoteAddr, "error", err, "refusals_not_logged", n)
		}
		c.Close(StatusKeyRefused, "key not accepted") // bounded by the proof deadline
		return
	}
	if err := c.Write(ctx, websocket.MessageBinary, []byte{msgWelcome}); err != nil || !tc.proved() {
		s.unregister(pc)
		return
	}
	cancel()
	s.log.Info("relay: party connected", "public_key", key.String(), "remote", r.RemoteAddr)
	s.serveParty(pc)
}

// register makes pc the party of key if key is still accepted (it may have
// been removed while the proof was checked), and frees the connection it
// replaces at once.
func (s *Server) register(key keys.PublicKey, c *websocket.Conn, tc *trackedConn) (*peerConn, error) {
	pc := &peerConn{
		key: key, c: c, tc: tc, q: make(chan *[]byte, s.limits.QueueLen),
		queued: &s.queued, done: make(chan struct{}),
	}
	pc.qBytes.limit = int64(s.limits.QueueBytes)
	s.mu.Lock()
	if !(*s.accepted.Load())[key] {
		s.mu.Unlock()
		return nil, fmt.Errorf("key %s is not accepted", key)
	}
	old := s.conns[key]
	s.conns[key] = pc
	s.mu.Unlock()
	if old != nil {
		s.replaced.Add(1)
		old.kick(0, "")
	}
	return pc, nil
}

// unregister removes pc if it is still its key's party, and stops it.
func (s *Server) unregister(pc *peerConn) {
	s.mu.Lock()
	if s.conns[pc.key] == pc {
		delete(s.conns, pc.key)
	}
	s.mu.Unlock()
	pc.stop()
}

// serveParty forwards pc's datagrams until its connection ends.
func (s *Server) serveParty(pc *peerConn) {
	ctx, cancel := context.WithCancel(context.Background())
	wd := watchdog{reads: &pc.tc.reads, idle: s.limits.IdleTimeout}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		wd.run(ctx, pc.c)
	}()
	go func() {
		defer wg.Done()
		defer cancel()
		s.writeLoop(ctx, pc, &wd)
	}()
	err := s.readLoop(pc)
	cancel()
	s.unregister(pc)
	pc.c.CloseNow()
	wg.Wait()
	s.log.Info("relay: party disconnected", "public_key", pc.key.String(), "reason", err)
}

// authenticate runs hello and auth: the party's key if it is accepted and
// the proof, bound to this TLS session (cs), verifies.
func (s *Server) authenticate(ctx context.Context, c *websocket.Conn, cs *tls.ConnectionState) (keys.PublicKey, error) {
	bind, err := channelBinding(cs, s.cert)
	if err != nil {
		return keys.PublicKey{}, err
	}
	h := hello{Relay: s.pub}
	if _, err := rand.Read(h.Nonce[:]); err != nil {
		return keys.PublicKey{}, err
	}
	if err := c.Write(ctx, websocket.MessageBinary, h.marshal()); err != nil {
		return keys.PublicKey{}, err
	}
	typ, b, err := c.Read(ctx)
	if err != nil {
		return keys.PublicKey{}, err
	}
	if typ != websocket.MessageBinary {
		return keys.PublicKey{}, errors.New("auth: not a binary message")
	}
	a, err := parseAuth(b)
	if err != nil {
		return keys.PublicKey{}, err
	}
	if !(*s.accepted.Load())[a.Key] {
		return a.Key, fmt.Errorf("key %s is not accepted", a.Key)
	}
	if err := verify(s.key, h.Nonce, a, bind); err != nil {
		return a.Key, fmt.Errorf("key %s: %w", a.Key, err)
	}
	return a.Key, nil
}

// bucketFor is key's rate bucket, kept across its connections.
func (s *Server) bucketFor(key keys.PublicKey) *bucket {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[key]
	if b == nil {
		b = newBucket(s.limits.RateBytes)
		s.buckets[key] = b
	}
	return b
}

// readLoop forwards the party's datagrams until its connection ends (the
// watchdog closes it when the party is gone).
func (s *Server) readLoop(pc *peerConn) error {
	buf := make([]byte, maxMessage)
	rate := s.bucketFor(pc.key)
	for {
		typ, rd, err := pc.c.Reader(context.Background())
		if err != nil {
			return err
		}
		n, err := io.ReadFull(rd, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return err
		}
		if pc.stopped.Load() { // replaced or no longer accepted
			continue
		}
		if typ != websocket.MessageBinary {
			s.droppedMalfmd.Add(1)
			continue
		}
		dst, d, err := parseData(buf[:n])
		if err != nil {
			s.droppedMalfmd.Add(1)
			continue
		}
		if !rate.allow(n, time.Now()) {
			s.droppedRate.Add(1)
			continue
		}
		s.mu.RLock()
		to := s.conns[dst]
		s.mu.RUnlock()
		if to == nil {
			s.droppedNoPeer.Add(1)
			continue
		}
		out := getBuf(n)
		*out = appendData(*out, pc.key, d)
		if !to.enqueue(out) {
			putBuf(out)
			s.droppedFull.Add(1)
			continue
		}
		s.forwarded.Add(1)
		s.forwardedBytes.Add(uint64(len(d)))
	}
}

// writeLoop sends the party what others queued for it.
func (s *Server) writeLoop(ctx context.Context, pc *peerConn, wd *watchdog) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-pc.done:
			return
		case b := <-pc.q:
			pc.dequeued(b) // the one being written is not queued
			if pc.tc != nil {
				pc.tc.k.cork(len(pc.q) > 0) // cork.go
			}
			err := wd.write(pc.c, *b)
			putBuf(b)
			if err != nil {
				return
			}
		}
	}
}

// bucket is a token bucket in bytes.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second; <0: unlimited
	tokens float64
	last   time.Time
}

func newBucket(rate int64) *bucket { return &bucket{rate: float64(rate), tokens: float64(rate)} }

func (b *bucket) allow(n int, now time.Time) bool {
	if b.rate < 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// logLimit lets one line through per interval and counts the rest, so
// that a flood of refused connections cannot flood the log.
type logLimit struct {
	every      time.Duration
	mu         sync.Mutex
	next       time.Time
	suppressed uint64
}

// allow reports whether to log now, and how many lines were held back
// since the last one.
func (l *logLimit) allow(now time.Time) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.suppressed++
		return 0, false
	}
	l.next = now.Add(l.every)
	n := l.suppressed
	l.suppressed = 0
	return n, true
}
