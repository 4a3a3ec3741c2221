package dataplane

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vgate-project/vgate/api"
	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/tun"
)

// Queue management on a tunnel's send side (docs/architecture.md, "Queues
// that don't bloat"). wireguard-go takes whatever its TUN reader gets into
// queues of up to 1024 batches (QueueOutboundSize, device/channels.go:
// encryption and per-peer outbound) and a TUN never pushes back on its
// qdisc (tun_net_xmit tail-drops into its ring), so without this the
// standing queue of a saturated tunnel sits between the TUN read and the
// UDP send where nothing manages it. fqTUN drains the TUN at once into a
// flow-fair queue with CoDel per flow (fq_codel's algorithm), and hands
// wireguard-go no more than sendBudget packets in flight (read but not yet
// sent, like BQL): a sparse flow (a call, an SSH session) waits behind at
// most the budget, and a bulk flow sees drops (or CE marks) once its
// packets wait longer than codelTarget.
const (
	// budgetStall: a budget with no release for this long is reset. Packets
	// wireguard-go drops itself (no keypair yet, peer stopped) never reach
	// the send, so the count would otherwise leak.
	budgetStall = 20 * time.Millisecond

	// fqLimit bounds the packets queued in the fqTUN; beyond it the head
	// of the longest flow is dropped.
	fqLimit = 2048

	fqFlows   = 64   // hash buckets
	fqQuantum = 1514 // bytes a flow may send per round

	codelTarget   = 5 * time.Millisecond
	codelInterval = 100 * time.Millisecond
)

// sendBudget is how many packets wireguard-go may hold between our Read
// and its UDP send; one more batch may go beyond it. It encrypts a batch
// (one TUN read) on one of its per-CPU workers, so the budget allows a
// batch of 32 per CPU: every worker busy, nothing more standing
// (docs/architecture.md has the measurements).
var sendBudget = budgetPerCPU()

// budgetPerCPU is 32 packets per CPU the process may use, at least 64.
func budgetPerCPU() int { return max(64, 32*runtime.GOMAXPROCS(0)) }

type qpkt struct {
	b  []byte // offset + packet
	n  int    // packet length
	at int64  // enqueued, ns since the queue's epoch
}

// codel is RFC 8289's state for one queue.
type codel struct {
	firstAbove int64 // 0: sojourn below target
	dropNext   int64
	count      uint32
	lastCount  uint32
	dropping   bool
}

type flow struct {
	q       []qpkt // FIFO: q[head:]
	head    int
	bytes   int
	deficit int
	list    int8 // 0 none, 1 new, 2 old
	cd      codel
}

func (f *flow) len() int { return len(f.q) - f.head }

func (f *flow) pop() (qpkt, bool) {
	if f.head == len(f.q) {
		return qpkt{}, false
	}
	p := f.q[f.head]
	f.q[f.head] = qpkt{}
	f.head++
	if f.head == len(f.q) {
		f.q, f.head = f.q[:0], 0
	}
	f.bytes -= p.n
	return p, true
}

// fqTUN decorates the kernel TUN with the send queue; Write passes through.
type fqTUN struct {
	tun.Device
	offset int // where packets start in the buffers (wireguard-go's header room)
	bufLen int
	seed   maphash.Seed
	epoch  time.Time
	now    func() int64 // ns since epoch; tests set it

	mu       sync.Mutex
	flows    [fqFlows]flow
	newFlows []int
	oldFlows []int
	queued   int
	free     [][]byte
	inFlight int
	lastFree int64 // last release (or reset), ns since epoch
	err      error // the TUN's read error: Read returns it once drained

	wake chan struct{} // Read waits on it: a packet queued or budget freed

	droppedCoDel, markedCE, droppedLimit, resyncs atomic.Uint64
}

// newFQTUN starts the goroutine that drains d into the queue; it ends when
// d's Read fails (Close).
func newFQTUN(d tun.Device, mtu, offset int) *fqTUN {
	q := newFQ(d, mtu, offset)
	go q.drain()
	return q
}

