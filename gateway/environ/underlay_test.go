package environ

import (
	"net/netip"
	"testing"
	"time"
)

// The planner reads gathered MTUs; the kernel is asked only when they are
// gathered (or for an address nobody gathered).
func TestUnderlaysGatherBeforePlanning(t *testing.T) {
	mtus := map[netip.Addr]int{{}: 1500, netip.MustParseAddr("198.18.0.1"): 9000}
	asked := 0
	u := &underlays{probe: func(a netip.Addr) int { asked++; return mtus[a] }}
	a := netip.MustParseAddr("198.18.0.1")
	if !u.refresh([]netip.Addr{{}, a}, true) || asked != 2 {
		t.Fatalf("first refresh: changed false or asked %d times, want 2", asked)
	}
	for range 3 {
		if got := u.MTU(a); got != 9000 {
			t.Errorf("MTU(%s) = %d, want 9000", a, got)
		}
	}
	if asked != 2 {
		t.Errorf("planning asked the kernel %d times, want none", asked-2)
	}
	if u.refresh([]netip.Addr{a}, false) {
		t.Error("an unchanged MTU reported as changed")
	}
	mtus[a] = 1400
	if !u.refresh([]netip.Addr{a}, false) || u.MTU(a) != 1400 {
		t.Error("a changed MTU not reported or not kept")
	}
	if got := u.MTU(netip.Addr{}); got != 1500 {
		t.Errorf("a merge forgot the default route's MTU: %d", got)
	}
	if u.due(time.Now(), time.Minute) || !u.due(time.Now().Add(2*time.Minute), time.Minute) {
		t.Error("due is wrong")
	}
	other := netip.MustParseAddr("198.18.0.2")
	mtus[other] = 1300
	if got := u.MTU(other); got != 1300 {
		t.Errorf("an address nobody gathered: MTU %d, want the kernel's 1300", got)
	}
}
