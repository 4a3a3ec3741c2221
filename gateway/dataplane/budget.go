package dataplane

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/vgate-project/vgate/internal/latprobe"
)

// recvBudget is how many received transport packets wireguard-go may hold
// between the bind's ReceiveFunc and the TUN write (its decryption and
// per-peer inbound queues, up to 1024 batches each). While they are
// taken, the receive function waits, so the backlog stays in the shared
// port's device queue, where its sojourn time is managed (gateway/wgbind).
// Batches are decrypted on per-CPU workers: like sendBudget, a batch of 32
// (the shared port's device batch) per CPU.
var recvBudget = budgetPerCPU()

// recvBudgetOn enables the receive budget. It is off: wireguard-go drops
// packets that fail to decrypt without a trace, so their budget comes back
// only by the stall reset, and a flood of garbage carrying a tunnel's
// receiver index held the budget full and the tunnel to a trickle
// (internal/e2e TestNoHeadOfLineBlocking). The send budget is unaffected (what it counts is read from the TUN).
const recvBudgetOn = false

// newRecvBudget is the receive budget, nil while it is off.
func newRecvBudget() *budget {
	if !recvBudgetOn {
		return nil
	}
	return newBudget(recvBudget)
}

// budgetBind decorates a device's conn.Bind: Send releases the send
// queue's budget for the data packets it carries, and each ReceiveFunc
// waits for room in the receive budget before it takes more.
type budgetBind struct {
	conn.Bind
	send *fqTUN // nil: no send budget
	recv *budget
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
		out[i] = func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			b.recv.wait()
			n, err := fn(packets, sizes, eps)
			c := 0
			for j := 0; j < n; j++ {
				if isData(packets[j][:sizes[j]]) {
					c++
				}
			}
			b.recv.charge(c)
			return n, err
		}
	}
	return out, actual, nil
}

func (b *budgetBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	if latprobe.On() {
		for _, buf := range bufs {
			if latprobe.IsEncEcho(buf) {
				latprobe.Mark(latprobe.SendSent, latprobe.SendHanded, latprobe.SendQueued)
			}
		}
	}
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

// budget counts packets in flight against a limit (like BQL). Packets
// wireguard-go drops itself never come back, so a budget that has been
// full with nothing released for budgetStall is reset.
type budget struct {
	limit    int
	epoch    time.Time
	mu       sync.Mutex
	inFlight int
	lastFree time.Duration
	wake     chan struct{}
	resyncs  atomic.Uint64
	peak     atomic.Int64 // most in flight at once, for tests and stats
}

func newBudget(limit int) *budget {
	return &budget{limit: limit, epoch: time.Now(), wake: make(chan struct{}, 1)}
}

// wait returns when the budget has room (or was reset after a stall).
func (b *budget) wait() {
	var t *time.Timer
	for {
		b.mu.Lock()
		now := time.Since(b.epoch)
		if b.inFlight >= b.limit && now-b.lastFree >= budgetStall {
			b.inFlight, b.lastFree = 0, now
			b.resyncs.Add(1)
		}
		if b.inFlight < b.limit {
			b.mu.Unlock()
			if t != nil {
				t.Stop()
			}
			return
		}
		d := budgetStall - (now - b.lastFree)
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

func (b *budget) charge(n int) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	if b.inFlight == 0 {
		b.lastFree = time.Since(b.epoch)
	}
	b.inFlight += n
	if int64(b.inFlight) > b.peak.Load() {
		b.peak.Store(int64(b.inFlight))
	}
	b.mu.Unlock()
}

func (b *budget) release(n int) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.inFlight = max(0, b.inFlight-n)
	b.lastFree = time.Since(b.epoch)
	room := b.inFlight < b.limit
	b.mu.Unlock()
	if room {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

func (b *budget) load() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inFlight
}

// Queues is the queue management of a wireguard-go device that is not a
// site-to-site tunnel (the point-to-site device): the send queue on its
// kernel TUN, the budgets counted where its own TUN decorators end.
type Queues struct {
	fq   *fqTUN
	recv *budget
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
func (q *Queues) Stats() QueueStats {
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
		t.q.recv.release(len(bufs))
	}
	return t.Device.Write(bufs, offset)
}
