package enroll

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vgate-project/vgate/gateway/connlimit"
)

func src(s string) netip.Prefix { return connlimit.Source(netip.MustParseAddr(s)) }

func TestLimiter(t *testing.T) {
	a, b := src("198.18.0.10"), src("198.18.0.11")
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := NewLimiter()
	for i := range Burst {
		if !l.Take(a, t0) {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	steps := []struct {
		name string
		src  netip.Prefix
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
}

// The addresses of one IPv6 /64 are one source: 64 of them together get
// one burst, not 64.
func TestLimiterIPv6Slash64(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := NewLimiter()
	allowed := 0
	for i := range 64 {
		for range 5 {
			if l.Take(src(fmt.Sprintf("fd18::a:%x", i)), t0) {
				allowed++
			}
		}
	}
	if allowed != Burst {
		t.Errorf("64 addresses of one /64, 5 failures each: %d allowed, want %d (one source)", allowed, Burst)
	}
	if !l.Take(src("fd18:0:0:1::a"), t0) {
		t.Error("another /64 is limited too")
	}
}

func TestLimiterGlobal(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := NewLimiter()
	for i := range GlobalBurst {
		s := connlimit.Source(netip.AddrFrom4([4]byte{198, 18, byte(i / 256), byte(i)}))
		if !l.Take(s, t0) {
			t.Fatalf("source %d refused before the global burst", i)
		}
	}
	fresh := src("198.18.9.9")
	if l.Take(fresh, t0) {
		t.Error("global burst spent: a fresh source was allowed")
	}
	if !l.Take(fresh, t0.Add(GlobalRefill)) {
		t.Error("after one global refill a fresh source is refused")
	}
}

// With every source slot held by a limited source, new sources are
// refused (fail closed) until some bucket refills.
func TestLimiterFull(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	l := NewLimiter()
	for i := range maxSources {
		l.src[connlimit.Source(netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i)}))] = &bucket{tokens: 0, at: t0}
	}
	fresh := src("198.18.9.9")
	if l.Take(fresh, t0) {
		t.Error("a new source was let in while every slot is held by a limited source")
	}
	if !l.Take(fresh, t0.Add(Burst*Refill)) {
		t.Error("after the buckets refilled, a new source is refused")
	}
}
