package dataplane

import (
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vgate-project/vgate/api"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// recvBudget is how many received transport packets wireguard-go may hold
// between the bind's ReceiveFunc and the TUN write (its decryption and
// per-peer inbound queues, up to 1024 batches each). While they are
// taken, the receive function waits, so the backlog stays in the shared
// port's device queue, where its sojourn time is managed and small packets
// have a lane of their own (gateway/wgbind). Batches are decrypted on
// per-CPU workers: like sendBudget, a batch of 32 (the shared port's
// device batch) per CPU.
var recvBudget = budgetPerCPU()

// recvStall: a receive budget that is full with its oldest batch handed
// on this long ago and not written frees that batch. wireguard-go drops
// packets that fail to decrypt without a trace, so a batch of garbage
// carrying a tunnel's receiver index is freed only by a later batch's
// write or by this; a real packet behind a budget full of garbage waits
// at most this long. It is CoDel's target: no longer than the port's
// queue lets a packet wait before it manages the queue.
const recvStall = 5 * time.Millisecond

// newRecvBudget is a device's receive budget.
func newRecvBudget() *batchBudget { return newBatchBudget(recvBudget) }

// budgetBind decorates a device's conn.Bind: Send releases the send
// queue's budget for the data packets it carries, and each ReceiveFunc
// waits for room in the receive budget before it takes more.
type budgetBind struct {
	conn.Bind
	send *fqTUN // nil: no send budget
	recv *batchBudget
}

func (b *budgetBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.Bind.Open(port)
	if err != nil {
		return fns, actual, err
	}
	if b.recv == nil {
		return fns, actual, nil
	}
	out := make([]conn.ReceiveFunc, len(fns))
	for i, fn := range fns {
		var last *recvBatch // this function's previous batch
		out[i] = func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			b.recv.untaken(last, packets)
			b.recv.wait()
			n, err := fn(packets, sizes, eps)
			last = b.recv.charge(packets, sizes, n)
			return n, err
		}
	}
	return out, actual, nil
}

func (b *budgetBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	if b.send != nil {
		c := 0
		for _, buf := range bufs {
			if isData(buf) {
				c++
			}
		}
		b.send.release(c)
	}
	return b.Bind.Send(bufs, ep)
}

// isData reports whether msg is a WireGuard transport message with a
// payload (a keepalive has none: 16 bytes of header, 16 of tag).
func isData(msg []byte) bool {
	return len(msg) > 32 && binary.LittleEndian.Uint32(msg[0:4]) == 4
}

// batchBudget counts received data packets in flight in wireguard-go
// against a limit (like BQL), per batch the ReceiveFunc handed on. A batch
// leaves the count when the TUN write of a packet from it or from a later
// batch shows wireguard-go has finished it: it processes a peer's batches
// in order, and a batch's packets come back to the TUN write in the very
// buffers the ReceiveFunc filled, which identify it (a buffer is reused
// only after its packet was written or dropped, so the newest batch
// holding it is the one). Packets it did not take (no keypair for the
// index) stay in their buffer for the next call, which uncounts them. A
// batch of packets that all failed to decrypt shows nothing; recvStall
// frees it.
type batchBudget struct {
	limit   int
	epoch   time.Time
	mu      sync.Mutex
	fifo    []*recvBatch // oldest first
	free    []*recvBatch // left the fifo, for reuse
	count   int          // sum of the fifo's n
	wake    chan struct{}
	resyncs atomic.Uint64 // batches freed by recvStall
	peak    atomic.Int64  // most in flight at once, for tests and stats
}

// recvBatch is one ReceiveFunc call's data packets.
type recvBatch struct {
	at    time.Duration // handed on, since the budget's epoch
	n     int           // data packets still counted
	slot  []int         // their index in the call's packets
	buf   []*byte       // and their buffers' first bytes
	freed bool          // left the fifo
}

func newBatchBudget(limit int) *batchBudget {
	return &batchBudget{limit: limit, epoch: time.Now(), wake: make(chan struct{}, 1)}
}

// wait returns when the budget has room, freeing the oldest batch when the
// budget is full and that batch has been out for recvStall.
func (b *batchBudget) wait() {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		b.mu.Lock()
		now := time.Since(b.epoch)
		for b.count >= b.limit && len(b.fifo) > 0 && now-b.fifo[0].at >= recvStall {
			b.freeLocked(1)
			b.resyncs.Add(1)
		}
		if b.count < b.limit {
			b.mu.Unlock()
			return
		}
		d := recvStall - (now - b.fifo[0].at)
		b.mu.Unlock()
		if t == nil {
			t = time.NewTimer(d)
		} else {
			t.Reset(d)
		}
		select {
		case <-b.wake:
		case <-t.C:
		}
	}
}

