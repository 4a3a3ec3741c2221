package connlimit

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// dialFrom dials ln from local address src (127.0.0.x: one source each).
func dialFrom(t *testing.T, ln net.Listener, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closed c (within 300 ms).
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return errors.Is(err, io.EOF) || err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// A connection beyond a bound pushes out the oldest unprotected one of
// its source, or of all when the total is full; protected ones stay; a
// new one is closed only when every slot is protected.
func TestYielding(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewYielding(raw, 5, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	accept := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(2 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}
	// Two from A fill its share; a third pushes out the oldest.
	a1 := dialFrom(t, raw, "127.0.0.2")
	s1 := accept()
	dialFrom(t, raw, "127.0.0.2")
	accept()
	dialFrom(t, raw, "127.0.0.2")
	accept()
	if !closedByServer(a1) {
		t.Error("the oldest connection of a full source was not closed")
	}
	if got := l.Open(); got != 2 {
		t.Errorf("open %d, want 2 (the pushed-out one is not counted)", got)
	}
	s1.Close() // closing it again changes no count
	if l.Open() != 2 || l.Shed() != 1 {
		t.Errorf("open %d, shed %d after closing the pushed-out one again; want 2, 1", l.Open(), l.Shed())
	}

	// B protects both of its own (one seen through TLS, as a server
	// sees it), so its third is closed at accept.
	b1 := dialFrom(t, raw, "127.0.0.3")
	sb1 := accept()
	b2 := dialFrom(t, raw, "127.0.0.3")
	sb2 := accept()
	l.Protect(tls.Server(sb1, &tls.Config{}))
	l.Protect(sb2)
	b3 := dialFrom(t, raw, "127.0.0.3")
	if !closedByServer(b3) {
		t.Error("a connection beyond a source whose slots are all protected was kept")
	}
	if closedByServer(b1) || closedByServer(b2) {
		t.Error("a protected connection was closed")
	}
	if l.Refused() != 1 {
		t.Errorf("refused %d, want 1", l.Refused())
	}

	// The total (5) is full with A's 2, B's 2 and C's first: C's second
	// pushes out the oldest unprotected connection of any source (A's).
	dialFrom(t, raw, "127.0.0.4")
	sc1 := accept()
	dialFrom(t, raw, "127.0.0.4")
	accept()
	if l.Open() != 5 || l.Shed() != 2 {
		t.Errorf("open %d, shed %d; want 5, 2", l.Open(), l.Shed())
	}
	sc1.Close()
	sb1.Close()
	if got := l.Open(); got != 3 {
		t.Errorf("open %d after two closes, want 3", got)
	}
}