func newFQ(d tun.Device, mtu, offset int) *fqTUN {
	q := &fqTUN{Device: d, offset: offset, bufLen: offset + max(mtu, 1280) + 64,
		seed: maphash.MakeSeed(), epoch: time.Now(), wake: make(chan struct{}, 1)}
	q.now = func() int64 { return int64(time.Since(q.epoch)) }
	return q
}

// drain reads the TUN in batches and queues every packet.
func (q *fqTUN) drain() {
	n := max(1, q.Device.BatchSize())
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	for {
		q.mu.Lock()
		for i := range bufs {
			if bufs[i] == nil {
				bufs[i] = q.getBufLocked()
			}
		}
		q.mu.Unlock()
		c, err := q.Device.Read(bufs, sizes, q.offset)
		q.mu.Lock()
		now := q.now()
		for i := 0; i < c; i++ {
			if sizes[i] > 0 {
				q.enqueueLocked(bufs[i], sizes[i], now)
				bufs[i] = nil
			}
		}
		if err != nil && !errors.Is(err, tun.ErrTooManySegments) {
			q.err = err
		}
		stop := q.err != nil
		q.mu.Unlock()
		q.signal()
		if stop {
			return
		}
	}
}

func (q *fqTUN) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *fqTUN) getBufLocked() []byte {
	if n := len(q.free); n > 0 {
		b := q.free[n-1]
		q.free = q.free[:n-1]
		return b
	}
	return make([]byte, q.bufLen)
}

// putBufLocked keeps b for reuse, up to as many buffers as the queue can
// hold: a saturated tunnel's queue swings between full and empty many
// times a second, and buffers dropped at each swing would be garbage the
// collector has to chase under load.
func (q *fqTUN) putBufLocked(b []byte) {
	if len(q.free) < fqLimit {
		q.free = append(q.free, b)
	}
}

func (q *fqTUN) enqueueLocked(b []byte, n int, now int64) {
	i := flowHash(q.seed, b[q.offset:q.offset+n]) % fqFlows
	f := &q.flows[i]
	f.q = append(f.q, qpkt{b: b, n: n, at: now})
	f.bytes += n
	q.queued++
	if f.list == 0 {
		f.list, f.deficit = 1, fqQuantum
		q.newFlows = append(q.newFlows, int(i))
	}
	if q.queued > fqLimit {
		q.dropLongestLocked()
	}
}

func (q *fqTUN) dropLongestLocked() {
	fat := 0
	for i := range q.flows {
		if q.flows[i].bytes > q.flows[fat].bytes {
			fat = i
		}
	}
	if p, ok := q.flows[fat].pop(); ok {
		q.queued--
		q.putBufLocked(p.b)
		q.droppedLimit.Add(1)
	}
}

// Read waits until the budget has room and a packet is queued, then hands
// wireguard-go up to len(bufs) packets, new (sparse) flows first.
func (q *fqTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var stallTimer *time.Timer
	defer func() {
		if stallTimer != nil {
			stallTimer.Stop()
		}
	}()
	for {
		q.mu.Lock()
		now := q.now()
		if q.inFlight >= sendBudget && now-q.lastFree >= int64(budgetStall) {
			q.inFlight, q.lastFree = 0, now
			q.resyncs.Add(1)
		}
		if q.inFlight < sendBudget || q.err != nil {
			n := 0
			for n < len(bufs) {
				p, ok := q.dequeueLocked(now)
				if !ok {
					break
				}
				sizes[n] = copy(bufs[n][offset:], p.b[q.offset:q.offset+p.n])
				q.putBufLocked(p.b)
				n++
			}
			if n > 0 {
				q.mu.Unlock()
				return n, nil
			}
			if err := q.err; err != nil {
				q.mu.Unlock()
				return 0, err
			}
			q.mu.Unlock()
			<-q.wake
			continue
		}
		wait := time.Duration(int64(budgetStall) - (now - q.lastFree))
		q.mu.Unlock()
		if stallTimer == nil {
			stallTimer = time.NewTimer(wait)
		} else {
			stallTimer.Reset(wait)
		}
		select {
		case <-q.wake:
		case <-stallTimer.C:
		}
	}
}