// freeLocked takes the k oldest batches off the fifo (in place: no
// reallocation on the next append).
func (b *batchBudget) freeLocked(k int) {
	for _, h := range b.fifo[:k] {
		b.count -= h.n
		h.freed = true
		if len(b.free) < 64 {
			b.free = append(b.free, h)
		}
	}
	n := copy(b.fifo, b.fifo[k:])
	clear(b.fifo[n:])
	b.fifo = b.fifo[:n]
}

// charge counts the data packets among the first n of a ReceiveFunc's
// batch and returns the batch (nil: none).
func (b *batchBudget) charge(packets [][]byte, sizes []int, n int) *recvBatch {
	c := 0
	for j := 0; j < n; j++ {
		if isData(packets[j][:sizes[j]]) {
			c++
		}
	}
	if c == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var bt *recvBatch
	if k := len(b.free); k > 0 {
		bt = b.free[k-1]
		b.free = b.free[:k-1]
	} else {
		bt = &recvBatch{}
	}
	bt.at, bt.n, bt.freed = time.Since(b.epoch), c, false
	bt.slot, bt.buf = bt.slot[:0], bt.buf[:0]
	for j := 0; j < n; j++ {
		if isData(packets[j][:sizes[j]]) {
			bt.slot = append(bt.slot, j)
			bt.buf = append(bt.buf, &packets[j][0])
		}
	}
	b.fifo = append(b.fifo, bt)
	b.count += c
	if int64(b.count) > b.peak.Load() {
		b.peak.Store(int64(b.count))
	}
	return bt
}

// untaken uncounts the packets of last (the calling ReceiveFunc's previous
// batch) that wireguard-go left in their buffers: the ReceiveFunc is
// called with the same buffer in the slot.
func (b *batchBudget) untaken(last *recvBatch, packets [][]byte) {
	if last == nil {
		return
	}
	b.mu.Lock()
	c := 0
	if !last.freed {
		for k, j := range last.slot {
			if j < len(packets) && len(packets[j]) > 0 && &packets[j][0] == last.buf[k] {
				c++
			}
		}
		last.n -= c
		b.count -= c
	}
	b.mu.Unlock()
	if c > 0 {
		b.signal()
	}
}

// written frees the batch the first of bufs (a TUN write) came from and
// every batch before it.
func (b *batchBudget) written(bufs [][]byte) {
	if len(bufs) == 0 || len(bufs[0]) == 0 {
		return
	}
	p := &bufs[0][0]
	b.mu.Lock()
	found := -1
	for i := len(b.fifo) - 1; i >= 0; i-- {
		if slices.Contains(b.fifo[i].buf, p) {
			found = i
			break
		}
	}
	b.freeLocked(found + 1)
	room := b.count < b.limit
	b.mu.Unlock()
	if found >= 0 && room {
		b.signal()
	}
}

func (b *batchBudget) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *batchBudget) load() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count
}

// Queues is the queue management of a wireguard-go device that is not a
// site-to-site tunnel (the point-to-site device): the send queue on its
// kernel TUN, the budgets counted where its own TUN decorators end.
type Queues struct {
	fq   *fqTUN
	recv *batchBudget
}

// NewQueues puts the send queue on td (the kernel TUN) and returns it with
// the TUN to build the device's decorators on.
func NewQueues(td tun.Device, mtu int) (*Queues, tun.Device) {
	q := &Queues{fq: newFQTUN(td, mtu, device.MessageTransportHeaderSize), recv: newRecvBudget()}
	return q, q.fq
}

// TUN wraps the device's outermost TUN decorator: what Read hands on holds
// send budget, what Write gets frees receive budget.
func (q *Queues) TUN(t tun.Device) tun.Device { return &budgetTUN{Device: t, q: q} }

// Bind wraps the device's bind (budgetBind).
func (q *Queues) Bind(b conn.Bind) conn.Bind { return &budgetBind{Bind: b, send: q.fq, recv: q.recv} }

// Stats is what the queues hold and did (the interface's qdisc aside).
func (q *Queues) Stats() api.QueueStatus {
	st := q.fq.Stats()
	if q.recv != nil {
		st.RecvInFlight, st.RecvBudget = q.recv.load(), recvBudget
		st.BudgetResyncs += q.recv.resyncs.Load()
	}
	return st
}

type budgetTUN struct {
	tun.Device
	q *Queues
}

func (t *budgetTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := t.Device.Read(bufs, sizes, offset)
	c := 0
	for i := 0; i < n; i++ {
		if sizes[i] > 0 {
			c++
		}
	}
	t.q.fq.charge(c)
	return n, err
}

func (t *budgetTUN) Write(bufs [][]byte, offset int) (int, error) {
	if t.q.recv != nil {
		t.q.recv.written(bufs)
	}
	return t.Device.Write(bufs, offset)
}
