package connlimit

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Yielding is a listener with the same bounds as Listener (total, and
// perSource per Source), for services where refusing a new connection
// would let one source lock the others out: a connection beyond a bound
// is not refused, it takes the place of the oldest connection of its
// source (of all sources, when the total is full) that has not been
// protected, which is closed at once. The service protects a connection
// once it has shown what makes it worth keeping (the enrollment listener:
// a pending invite's secret). An attacker thus holds no slot against a
// newcomer: to push its connection out he must open perSource (or total)
// newer ones before it is protected. Only when every slot of the source
// (or of all) is protected is the new connection closed.
type Yielding struct {
	net.Listener
	total, perSource int

	mu  sync.Mutex
	n   int
	per map[netip.Prefix]int
	// order holds the connections that may give way, oldest first.
	order *list.List

	shed    atomic.Uint64
	refused atomic.Uint64
}

// NewYielding bounds inner to total connections open at once, perSource
// of them from one source, the unprotected oldest giving way.
func NewYielding(inner net.Listener, total, perSource int) *Yielding {
	return &Yielding{Listener: inner, total: total, perSource: perSource, per: map[netip.Prefix]int{}, order: list.New()}
}

// yieldConn is one accepted connection.
type yieldConn struct {
	net.Conn
	l        *Yielding
	src      netip.Prefix
	elem     *list.Element // in l.order; nil once protected
	released bool          // under l.mu
}

// Accept returns the next connection, closing an older one where a bound
// needs it.
func (l *Yielding) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		yc := &yieldConn{Conn: c, l: l, src: Source(remoteAddr(c))}
		l.mu.Lock()
		var victim *yieldConn
		full := l.per[yc.src] >= l.perSource
		if full {
			victim = l.oldest(func(o *yieldConn) bool { return o.src == yc.src })
		} else if l.n >= l.total {
			full = true
			victim = l.oldest(func(*yieldConn) bool { return true })
		}
		if full && victim == nil {
			l.mu.Unlock()
			l.refused.Add(1)
			c.Close()
			continue
		}
		if victim != nil {
			l.release(victim)
		}
		l.n++
		l.per[yc.src]++
		yc.elem = l.order.PushBack(yc)
		l.mu.Unlock()
		if victim != nil {
			l.shed.Add(1)
			victim.Conn.Close()
		}
		return yc, nil
	}
}

// oldest is the oldest unprotected connection that matches, or nil. l.mu
// is held.
func (l *Yielding) oldest(match func(*yieldConn) bool) *yieldConn {
	for e := l.order.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*yieldConn); match(c) {
			return c
		}
	}
	return nil
}

// release takes c out of the counts, once. l.mu is held.
func (l *Yielding) release(c *yieldConn) {
	if c.released {
		return
	}
	c.released = true
	l.n--
	if l.per[c.src]--; l.per[c.src] <= 0 {
		delete(l.per, c.src)
	}
	if c.elem != nil {
		l.order.Remove(c.elem)
		c.elem = nil
	}
}

// Protect keeps c, a connection this listener accepted (or a TLS
// connection over one), from giving way to newer ones. Other connections
// are ignored.
func (l *Yielding) Protect(c net.Conn) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = nc.NetConn()
	}
	yc, ok := c.(*yieldConn)
	if !ok || yc.l != l {
		return
	}
	l.mu.Lock()
	if yc.elem != nil {
		l.order.Remove(yc.elem)
		yc.elem = nil
	}
	l.mu.Unlock()
}

// Open is the number of connections open now.
func (l *Yielding) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// Shed is how many connections gave way to newer ones; Refused how many
// new ones were closed because every slot was protected.
func (l *Yielding) Shed() uint64    { return l.shed.Load() }
func (l *Yielding) Refused() uint64 { return l.refused.Load() }

func (c *yieldConn) Close() error {
	c.l.mu.Lock()
	c.l.release(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