// charge counts n packets handed on to wireguard-go (after the TUN seam's
// own filters): they hold budget until release.
func (q *fqTUN) charge(n int) {
	if n == 0 {
		return
	}
	q.mu.Lock()
	if q.inFlight == 0 {
		q.lastFree = q.now()
	}
	q.inFlight += n
	q.mu.Unlock()
}

// release returns budget for n packets sent.
func (q *fqTUN) release(n int) {
	if n == 0 {
		return
	}
	q.mu.Lock()
	q.inFlight = max(0, q.inFlight-n)
	q.lastFree = q.now()
	wake := q.inFlight < sendBudget
	q.mu.Unlock()
	if wake {
		q.signal()
	}
}

// Stats returns the queue's counters, in the control API's terms (the
// receive side and the interface's qdisc aside).
func (q *fqTUN) Stats() api.QueueStatus {
	q.mu.Lock()
	st := api.QueueStatus{Discipline: "fq_codel", Queued: q.queued, SendInFlight: q.inFlight, SendBudget: sendBudget}
	q.mu.Unlock()
	st.DroppedCoDel, st.MarkedCE = q.droppedCoDel.Load(), q.markedCE.Load()
	st.DroppedLimit, st.BudgetResyncs = q.droppedLimit.Load(), q.resyncs.Load()
	return st
}

// dequeueLocked is fq_codel's dequeue: deficit round robin over the flows,
// new flows before old ones, CoDel on each flow's head.
func (q *fqTUN) dequeueLocked(now int64) (qpkt, bool) {
	for {
		var list *[]int
		switch {
		case len(q.newFlows) > 0:
			list = &q.newFlows
		case len(q.oldFlows) > 0:
			list = &q.oldFlows
		default:
			return qpkt{}, false
		}
		i := (*list)[0]
		f := &q.flows[i]
		if f.deficit <= 0 {
			f.deficit += fqQuantum
			*list = popFront(*list)
			f.list = 2
			q.oldFlows = append(q.oldFlows, i)
			continue
		}
		p, ok := q.codelDequeueLocked(f, now)
		if !ok {
			*list = popFront(*list)
			if f.list == 1 && len(q.oldFlows) > 0 {
				f.list = 2 // an emptied new flow goes to the old list once
				q.oldFlows = append(q.oldFlows, i)
			} else {
				f.list = 0
			}
			continue
		}
		f.deficit -= p.n
		return p, true
	}
}

// popFront drops l's first element in place (no reallocation on the next
// append, unlike l[1:]).
func popFront(l []int) []int { return l[:copy(l, l[1:])] }

// codelDequeueLocked is RFC 8289's dequeue on one flow: while the head's
// sojourn time stays above codelTarget for codelInterval, drop (or mark
// CE) at a rate rising with the square root of the drop count.
func (q *fqTUN) codelDequeueLocked(f *flow, now int64) (qpkt, bool) {
	cd := &f.cd
	p, ok, okToDrop := q.codelPopLocked(f, now)
	if !ok {
		cd.dropping = false
		return p, false
	}
	if cd.dropping {
		if !okToDrop {
			cd.dropping = false
		}
		for cd.dropping && now >= cd.dropNext {
			if q.markOrDropLocked(&p) {
				cd.count++
				cd.dropNext = controlLaw(cd.dropNext, cd.count)
				return p, true
			}
			cd.count++
			p, ok, okToDrop = q.codelPopLocked(f, now)
			if !ok {
				cd.dropping = false
				return p, false
			}
			if !okToDrop {
				cd.dropping = false
			} else {
				cd.dropNext = controlLaw(cd.dropNext, cd.count)
			}
		}
		return p, true
	}
	if okToDrop {
		marked := q.markOrDropLocked(&p)
		if !marked {
			p, ok, _ = q.codelPopLocked(f, now)
		}
		cd.dropping = true
		delta := cd.count - cd.lastCount
		if delta > 1 && now-cd.dropNext < int64(16*codelInterval) {
			cd.count = delta
		} else {
			cd.count = 1
		}
		cd.dropNext = controlLaw(now, cd.count)
		cd.lastCount = cd.count
		return p, ok
	}
	return p, true
}

