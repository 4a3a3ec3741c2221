package wgbind

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/keys"
)

// fakeBind is an underlying bind with no sockets: tests drive a reader's
// dispatch directly. Its Send records what was sent.
type fakeBind struct {
	mu   sync.Mutex
	sent [][]byte
	err  error // what Send returns (nothing is recorded then)
}

// failWith makes Send fail with err (nil: succeed again).
func (f *fakeBind) failWith(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// sentPackets copies what was sent so far.
func (f *fakeBind) sentPackets() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]byte, len(f.sent))
	for i, b := range f.sent {
		out[i] = append([]byte(nil), b...)
	}
	return out
}

func (f *fakeBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) { return nil, 4242, nil }
func (f *fakeBind) Close() error                                    { return nil }
func (f *fakeBind) SetMark(uint32) error                            { return nil }
func (f *fakeBind) BatchSize() int                                  { return conn.IdealBatchSize }
func (f *fakeBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	return (&conn.StdNetBind{}).ParseEndpoint(s)
}
func (f *fakeBind) Send(bufs [][]byte, _ conn.Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	for _, b := range bufs {
		f.sent = append(f.sent, append([]byte(nil), b...))
	}
	return nil
}

var testEP conn.Endpoint = &conn.StdNetEndpoint{AddrPort: netip.MustParseAddrPort("192.0.2.1:51820")}

// fakeGatewayKey is the private key of every fake Mux: the responses tests
// feed one carry a MAC1 keyed by its public key (withMAC1).
var fakeGatewayKey = func() keys.PrivateKey {
	k, err := keys.GeneratePrivate()
	if err != nil {
		panic(err)
	}
	return k
}()

// withMAC1 sets the MAC1 of the handshake message msg as a peer of the
// fake Mux's gateway computes it, and returns msg.
func withMAC1(msg []byte) []byte {
	var g device.CookieGenerator
	g.Init(device.NoisePublicKey(fakeGatewayKey.Public()))
	g.AddMacs(msg)
	return msg
}

// newFakeMux returns an open Mux over a fakeBind, with fakeGatewayKey, and
// a reader to feed it.
func newFakeMux(t testing.TB) (*Mux, *reader) {
	t.Helper()
	m := NewMux(&fakeBind{}, nil)
	if _, err := m.Open(0); err != nil {
		t.Fatal(err)
	}
	m.SetPrivateKey(fakeGatewayKey)
	t.Cleanup(func() { m.Close() })
	return m, m.newReader(nil)
}

// put writes a datagram into slot i of the reader's batch.
func (r *reader) put(i int, pkt []byte) {
	copy(r.bufs[i], pkt)
	r.sizes[i] = len(pkt)
	r.eps[i] = testEP
}

// message builds a received datagram of type typ addressed to receiver
// index (an initiation's sender index), zero-padded to size. A response of
// the right size carries a MAC1 for the fake Mux (withMAC1).
func message(typ, index uint32, size int) []byte {
	b := make([]byte, size)
	if size >= 4 {
		binary.LittleEndian.PutUint32(b, typ)
	}
	at := 4
	if typ == msgResponse {
		at = 8 // Type, Sender, Receiver
	}
	if size >= at+4 {
		binary.LittleEndian.PutUint32(b[at:], index)
	}
	if typ == msgResponse && size == responseSize {
		withMAC1(b)
	}
	return b
}

// sent builds a handshake message one of our devices sends with sender index.
func sent(typ, sender uint32, size int) []byte {
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b, typ)
	binary.LittleEndian.PutUint32(b[4:], sender)
	binary.LittleEndian.PutUint32(b[8:], 0xfeedface) // a response's receiver: not ours
	return b
}

func openBind(t testing.TB, m *Mux, name string) (*bind, conn.ReceiveFunc) {
	t.Helper()
	b := m.NewBind(name).(*bind)
	fns, port, err := b.Open(0)
	if err != nil || len(fns) != 1 || port != m.Port() {
		t.Fatalf("Open: %v %d fns, port %d", err, len(fns), port)
	}
	return b, fns[0]
}

// drain receives everything queued for a device without blocking.
func drain(t testing.TB, b *bind, fn conn.ReceiveFunc) (pkts [][]byte) {
	t.Helper()
	bufs := make([][]byte, conn.IdealBatchSize)
	for i := range bufs {
		bufs[i] = make([]byte, device.MaxMessageSize)
	}
	sizes := make([]int, len(bufs))
	eps := make([]conn.Endpoint, len(bufs))
	for b.cur.Load().depth() > 0 {
		n, err := fn(bufs, sizes, eps)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if eps[i] != testEP {
				t.Errorf("endpoint not passed through: %v", eps[i])
			}
			pkts = append(pkts, append([]byte(nil), bufs[i][:sizes[i]]...))
		}
	}
	return pkts
}

