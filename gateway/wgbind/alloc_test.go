package wgbind

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
)

// Idle allocation budget: an idle gateway's traffic is the liveness probe
// (10 pings a second through each tunnel). Allocating per packet at that
// rate made an idle hub churn megabytes a second (one 64 KiB buffer per
// packet), so these tests fail when the per-packet path of the
// Mux plus wireguard-go devices starts allocating again.

// maxBytesPerProbe bounds what one probe round trip (a packet each way
// through a gateway device and its remote, both wireguard-go) may
// allocate, test harness included (tuntest.Ping builds each packet, the
// channel TUN copies it). It is far below one 64 KiB buffer.
// An occasional sync.Pool miss (a fresh 64 KiB message buffer) costs 655
// bytes per probe in a second; a buffer per packet would cost 256 KiB.
const maxBytesPerProbe = 8 << 10

// TestIdleAllocationPerProbeInterval runs simulated seconds of probes
// through a 10-tunnel in-memory hub (each tunnel 10 round trips a second)
// and checks the bytes allocated in the best of three seconds. The garbage
// collector is off while it measures, so pools keep what they hold.
func TestIdleAllocationPerProbeInterval(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random: allocation figures mean nothing")
	}
	if testing.Short() {
		t.Skip("starts 20 wireguard-go devices")
	}
	g := newGateway(t, 10)
	second := func() {
		for range 10 {
			for _, p := range g.pairs {
				g.ping(p, true)  // the probe...
				g.ping(p, false) // ...and its reply
			}
		}
	}
	second() // handshakes, pools warmed
	second()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	probes := uint64(10 * len(g.pairs))
	var perProbe uint64
	for i := range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		second()
		runtime.ReadMemStats(&after)
		bytes := after.TotalAlloc - before.TotalAlloc
		t.Logf("one simulated second of a 10-tunnel hub: %d probes, %d bytes (%d per probe), %d allocations",
			probes, bytes, bytes/probes, after.Mallocs-before.Mallocs)
		if i == 0 || bytes/probes < perProbe {
			perProbe = bytes / probes
		}
	}
	if perProbe > maxBytesPerProbe {
		t.Errorf("a probe round trip allocates %d bytes, budget %d: something on the per-packet path allocates again (go test -run %s -memprofile)",
			perProbe, maxBytesPerProbe, t.Name())
	}
}

// TestHandOverKeepsQueuedPackets: a packet handed to a device queue keeps
// its bytes while the reader reads the next batches into the same slots.
func TestHandOverKeepsQueuedPackets(t *testing.T) {
	m, r := newFakeMux(t)
	a, fa := openBind(t, m, "a")
	m.register(7, a)
	var want [][]byte
	for round := range 3 {
		for i := range 4 {
			pkt := message(msgTransport, 7, 200+i)
			pkt[20] = byte(round) // distinct bytes in the same slot each round
			r.put(i, pkt)
			want = append(want, pkt)
		}
		r.dispatch(4)
	}
	got := drain(t, a, fa)
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("packet %d changed while queued", i)
		}
	}
}

// TestJumboDatagrams: a datagram too big for the reader's 2 KiB slots is
// dropped once (it may be cut short), then the reader takes 9 KiB slots
// and the same datagram arrives whole.
func TestJumboDatagrams(t *testing.T) {
	m, r := newFakeMux(t)
	a, fa := openBind(t, m, "a")
	m.register(7, a)
	jumbo := message(msgTransport, 7, 8000)
	jumbo[7999] = 0xaa
	r.put(0, jumbo)
	r.dispatch(1)
	if got := drain(t, a, fa); len(got) != 0 {
		t.Fatalf("a datagram cut short was delivered (%d bytes)", len(got[0]))
	}
	if st := m.Stats(); st.DroppedMalformed != 1 {
		t.Errorf("dropped_malformed %d, want 1", st.DroppedMalformed)
	}
	r.put(0, jumbo)
	r.put(1, message(msgTransport, 7, 100))
	r.dispatch(2)
	// The small packet may go first (the queue's small-packet lane).
	got := drain(t, a, fa)
	whole := slices.ContainsFunc(got, func(p []byte) bool { return bytes.Equal(p, jumbo) })
	if len(got) != 2 || !whole {
		t.Fatalf("after the switch: %d packets, the jumbo one whole: %v", len(got), whole)
	}
}