// codelPopLocked takes the flow's head and says whether CoDel may drop it.
func (q *fqTUN) codelPopLocked(f *flow, now int64) (p qpkt, ok, okToDrop bool) {
	p, ok = f.pop()
	if !ok {
		f.cd.firstAbove = 0
		return p, false, false
	}
	q.queued--
	if now-p.at < int64(codelTarget) || f.bytes <= fqQuantum {
		f.cd.firstAbove = 0
		return p, true, false
	}
	if f.cd.firstAbove == 0 {
		f.cd.firstAbove = now + int64(codelInterval)
	} else if now >= f.cd.firstAbove {
		okToDrop = true
	}
	return p, true, okToDrop
}

// markOrDropLocked marks p CE when its sender allows ECN (true: keep p),
// else drops it (false).
func (q *fqTUN) markOrDropLocked(p *qpkt) bool {
	if MarkCE(p.b[q.offset : q.offset+p.n]) {
		q.markedCE.Add(1)
		return true
	}
	q.putBufLocked(p.b)
	q.droppedCoDel.Add(1)
	return false
}

func controlLaw(t int64, count uint32) int64 {
	return t + int64(float64(codelInterval)/math.Sqrt(float64(count)))
}

// flowHash hashes an IP packet's addresses, protocol and (TCP, UDP, SCTP
// and UDP-Lite) ports; anything else by what it has of those.
func flowHash(seed maphash.Seed, pkt []byte) uint64 {
	var key []byte
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		ihl := int(pkt[0]&0xf) * 4
		key = append(make([]byte, 0, 16), pkt[12:20]...)
		key = append(key, pkt[9])
		frag := binary.BigEndian.Uint16(pkt[6:8]) & 0x1fff
		if hasPorts(pkt[9]) && frag == 0 && len(pkt) >= ihl+4 {
			key = append(key, pkt[ihl:ihl+4]...)
		}
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		key = append(make([]byte, 0, 40), pkt[8:40]...)
		key = append(key, pkt[6])
		if hasPorts(pkt[6]) && len(pkt) >= 44 {
			key = append(key, pkt[40:44]...)
		}
	default:
		return 0
	}
	return maphash.Bytes(seed, key)
}

func hasPorts(proto byte) bool { return proto == 6 || proto == 17 || proto == 132 || proto == 136 }

// MarkCE sets an ECN-capable IP packet's ECN field to CE (fixing the IPv4
// header checksum) and reports whether it did; Not-ECT packets are left.
func MarkCE(pkt []byte) bool {
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		ecn := pkt[1] & 3
		if ecn == 0 {
			return false
		}
		if ecn == 3 {
			return true
		}
		old := binary.BigEndian.Uint16(pkt[0:2])
		pkt[1] |= 3
		// RFC 1624 incremental update: HC' = ~(~HC + ~m + m').
		sum := uint32(^binary.BigEndian.Uint16(pkt[10:12])) + uint32(^old) + uint32(binary.BigEndian.Uint16(pkt[0:2]))
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(pkt[10:12], ^uint16(sum))
		return true
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		ecn := (pkt[1] >> 4) & 3
		if ecn == 0 {
			return false
		}
		pkt[1] |= 3 << 4
		return true
	}
	return false
}

// QdiscOf names the kernel's root qdisc on ifname, "" when unknown. A TUN
// accepts every packet its qdisc hands it (or drops it when its ring is
// full), so no qdisc there ever holds a backlog: the queue that matters is
// the fqTUN's.
func QdiscOf(ifname string) string {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return ""
	}
	qs, err := netlink.QdiscList(l)
	if err != nil {
		return ""
	}
	for _, q := range qs {
		if q.Attrs().Parent == netlink.HANDLE_ROOT {
			return q.Type()
		}
	}
	return ""
}
