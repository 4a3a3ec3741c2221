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

// Reads and writes pass context.Background(), which costs the WebSocket
// library no timer per message; the watchdog does what a per-message
// context would: it closes the connection when ctx ends, or when one write
// has taken longer than writeTimeout (a party that stopped reading).
type watchdog struct {
	writing atomic.Int64 // unix ns when the write in progress began; 0: none
}

func (w *watchdog) run(ctx context.Context, ws *websocket.Conn) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			ws.CloseNow()
			return
		case <-t.C:
		}
		if s := w.writing.Load(); s != 0 && time.Since(time.Unix(0, s)) > writeTimeout {
			ws.CloseNow()
			return
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
