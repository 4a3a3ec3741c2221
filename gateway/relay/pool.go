package relay

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Message buffers: one per datagram in flight (a client's send queue, a
// relay connection's queue). A datagram of a standard underlay fits
// poolBuf; larger ones are allocated.
const poolBuf = 2048

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, poolBuf); return &b }}

// getBuf returns an empty buffer with room for n bytes.
func getBuf(n int) *[]byte {
	if n > poolBuf {
		b := make([]byte, 0, n)
		return &b
	}
	return bufPool.Get().(*[]byte)
}

func putBuf(b *[]byte) {
	if cap(*b) != poolBuf {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// budget bounds the bytes of buffer a queue holds (with the channel's
// capacity bounding the count): a queue of large datagrams fills by bytes
// long before it fills by count.
type budget struct {
	used  atomic.Int64
	limit int64
}

// take reserves n bytes if they fit.
func (b *budget) take(n int) bool {
	if b.used.Add(int64(n)) > b.limit {
		b.used.Add(-int64(n))
		return false
	}
	return true
}

// give returns n bytes.
func (b *budget) give(n int) { b.used.Add(-int64(n)) }

// Reads and writes pass context.Background(), which costs the WebSocket
// library no timer per message; the watchdog does what per-message
// deadlines would: it closes the connection when ctx ends, when one write
// has taken longer than writeTimeout (a party that stopped reading), or,
// with reads set, when no read returned data for idle (a party gone
// silent: parties ping every pingEvery).
type watchdog struct {
	writing atomic.Int64 // unix ns when the write in progress began; 0: none
	reads   *atomic.Uint64
	idle    time.Duration
}

func (w *watchdog) run(ctx context.Context, ws *websocket.Conn) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var seen uint64
	active := time.Now()
	for {
		select {
		case <-ctx.Done():
			ws.CloseNow()
			return
		case now := <-t.C:
			if s := w.writing.Load(); s != 0 && now.Sub(time.Unix(0, s)) > writeTimeout {
				ws.CloseNow()
				return
			}
			if w.reads == nil {
				continue
			}
			if n := w.reads.Load(); n != seen {
				seen, active = n, now
			} else if now.Sub(active) > w.idle {
				ws.CloseNow()
				return
			}
		}
	}
}

// write writes one binary message, timed by the watchdog.
func (w *watchdog) write(ws *websocket.Conn, b []byte) error {
	w.writing.Store(time.Now().UnixNano())
	err := ws.Write(context.Background(), websocket.MessageBinary, b)
	w.writing.Store(0)
	return err
}
