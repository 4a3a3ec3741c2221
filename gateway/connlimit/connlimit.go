// Package connlimit bounds the connections of a TCP listener, in all and
// per source (an IPv4 address, an IPv6 /64: what one host can hold), and
// can refuse sources outright. A connection beyond a bound, or from a
// refused source, is closed as it is accepted, before anything is read:
// a flood from one source never waits in line ahead of another's
// connections, and never holds more than its share of descriptors and
// goroutines. Yielding has the same bounds but makes room instead of
// refusing: the oldest connection not yet protected by the service gives
// way (for listeners where a refusal would lock legitimate clients out).
package connlimit

import (
	"net"
	"net/netip"
	"sync"
)

// Listener is a net.Listener with bounds. Set Allow and OnDrop before the
// first Accept.
type Listener struct {
	net.Listener
	total, perSource int

	// Allow, when set, says whether a source may connect at all.
	Allow func(netip.Addr) bool
	// OnDrop, when set, is called for every connection closed at accept.
	OnDrop func()

	open Counter
}

// New bounds inner to total connections open at once, perSource of them
// from one source.
func New(inner net.Listener, total, perSource int) *Listener {
	return &Listener{Listener: inner, total: total, perSource: perSource}
}

// Source is the unit a per-source bound counts: the address itself for
// IPv4, its /64 for IPv6.
func Source(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	return netip.PrefixFrom(a, a.BitLen())
}

// remoteAddr is a TCP connection's peer address, unmapped; the zero
// address for any other kind of connection.
func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// Accept returns the next connection within the bounds; the others are
// closed on the way.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a := remoteAddr(c)
		src := Source(a)
		if (l.Allow == nil || l.Allow(a)) && l.open.Take(src, l.perSource, l.total) {
			return &conn{Conn: c, release: func() { l.open.Put(src) }}, nil
		}
		// Counted before the close, so that whoever sees the close sees
		// the count too.
		if l.OnDrop != nil {
			l.OnDrop()
		}
		c.Close()
	}
}

// Open is the number of connections open now.
func (l *Listener) Open() int { return l.open.Open() }

// conn gives its slot back when closed (once).
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// Counter counts what is in flight per source (Source) and in all; the
// zero value is empty. The name server bounds its forwarded queries with
// one.
type Counter struct {
	mu   sync.Mutex
	open map[netip.Prefix]int
	n    int
}

// Take takes a slot of src if it holds fewer than perSource and all hold
// fewer than total.
func (c *Counter) Take(src netip.Prefix, perSource, total int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n >= total || c.open[src] >= perSource {
		return false
	}
	if c.open == nil {
		c.open = map[netip.Prefix]int{}
	}
	c.open[src]++
	c.n++
	return true
}

// Put gives back a slot of src.
func (c *Counter) Put(src netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open[src]--; c.open[src] <= 0 {
		delete(c.open, src)
	}
	c.n--
}

// Open is the number of slots taken.
func (c *Counter) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
