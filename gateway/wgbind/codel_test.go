package wgbind

import (
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// CoDel drops only once the sojourn time has stayed above the target for a
// whole interval with packets behind the head, then ever faster while it
// stays there, and stops as soon as it falls below.
func TestCoDelDecision(t *testing.T) {
	ms := time.Millisecond
	type step struct {
		at, sojourn time.Duration
		backlog     int
		want        bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"below target never", []step{{0, 4 * ms, 100, false}, {200 * ms, 4 * ms, 100, false}, {400 * ms, 4 * ms, 100, false}}},
		{"above target, not for an interval", []step{{0, 20 * ms, 100, false}, {99 * ms, 20 * ms, 100, false}}},
		{"above for an interval", []step{{0, 20 * ms, 100, false}, {100 * ms, 20 * ms, 100, true}, {101 * ms, 20 * ms, 100, false},
			{200 * ms, 20 * ms, 100, true}, {271 * ms, 20 * ms, 100, true}}},
		{"an empty queue behind resets", []step{{0, 20 * ms, 100, false}, {50 * ms, 20 * ms, 0, false}, {100 * ms, 20 * ms, 100, false}, {150 * ms, 20 * ms, 100, false}}},
		{"below target ends dropping", []step{{0, 20 * ms, 100, false}, {100 * ms, 20 * ms, 100, true}, {150 * ms, 1 * ms, 100, false},
			{200 * ms, 20 * ms, 100, false}}},
	} {
		var c codel
		for i, s := range tc.steps {
			if got := c.drop(s.sojourn, time.Second+s.at, s.backlog); got != s.want {
				t.Errorf("%s: step %d (%v, sojourn %v): drop = %v, want %v", tc.name, i, s.at, s.sojourn, got, s.want)
			}
		}
	}
}

// A device's queue that stands above the target loses transport packets
// from its head; handshake messages and keepalives in it are never dropped.
func TestSessionDropsStaleTransport(t *testing.T) {
	m := NewMux(nil, nil)
	b := &bind{m: m, name: "x"}
	s := &session{m: m, b: b, q: make(chan *packetBuf, queueLen), done: make(chan struct{})}
	now := time.Since(m.epoch)
	mk := func(typ byte, n int, at time.Duration) *packetBuf {
		pb := &packetBuf{data: make([]byte, midBuf), n: n, at: at}
		pb.data[0] = typ
		return pb
	}
	// 2 s worth of packets that each waited 50 ms, with keepalives and
	// handshake responses among them.
	var keep int
	for i := range 2000 {
		switch {
		case i%100 == 0:
			s.q <- mk(msgTransport, transportMin, now-50*time.Millisecond)
			keep++
		case i%100 == 1:
			s.q <- mk(msgResponse, responseSize, now-50*time.Millisecond)
			keep++
		default:
			s.q <- mk(msgTransport, 1400, now-50*time.Millisecond)
		}
	}
	packets := make([][]byte, deviceBatch)
	for i := range packets {
		packets[i] = make([]byte, midBuf)
	}
	sizes := make([]int, deviceBatch)
	eps := make([]conn.Endpoint, deviceBatch)
	var small int
	for len(s.q) > 0 {
		time.Sleep(4 * time.Millisecond) // the device is slow: the queue stands
		n, err := s.receive(packets, sizes, eps)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if sizes[i] != 1400 {
				small++
			}
		}
	}
	if small != keep {
		t.Errorf("%d handshakes and keepalives came through, want all %d", small, keep)
	}
	if b.droppedCoDel.Load() == 0 {
		t.Error("no transport packet dropped from a queue standing at 50 ms and more")
	}
}

// A small transport packet behind a backlog of large ones reaches the
// device in the next batch; small packets take at most half of a batch
// while large ones wait; the two lanes share the queue's bound.
func TestSmallLane(t *testing.T) {
	m := NewMux(nil, nil)
	b := &bind{m: m, name: "x"}
	s := &session{m: m, b: b, q: make(chan *packetBuf, queueLen), small: make(chan *packetBuf, smallLaneLen), done: make(chan struct{})}
	now := time.Since(m.epoch)
	mk := func(n int) *packetBuf {
		pb := &packetBuf{data: make([]byte, midBuf), n: n, at: now}
		pb.data[0] = msgTransport
		return pb
	}
	for range 1000 {
		if !s.enqueue(mk(1400)) {
			t.Fatal("enqueue refused below the bound")
		}
	}
	s.enqueue(mk(128))
	packets := make([][]byte, deviceBatch)
	for i := range packets {
		packets[i] = make([]byte, midBuf)
	}
	sizes := make([]int, deviceBatch)
	eps := make([]conn.Endpoint, deviceBatch)
	n, err := s.receive(packets, sizes, eps)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for i := range n {
		found = found || sizes[i] == 128
	}
	if !found {
		t.Fatal("the small packet did not come in the first batch")
	}
	// A flood of small packets gets half of each batch.
	for range 400 {
		s.enqueue(mk(100))
	}
	n, _ = s.receive(packets, sizes, eps)
	smalls := 0
	for i := range n {
		if sizes[i] == 100 {
			smalls++
		}
	}
	if n != deviceBatch || smalls > deviceBatch/2+1 {
		t.Fatalf("batch of %d with %d small packets, want %d with at most half small", n, smalls, deviceBatch)
	}
	for s.enqueue(mk(100)) {
	}
	for s.enqueue(mk(1400)) {
	}
	if d := s.depth(); d > queueLen {
		t.Fatalf("%d packets queued, over the bound %d", d, queueLen)
	}
}
