package enroll

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	a, b := netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("198.18.0.11")
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := NewLimiter()
	for i := range Burst {
		if !l.Allow(a, t0) {
			t.Fatalf("attempt %d refused", i+1)
		}
		l.Fail(a, t0)
	}
	steps := []struct {
		name string
		src  netip.Addr
		at   time.Duration
		want bool
	}{
		{"a after its burst of failures", a, 0, false},
		{"another source is not limited", b, 0, true},
		{"a still limited just before one refill", a, Refill - time.Millisecond, false},
		{"a may try again after one refill", a, Refill, true},
	}
	for _, s := range steps {
		if got := l.Allow(s.src, t0.Add(s.at)); got != s.want {
			t.Errorf("%s: Allow = %v, want %v", s.name, got, s.want)
		}
	}
	l.Fail(a, t0.Add(Refill))
	if l.Allow(a, t0.Add(Refill)) {
		t.Error("a failed again after the refill: still allowed")
	}
}

func TestLimiterGlobal(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := NewLimiter()
	for i := range GlobalBurst {
		src := netip.AddrFrom4([4]byte{198, 18, byte(i / 256), byte(i)})
		if !l.Allow(src, t0) {
			t.Fatalf("source %d refused before the global burst", i)
		}
		l.Fail(src, t0)
	}
	fresh := netip.MustParseAddr("198.18.9.9")
	if l.Allow(fresh, t0) {
		t.Error("global burst spent: a fresh source was allowed")
	}
	if !l.Allow(fresh, t0.Add(GlobalRefill)) {
		t.Error("after a global refill a fresh source is refused")
	}
}
