package dataplane

import (
	"encoding/binary"
	"testing"

	"golang.zx2c4.com/wireguard/conn"
)

// dataBind's ReceiveFunc fills every slot with a WireGuard transport
// message carrying a payload, as the shared port hands them on.
type dataBind struct{ discardBind }

func (dataBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) {
	fn := func(packets [][]byte, sizes []int, _ []conn.Endpoint) (int, error) {
		for i := range packets {
			binary.LittleEndian.PutUint32(packets[i][0:4], 4)
			sizes[i] = 100
		}
		return len(packets), nil
	}
	return []conn.ReceiveFunc{fn}, 51820, nil
}

// wgRecv stands for wireguard-go's receive loop: each call of the
// ReceiveFunc gets the batch's buffers, and a taken packet's buffer is
// replaced by a fresh one (RoutineReceiveIncoming), an untaken one stays.
type wgRecv struct {
	fn    conn.ReceiveFunc
	bufs  [][]byte
	sizes []int
	eps   []conn.Endpoint
}

func newWGRecv(t *testing.T, b *budgetBind) *wgRecv {
	fns, _, err := b.Open(0)
	if err != nil || len(fns) != 1 {
		t.Fatalf("open budget bind: %d functions, %v", len(fns), err)
	}
	r := &wgRecv{fn: fns[0], bufs: make([][]byte, 32), sizes: make([]int, 32), eps: make([]conn.Endpoint, 32)}
	for i := range r.bufs {
		r.bufs[i] = make([]byte, 2048)
	}
	return r
}

// receive calls the ReceiveFunc and takes the packets taken reports true
// for, returning their buffers (what wireguard-go later writes to the TUN).
func (r *wgRecv) receive(t *testing.T, taken func(i int) bool) [][]byte {
	n, err := r.fn(r.bufs, r.sizes, r.eps)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := range n {
		if taken(i) {
			out = append(out, r.bufs[i][:r.sizes[i]])
			r.bufs[i] = make([]byte, 2048)
		}
	}
	return out
}

func all(int) bool { return true }

// The device never holds more than the receive budget (plus one batch)
// that it has not written; a write frees its batch and every batch before
// it, whether those were written or not (packets that failed to decrypt),
// so garbage ahead of a real packet does not stay counted.
func TestRecvBudgetWriteFreesEarlierBatches(t *testing.T) {
	rb := newBatchBudget(64)
	b := &budgetBind{Bind: dataBind{}, recv: rb}
	r := newWGRecv(t, b)

	garbage := r.receive(t, all) // fails to decrypt: never written
	valid := r.receive(t, all)
	if got := rb.load(); got != 64 {
		t.Fatalf("%d in flight after two batches of 32, want 64", got)
	}
	rb.written(valid[5:7]) // a write of part of the second batch
	if got := rb.load(); got != 0 {
		t.Fatalf("%d in flight after the second batch was written, want 0 (the garbage batch before it is done too)", got)
	}
	rb.written(garbage[:1]) // an already freed batch frees nothing more
	if got := rb.load(); got != 0 {
		t.Fatalf("%d in flight, want 0", got)
	}
	if rb.resyncs.Load() != 0 {
		t.Fatalf("%d stall resets, want none: every batch was freed by a write", rb.resyncs.Load())
	}
}

// A budget held full by batches that are never written (a flood of
// garbage with the tunnel's receiver index) is freed batch by batch after
// recvStall: the ReceiveFunc goes on taking packets.
func TestRecvBudgetGarbageCannotPin(t *testing.T) {
	rb := newBatchBudget(64)
	b := &budgetBind{Bind: dataBind{}, recv: rb}
	r := newWGRecv(t, b)
	for range 10 {
		r.receive(t, all) // garbage: never written
		if got := rb.load(); got > 64+32 {
			t.Fatalf("%d in flight, over the budget 64 plus a batch", got)
		}
	}
	if rb.resyncs.Load() < 8-1 {
		t.Fatalf("%d batches freed by the stall, want at least 7 of 10 batches of garbage", rb.resyncs.Load())
	}
	// A real batch after the garbage: its write frees everything.
	valid := r.receive(t, all)
	rb.written(valid)
	if got := rb.load(); got != 0 {
		t.Fatalf("%d in flight after the last batch was written, want 0", got)
	}
}

// Packets wireguard-go does not take (no keypair for their index) stay in
// their buffers for the next call, which stops counting them.
func TestRecvBudgetUntakenUncounted(t *testing.T) {
	rb := newBatchBudget(64)
	b := &budgetBind{Bind: dataBind{}, recv: rb}
	r := newWGRecv(t, b)
	r.receive(t, func(i int) bool { return i < 10 }) // 22 left in place
	r.receive(t, func(int) bool { return false })    // 32 left in place
	if got := rb.load(); got != 10+32 {
		t.Fatalf("%d in flight, want 42: the first batch's 10 taken and the second batch not yet seen again", got)
	}
	r.receive(t, all)
	if got := rb.load(); got != 10+32 {
		t.Fatalf("%d in flight, want 42: 10 of the first batch and the 32 of the last", got)
	}
	if rb.resyncs.Load() != 0 {
		t.Fatalf("%d stall resets, want none", rb.resyncs.Load())
	}
}

// wireguard-go reuses a buffer once its packet was written or dropped: a
// write names the newest batch that holds the buffer, not an older batch
// (of garbage, still counted) that held it before.
func TestRecvBudgetReusedBufferNamesNewestBatch(t *testing.T) {
	rb := newBatchBudget(1000)
	b := &budgetBind{Bind: dataBind{}, recv: rb}
	r := newWGRecv(t, b)
	garbage := r.receive(t, all) // dropped unwritten, its buffers back in the pool
	r.receive(t, all)
	r.bufs[3] = garbage[3][:cap(garbage[3])] // the third batch gets one of them again
	third := r.receive(t, all)
	rb.written(third[3:4])
	if got := rb.load(); got != 0 {
		t.Fatalf("%d in flight after the third batch was written, want 0", got)
	}
}

// Counting batches in and out reuses the batch records: no garbage per
// received batch.
func TestRecvBudgetNoAllocs(t *testing.T) {
	rb := newBatchBudget(64)
	b := &budgetBind{Bind: dataBind{}, recv: rb}
	r := newWGRecv(t, b)
	if a := testing.AllocsPerRun(100, func() {
		n, err := r.fn(r.bufs, r.sizes, r.eps)
		if err != nil {
			t.Fatal(err)
		}
		rb.written(r.bufs[:n])
	}); a > 0 {
		t.Fatalf("%.1f allocations per received and written batch, want none", a)
	}
}
