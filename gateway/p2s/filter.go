package p2s

import (
	"sync/atomic"
	"time"

	"github.com/vgate-project/vgate/gateway/dataplane"
	"github.com/vgate-project/vgate/gateway/wgspec"
	"golang.zx2c4.com/wireguard/tun"
)

// FilterTUN decorates the P2S device's TUN (the seam wireguard-go writes
// decrypted client packets to and reads packets for clients from). Every
// packet a client sends is checked against the current Policy before it
// reaches the kernel; denied ones are dropped and counted. TCP MSS is
// clamped in both directions, as on site-to-site tunnels.
//
// The policy is an immutable value swapped with SetPolicy; a nil policy
// drops everything.
type FilterTUN struct {
	tun.Device
	max4, max6 uint16
	policy     atomic.Pointer[Policy]
	counts     [numVerdicts]atomic.Uint64
	tap        atomic.Pointer[clientTap] // nil unless a capture runs (capture.go)
	returns    Returns                   // per-peering sent/back counts (returns.go)
}

// NewFilterTUN wraps d, whose MTU is mtu.
func NewFilterTUN(d tun.Device, mtu int) *FilterTUN {
	v4, v6 := wgspec.MaxMSS(mtu)
	return &FilterTUN{Device: d, max4: v4, max6: v6}
}

// SetPolicy publishes p; packets checked afterwards use it.
func (f *FilterTUN) SetPolicy(p *Policy) { f.policy.Store(p) }

// Policy returns the current policy.
func (f *FilterTUN) Policy() *Policy { return f.policy.Load() }

// Counts returns how many client packets got each verdict.
func (f *FilterTUN) Counts() map[string]uint64 {
	m := make(map[string]uint64, numVerdicts)
	for v := Verdict(0); v < numVerdicts; v++ {
		m[v.String()] = f.counts[v].Load()
	}
	return m
}

// Returns is the per-peering count of packets sent toward peered
// networks and of packets that came back from them.
func (f *FilterTUN) Returns() *Returns { return &f.returns }

// Denied is the number of client packets dropped by the policy.
func (f *FilterTUN) Denied() uint64 {
	var n uint64
	for v := Verdict(1); v < numVerdicts; v++ {
		n += f.counts[v].Load()
	}
	return n
}

// Write receives decrypted packets from clients. Denied packets are
// removed from bufs in place (wireguard-go rebuilds the slice for every
// batch) and never reach the kernel. It does not allocate.
func (f *FilterTUN) Write(bufs [][]byte, offset int) (int, error) {
	p := f.policy.Load()
	if t := f.tap.Load(); t != nil {
		now := time.Now()
		for _, b := range bufs {
			if len(b) > offset {
				t.tapFrom(b[offset:], now)
			}
		}
	}
	kept := 0
	for _, b := range bufs {
		v := DenySource
		if len(b) <= offset {
			v = DenyMalformed
		} else if p != nil {
			v = p.Check(b[offset:])
		}
		f.counts[v].Add(1)
		if v != Allow {
			continue
		}
		dataplane.ClampMSS(b[offset:], f.max4, f.max6)
		f.returns.sent(b[offset:])
		bufs[kept] = b
		kept++
	}
	if kept == 0 {
		return len(bufs), nil
	}
	if _, err := f.Device.Write(bufs[:kept], offset); err != nil {
		return 0, err
	}
	return len(bufs), nil
}

// Read passes packets for clients through, clamping MSS.
func (f *FilterTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := f.Device.Read(bufs, sizes, offset)
	t := f.tap.Load()
	var now time.Time
	if t != nil {
		now = time.Now()
	}
	for i := 0; i < n; i++ {
		if sizes[i] > 0 {
			pkt := bufs[i][offset : offset+sizes[i]]
			dataplane.ClampMSS(pkt, f.max4, f.max6)
			f.returns.back(pkt)
			if t != nil {
				t.tapTo(pkt, now)
			}
		}
	}
	return n, err
}
