package wgbind

import (
	"encoding/binary"
	"testing"
	"time"
)

// handshake builds an outgoing handshake message of type typ with sender
// index idx.
func handshake(typ, idx uint32) []byte {
	size := initiationSize
	if typ == msgResponse {
		size = responseSize
	}
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b[0:4], typ)
	binary.LittleEndian.PutUint32(b[4:8], idx)
	return b
}

// An initiation right after the device answered one (a crossing) is held
// back and dropped if the device answers again meanwhile; otherwise it
// goes out late. Other initiations go out at once.
func TestCrossingInitiationHeldBack(t *testing.T) {
	oldJ := crossJitter
	crossJitter = 50 * time.Millisecond
	t.Cleanup(func() { crossJitter = oldJ })

	m := NewMux(&fakeBind{}, nil)
	if _, err := m.Open(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	fb := m.under.(*fakeBind)
	b := m.NewBind("west").(*bind)
	if _, _, err := b.Open(0); err != nil {
		t.Fatal(err)
	}
	count := func(typ uint32) int {
		n := 0
		for _, p := range fb.sentPackets() {
			if binary.LittleEndian.Uint32(p[0:4]) == typ {
				n++
			}
		}
		return n
	}
	settle := func() { time.Sleep(3 * crossJitter) }

	// A first initiation: at once.
	if err := b.Send([][]byte{handshake(msgInitiation, 1)}, testEP); err != nil {
		t.Fatal(err)
	}
	if n := count(msgInitiation); n != 1 {
		t.Fatalf("first initiation: %d sent at once, want 1", n)
	}

	// The device answered the peer; its own initiation now is a crossing:
	// held back, then sent.
	if err := b.Send([][]byte{handshake(msgResponse, 2)}, testEP); err != nil {
		t.Fatal(err)
	}
	if err := b.Send([][]byte{handshake(msgInitiation, 3)}, testEP); err != nil {
		t.Fatal(err)
	}
	settle()
	if n := count(msgInitiation); n != 2 || b.delayed.Load() != 1 || b.dropped.Load() != 0 {
		t.Fatalf("held initiation: %d sent, delayed %d, dropped %d; want 2, 1, 0", n, b.delayed.Load(), b.dropped.Load())
	}

	// Held back, and the peer's initiation is answered meanwhile: dropped,
	// so it cannot cross the handshake that answer completes.
	crossJitter = time.Second
	if err := b.Send([][]byte{handshake(msgInitiation, 4)}, testEP); err != nil {
		t.Fatal(err)
	}
	if err := b.Send([][]byte{handshake(msgResponse, 5)}, testEP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.dropped.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := count(msgInitiation); n != 2 || b.dropped.Load() != 1 {
		t.Fatalf("initiation crossing an answer: %d sent, dropped %d; want 2, 1", n, b.dropped.Load())
	}
	// Its index is registered all the same (the send path saw it).
	if got := m.indexSnapshot()[4]; got != b {
		t.Errorf("held initiation's index not registered")
	}

	// Long after the last answer, initiations go out at once again.
	oldW := crossWindow
	crossWindow = 0
	t.Cleanup(func() { crossWindow = oldW })
	time.Sleep(time.Millisecond)
	if err := b.Send([][]byte{handshake(msgInitiation, 6)}, testEP); err != nil {
		t.Fatal(err)
	}
	if n := count(msgInitiation); n != 3 {
		t.Fatalf("initiation with no recent answer: %d sent, want 3", n)
	}
}
