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
		if !l.Take(a, t0) {
			t.Fatalf("attempt %d refused", i+1)
		}
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
		{"and is limited again right after", a, Refill, false},
	}
	for _, s := range steps {
		if got := l.Take(s.src, t0.Add(s.at)); got != s.want {
			t.Errorf("%s: Take = %v, want %v", s.name, got, s.want)
		}
	}
	// A success gives its charge back: b can go on.
	l2 := NewLimiter()
	for i := range 3 * Burst {
		if !l2.Take(b, t0) {
			t.Fatalf("successful attempt %d refused", i+1)
		}
		l2.Refund(b, t0)
	}
}

func TestLimiterGlobal(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := NewLimiter()
	for i := range GlobalBurst {
		src := netip.AddrFrom4([4]byte{198, 18, byte(i / 256), byte(i)})
		if !l.Take(src, t0) {
			t.Fatalf("source %d refused before the global burst", i)
		}
	}
	fresh := netip.MustParseAddr("198.18.9.9")
	if l.Take(fresh, t0) {
		t.Error("global burst spent: a fresh source was allowed")
	}
	if !l.Take(fresh, t0.Add(GlobalRefill)) {
		t.Error("after a global refill a fresh source is refused")
	}
}

// With every source slot held by a limited source, new sources are
// refused (fail closed) until some bucket refills.
func TestLimiterFull(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := NewLimiter()
	for i := range maxSources {
		l.src[netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i)})] = &bucket{tokens: 0, at: t0}
	}
	fresh := netip.MustParseAddr("198.18.9.9")
	if l.Take(fresh, t0) {
		t.Error("a new source was let in while every slot is held by a limited source")
	}
	if !l.Take(fresh, t0.Add(Burst*Refill)) {
		t.Error("after the buckets refilled, a new source is refused")
	}
}
