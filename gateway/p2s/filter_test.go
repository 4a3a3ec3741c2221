package p2s

import (
	"net/netip"
	"os"
	"testing"

	"github.com/vgate-project/vgate/gateway/dataplane"

	"golang.zx2c4.com/wireguard/tun"
)

// recTUN records what reaches the kernel side.
type recTUN struct {
	written [][]byte
	keep    bool
}

func (r *recTUN) File() *os.File                         { return nil }
func (r *recTUN) Read([][]byte, []int, int) (int, error) { return 0, nil }
func (r *recTUN) Write(bufs [][]byte, offset int) (int, error) {
	if r.keep {
		for _, b := range bufs {
			r.written = append(r.written, b[offset:])
		}
	}
	return len(bufs), nil
}
func (r *recTUN) MTU() (int, error)        { return 1420, nil }
func (r *recTUN) Name() (string, error)    { return "rec", nil }
func (r *recTUN) Events() <-chan tun.Event { return nil }
func (r *recTUN) Close() error             { return nil }
func (r *recTUN) BatchSize() int           { return 128 }

const off = 16 // wireguard-go writes with MessageTransportOffsetContent

func withOffset(p []byte) []byte { return append(make([]byte, off), p...) }

func TestFilterWrite(t *testing.T) {
	rec := &recTUN{keep: true}
	f := NewFilterTUN(rec, 1420)
	batch := func() [][]byte {
		return [][]byte{
			withOffset(packet(ma("172.16.201.1"), ma("10.1.0.2"))),     // allow
			withOffset(packet(ma("172.16.201.3"), ma("10.1.0.2"))),     // carol: denied
			withOffset(packet(ma("172.16.201.3"), ma("172.16.201.4"))), // carol -> dave: denied
			withOffset(packet(ma("fd00:cafe::2"), ma("fd00:cafe::1"))), // bob -> alice: allow
			make([]byte, off), // empty: malformed
		}
	}
	// No policy yet: nothing passes.
	if n, err := f.Write(batch(), off); n != 5 || err != nil || len(rec.written) != 0 {
		t.Fatalf("without policy: n=%d err=%v, %d written", n, err, len(rec.written))
	}
	f.SetPolicy(NewPolicy(testPolicyInput()))
	if n, err := f.Write(batch(), off); n != 5 || err != nil {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if len(rec.written) != 2 || srcDst(rec.written[0]) != "172.16.201.1 -> 10.1.0.2" || srcDst(rec.written[1]) != "fd00:cafe::2 -> fd00:cafe::1" {
		t.Fatalf("written: %d packets", len(rec.written))
	}
	c := f.Counts()
	if c["allow"] != 2 || c["destination"] != 1 || c["client_to_client"] != 1 || c["malformed"] != 2 || c["unknown_source"] != 4 || f.Denied() != 8 {
		t.Fatalf("counts %v, denied %d", c, f.Denied())
	}
	// A batch with nothing allowed never reaches the device.
	rec.written = nil
	if n, _ := f.Write([][]byte{withOffset(packet(ma("172.16.201.3"), ma("10.1.0.2")))}, off); n != 1 || len(rec.written) != 0 {
		t.Fatal("denied-only batch reached the device")
	}
}

func BenchmarkFilterWrite(b *testing.B) {
	f := NewFilterTUN(&recTUN{}, 1420)
	f.SetPolicy(NewPolicy(testPolicyInput()))
	pkts := [][]byte{
		withOffset(packet(ma("172.16.201.1"), ma("10.1.0.2"))),
		withOffset(packet(ma("172.16.201.3"), ma("10.1.0.2"))),
		withOffset(packet(ma("fd00:cafe::1"), ma("fd00:1::2"))),
	}
	bufs := make([][]byte, len(pkts))
	b.ReportAllocs()
	for b.Loop() {
		copy(bufs, pkts)
		f.Write(bufs, off)
	}
}

func TestFilterWriteDoesNotAllocate(t *testing.T) {
	f := NewFilterTUN(&recTUN{}, 1420)
	f.SetPolicy(NewPolicy(testPolicyInput()))
	pkt := withOffset(packet(ma("172.16.201.1"), ma("10.1.0.2")))
	bufs := make([][]byte, 1)
	if n := testing.AllocsPerRun(1000, func() { bufs[0] = pkt; f.Write(bufs, off) }); n != 0 {
		t.Fatalf("Write allocates %v times", n)
	}
}

// A client capture sees the client's packets in both directions, denied
// ones included, and nothing of other clients.
func TestFilterClientCapture(t *testing.T) {
	rec := &recTUN{keep: true}
	f := NewFilterTUN(rec, 1420) // no policy: denies everything
	c := dataplane.NewCapture(0, 16)
	alice := netip.MustParseAddr("172.16.201.1")
	if err := f.StartCapture(c, []netip.Addr{alice}); err != nil {
		t.Fatal(err)
	}
	if err := f.StartCapture(dataplane.NewCapture(0, 1), nil); err == nil {
		t.Fatal("two captures at once")
	}
	fromAlice := packet(alice, ma("10.1.0.2"))
	fromBob := packet(ma("172.16.201.2"), ma("10.1.0.2"))
	if _, err := f.Write([][]byte{withOffset(fromAlice), withOffset(fromBob)}, off); err != nil {
		t.Fatal(err)
	}
	if len(rec.written) != 0 {
		t.Fatal("denied packets reached the kernel")
	}
	select {
	case p := <-c.Packets():
		if p.Dir != dataplane.Inbound || string(p.Data) != string(fromAlice) {
			t.Fatalf("captured %+v", p)
		}
	default:
		t.Fatal("alice's denied packet was not captured")
	}
	select {
	case p := <-c.Packets():
		t.Fatalf("captured another client's packet: %+v", p)
	default:
	}
	f.StopCapture(c)
	if err := f.StartCapture(dataplane.NewCapture(0, 1), nil); err != nil {
		t.Fatalf("capture not released: %v", err)
	}
}
