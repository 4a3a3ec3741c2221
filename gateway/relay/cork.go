package relay

import (
	"io"
	"net"
	"sync"
)

// corkMax bounds the bytes a connection holds back (corker).
const corkMax = 64 << 10

// corker makes the TLS records of a burst of datagrams one write on their
// TCP connection: while the writer knows more datagrams are queued behind
// the one it writes, it corks, and the records are held; the write of the
// burst's last record (uncorked) writes them all at once. One datagram
// per write cost a syscall and a TCP segment each: most of the relay
// hop's CPU. Writes of others (pings, close) while corked are held too,
// and go with the burst's last record, which the writer writes next.
type corker struct {
	mu     sync.Mutex
	corked bool
	buf    []byte
}

// write writes p to w, or holds it while corked and fewer than corkMax
// bytes are held; otherwise it writes what is held and p in one call.
func (k *corker) write(w io.Writer, p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.buf) == 0 && !k.corked {
		return w.Write(p)
	}
	if k.corked && len(k.buf)+len(p) <= corkMax {
		k.buf = append(k.buf, p...)
		return len(p), nil
	}
	k.buf = append(k.buf, p...)
	_, err := w.Write(k.buf)
	k.buf = k.buf[:0]
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// cork holds the writes from now on (on), or lets the next one write
// them (off).
func (k *corker) cork(on bool) {
	k.mu.Lock()
	k.corked = on
	k.mu.Unlock()
}

// corkConn is a Client's TCP connection to its relay, under TLS.
type corkConn struct {
	net.Conn
	k corker
}

func (c *corkConn) Write(p []byte) (int, error) { return c.k.write(c.Conn, p) }
