package relay

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vgate-project/vgate/gateway/connlimit"
)

// Why a connection was closed before it proved a key.
const (
	refuseFull    = iota // over Limits.MaxConnections
	refusePending        // over Limits.MaxPending
	refuseSource         // over Limits.MaxPendingPerSource
	refuseTimeout        // no proof within Limits.ProofTimeout
	refuseReasons
)

// listener counts every TCP connection from accept to close, so that
// MaxConnections bounds the relay's descriptors whatever a connection does
// (a TLS handshake that never ends, an HTTP request, an upgrade that never
// answers the hello). A connection over a limit is closed (reset) right
// after it is accepted. Until the connection proves a key it is also
// counted against MaxPending and against its source's MaxPendingPerSource
// (connlimit's sources: an IPv4 address, an IPv6 /64), and it is closed
// when ProofTimeout after its accept has passed.
type listener struct {
	net.Listener
	lim Limits

	pending connlimit.Counter

	mu     sync.Mutex
	open   int
	conns  map[*trackedConn]struct{}
	closed bool

	refused [refuseReasons]atomic.Uint64
}

func newListener(ln net.Listener, lim Limits) *listener {
	return &listener{Listener: ln, lim: lim, conns: map[*trackedConn]struct{}{}}
}

// sourceOf is the per-source key of a remote address.
func sourceOf(a net.Addr) netip.Prefix {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr()
	}
	return connlimit.Source(ip)
}

// Accept returns the next connection within the limits.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, l: l, src: sourceOf(c.RemoteAddr()), accepted: time.Now()}
		if why, ok := l.admit(tc); !ok {
			l.refused[why].Add(1)
			reset(c)
			continue
		}
		return tc, nil
	}
}

// admit counts tc in if the limits allow it.
func (l *listener) admit(tc *trackedConn) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.open >= l.lim.MaxConnections {
		return refuseFull, false
	}
	if !l.pending.Take(tc.src, l.lim.MaxPendingPerSource, l.lim.MaxPending) {
		if l.pending.Open() >= l.lim.MaxPending {
			return refusePending, false
		}
		return refuseSource, false
	}
	l.open++
	l.conns[tc] = struct{}{}
	// Set under l.mu: Close may find tc in l.conns as soon as it is there.
	tc.timer = time.AfterFunc(l.lim.ProofTimeout, tc.expire)
	return 0, true
}

// counts reads the open and unproven connections now.
func (l *listener) counts() (open, pending int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.pending.Open()
}

// Close stops accepting and closes every connection, hijacked or not.
func (l *listener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	all := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		all = append(all, c)
	}
	l.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
	return err
}

// reset closes c with a TCP reset: no FIN handshake, no TIME_WAIT kept for
// a connection the relay does not want.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// Connection states.
const (
	connPending = iota
	connProved
	connExpired
	connClosed
)

// trackedConn is one accepted connection, counted until it is closed.
type trackedConn struct {
	net.Conn
	l        *listener
	src      netip.Prefix
	accepted time.Time
	timer    *time.Timer // set under l.mu
	state    int         // l.mu
	once     sync.Once
	// reads counts reads that returned data: the relay's idle check.
	reads atomic.Uint64
	k     corker // the writeLoop's bursts (cork.go)
}

func (c *trackedConn) Write(b []byte) (int, error) { return c.k.write(c.Conn, b) }

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.reads.Add(1)
	}
	return n, err
}

// Close closes the connection and uncounts it (once).
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		l := c.l
		l.mu.Lock()
		if c.timer != nil {
			c.timer.Stop()
		}
		if c.state == connPending || c.state == connExpired {
			l.pending.Put(c.src)
		}
		c.state = connClosed
		l.open--
		delete(l.conns, c)
		l.mu.Unlock()
	})
	return err
}

// proved moves c from the unproven counts to the proved ones. It is false
// when c's proof deadline passed or c is closed: c is then not to be used.
func (c *trackedConn) proved() bool {
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.state != connPending {
		return false
	}
	c.state = connProved
	l.pending.Put(c.src)
	c.timer.Stop()
	return true
}

// expire closes c if it has not proved a key by its deadline.
func (c *trackedConn) expire() {
	l := c.l
	l.mu.Lock()
	if c.state != connPending {
		l.mu.Unlock()
		return
	}
	c.state = connExpired
	l.mu.Unlock()
	l.refused[refuseTimeout].Add(1)
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// deadline is when c must have proved a key.
func (c *trackedConn) deadline() time.Time { return c.accepted.Add(c.l.lim.ProofTimeout) }

// connKey carries the *trackedConn of a request in its context.
type connKey struct{}

// connContext is the http.Server's ConnContext: it puts the request's
// trackedConn (under its TLS layer) into the context.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if u, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = u.NetConn()
	}
	if tc, ok := c.(*trackedConn); ok {
		return context.WithValue(ctx, connKey{}, tc)
	}
	return ctx
}
