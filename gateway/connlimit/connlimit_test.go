package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// serve accepts on l until it is closed, holding every connection open,
// and returns the channel the accepted connections arrive on.
func serve(t *testing.T, l *Listener) <-chan net.Conn {
	t.Helper()
	accepted := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return accepted
}

// dial connects from local to l and reports whether the connection stays
// open (a closed one reads EOF or a reset at once).
func dial(t *testing.T, l net.Listener, local string) (net.Conn, bool) {
	t.Helper()
	d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	return c, errors.Is(err, os.ErrDeadlineExceeded)
}

// A source holds at most perSource connections, all of them at most
// total; a refused source gets none; a closed connection frees its slot.
func TestListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(inner, 3, 2)
	var dropped atomic.Int32
	l.OnDrop = func() { dropped.Add(1) }
	l.Allow = func(a netip.Addr) bool { return a != netip.MustParseAddr("127.0.0.9") }
	defer l.Close()
	accepted := serve(t, l)

	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i, c := range []struct {
		from string
		open bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.1", true},
		{"127.0.0.1", false}, // its third
		{"127.0.0.9", false}, // refused
		{"127.0.0.2", true},
		{"127.0.0.3", false}, // the fourth in all
	} {
		conn, open := dial(t, inner, c.from)
		held = append(held, conn)
		if open != c.open {
			t.Fatalf("connection %d from %s: open %v, want %v", i, c.from, open, c.open)
		}
	}
	if l.Open() != 3 || dropped.Load() != 3 {
		t.Fatalf("open %d, dropped %d; want 3, 3", l.Open(), dropped.Load())
	}
	(<-accepted).Close() // the server ends the first connection
	if _, open := dial(t, inner, "127.0.0.3"); !open {
		t.Error("no slot after a connection closed")
	}
	if got := Source(netip.MustParseAddr("2001:db8:1:2:3::4")); got != netip.MustParsePrefix("2001:db8:1:2::/64") {
		t.Errorf("IPv6 source %v, want its /64", got)
	}
	if got := Source(netip.MustParseAddr("::ffff:192.0.2.1")); got != netip.MustParsePrefix("192.0.2.1/32") {
		t.Errorf("4-in-6 source %v, want the IPv4 address", got)
	}
}
