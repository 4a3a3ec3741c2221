package dataplane

import (
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/vgate-project/vgate/gateway/wgspec"
)

// clampTUN decorates a tun.Device (the seam wireguard-go reads and writes
// plaintext packets through) with TCP MSS clamping in both directions:
// SYNs read from the TUN are about to enter the tunnel, SYNs written to it
// have just left it. Clamping both means neither end sends segments that do
// not fit the tunnel, even when the remote gateway does not clamp.
//
// It is also the capture tap (capture.go), the source check (srccheck.go),
// the demand count (demand.go) and a peering's NAT (nat.go, which shows
// the order of the steps); with no capture attached and no NAT rules each
// costs one atomic load per batch.
type clampTUN struct {
	tun.Device
	max4, max6 uint16
	tap        atomic.Pointer[Capture]
	src        srcCheck       // srccheck.go
	demand     *atomic.Uint64 // reads with user traffic (demand.go); nil: not counted
	nat        natSeam        // nat.go
	fq         *fqTUN         // the send queue under it (queue.go); nil in tests
	recv       *batchBudget   // the receive budget (budget.go); nil in tests
}

func newClampTUN(d tun.Device, mtu int) *clampTUN {
	v4, v6 := wgspec.MaxMSS(mtu)
	return &clampTUN{Device: d, max4: v4, max6: v6}
}

func (t *clampTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := t.Device.Read(bufs, sizes, offset)
	t.src.filterOut(bufs, sizes, offset, n) // srccheck.go
	countDemand(t.demand, bufs, sizes, offset, n)
	for i := 0; i < n; i++ {
		if sizes[i] > 0 {
			ClampMSS(bufs[i][offset:offset+sizes[i]], t.max4, t.max6)
		}
	}
	t.nat.outbound(bufs, sizes, offset, n) // nat.go
	if c := t.tap.Load(); c != nil {
		now := time.Now()
		for i := 0; i < n; i++ {
			if sizes[i] > 0 {
				c.Tap(Outbound, bufs[i][offset:offset+sizes[i]], now)
			}
		}
	}
	if t.fq != nil { // what goes on holds send budget until sent (queue.go)
		c := 0
		for i := 0; i < n; i++ {
			if sizes[i] > 0 {
				c++
			}
		}
		t.fq.charge(c)
	}
	return n, err
}

func (t *clampTUN) Write(bufs [][]byte, offset int) (int, error) {
	if t.recv != nil {
		t.recv.written(bufs) // budget.go
	}
	bufs, st := t.nat.inbound(bufs, offset)                // nat.go
	if bufs = t.src.filter(bufs, offset); len(bufs) == 0 { // srccheck.go
		return 0, nil
	}
	for _, b := range bufs {
		if len(b) > offset {
			ClampMSS(b[offset:], t.max4, t.max6)
		}
	}
	if c := t.tap.Load(); c != nil { // before Write: GRO may coalesce bufs
		now := time.Now()
		for _, b := range bufs {
			if len(b) > offset {
				tapInbound(c, st, b[offset:], now)
			}
		}
	}
	return t.Device.Write(bufs, offset)
}
