// Package connlimit bounds the connections of a TCP listener, in all and
// per source (an IPv4 address, an IPv6 /64: what one host can hold), and
// can refuse sources outright. A connection beyond a bound, or from a
// refused source, is closed as it is accepted, before anything is read:
// a flood from one source never waits in line ahead of another's
// connections, and never holds more than its share of descriptors and
// goroutines.
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

	mu   sync.Mutex
	open map[netip.Prefix]int
	n    int
}

// New bounds inner to total connections open at once, perSource of them
// from one source.
func New(inner net.Listener, total, perSource int) *Listener {
	return &Listener{Listener: inner, total: total, perSource: perSource, open: map[netip.Prefix]int{}}
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

// Accept returns the next connection within the bounds; the others are
// closed on the way.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var a netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			a = ta.AddrPort().Addr().Unmap()
		}
		src := Source(a)
		if (l.Allow == nil || l.Allow(a)) && l.take(src) {
			return &conn{Conn: c, release: func() { l.put(src) }}, nil
		}
		c.Close()
		if l.OnDrop != nil {
			l.OnDrop()
		}
	}
}

// Open is the number of connections open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *Listener) take(src netip.Prefix) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n >= l.total || l.open[src] >= l.perSource {
		return false
	}
	l.open[src]++
	l.n++
	return true
}

func (l *Listener) put(src netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[src]--; l.open[src] <= 0 {
		delete(l.open, src)
	}
	l.n--
}

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
