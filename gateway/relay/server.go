package relay

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/vgate-project/vgate/gateway/keys"
)

// Limits bound what one relay holds. Zero fields take the defaults.
type Limits struct {
	// MaxConnections caps the connections (authenticated or not); more are
	// refused with HTTP 503 before the WebSocket upgrade. Default 1000.
	MaxConnections int
	// QueueLen is each connection's send queue, in datagrams. A datagram
	// for a connection whose queue is full is dropped: a slow party never
	// stalls the others. Default 512.
	QueueLen int
	// RateBytes limits what one party may send, in bytes per second
	// (a token bucket with a burst of one second). Default 125 MB/s
	// (1 Gbit/s); negative means no limit.
	RateBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxConnections <= 0 {
		l.MaxConnections = 1000
	}
	if l.QueueLen <= 0 {
		l.QueueLen = 512
	}
	if l.RateBytes == 0 {
		l.RateBytes = 125_000_000
	}
	return l
}

const (
	// authTimeout bounds the hello/auth exchange of a new connection.
	authTimeout = 10 * time.Second
	// maxPending caps the connections that have not proved a key yet, so
	// that connections which never answer cannot take every slot of
	// MaxConnections from the parties that do.
	maxPending = 64
	// writeTimeout: a connection that cannot take a message for this long
	// is closed (its queue keeps dropping meanwhile).
	writeTimeout = 10 * time.Second
)

// ServerStats counts what the relay did.
type ServerStats struct {
	Connections      int    `json:"connections"`        // authenticated now
	Refused          uint64 `json:"refused"`            // key not accepted or proof wrong
	RefusedFull      uint64 `json:"refused_full"`       // over MaxConnections
	Forwarded        uint64 `json:"forwarded"`          // datagrams queued to their destination
	ForwardedBytes   uint64 `json:"forwarded_bytes"`    // their sizes
	DroppedNoPeer    uint64 `json:"dropped_no_peer"`    // destination not connected
	DroppedQueueFull uint64 `json:"dropped_queue_full"` // destination's queue full
	DroppedRate      uint64 `json:"dropped_rate"`       // sender over its rate
	DroppedMalformed uint64 `json:"dropped_malformed"`  // not a data message
}

// Server is the relay: an http.Handler that upgrades to WebSocket,
// authenticates the party and forwards its datagrams.
type Server struct {
	key    keys.PrivateKey
	pub    keys.PublicKey
	limits Limits
	log    *slog.Logger

	accepted atomic.Pointer[map[keys.PublicKey]bool]
	open     atomic.Int64 // connections, authenticated or not
	pending  atomic.Int64 // connections still proving their key

	mu    sync.RWMutex
	conns map[keys.PublicKey]*peerConn

	refused, refusedFull, forwarded, forwardedBytes        atomic.Uint64
	droppedNoPeer, droppedFull, droppedRate, droppedMalfmd atomic.Uint64
}

// NewServer returns a relay with static key pair key. It accepts no key
// until SetAccepted.
func NewServer(key keys.PrivateKey, limits Limits, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{key: key, pub: key.Public(), limits: limits.withDefaults(), log: log, conns: map[keys.PublicKey]*peerConn{}}
	s.accepted.Store(&map[keys.PublicKey]bool{})
	return s
}

// PublicKey is the relay's static public key.
func (s *Server) PublicKey() keys.PublicKey { return s.pub }

// SetAccepted replaces the accepted keys. Connected parties whose key is
// no longer accepted are closed.
func (s *Server) SetAccepted(list []keys.PublicKey) {
	m := make(map[keys.PublicKey]bool, len(list))
	for _, k := range list {
		m[k] = true
	}
	s.accepted.Store(&m)
	s.mu.RLock()
	var gone []*peerConn
	for k, pc := range s.conns {
		if !m[k] {
			gone = append(gone, pc)
		}
	}
	s.mu.RUnlock()
	for _, pc := range gone {
		s.log.Info("relay: key no longer accepted; closing", "public_key", pc.key.String())
		go pc.c.Close(StatusKeyRefused, "key not accepted") // the close handshake may wait for the party
	}
}

// Stats reads the counters.
func (s *Server) Stats() ServerStats {
	s.mu.RLock()
	n := len(s.conns)
	s.mu.RUnlock()
	return ServerStats{
		Connections: n, Refused: s.refused.Load(), RefusedFull: s.refusedFull.Load(),
		Forwarded: s.forwarded.Load(), ForwardedBytes: s.forwardedBytes.Load(),
		DroppedNoPeer: s.droppedNoPeer.Load(), DroppedQueueFull: s.droppedFull.Load(),
		DroppedRate: s.droppedRate.Load(), DroppedMalformed: s.droppedMalfmd.Load(),
	}
}