func TestDispatch(t *testing.T) {
	m, r := newFakeMux(t)
	a, fa := openBind(t, m, "a")
	b, fb := openBind(t, m, "b")
	// Learning: a sent an initiation with index 10, b a response with 20.
	a.Send([][]byte{sent(msgInitiation, 10, initiationSize)}, testEP)
	b.Send([][]byte{sent(msgResponse, 20, responseSize)}, testEP)
	// Neither a transport packet nor a wrong-size handshake teaches anything.
	a.Send([][]byte{sent(msgTransport, 30, 100), sent(msgInitiation, 31, 100)}, testEP)

	batch := []struct {
		pkt  []byte
		want string // "a", "b", "ab" or "" (dropped)
	}{
		{message(msgTransport, 10, 100), "a"},
		{message(msgResponse, 10, responseSize), "a"},
		{message(msgCookieReply, 20, cookieReplySize), "b"},
		{message(msgTransport, 20, transportMin), "b"},
		{message(msgTransport, 30, 100), ""},                 // unknown index
		{message(msgTransport, 31, 100), ""},                 // unknown index
		{message(msgResponse, 0xfeedface, responseSize), ""}, // unknown index
		{message(msgTransport, 10, transportMin-1), ""},      // malformed
		{message(msgResponse, 20, responseSize+1), ""},       // malformed
		{message(msgInitiation, 1, initiationSize-1), ""},
		{message(7, 10, 100), ""},
		{[]byte{4, 0, 0}, ""},
	}
	for i, c := range batch {
		r.put(i, c.pkt)
	}
	r.dispatch(len(batch))

	got := map[string][][]byte{"a": drain(t, a, fa), "b": drain(t, b, fb)}
	for _, dev := range []string{"a", "b"} {
		var want [][]byte
		for _, c := range batch {
			if c.want == dev {
				want = append(want, c.pkt)
			}
		}
		// Small transport packets have a lane of their own (codel.go):
		// the order across lanes is not kept.
		if fmt.Sprint(sortedPkts(got[dev])) != fmt.Sprint(sortedPkts(want)) {
			t.Errorf("device %s got %d packets, want %d", dev, len(got[dev]), len(want))
		}
	}
	want := api.PortStats{Dispatched: 4, DroppedUnknownIndex: 3, DroppedMalformed: 5}
	if st := m.Stats(); !sameCounters(st, want) {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	for i, d := range m.Stats().Devices {
		d.InitiationsSent, d.UnansweredSince = 0, time.Time{} // handshakes_test.go
		if want := (api.PortDevice{Name: []string{"a", "b"}[i], Open: true, QueueCap: queueLen, Dispatched: 2}); d != want {
			t.Errorf("device stats %+v, want %+v", d, want)
		}
	}
	if n := m.indexCount(); n != 2 {
		t.Errorf("index table has %d entries, want 2", n)
	}
}

// sameCounters compares the Mux-wide counters of two Stats.
func sameCounters(a, b api.PortStats) bool {
	a.Devices, b.Devices = nil, nil
	a.UnderLoad, b.UnderLoad = false, false
	return reflect.DeepEqual(a, b)
}

func TestIndexTable(t *testing.T) {
	m, _ := newFakeMux(t)
	a := m.NewBind("a").(*bind)
	b := m.NewBind("b").(*bind)
	for i := range uint32(3 * indicesPerDevice) {
		m.register(i, a)
	}
	if n := m.indexCount(); n != indicesPerDevice {
		t.Fatalf("%d entries after %d registrations, want %d", n, 3*indicesPerDevice, indicesPerDevice)
	}
	// Collision: b takes a's newest index; a's later evictions leave it.
	newest := uint32(3*indicesPerDevice - 1)
	m.register(newest, b)
	for i := range uint32(indicesPerDevice) {
		m.register(1000+i, a)
	}
	tab := m.indexSnapshot()
	if tab[newest] != b {
		t.Errorf("collided index points at %v, want b", tab[newest])
	}
	if len(tab) != indicesPerDevice+1 {
		t.Errorf("%d entries, want %d", len(tab), indicesPerDevice+1)
	}
	// Entries nobody refreshed for maxIndexAge go at the next registration.
	m.epoch = m.epoch.Add(-maxIndexAge - time.Second)
	m.register(5000, b)
	if tab := m.indexSnapshot(); len(tab) != 1 || tab[5000] != b {
		t.Errorf("after ageing: %v", tab)
	}
}

func TestSlowDevice(t *testing.T) {
	m, r := newFakeMux(t)
	slow, _ := openBind(t, m, "slow")
	fast, ffast := openBind(t, m, "fast")
	m.register(1, slow)
	m.register(2, fast)
	const extra = 10
	sent, rounds := 0, 0
	for sent < queueLen+extra {
		rounds++
		n := min(len(r.bufs), queueLen+extra-sent)
		for i := range n {
			r.put(i, message(msgTransport, 1, 64))
		}
		r.dispatch(n)
		sent += n
		// The fast device keeps receiving while the slow one is stuck.
		r.put(0, message(msgTransport, 2, 64))
		r.dispatch(1)
		if got := drain(t, fast, ffast); len(got) != 1 {
			t.Fatalf("fast device got %d packets, want 1", len(got))
		}
	}
	st := m.Stats()
	if st.DroppedQueueFull != extra {
		t.Errorf("stats %+v, want %d dropped for a full queue", st, extra)
	}
	want := []api.PortDevice{
		{Name: "fast", Open: true, QueueCap: queueLen, Dispatched: uint64(rounds)},
		{Name: "slow", Open: true, QueueDepth: queueLen, QueueCap: queueLen, Dispatched: queueLen, DroppedQueueFull: extra},
	}
	if !reflect.DeepEqual(st.Devices, want) {
		t.Errorf("devices %+v, want %+v", st.Devices, want)
	}
}

func TestBindLifecycle(t *testing.T) {
	m := NewMux(&fakeBind{}, nil)
	b := m.NewBind("dev")
	if _, _, err := b.Open(0); err == nil {
		t.Fatal("Open on a closed mux succeeded")
	}
	if err := b.Send([][]byte{sent(msgInitiation, 1, initiationSize)}, testEP); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send on a closed bind: %v", err)
	}
	if _, err := m.Open(0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Open(0); err == nil {
		t.Error("second Mux.Open succeeded")
	}
	for round := range 3 {
		fns, port, err := b.Open(1)
		if err != nil || port != 4242 {
			t.Fatalf("round %d: Open: %v, port %d", round, err, port)
		}
		if _, _, err := b.Open(0); !errors.Is(err, conn.ErrBindAlreadyOpen) {
			t.Errorf("double Open: %v", err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := fns[0](make([][]byte, 1), make([]int, 1), make([]conn.Endpoint, 1))
			errc <- err
		}()
		if round < 2 {
			b.Close()
		} else {
			m.Close() // closing the mux ends every device's ReceiveFunc too
		}
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("ReceiveFunc after close: %v", err)
			}
		case <-time.After(expectTimeout):
			t.Fatal("ReceiveFunc did not return after Close")
		}
	}
	if m.Port() != 0 {
		t.Errorf("closed mux reports port %d", m.Port())
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close after the mux closed: %v", err)
	}
	// A reopened mux takes the device back after its BindUpdate (Close+Open).
	if _, err := m.Open(0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Open(0); err != nil {
		t.Errorf("Open after the mux reopened: %v", err)
	}
	m.Close()
}

func TestMalformed(t *testing.T) {
	g := newGateway(t, 1)
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), g.port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	garbage := [][]byte{
		{1},
		{4, 0, 0, 0, 1, 2, 3},
		message(9, 0, 100),
		message(0, 0, 148),
		message(msgResponse, 0, responseSize-1),
		message(msgInitiation, 0, initiationSize+1),
		message(msgTransport, 0, transportMin-1),
		message(msgTransport, 0xdeadbeef, 64),
		message(msgCookieReply, 0xdeadbeef, cookieReplySize),
		message(msgResponse, 0xdeadbeef, responseSize),
		message(msgInitiation, 0xdeadbeef, initiationSize), // the front door: MAC1 is wrong
	}
	for _, pkt := range garbage {
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	want := api.PortStats{DroppedMalformed: 7, DroppedUnknownIndex: 3, Initiations: 1, DroppedBadMAC: 1}
	deadline := time.Now().Add(expectTimeout)
	for !sameCounters(g.mux.Stats(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %+v", g.mux.Stats(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The tunnel still works.
	g.pingBoth(g.pairs[0], false)
	g.noStrays()
}

// iteration dispatches one full batch of transport packets spread over the
// binds and lets each device's ReceiveFunc take its share.
type benchRig struct {
	r     *reader
	binds []*bind
	fns   []conn.ReceiveFunc
	bufs  [][]byte
	sizes []int
	eps   []conn.Endpoint
	size  int
}

func newBenchRig(tb testing.TB, devices, size int) *benchRig {
	m, r := newFakeMux(tb)
	rig := &benchRig{r: r, size: size}
	for i := range devices {
		b, fn := openBind(tb, m, fmt.Sprint("dev", i))
		m.register(uint32(i), b)
		rig.binds = append(rig.binds, b)
		rig.fns = append(rig.fns, fn)
	}
	n := len(r.bufs)
	rig.bufs = make([][]byte, n)
	for i := range rig.bufs {
		rig.bufs[i] = make([]byte, device.MaxMessageSize)
	}
	rig.sizes = make([]int, n)
	rig.eps = make([]conn.Endpoint, n)
	return rig
}

func (rig *benchRig) iteration() {
	r := rig.r
	n := len(r.bufs)
	for i := range n {
		// What the kernel would write: only the header matters here.
		binary.LittleEndian.PutUint32(r.bufs[i][0:], msgTransport)
		binary.LittleEndian.PutUint32(r.bufs[i][4:], uint32(i%len(rig.binds)))
		r.sizes[i] = rig.size
		r.eps[i] = testEP
	}
	r.dispatch(n)
	for d, b := range rig.binds {
		for b.cur.Load().depth() > 0 {
			rig.fns[d](rig.bufs, rig.sizes, rig.eps)
		}
	}
}

func TestDispatchAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	rig := newBenchRig(t, 10, 1452)
	rig.iteration() // warm the pool
	if a := testing.AllocsPerRun(100, rig.iteration); a != 0 {
		t.Errorf("%v allocations per batch, want 0", a)
	}
}

func BenchmarkMuxDispatch(b *testing.B) {
	const size = 1452
	rig := newBenchRig(b, 10, size)
	batch := len(rig.r.bufs)
	b.SetBytes(int64(batch * size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rig.iteration()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/pkt")
}

// A device that never reads (A) is flooded with garbage at its receiver
// index; the reader never waits for it, and device B, which keeps up with
// its own traffic, loses nothing.
func TestNoHeadOfLineBlocking(t *testing.T) {
	m, r := newFakeMux(t)
	a, _ := openBind(t, m, "a")
	b, fb := openBind(t, m, "b")
	m.register(1, a)
	m.register(2, b)

	const rounds, perRound = 800, 8 // B's packets: 6400, more than its queue
	if rounds*perRound <= queueLen {
		t.Fatal("B's traffic must exceed its queue")
	}
	got := make(chan []uint32, 1)
	go func() {
		bufs := make([][]byte, conn.IdealBatchSize)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		sizes := make([]int, len(bufs))
		eps := make([]conn.Endpoint, len(bufs))
		var seqs []uint32
		for len(seqs) < rounds*perRound {
			n, err := fb(bufs, sizes, eps)
			if err != nil {
				break
			}
			for i := range n {
				seqs = append(seqs, binary.LittleEndian.Uint32(bufs[i][16:20]))
			}
		}
		got <- seqs
	}()

	done := make(chan struct{})
	garbage := make([]byte, 1400)
	go func() {
		defer close(done)
		seq := uint32(0)
		for range rounds {
			// B keeps up with its own offered load (half a queue at most
			// in flight); A never reads.
			for len(b.cur.Load().q) > queueLen/2 {
				time.Sleep(time.Millisecond)
			}
			for i := range len(r.bufs) {
				if i%(len(r.bufs)/perRound) == 0 {
					p := message(msgTransport, 2, 100)
					binary.LittleEndian.PutUint32(p[16:], seq)
					seq++
					r.put(i, p)
					continue
				}
				rand.Read(garbage[8:])
				binary.LittleEndian.PutUint32(garbage, msgTransport)
				binary.LittleEndian.PutUint32(garbage[4:], 1)
				r.put(i, garbage)
			}
			r.dispatch(len(r.bufs))
		}
	}()
	select {
	case <-done:
	case <-time.After(expectTimeout):
		t.Fatal("the reader blocked on the device that does not read")
	}
	var seqs []uint32
	select {
	case seqs = <-got:
	case <-time.After(expectTimeout):
		t.Fatalf("device B received too little; stats %+v", m.Stats())
	}
	for i, s := range seqs {
		if s != uint32(i) {
			t.Fatalf("device B's packet %d has sequence %d: lost or reordered", i, s)
		}
	}
	st := m.Stats()
	aSent := uint64(rounds * (len(r.bufs) - perRound))
	want := []api.PortDevice{
		{Name: "a", Open: true, QueueDepth: queueLen, QueueCap: queueLen, Dispatched: queueLen, DroppedQueueFull: aSent - queueLen},
		{Name: "b", Open: true, QueueCap: queueLen, Dispatched: rounds * perRound},
	}
	if !reflect.DeepEqual(st.Devices, want) {
		t.Errorf("devices %+v, want %+v", st.Devices, want)
	}
	if st.DroppedQueueFull != aSent-queueLen {
		t.Errorf("mux dropped_queue_full %d, want %d", st.DroppedQueueFull, aSent-queueLen)
	}
}

func sortedPkts(p [][]byte) [][]byte {
	out := slices.Clone(p)
	slices.SortFunc(out, bytes.Compare)
	return out
}