// peerConn is one authenticated party.
type peerConn struct {
	key  keys.PublicKey
	c    *websocket.Conn
	q    chan *[]byte
	done chan struct{}
	once sync.Once
}

func (pc *peerConn) stop() { pc.once.Do(func() { close(pc.done) }) }

// enqueue offers a framed message without waiting.
func (pc *peerConn) enqueue(b *[]byte) bool {
	select {
	case <-pc.done:
		return false
	default:
	}
	select {
	case pc.q <- b:
		return true
	default:
		return false
	}
}

// ServeHTTP serves one party for as long as its connection lasts.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.open.Add(1) > int64(s.limits.MaxConnections) {
		s.open.Add(-1)
		s.refusedFull.Add(1)
		http.Error(w, "relay full", http.StatusServiceUnavailable)
		return
	}
	defer s.open.Add(-1)
	if s.pending.Add(1) > maxPending {
		s.pending.Add(-1)
		s.refusedFull.Add(1)
		http.Error(w, "relay busy", http.StatusServiceUnavailable)
		return
	}
	proving := true
	defer func() {
		if proving {
			s.pending.Add(-1)
		}
	}()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // no browsers: the Origin header means nothing here
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept wrote the HTTP error
	}
	defer c.CloseNow()
	c.SetReadLimit(maxMessage)
	ctx := r.Context()

	key, err := s.authenticate(ctx, c)
	proving = false
	s.pending.Add(-1)
	if err != nil {
		s.refused.Add(1)
		s.log.Info("relay: party refused", "remote", r.RemoteAddr, "error", err)
		c.Close(StatusKeyRefused, "key not accepted")
		return
	}
	pc := &peerConn{key: key, c: c, q: make(chan *[]byte, s.limits.QueueLen), done: make(chan struct{})}
	s.mu.Lock()
	old := s.conns[key]
	s.conns[key] = pc
	s.mu.Unlock()
	if old != nil {
		go old.c.Close(websocket.StatusGoingAway, "replaced by a new connection of the same key")
	}
	s.log.Info("relay: party connected", "public_key", key.String(), "remote", r.RemoteAddr)
	ctx, cancel := context.WithCancel(ctx)
	var wd watchdog
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		wd.run(ctx, c)
	}()
	go func() {
		defer wg.Done()
		defer cancel()
		s.writeLoop(ctx, pc, &wd)
	}()
	err = s.readLoop(pc)
	cancel()
	pc.stop()
	s.mu.Lock()
	if s.conns[key] == pc {
		delete(s.conns, key)
	}
	s.mu.Unlock()
	c.CloseNow()
	wg.Wait()
	s.log.Info("relay: party disconnected", "public_key", key.String(), "reason", err)
}

// authenticate runs hello/auth/welcome: the party's key if it is accepted
// and the proof verifies.
func (s *Server) authenticate(ctx context.Context, c *websocket.Conn) (keys.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, authTimeout)
	defer cancel()
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
		return a.Key, errors.New("key " + a.Key.String() + " is not accepted")
	}
	if err := verify(s.key, h.Nonce, a); err != nil {
		return a.Key, errors.New("key " + a.Key.String() + ": " + err.Error())
	}
	return a.Key, c.Write(ctx, websocket.MessageBinary, []byte{msgWelcome})
}

// readLoop forwards the party's datagrams until its connection ends (the
// watchdog closes it when the request's context ends).
func (s *Server) readLoop(pc *peerConn) error {
	buf := make([]byte, maxMessage)
	rate := newBucket(s.limits.RateBytes)
	for {
		typ, rd, err := pc.c.Reader(context.Background())
		if err != nil {
			return err
		}
		n, err := io.ReadFull(rd, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return err
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
			err := wd.write(pc.c, *b)
			putBuf(b)
			if err != nil {
				return
			}
		}
	}
}

// bucket is a token bucket in bytes, used by one goroutine.
type bucket struct {
	rate   float64 // bytes per second; <0: unlimited
	tokens float64
	last   time.Time
}

func newBucket(rate int64) *bucket { return &bucket{rate: float64(rate), tokens: float64(rate)} }

func (b *bucket) allow(n int, now time.Time) bool {
	if b.rate < 0 {
		return true
	}
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
